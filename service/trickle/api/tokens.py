"""HTTP endpoints of private-payment tokens (docs/tokens.md §Protocol): the published token keys,
issuance and refunds (signed in: they name the reader), and private one-time payments (no
session: the tokens are the payment).

``POST /api/v1/private/payments`` reads no Authorization header and no cookie: it is an
endpoint without authentication, so the request context never signs anyone in. Its receipt is
signed after the commit, as an identified payment's.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trickle import payments, private_payments, tokens
from trickle.api.base import (
    AmountMinor,
    ApiRouter,
    Context,
    Currency,
    PaymentIn,
    Schema,
    amount_value,
    canonical_body,
    idempotency_key,
)
from trickle.db import transaction
from trickle.errors import InvalidElement, NotFound
from trickle.keys import b64url
from trickle.receipts import ReceiptSigner
from trickle.requests import runtime_of
from trickle.runtime import Runtime

router = ApiRouter(tag="tokens")

KEYS_PATH = "/.well-known/trickle-token-keys"
KEYS_MAX_AGE_S = 86_400  # keys are made a month ahead: a day-old document is never too old
ISSUE_LIMIT = 256  # the schema's bound; TRICKLE_TOKEN_BATCH_MAX (at most 256) is the real one

# Unpadded base64url in its one canonical spelling (the last character's unused bits zero): 32
# bytes are 43 characters, 64 bytes 86. What the schema cannot say (whether 32 bytes are a group
# element, whether a token is the key's) is refused with 409, never 422.
B64_32 = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
B64_64 = r"^[A-Za-z0-9_-]{85}[AQgw]$"
B64Element = Annotated[str, StringConstraints(pattern=B64_32)]
B64Input = Annotated[str, StringConstraints(pattern=B64_32)]
B64Output = Annotated[str, StringConstraints(pattern=B64_64)]


def _integral(value: object) -> object:
    """JSON has one number type: 202612.0 is the integer 202612 (JSON Schema says so too)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Epoch = Annotated[int, Field(ge=1, le=999_912), BeforeValidator(_integral)]


class TokenIn(Schema):
    epoch: Epoch
    input: B64Input
    output: B64Output


class IssueIn(Schema):
    currency: Currency
    epoch: Epoch
    blinded: Annotated[list[B64Element], Field(min_length=1, max_length=ISSUE_LIMIT)]


class IssueOut(Schema):
    currency: str
    scale: int
    epoch: int
    value_minor: AmountMinor
    count: int
    amount_minor: AmountMinor
    evaluated: list[str]
    proof: str
    balance_minor: AmountMinor


class RefundIn(Schema):
    tokens: Annotated[list[TokenIn], Field(min_length=1, max_length=tokens.REFUND_MAX_TOKENS)]


class RefundOut(Schema):
    count: int
    amount_minor: AmountMinor
    balance_minor: AmountMinor


class PrivatePaymentIn(PaymentIn):
    tokens: Annotated[list[TokenIn], Field(min_length=1, max_length=private_payments.MAX_TOKENS)]


class PrivatePaymentRecorded(Schema):
    """What a private payment answers, without its receipt (signed after the commit)."""

    sid: str
    payment_pointer: str
    origin: str
    amount_minor: AmountMinor
    paid_minor: AmountMinor
    currency: str
    scale: int
    order_ref: str
    description: str | None
    token_count: int


class PrivatePaymentOut(PrivatePaymentRecorded):
    receipt: str


def _parsed(sent: list[TokenIn], limit: int) -> list[tokens.Token]:
    return tokens.parse_tokens([token.model_dump() for token in sent], limit=limit)


@router.post("/api/v1/tokens", body=IssueIn, response=IssueOut, idempotent=True, status=201)
def issue_tokens(ctx: Context, body: IssueIn) -> IssueOut:
    """Buy tokens: the service evaluates the blinded elements with the epoch's token key."""
    blinded = []
    for index, text in enumerate(body.blinded):
        try:
            blinded.append(tokens.b64url_decode(text, 32))
        except ValueError:
            raise InvalidElement(
                f"blinded element {index} is not 32 bytes of unpadded base64url", index=index
            ) from None
    issued = tokens.issue(
        ctx.session,
        tokens.IssueRequest(
            user_id=ctx.user_id,
            idempotency_key=idempotency_key(ctx),
            currency=body.currency,
            epoch=body.epoch,
            blinded=tuple(blinded),
        ),
        ctx.runtime.token_keys.current,
        ctx.settings,
        ctx.now,
        batch_max=ctx.settings.token_batch_max,
    )
    ctx.changed_readers.add(ctx.user_id)  # open streams see the new balance and month spend
    key = issued.key
    return IssueOut(
        currency=key.currency,
        scale=key.scale,
        epoch=key.epoch,
        value_minor=str(key.value_minor),
        count=len(issued.evaluated),
        amount_minor=str(issued.amount_minor),
        evaluated=[b64url(element) for element in issued.evaluated],
        proof=b64url(issued.proof),
        balance_minor=str(issued.balance_minor),
    )


