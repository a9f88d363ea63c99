"""HTTP endpoints: one-time payments (a purchase or a tip) and the reader's list of them.

``POST /api/v1/payments`` moves the money in the request's transaction and stores its answer
under the Idempotency-Key without the receipt; the receipt is signed after the commit (on the
first answer and on every replay alike), from the stored payment, so it is the same JWS.
"""

from __future__ import annotations

import datetime as dt
import json

from starlette.responses import JSONResponse, Response

from trickle import metrics, payments
from trickle.api.base import (
    AmountMinor,
    ApiRouter,
    Context,
    PaymentIn,
    Schema,
    amount_value,
)
from trickle.db import transaction
from trickle.errors import NotFound
from trickle.models import Payment
from trickle.receipts import ReceiptSigner
from trickle.runtime import Runtime

router = ApiRouter(tag="payments")


class PaymentSummary(Schema):
    id: int
    sid: str
    payment_pointer: str
    origin: str
    amount_minor: AmountMinor
    currency: str
    scale: int
    order_ref: str
    description: str | None
    created_at: dt.datetime


class PaymentRecorded(PaymentSummary):
    """What is stored under the Idempotency-Key: the payment, without its receipt."""

    balance_minor: AmountMinor
    month_spent_minor: AmountMinor
    month_budget_minor: AmountMinor


class PaymentOut(PaymentRecorded):
    receipt: str


class PaymentsOut(Schema):
    payments: list[PaymentSummary]


def _summary_fields(payment: Payment) -> dict[str, object]:
    return {
        "id": payment.id,
        "sid": payment.sid,
        "payment_pointer": payment.payment_pointer,
        "origin": payment.origin,
        "amount_minor": str(payment.amount_minor),
        "currency": payment.currency,
        "scale": payment.scale,
        "order_ref": payment.order_ref,
        "description": payment.description,
        "created_at": payment.created_at,
    }


def _sign_after_commit(runtime: Runtime, response: Response) -> Response:
    """Add the receipt to a committed (or replayed) payment answer."""
    body = json.loads(bytes(response.body))
    with transaction(runtime.sessions) as session:
        payment = session.get(Payment, body["id"])
    if payment is None:  # cannot happen: the answer names a committed payment
        raise NotFound("the payment of this answer is gone")
    signer = ReceiptSigner(runtime.key_ring.current.active)
    body["receipt"] = payments.sign_receipt(payment, runtime.settings, signer)
    headers = {}
    if "idempotent-replayed" in response.headers:
        headers["Idempotent-Replayed"] = response.headers["idempotent-replayed"]
        metrics.receipts("payment", 1, 0, payment.currency)  # the money moved the first time
    else:
        metrics.receipts("payment", 1, payment.amount_minor, payment.currency)
    return JSONResponse(body, status_code=response.status_code, headers=headers)


@router.post(
    "/api/v1/payments",
    body=PaymentIn,
    response=PaymentOut,
    idempotent=True,
    status=201,
    after_commit=_sign_after_commit,
)
def create_payment(ctx: Context, body: PaymentIn) -> PaymentRecorded:
    """Pay a one-time amount to a payee for a site; the answer carries a one-time receipt."""
    paid = payments.pay(
        ctx.session,
        payments.PaymentRequest(
            user_id=ctx.user_id,
            idempotency_key=ctx.headers["idempotency-key"],
            payment_pointer=body.payment_pointer,
            origin=body.origin,
            amount_minor=amount_value(body.amount_minor),
            currency=body.currency,
            order_ref=body.order_ref,
            binding=body.binding,
            description=body.description,
        ),
        ctx.runtime.settings,
        ctx.now,
    )
    ctx.changed_readers.add(ctx.user_id)  # open streams see the new balance and month spend
    return PaymentRecorded.model_validate(
        {
            **_summary_fields(paid.payment),
            "balance_minor": str(paid.balance_minor),
            "month_spent_minor": str(paid.month_spent_minor),
            "month_budget_minor": str(paid.month_budget_minor),
        }
    )


@router.get("/api/v1/payments", response=PaymentsOut)
def list_payments(ctx: Context, _body: None) -> PaymentsOut:
    """The signed-in reader's most recent one-time payments, newest first (at most 100)."""
    found = payments.recent(ctx.session, ctx.user_id)
    return PaymentsOut(payments=[PaymentSummary.model_validate(_summary_fields(p)) for p in found])
