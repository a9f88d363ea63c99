"""HTTP endpoints of card top-ups (docs/funding.md): the reader's options, creating a top-up
(a Stripe Checkout Session), following it; and, outside the JSON API, Stripe's webhook and the
page Stripe sends the reader back to.

``POST /api/v1/topups`` stores the pending top-up in the request's transaction (under the
Idempotency-Key, as every money-moving request); only after that commit does it ask Stripe for
the session — no database transaction or pooled connection is held across the call — and record
what Stripe answered. A retry with the same key replays the stored top-up and asks Stripe again
with the same Stripe idempotency key, so it gets the same session.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from trickle import cards, freezes, stripe_gateway, stripe_webhooks, topups
from trickle.api.base import (
    AmountMinor,
    ApiRouter,
    Context,
    Currency,
    PositiveAmountMinor,
    Schema,
    amount_value,
    settings_limit,
)
from trickle.cards import CardConfig
from trickle.db import transaction
from trickle.errors import (
    BodyTooLarge,
    CardTopupsUnavailable,
    CurrencyMismatch,
    StripeSignatureInvalid,
    TopupNotFound,
)
from trickle.models import Topup
from trickle.runtime import Runtime
from trickle.settings import Settings
from trickle.topups import TopupState

router = ApiRouter(tag="topups")

WEBHOOK_PATH = "/api/v1/stripe/webhook"
RETURN_PATH = "/topups/return"
MAX_WEBHOOK_BYTES = 256 * 1024  # Stripe's event payloads are a few KiB
MAX_ID = 2**63 - 1


class CardOptionsOut(Schema):
    provider: Literal["stripe"]
    currency: str
    scale: int
    presets: list[AmountMinor]  # amounts in minor units, smallest first
    min_amount_minor: AmountMinor
    max_amount_minor: AmountMinor


class TopupOptionsOut(Schema):
    card: CardOptionsOut | None  # null: this service takes no cards (no Stripe settings)
    account_frozen: bool


class TopupIn(Schema):
    # The served /openapi.json declares exactly the amounts the operator's limits allow.
    amount_minor: Annotated[PositiveAmountMinor, settings_limit("card_topup_amount_minor")]
    currency: Currency


class TopupOut(Schema):
    id: int
    state: Literal["pending", "credited", "failed", "refunded", "disputed"]
    amount_minor: AmountMinor
    currency: str
    scale: int
    checkout_url: str | None  # Stripe's payment page, while the top-up is pending
    failure_reason: str | None
    refunded_minor: AmountMinor
    disputed_minor: AmountMinor
    created_at: dt.datetime
    expires_at: dt.datetime
    credited_at: dt.datetime | None


class TopupsOut(Schema):
    topups: list[TopupOut]


def _config(settings: Settings) -> CardConfig:
    config = cards.config_of(settings)
    if config is None:
        raise CardTopupsUnavailable("this service takes no card top-ups (no Stripe settings)")
    return config


def _out(topup: Topup) -> TopupOut:
    pending = topup.state == TopupState.PENDING
    return TopupOut(
        id=topup.id,
        state=TopupState(topup.state).value,
        amount_minor=str(topup.amount_minor),
        currency=topup.currency,
        scale=topup.scale,
        checkout_url=topup.checkout_url if pending else None,
        failure_reason=topup.failure_reason,
        refunded_minor=str(topup.refunded_minor),
        disputed_minor=str(topup.disputed_minor),
        created_at=topup.created_at,
        expires_at=topup.expires_at,
        credited_at=topup.credited_at,
    )


@router.get("/api/v1/topups/options", response=TopupOptionsOut)
def topup_options(ctx: Context, _body: None) -> TopupOptionsOut:
    """How the signed-in reader can top up by card here (``card`` is null when not at all)."""
    config = cards.config_of(ctx.runtime.settings)
    frozen = freezes.is_frozen(ctx.session, ctx.user_id)
    if config is None:
        return TopupOptionsOut(card=None, account_frozen=frozen)
    return TopupOptionsOut(
        card=CardOptionsOut(
            provider="stripe",
            currency=config.conversion.asset_code,
            scale=config.conversion.scale,
            presets=[str(p) for p in config.presets_minor],
            min_amount_minor=str(config.min_minor),
            max_amount_minor=str(config.max_minor),
        ),
        account_frozen=frozen,
    )


def _open_checkout(runtime: Runtime, response: Response) -> Response:
    """After the top-up committed (first answer and replays alike): make sure it has its
    Checkout Session, then answer with the top-up as it is now."""
    topup_id = json.loads(bytes(response.body))["id"]
    with transaction(runtime.sessions) as session:
        topup = session.get(Topup, topup_id)
    if topup is None:  # cannot happen: the answer names a committed top-up
        raise TopupNotFound(f"the top-up of this answer is gone: {topup_id}")
    if topup.state == TopupState.PENDING and topup.checkout_url is None:
        gateway = stripe_gateway.gateway(_config(runtime.settings))
        page = gateway.create_checkout_session(topup, runtime.settings.issuer)  # no DB held
        with transaction(runtime.sessions) as session:
            topup = topups.record_checkout(
                session, topup.id, session_id=page.session_id, url=page.url, now=runtime.clock()
            )
    headers = {}
    if "idempotent-replayed" in response.headers:
        headers["Idempotent-Replayed"] = response.headers["idempotent-replayed"]
    return JSONResponse(
        _out(topup).model_dump(mode="json"), status_code=response.status_code, headers=headers
    )


@router.post(
    "/api/v1/topups",
    body=TopupIn,
    response=TopupOut,
    idempotent=True,
    status=201,
    after_commit=_open_checkout,
)
def create_topup(ctx: Context, body: TopupIn) -> TopupOut:
    """Top up by card: a pending top-up and its Stripe Checkout page (``checkout_url``)."""
    config = _config(ctx.runtime.settings)
    if body.currency != config.conversion.asset_code:
        raise CurrencyMismatch(
            f"card top-ups are in {config.conversion.asset_code}, not {body.currency[:12]!r}"
        )
    topup = topups.create(
        ctx.session,
        user_id=ctx.user_id,
        amount_minor=amount_value(body.amount_minor),
        config=config,
        now=ctx.now,
    )
    return _out(topup)


@router.get("/api/v1/topups", response=TopupsOut)
def list_topups(ctx: Context, _body: None) -> TopupsOut:
    """The signed-in reader's most recent card top-ups, newest first (at most 50)."""
    return TopupsOut(topups=[_out(t) for t in topups.recent(ctx.session, ctx.user_id)])


