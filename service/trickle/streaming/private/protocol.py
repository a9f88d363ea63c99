"""The private stream's messages and codes (docs/stream-protocol.md, "Private streams").

The private stream (``/api/v1/private-stream``) carries no login: its ``hello`` has no token,
and the client pays each increment itself with tokens (``spend``). Framing, the close codes and
the strict schemas are the stream protocol's (``streaming.protocol``); the messages are its own.
Parsing raises ``ProtocolViolation`` (the socket closes) or ``InvalidMessage`` (an error reply).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from trickle import errors
from trickle.streaming.protocol import (
    PROTOCOL_VERSION,
    InvalidMessage,
    ProtocolViolation,
    frame,
)

__all__ = [
    "ERROR_CODES",
    "KNOWN_TYPES",
    "MAX_TOKENS_PER_SPEND",
    "PROTOCOL_VERSION",
    "ClientMessage",
    "ErrorCode",
    "Hello",
    "InvalidMessage",
    "Ping",
    "ProtocolViolation",
    "Spend",
    "Start",
    "Stop",
    "error_message",
    "parse",
]

# Tokens one ``spend`` may show: a few increments' worth. The message size limit bounds it
# too (a token is ~160 bytes of JSON).
MAX_TOKENS_PER_SPEND = 16


class ErrorCode(enum.StrEnum):
    """Sent in the private stream's ``{"type": "error"}`` messages; the socket stays open. The
    token codes are the token rules' own (``trickle.errors.TokenError`` and its subclasses)."""

    INVALID_MESSAGE = "invalid_message"  # a known type with wrong or missing fields
    TOO_MANY_STREAMS = "too_many_streams"  # the connection has the maximum of streams
    UNKNOWN_STREAM = "unknown_stream"  # no stream with that id on this connection (or it ended)
    DUPLICATE_STREAM = "duplicate_stream"  # a start with a stream id in use on this connection
    PAYEE_NOT_FOUND = "payee_not_found"  # the payment pointer names no payee of this service
    INVALID_ORIGIN = "invalid_origin"  # the origin is not scheme://host[:port] over http(s)
    # the token rules' own codes (``trickle.errors``, where each says when it is raised)
    INVALID_TOKEN = errors.InvalidToken.code  # malformed, repeated, or not the key's PRF
    TOKEN_SPENT = errors.TokenSpent.code  # spent or refunded before: a token pays once
    UNKNOWN_EPOCH = errors.UnknownEpoch.code  # no token key of this currency has that epoch
    EPOCH_EXPIRED = errors.EpochExpired.code  # past its epoch's spend_until: refund the token
    SPEND_FAILED = "spend_failed"  # the spend could not be committed (nothing moved; retry)


ERROR_CODES: tuple[str, ...] = tuple(code.value for code in ErrorCode)

StreamId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Hello(_Message):
    type: Literal["hello"]
    v: int
    private: Literal[True]
    batch: bool = False  # the client reads ``batch`` envelopes


class Start(_Message):
    type: Literal["start"]
    stream: StreamId
    origin: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    pointer: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    binding: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,256}$")] | None = None


class Spend(_Message):
    type: Literal["spend"]
    stream: StreamId
    # each token's own rules are the token module's (``tokens.parse_tokens``): only the list
    # is checked here
    tokens: Annotated[list[Any], Field(min_length=1, max_length=MAX_TOKENS_PER_SPEND)]


class Stop(_Message):
    type: Literal["stop"]
    stream: StreamId


class Ping(_Message):
    type: Literal["ping"]
    data: Annotated[str, StringConstraints(max_length=64)] | None = None


ClientMessage = Annotated[Hello | Start | Spend | Stop | Ping, Field(discriminator="type")]
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
KNOWN_TYPES = frozenset({"hello", "start", "spend", "stop", "ping"})


def parse(text: str | bytes, max_bytes: int) -> ClientMessage:
    """One client frame: the stream protocol's framing rules, then this protocol's schemas."""
    data = frame(text, max_bytes, KNOWN_TYPES)
    try:
        return _ADAPTER.validate_python(data)
    except PydanticValidationError as exc:
        stream = data.get("stream")
        raise StreamInvalid(
            _describe(exc), stream[:64] if isinstance(stream, str) else None
        ) from None


class StreamInvalid(InvalidMessage):
    """An invalid message of the private stream: its error names the client's ``stream``."""

    def __init__(self, message: str, stream: str | None) -> None:
        super().__init__(message)
        self.stream = stream


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"][1:]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def error_message(
    code: str,
    message: str,
    *,
    stream: str | None = None,
    sid: str | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    """An ``error``: its ``stream`` (and ``sid``) when the failed message named one; ``index``:
    the position in ``tokens`` of the token that broke the rule, when one did."""
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if stream is not None:
        body["stream"] = stream
    if sid is not None:
        body["sid"] = sid
    if index is not None:
        body["index"] = index
    return body


def invalid_error(exc: InvalidMessage) -> dict[str, Any]:
    """The reply to an invalid message."""
    stream = exc.stream if isinstance(exc, StreamInvalid) else None
    return error_message(ErrorCode.INVALID_MESSAGE, str(exc), stream=stream)
