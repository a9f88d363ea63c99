"""Structured logs: one JSON object per line (or text, ``TRICKLE_LOG_FORMAT``), each with the id
of the HTTP request or WebSocket connection it happened in, and the one filter that keeps
secrets (session tokens, receipts, bearer tokens, passwords in URLs) out of every line.

The service never passes a password, a token or a receipt to a logger; the filter is the second
line of defence, for what an exception's text might carry. Query strings are never logged (the
access events carry the path only): uvicorn's own access log, which logs them, is off.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import logging.config
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trickle.settings import Settings

# The id of the request or connection the running code serves (None: the engine's own work).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# A proxy's request id (nginx: X-Request-Id $request_id) is taken when it looks like one.
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
REQUEST_ID_HEADER = b"x-request-id"

_SECRETS = (
    # a compact JWS (a receipt, any JWT): header.payload.signature in base64url
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+"), "[jws]"),
    (re.compile(r"trk_[A-Za-z0-9_-]{8,}"), "trk_[token]"),  # a session token
    (re.compile(r"(?i)\b(bearer)\s+\S+"), r"\1 [token]"),
    (re.compile(r"\b(sk|rk|whsec)_(live|test)?_?[A-Za-z0-9]{8,}"), r"\1_[secret]"),  # Stripe
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[password]@"),  # a URL's password
)

log = logging.getLogger("trickle.http")


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


# The websockets library logs every frame at debug level ("< %s", "> %s"), a receipt's or a
# hello's text among them (cut to its first and last characters: still parts of a secret).
_FRAME_MESSAGES = frozenset({"< %s", "> %s"})


class RequestIdFilter(logging.Filter):
    """Adds the id of the request or connection being served to every record, and drops the
    WebSocket library's frame dumps."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in _FRAME_MESSAGES and record.levelno == logging.DEBUG:
            return False
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the event's fields
    (``extra={"fields": {...}}``), the exception. Every text is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            event["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                event.setdefault(name, redact(value) if isinstance(value, str) else value)
        if record.exc_info:
            event["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The same events for people; redacted like the JSON ones."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += " " + " ".join(f"{name}={value}" for name, value in fields.items())
        if request_id is not None:
            line += f" request_id={request_id}"
        return redact(line)


def config(settings: Settings) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of the service and of uvicorn (its ``log_config``, so
    that every worker process logs the same way): everything to stderr, one format."""
    level = settings.log_level.upper()
    formatter = "json" if settings.log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["request_id"],
            }
        },
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "alembic": {"handlers": [], "level": "WARNING", "propagate": True},
        },
        "root": {"handlers": ["stderr"], "level": level},
    }


def configure(settings: Settings) -> None:
    logging.config.dictConfig(config(settings))


class RequestIds:
    """ASGI middleware: gives each HTTP request and WebSocket connection an id (the proxy's
    ``X-Request-Id`` when it sent one that looks like an id), logs under it, answers it in
    ``X-Request-Id``, and logs one event when the request or connection ends: method, path
    (never the query), status or close code, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or secrets.token_hex(8)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        outcome: dict[str, Any] = {}

        async def send_with_id(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                outcome["status"] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            elif kind == "websocket.close":
                outcome["close_code"] = message.get("code", 1000)
            elif kind == "websocket.accept":
                log.info("connection opened", extra={"fields": _where(scope)})
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            fields = {
                **_where(scope),
                **outcome,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            what = "request" if scope["type"] == "http" else "connection closed"
            log.info(what, extra={"fields": fields})
            REQUEST_ID.reset(token)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            return text if _INCOMING_ID.fullmatch(text) else None
    return None


def _where(scope: Scope) -> dict[str, Any]:
    client = scope.get("client")
    return {
        "method": scope.get("method", "WEBSOCKET"),
        "path": scope.get("path", ""),  # never the query string: it may carry a secret
        "client": client[0] if client else None,
    }