@router.get("/api/v1/topups/{topup_id:int}", response=TopupOut)
def get_topup(ctx: Context, _body: None) -> TopupOut:
    """One of the signed-in reader's card top-ups: pending, credited, or why not."""
    topup_id = int(ctx.path_params["topup_id"])
    if topup_id > MAX_ID:
        raise TopupNotFound(f"you have no top-up {topup_id}")
    return _out(topups.get_for_reader(ctx.session, ctx.user_id, topup_id))


# --- outside the JSON API: Stripe's webhook, and the page after Checkout ---------------------


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise BodyTooLarge(f"a webhook event may be at most {MAX_WEBHOOK_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _apply(
    runtime: Runtime, event: stripe_webhooks.Event, owners: stripe_webhooks.Owners
) -> stripe_webhooks.Applied:
    with transaction(runtime.sessions) as session:
        return stripe_webhooks.apply(session, event, runtime.clock(), owners)


async def stripe_webhook(request: Request) -> Response:
    """Stripe's events: signature verified, then applied once (no authentication: the
    signature is the proof). Any 2xx tells Stripe to stop retrying."""
    runtime: Runtime = request.app.state.runtime
    signature = request.headers.get("stripe-signature")
    if not signature:  # refused alike with or without Stripe settings: no credential at all
        raise StripeSignatureInvalid("no Stripe-Signature header")
    config = _config(runtime.settings)
    payload = await _read_body(request)
    event = stripe_webhooks.verify(payload, signature, config.webhook_secret)
    try:
        applied = await run_in_threadpool(_apply, runtime, event, {})
    except stripe_webhooks.PaymentIntentUnknown as unknown:
        # A refund or dispute overtook the payment's own events: ask Stripe whose payment it
        # is, with no transaction open, then apply the event knowing it.
        pi = unknown.payment_intent_id
        owner = await run_in_threadpool(stripe_gateway.gateway(config).topup_of_payment_intent, pi)
        applied = await run_in_threadpool(_apply, runtime, event, {pi: owner})
    engine = getattr(request.app.state, "engine", None)
    if applied.user_id is not None and engine is not None:
        # The reader's funds or freeze changed: their streams here follow at once (other
        # processes within their next settings refresh).
        await engine.refresh_readers([applied.user_id])
    return JSONResponse({"received": True, "outcome": applied.outcome})


