"""Receipts forwarded by a site's own pages (the page bridge, sdk_js_bridge/README.md): verify
each, credit the visitor's session with the per-``sid`` increase rule (docs/receipts.md §4), and
answer "has this visitor paid at least X (in the last N seconds)?". Framework-neutral: no web
framework is imported here (see ``trickle_verifier.asgi`` for Starlette).

Invariant: for every ``sid``, the sum credited equals the highest ``tot`` seen, and all of it is
credited to the one visitor session that first forwarded a receipt of that stream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ReceiptError
from .receipts import Receipt
from .verifier import Verifier

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_TABLE_PREFIX",
    "MAX_RECEIPTS_PER_REQUEST",
    "SITE_ERRORS",
    "ForwardResult",
    "ReceiptResult",
    "SiteReceipts",
    "SiteStore",
    "error_document",
    "refuse_request",
]

MAX_RECEIPTS_PER_REQUEST = 100
DEFAULT_MAX_BODY_BYTES = 512 * 1024  # 100 tokens of at most 4096 bytes, plus JSON
DEFAULT_TABLE_PREFIX = "trickle_site"
_SESSION_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")

#: Codes this module reports besides the verifier's (docs/receipts.md §3). Per receipt (in a
#: 200 answer): ``wrong_asset``, ``session_mismatch``. Per request: the others, with their status.
SITE_ERRORS: Mapping[str, tuple[int, str]] = {
    "wrong_asset": (200, "the receipt verified but is not in the asset the site counts in"),
    "session_mismatch": (200, "the receipt's stream was credited to another visitor session"),
    "method_not_allowed": (405, "receipts are forwarded with POST"),
    "unsupported_media_type": (415, "the Content-Type must be application/json"),
    "unauthenticated": (401, "the request has no visitor session"),
    "body_too_large": (413, f"the body is over {DEFAULT_MAX_BODY_BYTES} bytes"),
    "malformed_json": (400, "the body is not UTF-8 JSON"),
    "validation_failed": (
        422,
        'expected an object with exactly "receipts", an array of 0-100 strings',
    ),
    "internal_error": (500, "the receipt helper failed; the site's log has the details"),
}

log = logging.getLogger("trickle_verifier")

_Answer = tuple[int, dict[str, Any]]
"""An endpoint's answer: the HTTP status and the JSON document."""


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """What became of one forwarded receipt: ``code`` is ``"ok"`` (``credited_minor`` may be 0
    for a replay or an older receipt of the stream) or an error code, which credits nothing
    (``message`` then says why, for people)."""

    code: str
    credited_minor: int = 0
    receipt: Receipt | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    message: str = ""

    def to_json(self) -> dict[str, str]:
        if self.ok:
            return {"code": "ok", "credited": str(self.credited_minor)}
        return {"code": self.code, "message": self.message or self.code}


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """The results of a batch, in the order of the receipts, and what the session has paid."""

    results: tuple[ReceiptResult, ...]
    paid_minor: int
    currency: str
    scale: int

    @property
    def credited_minor(self) -> int:
        return sum(result.credited_minor for result in self.results)

    def to_json(self) -> dict[str, Any]:
        """The wire shape of sdk_js_bridge/README.md "Forwarding protocol"."""
        return {
            "results": [result.to_json() for result in self.results],
            "paid": {"total": str(self.paid_minor), "currency": self.currency, "scale": self.scale},
        }


class SiteStore(Protocol):
    """Keeps the highest ``tot`` per ``sid``, the visitor session that owns each stream, and
    every credit with its time (``trickle_verifier.stores`` has one per backend)."""

    def credit(self, session_id: str, receipt: Receipt, at_ms: int) -> int | None:
        """Atomically: if ``receipt.sid`` is new, give it to ``session_id``; if it belongs to
        ``session_id``, raise its total to ``receipt.total_minor`` when that is higher and
        record the increase at ``at_ms``. Return the increase (0 if none), or None when the
        stream belongs to another session (nothing is credited)."""
        ...

    def paid(self, session_id: str, since_ms: int | None = None) -> int:
        """The minor units credited to ``session_id`` at or after ``since_ms`` (all if None)."""
        ...


