"""How every JSON endpoint is declared and run: schema-validated bodies (pydantic), one error
shape, bearer-token or cookie+CSRF auth, idempotency keys, and a transaction the request owns
(or, for an endpoint that waits on the network, short transactions of the handler's own). The
rules it shares with the dashboard (the context, the transaction, signing in with a session
token, CSRF, body size) are ``trickle.requests``'s.

A feature module builds an ``ApiRouter`` and declares endpoints with its decorators; handlers are
plain functions ``(ctx, body) -> response model`` that call one domain function. The router also
feeds ``/openapi.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trickle import jsontext, metrics, money, origins, payments
from trickle.errors import (
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    InvalidAmount,
    MalformedJSON,
    TrickleError,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from trickle.models import IdempotentRequest
from trickle.requests import (
    IDEMPOTENCY_KEY_PATTERN,
    SESSION_COOKIE,
    RequestContext,
    media_type,
    read_body,
    run_request,
    runtime_of,
)
from trickle.runtime import Runtime
from trickle.text import TEXT_PATTERN

MAX_BODY_BYTES = 64 * 1024
CSRF_HEADER = "x-csrf-token"
IDEMPOTENCY_HEADER = "idempotency-key"

# Money in JSON is a decimal string of minor units: never a JSON number, never a float; at most
# 2^63-1 (money.MAX_AMOUNT). An amount that moves money is at least 1. The schema declares the
# exact bounds; the server reads any canonical decimal and says ``invalid_amount`` (or, for a
# setting, what its range is) for one out of them.
AmountMinor = Annotated[
    str,
    StringConstraints(pattern=r"^(0|[1-9][0-9]{0,18})$"),
    Field(json_schema_extra={"pattern": money.decimal_pattern(money.MAX_AMOUNT)}),
]
PositiveAmountMinor = Annotated[
    AmountMinor,
    Field(json_schema_extra={"pattern": money.decimal_pattern(money.MAX_AMOUNT, positive=True)}),
]
# A limit that depends on the settings (the rate and budget caps, the currency): the model
# names it, and the served /openapi.json declares its value (``api.openapi``).
SETTINGS_LIMIT_KEY = "x-trickle-settings-limit"
SettingsLimit = Literal[
    "max_rate_per_hour_minor", "max_monthly_budget_minor", "currency", "card_topup_amount_minor"
]


def settings_limit(name: SettingsLimit) -> Any:
    """Mark a field (``Annotated[..., settings_limit("currency")]``) with a settings limit."""
    return Field(json_schema_extra={SETTINGS_LIMIT_KEY: name})


# A currency code as requests name it; the served schema declares the service's own.
Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Z0-9]{3,12}$"), settings_limit("currency")
]

# An origin as the service takes it: checked by ``origins.normalize_origin`` (422 with what is
# wrong), declared with the same pattern (which pydantic's regex engine could not run).
Origin = Annotated[
    str,
    StringConstraints(min_length=1, max_length=origins.MAX_ORIGIN_CHARS),
    Field(json_schema_extra={"pattern": origins.ORIGIN_PATTERN}),
]


def amount_value(text: str, *, allow_zero: bool = False) -> int:
    value = int(text)
    if value > money.MAX_AMOUNT or (value == 0 and not allow_zero):
        raise InvalidAmount(f"amount must be a positive integer below 2^63, got {text}")
    return value


class Schema(BaseModel):
    """Base of request and response bodies: unknown fields refused, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# A one-time payment as a site asks for it, paid from the reader's balance (api.payments) or
# with tokens (api.tokens): the one declaration of its fields.
PrintableAscii128 = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,128}$")]
PrintableAscii256 = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,256}$")]
Url = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Description = Annotated[
    str,
    StringConstraints(min_length=1, max_length=payments.DESCRIPTION_MAX_CHARS),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),  # checked by text.clean_text
]


class PaymentIn(Schema):
    payment_pointer: Url
    origin: Origin
    amount_minor: PositiveAmountMinor
    currency: Currency
    order_ref: PrintableAscii128
    binding: PrintableAscii256 | None = None
    description: Description | None = None