@router.post(
    "/api/v1/tokens/refund", body=RefundIn, response=RefundOut, idempotent=True, status=201
)
def refund_tokens(ctx: Context, body: RefundIn) -> RefundOut:
    """Give unspent tokens back for their value (no budget comes back)."""
    refunded = tokens.refund(
        ctx.session,
        user_id=ctx.user_id,
        idempotency_key=idempotency_key(ctx),
        tokens=_parsed(body.tokens, tokens.REFUND_MAX_TOKENS),
        ring=ctx.runtime.token_keys.current,
        settings=ctx.settings,
        now=ctx.now,
    )
    ctx.changed_readers.add(ctx.user_id)
    return RefundOut(
        count=refunded.count,
        amount_minor=str(refunded.amount_minor),
        balance_minor=str(refunded.balance_minor),
    )


def _sign_after_commit(runtime: Runtime, response: Response) -> Response:
    """Add the receipt to a committed (or replayed) private payment's answer."""
    if response.status_code >= 300:
        return response
    body = json.loads(bytes(response.body))
    with transaction(runtime.sessions) as session:
        payment = private_payments.by_sid(session, body["sid"])
    if payment is None:  # cannot happen: the answer names a committed payment
        raise NotFound("the payment of this answer is gone")
    signer = ReceiptSigner(runtime.key_ring.current.active)
    body["receipt"] = payments.sign_receipt(payment, runtime.settings, signer)
    headers = {}
    if "idempotent-replayed" in response.headers:
        headers["Idempotent-Replayed"] = response.headers["idempotent-replayed"]
    return JSONResponse(body, status_code=response.status_code, headers=headers)


@router.post(
    "/api/v1/private/payments",
    body=PrivatePaymentIn,
    response=PrivatePaymentOut,
    auth=False,
    idempotent=True,
    status=201,
    after_commit=_sign_after_commit,
)
def create_private_payment(ctx: Context, body: PrivatePaymentIn) -> Response:
    """Pay a one-time amount with tokens, signed in as nobody; a one-time receipt as usual."""
    paid = private_payments.pay(
        ctx.session,
        private_payments.PrivatePaymentRequest(
            idempotency_key=idempotency_key(ctx),
            request_hash=private_payments.request_hash(canonical_body(body)),
            payment_pointer=body.payment_pointer,
            origin=body.origin,
            amount_minor=amount_value(body.amount_minor),
            currency=body.currency,
            order_ref=body.order_ref,
            binding=body.binding,
            description=body.description,
            tokens=tuple(_parsed(body.tokens, private_payments.MAX_TOKENS)),
        ),
        ctx.runtime.token_keys.current,
        ctx.settings,
        ctx.now,
    )
    payment = paid.payment
    recorded = PrivatePaymentRecorded(
        sid=payment.sid,
        payment_pointer=payment.payment_pointer,
        origin=payment.origin,
        amount_minor=str(payment.amount_minor),
        paid_minor=str(payment.paid_minor),
        currency=payment.currency,
        scale=payment.scale,
        order_ref=payment.order_ref,
        description=payment.description,
        token_count=paid.token_count,
    )
    headers = {"Idempotent-Replayed": "true"} if paid.replayed else {}
    return JSONResponse(recorded.model_dump(mode="json"), status_code=201, headers=headers)


# --- the published keys ------------------------------------------------------------------------


async def token_keys(request: Request) -> Response:
    runtime = runtime_of(request)
    document = tokens.key_document(runtime.token_keys.current, runtime.clock())
    return JSONResponse(
        document,
        headers={
            "Cache-Control": f"public, max-age={KEYS_MAX_AGE_S}",
            "Access-Control-Allow-Origin": "*",
        },
    )


def routes() -> list[Route]:
    """The routes outside the JSON API (described in ``PUBLIC_OPERATIONS``)."""
    return [Route(KEYS_PATH, token_keys, methods=["GET"])]


_KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "currency",
        "scale",
        "epoch",
        "value_minor",
        "public_key",
        "issue_from",
        "issue_until",
        "spend_until",
    ],
    "properties": {
        "currency": {"type": "string"},
        "scale": {"type": "integer"},
        "epoch": {"type": "integer"},
        "value_minor": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        "public_key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
        "issue_from": {"type": "string", "format": "date-time"},
        "issue_until": {"type": "string", "format": "date-time"},
        "spend_until": {"type": "string", "format": "date-time"},
    },
}

# OpenAPI operations of ``routes()`` (merged into trickle.api.openapi.PUBLIC_OPERATIONS).
PUBLIC_OPERATIONS: dict[str, dict[str, Any]] = {
    KEYS_PATH: {
        "get": {
            "operationId": "token_keys",
            "summary": "The token keys: one per currency and epoch, the same for every reader.",
            "tags": ["tokens"],
            "security": [],
            "responses": {
                "200": {
                    "description": "every token key whose tokens still pay, newest first",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["keys"],
                                "properties": {"keys": {"type": "array", "items": _KEY_SCHEMA}},
                            }
                        }
                    },
                }
            },
        }
    },
}