def _asset_mismatch(receipt: Receipt, currency: str, scale: int) -> str | None:
    """Why ``receipt`` is not in the site's asset (the ``wrong_asset`` message), or None."""
    if receipt.currency == currency and receipt.scale == scale:
        return None
    return f"expected {currency} at scale {scale}, got {receipt.currency} at scale {receipt.scale}"


def _check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not _SESSION_ID_RE.fullmatch(session_id):
        raise ValueError("expected a session id of 1-128 printable ASCII chars without spaces")
    return session_id


class SiteReceipts:
    """Credits forwarded receipts to visitor sessions, once per increase of a stream's ``tot``.

    ``verifier`` checks every receipt (issuer, the site's origin, its payees). ``store`` keeps
    the credits. ``binding_key`` (bytes, kept secret on the server) derives each session's
    binding value with ``binding_for``; receipts must then carry it (rule 19). ``currency`` and
    ``scale``: the asset amounts are counted in; receipts in another asset are refused.
    """

    __slots__ = ("_binding_key", "_clock", "currency", "scale", "store", "verifier")

    def __init__(
        self,
        verifier: Verifier,
        store: SiteStore,
        *,
        binding_key: bytes | None = None,
        currency: str = "USD",
        scale: int = 9,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise TypeError(f"verifier must be a Verifier, got {type(verifier).__name__}")
        if binding_key is not None and (
            not isinstance(binding_key, bytes) or len(binding_key) < 16
        ):
            raise ValueError("binding_key must be at least 16 secret bytes")
        if type(scale) is not int or not 0 <= scale <= 18:
            raise ValueError(f"scale must be an int in 0..18, got {scale!r}")
        self.verifier = verifier
        self.store = store
        self.currency = currency
        self.scale = scale
        self._binding_key = binding_key
        self._clock = clock

    def now(self) -> float:
        """The site's clock: seconds since the epoch."""
        return self._clock()

    def expected_binding(self, session_id: str, binding: str | None = None) -> str | None:
        """The binding value a receipt of ``session_id`` must carry: ``binding`` if given,
        else ``binding_for(session_id)`` when the site has a ``binding_key``, else None."""
        if binding is None and self._binding_key is not None:
            return self.binding_for(session_id)
        return binding

    def binding_for(self, session_id: str) -> str:
        """The binding value of a visitor session: render it in the page's link tag as
        ``data-trickle-binding`` (or give it to the bridge). It reveals nothing about the
        session id. Needs ``binding_key``."""
        if self._binding_key is None:
            raise ValueError("binding_for needs SiteReceipts(binding_key=...)")
        digest = hmac.new(
            self._binding_key, _check_session_id(session_id).encode("ascii"), hashlib.sha256
        ).digest()
        return "b1-" + base64.urlsafe_b64encode(digest[:24]).decode("ascii")

    def forward(
        self,
        session_id: str,
        tokens: Iterable[object],
        *,
        binding: str | None = None,
        now: float | None = None,
    ) -> ForwardResult:
        """Verify and credit each token for ``session_id``. ``binding``: the value the session's
        receipts must carry; by default ``binding_for(session_id)`` when the site has a
        ``binding_key``, else none is checked. Never raises for a bad receipt: its result
        carries the error code and it credits nothing."""
        _check_session_id(session_id)
        binding = self.expected_binding(session_id, binding)
        now_s = self._clock() if now is None else now
        at_ms = int(now_s * 1000)
        results = tuple(self._one(session_id, token, binding, now_s, at_ms) for token in tokens)
        return ForwardResult(results, self.store.paid(session_id), self.currency, self.scale)

    def _one(
        self, session_id: str, token: object, binding: str | None, now_s: float, at_ms: int
    ) -> ReceiptResult:
        try:
            receipt = self.verifier.verify(token, binding=binding, now=now_s)  # type: ignore[arg-type]
        except ReceiptError as exc:
            return ReceiptResult(exc.code, message=exc.message)
        wrong_asset = _asset_mismatch(receipt, self.currency, self.scale)
        if wrong_asset is not None:
            return ReceiptResult("wrong_asset", 0, receipt, wrong_asset)
        credited = self.store.credit(session_id, receipt, at_ms)
        if credited is None:
            return ReceiptResult("session_mismatch", 0, receipt, SITE_ERRORS["session_mismatch"][1])
        return ReceiptResult("ok", credited, receipt)

    def paid_minor(
        self, session_id: str, *, within_s: float | None = None, now: float | None = None
    ) -> int:
        """Minor units credited to the session (in the last ``within_s`` seconds, if given)."""
        _check_session_id(session_id)
        if within_s is None:
            return self.store.paid(session_id)
        now_s = self._clock() if now is None else now
        return self.store.paid(session_id, int((now_s - within_s) * 1000))

    def has_paid(
        self,
        session_id: str,
        at_least_minor: int,
        *,
        within_s: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Whether the session has paid at least ``at_least_minor`` (in the last ``within_s``
        seconds, if given): enough to unlock premium content or hide ads."""
        if type(at_least_minor) is not int or at_least_minor < 0:
            raise ValueError(f"at_least_minor must be an int >= 0, got {at_least_minor!r}")
        return self.paid_minor(session_id, within_s=within_s, now=now) >= at_least_minor

    def handle_forward(
        self,
        session_id: str | None,
        body: bytes,
        *,
        content_type: str | None,
        method: str = "POST",
        binding: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> tuple[int, dict[str, Any]]:
        """The whole receipt endpoint for any framework: the request's method, ``Content-Type``
        header, visitor session id (None if none) and raw body in; an HTTP status and a JSON
        document out: the wire shape (200) or ``{"error": {"code", "message"}}``."""

        def answer(session_id: str, document: object) -> _Answer:
            if not isinstance(document, dict) or document.keys() != {"receipts"}:
                return error_document("validation_failed")
            tokens = document["receipts"]
            if (
                not isinstance(tokens, list)
                or len(tokens) > MAX_RECEIPTS_PER_REQUEST
                or not all(isinstance(token, str) for token in tokens)
            ):
                return error_document("validation_failed")
            return 200, self.forward(session_id, tokens, binding=binding).to_json()

        # A failure of the store goes to the operator's log, never to the client.
        return _answer_json_post(
            method,
            content_type,
            session_id,
            body,
            answer,
            max_body_bytes=max_body_bytes,
            failure="crediting forwarded receipts failed",
        )


def refuse_request(
    method: str,
    content_type: str | None,
    session_id: str | None,
    *,
    errors: Mapping[str, tuple[int, str]] = SITE_ERRORS,
) -> tuple[int, dict[str, Any]] | None:
    """The error answer for a request refused before its body is read, or None. ``errors``:
    the table of statuses and messages (``SITE_ERRORS``, or the purchases' table)."""
    if method.upper() != "POST":
        return error_document("method_not_allowed", errors=errors)
    if (content_type or "").split(";", 1)[0].strip().lower() != "application/json":
        return error_document("unsupported_media_type", errors=errors)
    if session_id is None or not _SESSION_ID_RE.fullmatch(session_id):
        return error_document("unauthenticated", errors=errors)
    return None


def error_document(
    code: str, message: str = "", *, errors: Mapping[str, tuple[int, str]] = SITE_ERRORS
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and ``{"error": {"code", "message"}}`` of a request-level code."""
    status, default = errors[code]
    return status, {"error": {"code": code, "message": message or default}}


def _answer_json_post(
    method: str,
    content_type: str | None,
    session_id: str | None,
    body: bytes,
    answer: Callable[[str, object], _Answer],
    *,
    max_body_bytes: int,
    failure: str,
    errors: Mapping[str, tuple[int, str]] = SITE_ERRORS,
) -> _Answer:
    """The common part of ``handle_forward`` and ``handle_purchase``: refuse the request
    (``refuse_request``), a body over ``max_body_bytes`` or one that is not UTF-8 JSON, else
    ``answer(session_id, document)``. When ``answer`` raises, log ``failure`` with the
    traceback and answer ``internal_error``: the client never sees the details."""
    refused = refuse_request(method, content_type, session_id, errors=errors)
    if refused is not None:
        return refused
    assert session_id is not None
    if len(body) > max_body_bytes:
        return error_document(
            "body_too_large", f"the body is over {max_body_bytes} bytes", errors=errors
        )
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return error_document("malformed_json", errors=errors)
    try:
        return answer(session_id, document)
    except Exception:
        log.exception(failure)
        return error_document("internal_error", errors=errors)