_RETURN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trickle top-up</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>{title}</h1><p>{text}</p><p>You can close this tab.</p></body></html>
"""


async def topup_return(request: Request) -> Response:
    """Where Stripe sends the reader after Checkout. It proves nothing: only the webhook
    credits the balance, and the extension's popup shows when it did."""
    if request.query_params.get("cancelled"):
        title, text = "Top-up cancelled", "Nothing was charged."
    else:
        title = "Thank you"
        text = "Your Trickle balance is credited as soon as Stripe confirms the payment."
    return HTMLResponse(
        _RETURN_PAGE.format(title=title, text=text),
        headers={"Content-Security-Policy": "default-src 'none'", "Cache-Control": "no-store"},
    )


def routes() -> list[Route]:
    """The routes outside the JSON API (described in ``PUBLIC_OPERATIONS``)."""
    return [
        Route(WEBHOOK_PATH, stripe_webhook, methods=["POST"]),
        Route(RETURN_PATH, topup_return, methods=["GET"]),
    ]


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

# OpenAPI operations of ``routes()`` (merged into trickle.api.openapi.PUBLIC_OPERATIONS).
PUBLIC_OPERATIONS: dict[str, dict[str, Any]] = {
    WEBHOOK_PATH: {
        "post": {
            "operationId": "stripe_webhook",
            "summary": "Stripe's webhook events (signed with the endpoint secret).",
            "description": "The body is a Stripe Event object (JSON) exactly as Stripe sent it: "
            "the signature covers its bytes. Not for clients: see docs/funding.md.",
            "tags": ["topups"],
            "security": [],
            "parameters": [
                {
                    "name": "Stripe-Signature",
                    "in": "header",
                    "required": True,
                    "description": "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>'>",
                    "schema": {"type": "string", "maxLength": 2000},
                }
            ],
            "responses": {
                "200": {
                    "description": "received: applied, or deliberately ignored (outcome)",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["received", "outcome"],
                                "properties": {
                                    "received": {"const": True},
                                    "outcome": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "400": {
                    "description": "`stripe_event_invalid`, `malformed_json` (signed events)",
                    "content": _ERROR,
                },
                "401": {"description": "`stripe_signature_invalid`", "content": _ERROR},
                "404": {"description": "`card_topups_unavailable`", "content": _ERROR},
                "413": {"description": "`body_too_large`", "content": _ERROR},
                "422": {"description": "`stripe_event_mismatch`", "content": _ERROR},
                "default": {"description": "any other error in docs/errors.md", "content": _ERROR},
            },
        }
    },
    RETURN_PATH: {
        "get": {
            "operationId": "topup_return",
            "summary": "The page Stripe sends the reader back to after Checkout.",
            "tags": ["topups"],
            "security": [],
            "parameters": [
                {"name": "topup", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "cancelled",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "a short page: thanks, or cancelled",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        }
    },
}
