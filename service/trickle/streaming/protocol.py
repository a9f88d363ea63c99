"""The stream protocol's messages, limits and codes (docs/stream-protocol.md is the spec).

Client messages are JSON objects with a ``type``; each type has a strict schema (unknown fields
are refused). Amounts are decimal strings of minor units. Parsing never raises anything but
``ProtocolViolation`` (closes the socket) or ``InvalidMessage`` (an error reply; the socket stays).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from trickle import jsontext

PROTOCOL_VERSION = 1

# Close codes: the socket is closed with one of these when the client breaks the protocol, its
# login session ends, or the server stops.
CLOSE_CODES: dict[str, int] = {
    "malformed_message": 4400,  # not a JSON object with a string "type"
    "unauthenticated": 4401,  # first message not a valid hello, or a bad token
    "hello_timeout": 4408,  # no hello within the hello timeout
    "idle_timeout": 4410,  # nothing received for the idle timeout (a ping counts)
    "too_many_connections": 4429,  # the reader has the maximum of connections open
    "message_too_large": 4413,  # a message over the size limit
    "unknown_message_type": 4415,  # a "type" this protocol version does not have
    "unsupported_version": 4426,  # hello with a version the server does not speak
    "too_many_errors": 4422,  # too many invalid messages in a row
    "too_slow": 1008,  # the client left too many messages unread (max_queued_messages)
    "replaced": 4409,  # the same reader's connection limit was hit: oldest closed (unused)
    "session_ended": 4440,  # the hello's login session was revoked or expired meanwhile
    "server_shutdown": 1001,
}
# Error codes sent in {"type": "error"} messages; the socket stays open.
ERROR_CODES = (
    "invalid_message",  # a known type with wrong or missing fields
    "too_many_streams",  # the connection has the maximum of streams
    "unknown_stream",  # no stream with that sid on this connection (or it ended)
    "payee_not_found",  # the payment pointer names no payee of this service
    "invalid_origin",  # the origin is not scheme://host[:port] over http(s)
    "duplicate_ref",  # a start with a ref already in use on this connection
)
# Reasons a stream is not accruing, in "state" messages.
STATE_REASONS = (
    "inactive",  # the client reported the page not visible or not focused
    "account_frozen",  # the reader's spending is frozen (a card payment was taken back)
    "paused",  # the reader paused all payments
    "site_disabled",  # the reader turned this site off
    "insufficient_funds",  # the balance cannot cover the next increment
    "budget_exhausted",  # the monthly budget is spent
    "disconnected",  # the connection dropped; resumable within the grace period
    "stopped",  # the client stopped it
)

Sid = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
AmountMinor = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]{0,18})$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Hello(_Message):
    type: Literal["hello"]
    v: int
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    batch: bool = False  # the client reads ``batch`` envelopes (several messages in one frame)


class Start(_Message):
    type: Literal["start"]
    ref: Ref
    origin: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    pointer: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    binding: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,256}$")] | None = None
    active: bool = True


class Attention(_Message):
    type: Literal["attention"]
    sid: Sid
    active: bool


class Stop(_Message):
    type: Literal["stop"]
    sid: Sid


class Resume(_Message):
    type: Literal["resume"]
    sid: Sid
    active: bool = True


class Ping(_Message):
    type: Literal["ping"]
    data: Annotated[str, StringConstraints(max_length=64)] | None = None


class BalanceQuery(_Message):
    type: Literal["balance"]


ClientMessage = Annotated[
    Hello | Start | Attention | Stop | Resume | Ping | BalanceQuery, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
KNOWN_TYPES = frozenset({"hello", "start", "attention", "stop", "resume", "ping", "balance"})


class ProtocolViolation(Exception):
    """The client broke the protocol: the server closes the socket with ``close_code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = CLOSE_CODES[code]


class InvalidMessage(Exception):
    """A known message type with wrong fields: an error reply, the socket stays open."""

    code = "invalid_message"

    def __init__(self, message: str, ref: str | None = None, sid: str | None = None) -> None:
        super().__init__(message)
        self.ref = ref
        self.sid = sid


def parse(text: str | bytes, max_bytes: int) -> ClientMessage:
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise ProtocolViolation(
            "message_too_large", f"a message may be at most {max_bytes} bytes, got {size}"
        )
    try:
        jsontext.check_depth(text)
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolViolation("malformed_message", "a message must be a JSON object") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolViolation("malformed_message", 'a message must be an object with a "type"')
    if data["type"] not in KNOWN_TYPES:
        raise ProtocolViolation(
            "unknown_message_type", f"unknown message type {data['type'][:40]!r}"
        )
    try:
        return _ADAPTER.validate_python(data)
    except PydanticValidationError as exc:
        ref, sid = _str_or_none(data, "ref"), _str_or_none(data, "sid")
        raise InvalidMessage(_describe(exc), ref, sid) from None


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"][1:]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _str_or_none(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value[:64] if isinstance(value, str) else None


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