class Empty(Schema):
    pass


@dataclasses.dataclass
class Context(RequestContext):
    """What a handler gets (``RequestContext``), and the readers it changed."""

    # Readers whose settings or funds this request changed: after the commit, the streaming
    # engine re-reads them, so pause, rates and top-ups apply at once.
    changed_readers: set[int] = dataclasses.field(default_factory=set)


Handler = Callable[[Context, Any], Schema | Response]
# Runs after the request's transaction committed, on the first response and on replays alike
# (e.g. signing a receipt only once the money it proves has durably moved).
AfterCommit = Callable[[Runtime, Response], Response]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    body: type[Schema] | None
    response: type[Schema] | None
    auth: bool
    idempotent: bool
    status: int
    summary: str
    tag: str
    after_commit: AfterCommit | None = None
    # The handler waits on the network: it opens its own short transactions through
    # ``ctx.runtime.sessions`` and holds no connection in between; ``ctx.session`` has no database.
    own_transactions: bool = False
    # The type of each path parameter, for /openapi.json (plain strings when not named here).
    path_types: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class ApiRouter:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def _register(
        self,
        method: str,
        path: str,
        *,
        body: type[Schema] | None = None,
        response: type[Schema] | None = None,
        auth: bool = True,
        idempotent: bool = False,
        status: int = 200,
        summary: str = "",
        after_commit: AfterCommit | None = None,
        own_transactions: bool = False,
        path_types: Mapping[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        if own_transactions and (idempotent or after_commit is not None):
            raise ValueError("an endpoint with its own transactions has no request transaction")

        def decorator(handler: Handler) -> Handler:
            doc = summary or (handler.__doc__ or "").strip().splitlines()[0]
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    body,
                    response,
                    auth,
                    idempotent,
                    status,
                    doc,
                    self.tag,
                    after_commit,
                    own_transactions,
                    dict(path_types or {}),
                )
            )
            return handler

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self._register("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self._register("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self._register("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self._register("DELETE", path, **options)

    def routes(self) -> list[Route]:
        by_path: dict[str, list[Endpoint]] = {}
        for endpoint in self.endpoints:
            by_path.setdefault(endpoint.path, []).append(endpoint)
        return [
            Route(path, _dispatcher(group), methods=[e.method for e in group])
            for path, group in by_path.items()
        ]


def _dispatcher(group: list[Endpoint]) -> Callable[[Request], Any]:
    by_method = {endpoint.method: endpoint for endpoint in group}

    async def dispatch(request: Request) -> Response:
        endpoint = by_method[request.method if request.method != "HEAD" else "GET"]
        raw = b""
        if endpoint.body is not None:
            raw = await read_body(request, MAX_BODY_BYTES, what="the body")
        body = _parse_body(endpoint, request, raw)
        changed: set[int] = set()
        response = await run_in_threadpool(_run, endpoint, request, raw, body, changed)
        engine = getattr(request.app.state, "engine", None)
        if changed and engine is not None:
            await engine.refresh_readers(sorted(changed))
        return response

    return dispatch


def _parse_body(endpoint: Endpoint, request: Request, raw: bytes) -> Schema | None:
    if endpoint.body is None:
        return None
    sent = media_type(request)
    if sent != "application/json":
        raise UnsupportedMediaType(f"expected application/json, got {sent or 'nothing'}")
    try:
        data = jsontext.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and jsontext's refusals are ValueErrors too
        raise MalformedJSON(f"the body is not valid JSON: {exc}") from None
    try:
        return endpoint.body.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationFailed(_describe(exc)) from None


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class _KeyTakenByRacer(Exception):
    """Another request with the same Idempotency-Key committed first: run again to replay it."""


def _run(
    endpoint: Endpoint, request: Request, raw: bytes, body: Schema | None, changed: set[int]
) -> Response:
    try:
        response = _run_once(endpoint, request, raw, body, changed)
    except _KeyTakenByRacer:
        response = _run_once(endpoint, request, raw, body, changed)
    if endpoint.after_commit is not None:
        response = endpoint.after_commit(runtime_of(request), response)
    return response


def _run_once(
    endpoint: Endpoint, request: Request, raw: bytes, body: Schema | None, changed: set[int]
) -> Response:
    def open_context(session: Session) -> Context:
        ctx = Context.of(request, session)
        ctx.changed_readers = changed
        if endpoint.auth:
            _authenticate(ctx)
        return ctx

    def handle(ctx: Context) -> Response:
        if endpoint.idempotent:
            return _run_idempotent(ctx, endpoint, request, raw, body)
        return _render(endpoint, endpoint.handler(ctx, body))

    return run_request(request, open_context, handle, own_transactions=endpoint.own_transactions)


def _authenticate(ctx: Context) -> None:
    authorization = ctx.headers.get("authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        ctx.sign_in(token.strip())
        return
    ctx.sign_in(ctx.cookies.get(SESSION_COOKIE))
    ctx.check_csrf(
        ctx.headers.get(CSRF_HEADER),
        "a cookie-authenticated change needs the X-CSRF-Token header",
    )


def idempotency_key(ctx: Context) -> str:
    """The request's Idempotency-Key: required, 8-200 characters of A-Z a-z 0-9 _ . : -."""
    key = ctx.headers.get(IDEMPOTENCY_HEADER, "")
    if not key:
        raise IdempotencyKeyRequired("send an Idempotency-Key header (8-200 chars)")
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise ValidationFailed("Idempotency-Key must be 8-200 characters of A-Z a-z 0-9 _ . : -")
    return key


def canonical_body(body: Schema | None) -> str:
    """The body as the idempotency rule compares it: its JSON with sorted keys."""
    return json.dumps(body.model_dump(mode="json") if body is not None else None, sort_keys=True)


def _run_idempotent(
    ctx: Context, endpoint: Endpoint, request: Request, raw: bytes, body: Schema | None
) -> Response:
    key = idempotency_key(ctx)
    if not endpoint.auth:
        # Nobody signed in to keep the answer for: the handler's domain keeps it under the key
        # (a private payment's row), and replays it.
        return _render(endpoint, endpoint.handler(ctx, body))
    canonical = canonical_body(body)
    request_hash = hashlib.sha256(f"{endpoint.method} {request.url.path}\n{canonical}".encode())
    digest = request_hash.hexdigest()
    stored = ctx.session.scalars(
        select(IdempotentRequest)
        .where(IdempotentRequest.user_id == ctx.user_id, IdempotentRequest.key == key)
        .with_for_update()
    ).first()
    if stored is not None:
        if stored.request_hash != digest:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used with another request")
        return Response(
            stored.response_body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    # Claim the key before acting: a racer with the same key waits on the unique index until
    # this transaction ends, then replays what it stored (or acts, if this one rolled back).
    placeholder = IdempotentRequest(
        user_id=ctx.user_id,
        key=key,
        request_hash=digest,
        status_code=0,
        response_body="",
        created_at=ctx.now,
    )
    try:
        with ctx.session.begin_nested():
            ctx.session.add(placeholder)
    except IntegrityError:
        raise _KeyTakenByRacer from None
    response = _render(endpoint, endpoint.handler(ctx, body))
    placeholder.status_code = response.status_code
    placeholder.response_body = bytes(response.body).decode()
    ctx.session.flush()
    return response


def _render(endpoint: Endpoint, result: Schema | Response) -> Response:
    if isinstance(result, Response):
        return result
    return JSONResponse(result.model_dump(mode="json"), status_code=endpoint.status)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    metrics.error("http", code)  # every JSON error the service answers is built here
    """Every API error's one shape (``ERROR_SCHEMA`` in ``api.openapi``)."""
    return {"error": {"code": code, "message": message}}


def error_response(error: TrickleError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, str(error) or error.code), status_code=error.status, headers=headers
    )
