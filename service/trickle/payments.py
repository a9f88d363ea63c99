"""One-time payments: a reader pays a fixed amount (a purchase or a tip) to a payee for a site,
and gets a one-time receipt (``otp: true``, ``seq == 1``, ``amt == tot``, a fresh ``sid``, the
site's order reference in ``ord``). docs/payments.md describes the flow.

The same rules as streaming apply, through the same ledger charge (``ledger.post_charge``): no
overdraft (the conditional debit), the monthly budget (the conditional spend), the platform fee
from the payee to the fee account; and a site the reader turned off gets nothing. The global
pause does NOT block a one-time payment: pausing stops money flowing on its own, while a
one-time payment is an explicit act of the reader (approved in the extension), so it goes
through.

Idempotent per (reader, idempotency key): the payment row and the transfers are keyed by it, so
a retry replays the first payment and moves nothing. The caller owns the transaction and signs
the receipt (``sign_receipt``) only after it committed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import freezes, ledger, money, payees, readers, spending
from trickle.errors import (
    CurrencyMismatch,
    IdempotencyKeyReused,
    PayeeNotFound,
    SiteDisabled,
    ValidationFailed,
)
from trickle.ledger import TransferKind
from trickle.models import Payment
from trickle.origins import normalize_origin
from trickle.receipts import ORDER_REF_PATTERN, ReceiptClaims, ReceiptSigner, new_stream_id
from trickle.settings import Settings
from trickle.text import clean_text

BINDING_PATTERN = re.compile(r"^[\x20-\x7e]{1,256}$")
DESCRIPTION_MAX_CHARS = 200
LIST_LIMIT = 100


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What the reader (through the extension) asks to pay. Amounts in minor units."""

    user_id: int
    idempotency_key: str
    payment_pointer: str
    origin: str
    amount_minor: int
    currency: str
    order_ref: str
    binding: str | None = None
    description: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Paid:
    payment: Payment
    balance_minor: int  # the reader's balance after the payment
    month_spent_minor: int
    month_budget_minor: int
    replayed: bool  # True: this idempotency key had paid before; nothing moved now


def transfer_key(idempotency_key: str) -> str:
    return f"payment:{idempotency_key}"


