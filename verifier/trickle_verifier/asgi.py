"""Starlette (ASGI) integration of ``SiteReceipts`` and ``Purchases``: the endpoint a page's
bridge forwards receipts to (sdk_js_bridge/README.md, "Forwarding protocol"), and the one it sends
a one-time receipt to when the reader buys an item. Needs Starlette (the ``starlette`` extra:
``pip install 'trickle-verifier[starlette]'``); ``import trickle_verifier`` alone never imports
this module.

    from trickle_verifier.asgi import purchase_route, receipts_route
    app = Starlette(routes=[
        receipts_route("/trickle/receipts", site, session_id=read_cookie),
        purchase_route("/trickle/purchase", purchases, session_id=read_cookie),
    ])
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ModuleNotFoundError as missing:
    if missing.name is None or missing.name.split(".")[0] != "starlette":
        raise
    # The core package needs only PyNaCl; say how to get what this module adds.
    raise ModuleNotFoundError(
        "trickle_verifier.asgi needs Starlette, which is not installed: install the verifier "
        "with its extra, pip install 'trickle-verifier[starlette]' (from a Trickle checkout: "
        "pip install './verifier[starlette]')",
        name="starlette",
    ) from missing

from .purchases import DEFAULT_PURCHASE_MAX_BODY_BYTES, PURCHASE_ERRORS, Purchases
from .site import (
    DEFAULT_MAX_BODY_BYTES,
    SITE_ERRORS,
    SiteReceipts,
    error_document,
    refuse_request,
)

__all__ = [
    "SessionReader",
    "purchase_endpoint",
    "purchase_route",
    "receipts_endpoint",
    "receipts_route",
]

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

SessionReader = Callable[[Request], "str | Awaitable[str | None] | None"]
"""Reads the visitor session id from a request (e.g. a cookie); None when there is none."""

_NO_STORE = {"Cache-Control": "no-store"}


def _json(answer: tuple[int, dict[str, Any]]) -> Response:
    status, document = answer
    return JSONResponse(document, status, headers=_NO_STORE)


async def _call(reader: SessionReader, request: Request) -> str | None:
    value = reader(request)
    if inspect.isawaitable(value):
        value = await value
    return value


async def _read_body(request: Request, max_body_bytes: int) -> bytes | None:
    """The body, or None once it is longer than ``max_body_bytes`` (reading stops there)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _Handler(Protocol):
    """``SiteReceipts.handle_forward`` or ``Purchases.handle_purchase``."""

    def __call__(
        self,
        session_id: str | None,
        body: bytes,
        *,
        content_type: str | None,
        method: str = ...,
        binding: str | None = ...,
        max_body_bytes: int = ...,
    ) -> tuple[int, dict[str, Any]]: ...


def _json_post_endpoint(
    handle: _Handler,
    errors: Mapping[str, tuple[int, str]],
    *,
    session_id: SessionReader,
    binding: SessionReader | None,
    max_body_bytes: int,
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoints' common part: what ``handle`` refuses before the body is read is answered
    here without reading it, a body is read up to ``max_body_bytes`` only, and ``handle`` runs
    in a worker thread (the stores block)."""

    async def endpoint(request: Request) -> Response:
        visitor = await _call(session_id, request)
        content_type = request.headers.get("content-type")
        refused = refuse_request(request.method, content_type, visitor, errors=errors)
        if refused is not None:
            return _json(refused)
        body = await _read_body(request, max_body_bytes)
        if body is None:
            message = f"the body is over {max_body_bytes} bytes"
            return _json(error_document("body_too_large", message, errors=errors))
        expected = None if binding is None else await _call(binding, request)
        answer = await run_in_threadpool(
            handle,
            visitor,
            body,
            content_type=content_type,
            method=request.method,
            binding=expected,
            max_body_bytes=max_body_bytes,
        )
        return _json(answer)

    return endpoint


def receipts_endpoint(
    site: SiteReceipts,
    *,
    session_id: SessionReader,
    binding: SessionReader | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint for ``POST {"receipts": [...]}``: verifies and credits each receipt for the
    visitor session ``session_id(request)`` names (sync or async; None: no session), and
    answers the wire shape of the forwarding protocol. ``binding(request)``, if given, is the
    binding value to expect instead of ``site.binding_for(session id)``. Refusals are
    ``{"error": {"code", "message"}}`` with their status; verification and crediting run in a
    worker thread (the stores block)."""
    return _json_post_endpoint(
        site.handle_forward,
        SITE_ERRORS,
        session_id=session_id,
        binding=binding,
        max_body_bytes=max_body_bytes,
    )


def receipts_route(
    path: str,
    site: SiteReceipts,
    *,
    session_id: SessionReader,
    binding: SessionReader | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    name: str = "trickle_receipts",
) -> Route:
    """A route at ``path`` serving ``receipts_endpoint`` (methods other than POST get the
    typed ``method_not_allowed``)."""
    endpoint = receipts_endpoint(
        site, session_id=session_id, binding=binding, max_body_bytes=max_body_bytes
    )
    return Route(path, endpoint, methods=_ALL_METHODS, name=name)


def purchase_endpoint(
    purchases: Purchases,
    *,
    session_id: SessionReader,
    binding: SessionReader | None = None,
    max_body_bytes: int = DEFAULT_PURCHASE_MAX_BODY_BYTES,
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint for ``POST {"receipt": "<jws>", "order_ref": "<ref>"}``: buys the order for
    the visitor session ``session_id(request)`` names with the one-time receipt, and answers
    ``{"code": "ok", "order_ref", "amount_minor", "currency", "scale"}`` or
    ``{"error": {"code", "message"}}`` with its status (``Purchases.handle_purchase``).
    ``binding(request)``, if given, is the binding value to expect instead of the session's.
    Verification and recording run in a worker thread."""
    return _json_post_endpoint(
        purchases.handle_purchase,
        PURCHASE_ERRORS,
        session_id=session_id,
        binding=binding,
        max_body_bytes=max_body_bytes,
    )


def purchase_route(
    path: str,
    purchases: Purchases,
    *,
    session_id: SessionReader,
    binding: SessionReader | None = None,
    max_body_bytes: int = DEFAULT_PURCHASE_MAX_BODY_BYTES,
    name: str = "trickle_purchases",
) -> Route:
    """A route at ``path`` serving ``purchase_endpoint`` (methods other than POST get the
    typed ``method_not_allowed``)."""
    endpoint = purchase_endpoint(
        purchases, session_id=session_id, binding=binding, max_body_bytes=max_body_bytes
    )
    return Route(path, endpoint, methods=_ALL_METHODS, name=name)
