"""The stream protocol's messages, limits and codes (docs/stream-protocol.md is the spec).

Client messages are JSON objects with a ``type``; each type has a strict schema (unknown fields
are refused). Amounts are decimal strings of minor units. Parsing never raises anything but
``ProtocolViolation`` (closes the socket) or ``InvalidMessage`` (an error reply; the socket stays).
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from trickle import jsontext

PROTOCOL_VERSION = 1


class CloseCode(enum.IntEnum):
    """The socket is closed with one of these when the client breaks the protocol, its login
    session ends, or the server stops; a code's name in the spec is its lower-case name here."""

    MALFORMED_MESSAGE = 4400  # not a JSON object with a string "type"
    UNAUTHENTICATED = 4401  # first message not a valid hello, or a bad token
    HELLO_TIMEOUT = 4408  # no hello within the hello timeout
    IDLE_TIMEOUT = 4410  # nothing received for the idle timeout (a ping counts)
    TOO_MANY_CONNECTIONS = 4429  # the reader has the maximum of connections open
    MESSAGE_TOO_LARGE = 4413  # a message over the size limit
    UNKNOWN_MESSAGE_TYPE = 4415  # a "type" this protocol version does not have
    UNSUPPORTED_VERSION = 4426  # hello with a version the server does not speak
    TOO_MANY_ERRORS = 4422  # too many invalid messages in a row
    TOO_SLOW = 1008  # the client left too many messages unread (max_queued_messages)
    SESSION_ENDED = 4440  # the hello's login session was revoked or expired meanwhile
    SERVER_SHUTDOWN = 1001


CLOSE_CODES: dict[str, int] = {code.name.lower(): code.value for code in CloseCode}


class ErrorCode(enum.StrEnum):
    """Sent in ``{"type": "error"}`` messages; the socket stays open."""

    INVALID_MESSAGE = "invalid_message"  # a known type with wrong or missing fields
    TOO_MANY_STREAMS = "too_many_streams"  # the connection has the maximum of streams
    UNKNOWN_STREAM = "unknown_stream"  # no stream with that sid on this connection (or it ended)
    PAYEE_NOT_FOUND = "payee_not_found"  # the payment pointer names no payee of this service
    INVALID_ORIGIN = "invalid_origin"  # the origin is not scheme://host[:port] over http(s)
    DUPLICATE_REF = "duplicate_ref"  # a start with a ref already in use on this connection


ERROR_CODES: tuple[str, ...] = tuple(code.value for code in ErrorCode)


class State(enum.StrEnum):
    """A stream's state, in ``state`` messages: ``active`` (accruing), or the reason it is not
    (then also the message's ``reason``)."""

    ACTIVE = "active"
    INACTIVE = "inactive"  # the client reported the page not visible or not focused
    ACCOUNT_FROZEN = "account_frozen"  # the reader's spending is frozen (a card payment taken back)
    PAUSED = "paused"  # the reader paused all payments
    SITE_DISABLED = "site_disabled"  # the reader turned this site off
    INSUFFICIENT_FUNDS = "insufficient_funds"  # the balance cannot cover the next increment
    BUDGET_EXHAUSTED = "budget_exhausted"  # the monthly budget is spent
    DISCONNECTED = "disconnected"  # the connection dropped; resumable within the grace period
    STOPPED = "stopped"  # the client stopped it


STATE_REASONS: tuple[str, ...] = tuple(state.value for state in State if state != State.ACTIVE)
# What the group commit may refuse an increment for (``ledger.Charge.refused``): the
# reader's streams then wait in that state until a refresh finds room again.
Refusal = Literal[State.INSUFFICIENT_FUNDS, State.BUDGET_EXHAUSTED]
REFUSALS: dict[str, Refusal] = {
    State.INSUFFICIENT_FUNDS.value: State.INSUFFICIENT_FUNDS,
    State.BUDGET_EXHAUSTED.value: State.BUDGET_EXHAUSTED,
}


class EndReason(enum.StrEnum):
    """Why a stream ended, in its ``stopped`` message."""

    STOPPED = "stopped"  # the client stopped it
    SESSION_ENDED = "session_ended"  # the connection's login session was revoked or expired
    DISCONNECTED = "disconnected"  # not resumed within the grace period (no one to tell)


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

    def __init__(self, close_code: CloseCode, message: str) -> None:
        super().__init__(message)
        self.code = close_code.name.lower()  # its name in the spec
        self.close_code = close_code


class InvalidMessage(Exception):
    """A known message type with wrong fields: an error reply, the socket stays open."""

    code = ErrorCode.INVALID_MESSAGE

    def __init__(self, message: str, ref: str | None = None, sid: str | None = None) -> None:
        super().__init__(message)
        self.ref = ref
        self.sid = sid


def frame(text: str | bytes, max_bytes: int, known_types: frozenset[str]) -> dict[str, Any]:
    """The framing rules every stream socket (identified and private) applies to a frame before
    its schema: its size, JSON (within the nesting limit), an object with a string ``type``, a
    type the protocol has; each broken rule closes with its code."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise ProtocolViolation(
            CloseCode.MESSAGE_TOO_LARGE, f"a message may be at most {max_bytes} bytes, got {size}"
        )
    try:
        jsontext.check_depth(text)
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolViolation(
            CloseCode.MALFORMED_MESSAGE, "a message must be a JSON object"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolViolation(
            CloseCode.MALFORMED_MESSAGE, 'a message must be an object with a "type"'
        )
    if data["type"] not in known_types:
        raise ProtocolViolation(
            CloseCode.UNKNOWN_MESSAGE_TYPE, f"unknown message type {data['type'][:40]!r}"
        )
    return data


def parse(text: str | bytes, max_bytes: int) -> ClientMessage:
    data = frame(text, max_bytes, KNOWN_TYPES)
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


# The one encoder of server messages: compact, ASCII (what ``json.dumps`` with these separators
# makes), built once rather than on every call as ``json.dumps(..., separators=...)`` does.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def dumps(message: dict[str, Any]) -> str:
    return _ENCODER.encode(message)


def error_message(
    code: ErrorCode, message: str, *, ref: str | None = None, sid: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        body["ref"] = ref
    if sid is not None:
        body["sid"] = sid
    return body


def receipt_text(sid: str, seq: int, amount_minor: int, total_minor: int, token: str) -> str:
    """A ``receipt`` message, encoded: exactly what ``dumps`` makes of ``{"type": "receipt",
    "sid": sid, "seq": seq, "amt": str(amount_minor), "tot": str(total_minor), "receipt":
    token}``, by format, because it is the hot path (one per receipt; the encoder takes ~15x as
    long, most of it scanning the token for characters to escape). Nothing here needs escaping:
    the sid and the token are base64url (and dots), the rest digits. A test holds the two equal."""
    return (
        f'{{"type":"receipt","sid":"{sid}","seq":{seq},'
        f'"amt":"{amount_minor}","tot":"{total_minor}","receipt":"{token}"}}'
    )


def resent_text(text: str) -> str:
    """An encoded message sent before, sent again marked ``"resent": true`` (its last field)."""
    message = json.loads(text)
    message["resent"] = True
    return dumps(message)


def batch_text(texts: list[str]) -> str:
    """A ``batch`` envelope of encoded messages: what ``dumps`` makes of ``{"type": "batch",
    "messages": [...]}`` with the messages in it, without decoding and encoding them again (an
    envelope per connection per group commit). A test holds the two equal."""
    return '{"type":"batch","messages":[' + ",".join(texts) + "]}"