class Order(Protocol):
    """What a one-time payment asks, identified or private (``private_payments``)."""

    @property
    def origin(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def order_ref(self) -> str: ...
    @property
    def binding(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...


def checked_order(order: Order, settings: Settings) -> tuple[str, str | None]:
    """The order's checks, shared by identified and private payments; its origin in normal form
    and its description cleaned."""
    ledger.check_amount(order.amount_minor)
    if order.currency != settings.currency:
        raise CurrencyMismatch(
            f"this service pays in {settings.currency}, the payment is in {order.currency[:12]!r}"
        )
    if not ORDER_REF_PATTERN.fullmatch(order.order_ref):
        raise ValidationFailed("order_ref must be 1-128 printable ASCII characters")
    if order.binding is not None and not BINDING_PATTERN.fullmatch(order.binding):
        raise ValidationFailed("binding must be 1-256 printable ASCII characters")
    description = order.description
    if description is not None:
        description = clean_text(description, field="description", max_chars=DESCRIPTION_MAX_CHARS)
    return normalize_origin(order.origin), description


def _checked(request: PaymentRequest, settings: Settings) -> PaymentRequest:
    origin, description = checked_order(request, settings)
    return dataclasses.replace(request, origin=origin, description=description)


def _same_request(payment: Payment, request: PaymentRequest) -> bool:
    return (
        payment.payment_pointer == request.payment_pointer
        and payment.origin == request.origin
        and payment.amount_minor == request.amount_minor
        and payment.currency == request.currency
        and payment.order_ref == request.order_ref
        and payment.binding == request.binding
        and payment.description == request.description
    )


def _find(session: Session, user_id: int, idempotency_key: str) -> Payment | None:
    return session.scalars(
        select(Payment).where(
            Payment.user_id == user_id, Payment.idempotency_key == idempotency_key
        )
    ).first()


def _replay(
    session: Session, payment: Payment, request: PaymentRequest, settings: Settings
) -> Paid:
    if not _same_request(payment, request):
        raise IdempotencyKeyReused(
            f"Idempotency-Key {request.idempotency_key!r} paid for another request"
        )
    return _paid(session, payment, settings, replayed=True)


def _paid(session: Session, payment: Payment, settings: Settings, *, replayed: bool) -> Paid:
    reader = readers.reader_account(session, payment.user_id, settings, payment.created_at)
    month = spending.month_of(payment.created_at)
    policy = readers.reader_policy(session, payment.user_id, settings)
    return Paid(
        payment,
        ledger.balance(session, reader),
        spending.spent(session, payment.user_id, month),
        policy.monthly_budget_minor,
        replayed,
    )


def pay(session: Session, request: PaymentRequest, settings: Settings, now: dt.datetime) -> Paid:
    """Pay once: record the payment, count it against the month's budget, move the money
    (reader -> payee, then the fee payee -> fee account). Raises ``AccountFrozen``,
    ``InsufficientFunds``,
    ``BudgetExhausted``, ``SiteDisabled``, ``PayeeNotFound``, ``CurrencyMismatch``,
    ``InvalidAmount``, ``ValidationFailed``, or ``IdempotencyKeyReused`` (the key paid for
    another request); a refused payment leaves nothing behind (its savepoint rolls back)."""
    request = _checked(request, settings)
    existing = _find(session, request.user_id, request.idempotency_key)
    if existing is not None:
        return _replay(session, existing, request, settings)
    freezes.refuse_if_frozen(session, request.user_id)
    payee = payees.payee_by_pointer(session, request.payment_pointer, settings, now)
    if payee is None:
        raise PayeeNotFound(f"no payee has the payment pointer {request.payment_pointer[:300]!r}")
    policy = readers.reader_policy(session, request.user_id, settings)
    if policy.site_rate(request.origin) is None:
        raise SiteDisabled(f"you turned off payments to {request.origin}")
    issued_at = int(now.timestamp())
    fee = money.fee_of(request.amount_minor, settings.fee_bps)
    payment = Payment(
        user_id=request.user_id,
        idempotency_key=request.idempotency_key,
        payee_id=payee.id,
        payment_pointer=request.payment_pointer,
        origin=request.origin,
        amount_minor=request.amount_minor,
        fee_minor=fee,
        currency=settings.currency,
        scale=settings.asset_scale,
        sid=new_stream_id(),
        jti=new_stream_id(),
        order_ref=request.order_ref,
        binding=request.binding,
        description=request.description,
        issued_at_s=issued_at,
        expires_at_s=issued_at + settings.receipt_ttl_s,
        created_at=now,
    )
    try:
        with session.begin_nested():
            # The row first: a racer with the same key waits on its unique index, then replays.
            session.add(payment)
            session.flush()
            charge = _charge(
                session,
                payment,
                payee=payee,
                budget_minor=policy.monthly_budget_minor,
                settings=settings,
                now=now,
            )
            ledger.post_charge(session, charge, now)
    except IntegrityError:
        raced = _find(session, request.user_id, request.idempotency_key)
        if raced is None:
            raise
        return _replay(session, raced, request, settings)
    return _paid(session, payment, settings, replayed=False)


def _charge(
    session: Session,
    payment: Payment,
    *,
    payee: payees.PayeeInfo,
    budget_minor: int,
    settings: Settings,
    now: dt.datetime,
) -> ledger.Charge:
    """The payment's charge: its transfers keyed by ``payment:<Idempotency-Key>``, its
    receipt's ``sid`` their reference."""
    return ledger.Charge(
        user_id=payment.user_id,
        reader_account_id=readers.reader_account(session, payment.user_id, settings, now),
        payee_account_id=payee.account_id,
        fee_account_id=payee.fee_account_id,
        currency=payment.currency,
        amount_minor=payment.amount_minor,
        fee_minor=payment.fee_minor,
        key=transfer_key(payment.idempotency_key),
        origin=payment.origin,
        budget_minor=budget_minor,
        month=spending.month_of(now),
        kind=TransferKind.PAYMENT,
        reference=payment.sid,
    )


class OneTimePayment(Protocol):
    """What a one-time receipt states: a stored ``Payment`` or ``PrivatePayment``."""

    @property
    def origin(self) -> str: ...
    @property
    def payment_pointer(self) -> str: ...
    @property
    def sid(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def scale(self) -> int: ...
    @property
    def issued_at_s(self) -> int: ...
    @property
    def expires_at_s(self) -> int: ...
    @property
    def binding(self) -> str | None: ...
    @property
    def order_ref(self) -> str: ...
    @property
    def jti(self) -> str: ...


def receipt_claims(payment: OneTimePayment, settings: Settings) -> ReceiptClaims:
    """The one-time receipt's claims: everything stored, so signing again gives the same JWS."""
    return ReceiptClaims(
        iss=settings.issuer,
        aud=payment.origin,
        pay=payment.payment_pointer,
        sid=payment.sid,
        seq=1,
        amount_minor=payment.amount_minor,
        total_minor=payment.amount_minor,
        currency=payment.currency,
        scale=payment.scale,
        issued_at=payment.issued_at_s,
        expires_at=payment.expires_at_s,
        binding=payment.binding,
        one_time=True,
        order_ref=payment.order_ref,
        jti=payment.jti,
    )


def sign_receipt(payment: OneTimePayment, settings: Settings, signer: ReceiptSigner) -> str:
    """Sign the payment's receipt. Call only once the payment's transaction has committed."""
    return signer.sign(receipt_claims(payment, settings))


def get(session: Session, user_id: int, payment_id: int) -> Payment | None:
    payment = session.get(Payment, payment_id)
    if payment is None or payment.user_id != user_id:
        return None
    return payment


def recent(session: Session, user_id: int, limit: int = LIST_LIMIT) -> list[Payment]:
    """The reader's newest one-time payments."""
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.user_id == user_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(limit)
        )
    )
