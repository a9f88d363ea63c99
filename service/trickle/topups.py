"""Card top-ups: a reader's payment through Stripe Checkout, from the pending row to the credit,
and the money taken back by a refund or a dispute (docs/funding.md has the sequence diagram).

- ``create`` stores a pending top-up; the caller commits, asks Stripe for the Checkout Session
  (``stripe_gateway``, outside any transaction), then ``record_checkout``.
- ``credit`` applies "the payment succeeded" once per top-up, whichever event says it first.
- ``refund`` / ``open_dispute`` take money back: from the reader's balance as far as it goes,
  the rest (already spent) from the operator's losses account; ``close_dispute`` gives it back
  when the dispute is won.

Domain code: the caller owns the transaction, and looks the top-up up with ``find`` (which
locks its row) so that two deliveries of one fact apply it once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from trickle import freezes, funding, ledger
from trickle.cards import CardConfig
from trickle.errors import StripeEventMismatch, TopupNotFound, TopupNotRefundable
from trickle.freezes import FreezeReason
from trickle.funding import FundingProvider
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.models import Topup


class StripeCheckout:
    """Card top-ups as a ``funding.FundingProvider``, beside vouchers: its name names the
    funding and operator-losses accounts and the ledger keys."""

    name = "stripe"


CARD_PROVIDER: FundingProvider = StripeCheckout()
PROVIDER = CARD_PROVIDER.name
LIST_LIMIT = 50
FAILURE_MAX_CHARS = 200


class TopupState(enum.StrEnum):
    PENDING = "pending"  # waiting for the reader to pay at Stripe
    CREDITED = "credited"  # paid; the balance was credited
    FAILED = "failed"  # the session expired or the payment failed; nothing was credited
    REFUNDED = "refunded"  # credited, then refunded (in part: ``refunded_minor``)
    DISPUTED = "disputed"  # credited, then disputed by the cardholder


CREDITABLE = (TopupState.PENDING, TopupState.FAILED)


@dataclasses.dataclass(frozen=True, slots=True)
class TakenBack:
    """What one refund or dispute took back, in Trickle's minor units."""

    amount_minor: int
    from_reader_minor: int  # out of the reader's unspent balance
    loss_minor: int  # already spent: booked to the operator's losses
    frozen: bool  # the reader's spending is now frozen


def new_public_id() -> str:
    return "tp_" + secrets.token_urlsafe(16)


def asset_of(topup: Topup) -> Asset:
    return Asset(topup.currency, topup.scale)


def create(
    session: Session, *, user_id: int, amount_minor: int, config: CardConfig, now: dt.datetime
) -> Topup:
    """A pending top-up of ``amount_minor``; ``AccountFrozen``, ``TopupAmountOutOfRange`` or
    ``AmountNotChargeable`` if it cannot be one."""
    freezes.refuse_if_frozen(session, user_id)
    provider_amount = config.check_amount(amount_minor)
    conversion = config.conversion
    topup = Topup(
        public_id=new_public_id(),
        user_id=user_id,
        provider=PROVIDER,
        state=TopupState.PENDING.value,
        amount_minor=amount_minor,
        currency=conversion.asset_code,
        scale=conversion.scale,
        provider_amount=provider_amount,
        provider_currency=conversion.currency.code,
        expires_at=now + dt.timedelta(seconds=config.session_ttl_s),
        refunded_minor=0,
        disputed_minor=0,
        dispute_reader_minor=0,
        dispute_loss_minor=0,
        loss_minor=0,
        created_at=now,
        updated_at=now,
    )
    session.add(topup)
    session.flush()
    return topup


def record_checkout(
    session: Session, topup_id: int, *, session_id: str, url: str, now: dt.datetime
) -> Topup:
    """Store the Checkout Session Stripe made for the top-up. A retry got the same session from
    Stripe (same idempotency key); a webhook may have named it first, without its URL."""
    session.execute(
        update(Topup)
        .where(
            Topup.id == topup_id,
            Topup.checkout_session_id.is_(None) | (Topup.checkout_session_id == session_id),
        )
        .values(checkout_session_id=session_id, checkout_url=url, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    topup = session.get(Topup, topup_id, populate_existing=True)
    if topup is None:
        raise TopupNotFound(f"no top-up {topup_id}")
    return topup


def get_for_reader(session: Session, user_id: int, topup_id: int) -> Topup:
    topup = session.get(Topup, topup_id)
    if topup is None or topup.user_id != user_id:
        raise TopupNotFound(f"you have no top-up {topup_id}")
    return topup


def recent(session: Session, user_id: int, limit: int = LIST_LIMIT) -> list[Topup]:
    """The reader's newest top-ups."""
    return list(
        session.scalars(
            select(Topup)
            .where(Topup.user_id == user_id)
            .order_by(Topup.created_at.desc(), Topup.id.desc())
            .limit(limit)
        )
    )


def listing(session: Session, state: TopupState | None, limit: int = 1000) -> list[Topup]:
    """Top-ups for the operator, oldest first."""
    query = select(Topup).order_by(Topup.id).limit(limit)
    if state is not None:
        query = query.where(Topup.state == state.value)
    return list(session.scalars(query))


def find(
    session: Session,
    *,
    topup_id: int | None = None,
    public_id: str | None = None,
    payment_intent_id: str | None = None,
) -> Topup | None:
    """The top-up with this id, public id or PaymentIntent, its row locked until the transaction
    ends: a racing delivery of the same fact waits, then sees it applied."""
    if topup_id is not None:
        condition = Topup.id == topup_id
    elif public_id is not None:
        condition = Topup.public_id == public_id
    elif payment_intent_id is not None:
        condition = Topup.payment_intent_id == payment_intent_id
    else:
        return None
    return session.scalars(
        select(Topup).where(condition).with_for_update().execution_options(populate_existing=True)
    ).first()


# --- what Stripe tells us --------------------------------------------------------------------


def note_payment_intent(topup: Topup, payment_intent_id: str | None) -> None:
    if payment_intent_id is None:
        return
    if topup.payment_intent_id is None:
        topup.payment_intent_id = payment_intent_id
    elif topup.payment_intent_id != payment_intent_id:
        raise StripeEventMismatch(
            f"top-up {topup.id} is paid by {topup.payment_intent_id}, not {payment_intent_id}"
        )


def check_paid_amount(topup: Topup, amount: object, currency: object) -> None:
    if amount != topup.provider_amount or currency != topup.provider_currency:
        raise StripeEventMismatch(
            f"top-up {topup.id} is {topup.provider_amount} {topup.provider_currency}, the "
            f"event says {str(amount)[:20]} {str(currency)[:12]}"
        )


def credit(
    session: Session,
    topup: Topup,
    *,
    payment_intent_id: str | None,
    reference: str,
    now: dt.datetime,
) -> bool:
    """The payment succeeded: credit the reader, once. True if this call credited it. The
    ledger transfer is keyed by the top-up (``stripe:<public id>``) and names ``reference`` (the
    Stripe event), so neither a second event type nor a redelivery credits twice."""
    note_payment_intent(topup, payment_intent_id)
    if topup.state not in CREDITABLE:
        session.flush()
        return False
    funding.record_topup(
        session,
        provider=PROVIDER,
        external_id=topup.public_id,
        user_id=topup.user_id,
        amount_minor=topup.amount_minor,
        asset=asset_of(topup),
        now=now,
        reference=reference,
    )
    topup.state = TopupState.CREDITED.value
    topup.credited_at = now
    topup.credited_event_id = reference
    topup.failure_reason = None
    topup.updated_at = now
    session.flush()
    return True


def fail(session: Session, topup: Topup, reason: str, now: dt.datetime) -> bool:
    """Nothing will be paid (the session expired, or a delayed payment failed)."""
    if topup.state != TopupState.PENDING:
        return False
    topup.state = TopupState.FAILED.value
    topup.failure_reason = reason[:FAILURE_MAX_CHARS]
    topup.updated_at = now
    session.flush()
    return True


def note_attempt_failed(session: Session, topup: Topup, reason: str, now: dt.datetime) -> None:
    """A payment attempt failed; the reader may still try again on the same page."""
    if topup.state == TopupState.PENDING:
        topup.failure_reason = reason[:FAILURE_MAX_CHARS]
        topup.updated_at = now
        session.flush()


def to_minor(topup: Topup, provider_amount: object, currency: object) -> int:
    """An amount of the top-up's charge (as an event states it), in Trickle's minor units: exact
    by construction, since the top-up's amount is its provider amount times a power of ten."""
    if (
        type(provider_amount) is not int
        or not 0 <= provider_amount <= topup.provider_amount
        or currency != topup.provider_currency
    ):
        raise StripeEventMismatch(
            f"top-up {topup.id} is {topup.provider_amount} {topup.provider_currency}; the event "
            f"names {str(provider_amount)[:20]} {str(currency)[:12]} of it"
        )
    return provider_amount * (topup.amount_minor // topup.provider_amount)


def rest_to_refund(topup: Topup) -> tuple[int, int]:
    """Refunding all that is left of a credited top-up: (its refunded total after that, the
    rest in the provider currency's minor units). ``TopupNotRefundable`` when nothing is."""
    if topup.state in CREDITABLE or topup.payment_intent_id is None:
        raise TopupNotRefundable(f"top-up {topup.id} was never credited")
    if topup.state == TopupState.DISPUTED:
        raise TopupNotRefundable(f"top-up {topup.id} is disputed: the dispute decides")
    rest = topup.amount_minor - topup.refunded_minor - topup.disputed_minor
    if rest <= 0:
        raise TopupNotRefundable(f"top-up {topup.id} is refunded in full already")
    return topup.refunded_minor + rest, rest // (topup.amount_minor // topup.provider_amount)


def refund(
    session: Session, topup: Topup, *, refunded_total_minor: int, reference: str, now: dt.datetime
) -> TakenBack | None:
    """Stripe has refunded ``refunded_total_minor`` of the top-up in all: take back what is not
    booked yet. Refund events carry the running total, so a redelivered or late event books
    nothing. A refund of money the reader had already spent freezes them."""
    if topup.state in CREDITABLE:
        raise TopupNotRefundable(f"top-up {topup.id} was never credited")
    target = min(refunded_total_minor, topup.amount_minor - topup.disputed_minor)
    if target <= topup.refunded_minor:
        return None
    key = f"{PROVIDER}:refund:{topup.public_id}:{target}"
    from_reader, loss = _take_back(
        session, topup, target - topup.refunded_minor, key=key, reference=reference, now=now
    )
    topup.refunded_minor = target
    topup.loss_minor += loss
    if topup.state != TopupState.DISPUTED:
        topup.state = TopupState.REFUNDED.value
    topup.updated_at = now
    if loss:
        freezes.freeze(
            session, topup.user_id, topup_id=topup.id, reason=FreezeReason.REFUND, now=now
        )
    session.flush()
    return TakenBack(from_reader + loss, from_reader, loss, frozen=loss > 0)


def open_dispute(
    session: Session,
    topup: Topup,
    *,
    dispute_id: str,
    disputed_minor: int,
    reference: str,
    now: dt.datetime,
) -> TakenBack | None:
    """The cardholder disputed the payment: take the disputed amount back and freeze the
    reader until the dispute is won (``close_dispute``) or the operator lifts it. A charge has
    at most one dispute; a redelivery changes nothing."""
    if topup.state in CREDITABLE:
        raise TopupNotRefundable(f"top-up {topup.id} was never credited")
    if topup.dispute_id is not None:
        return None
    amount = min(disputed_minor, topup.amount_minor - topup.refunded_minor)
    key = f"{PROVIDER}:dispute:{dispute_id}"
    from_reader, loss = _take_back(session, topup, amount, key=key, reference=reference, now=now)
    topup.dispute_id = dispute_id
    topup.dispute_status = "open"
    topup.disputed_minor = amount
    topup.dispute_reader_minor = from_reader
    topup.dispute_loss_minor = loss
    topup.loss_minor += loss
    topup.state = TopupState.DISPUTED.value
    topup.updated_at = now
    freezes.freeze(session, topup.user_id, topup_id=topup.id, reason=FreezeReason.DISPUTE, now=now)
    session.flush()
    return TakenBack(amount, from_reader, loss, frozen=True)


WON = ("won", "warning_closed")  # warning_closed: an inquiry that never became a dispute


def close_dispute(
    session: Session,
    topup: Topup,
    *,
    dispute_id: str,
    status: str,
    reference: str,
    now: dt.datetime,
) -> bool:
    """The dispute is over. Won: the money comes back — to the reader as far as it was taken
    from them, to the losses account for the rest — and the dispute's freeze is lifted. Lost:
    it stays taken, and the freeze stays until the operator lifts it. True if anything changed."""
    if topup.dispute_id != dispute_id or topup.dispute_status != "open":
        return False
    topup.dispute_status = status[:32]
    topup.updated_at = now
    if status not in WON:
        session.flush()
        return True
    asset = asset_of(topup)
    source = ledger.account(session, AccountKind.FUNDING, PROVIDER, asset, now)
    key = f"{PROVIDER}:dispute-won:{dispute_id}"
    if topup.dispute_reader_minor:
        reader = ledger.account(
            session, AccountKind.READER, funding.reader_account_owner(topup.user_id), asset, now
        )
        ledger.post_transfer(
            session,
            TransferRequest(
                source.id,
                reader.id,
                topup.dispute_reader_minor,
                asset.code,
                TransferKind.TOPUP,
                key,
                reference=reference,
            ),
            now,
        )
    if topup.dispute_loss_minor:
        losses = ledger.account(session, AccountKind.OPERATOR_LOSSES, PROVIDER, asset, now)
        ledger.post_transfer(
            session,
            TransferRequest(
                source.id,
                losses.id,
                topup.dispute_loss_minor,
                asset.code,
                TransferKind.LOSS_RECOVERED,
                key,
                reference=reference,
            ),
            now,
        )
    topup.loss_minor -= topup.dispute_loss_minor
    topup.disputed_minor = 0
    topup.state = (TopupState.REFUNDED if topup.refunded_minor else TopupState.CREDITED).value
    freezes.lift(
        session,
        topup.user_id,
        now=now,
        note=f"dispute {dispute_id} {status}",
        topup_id=topup.id,
        reason=FreezeReason.DISPUTE,
    )
    session.flush()
    return True


def _take_back(
    session: Session, topup: Topup, amount: int, *, key: str, reference: str, now: dt.datetime
) -> tuple[int, int]:
    """Move ``amount`` back to the provider's funding account: out of the reader's balance as
    far as it goes, the rest out of the operator's losses. Returns (from reader, loss)."""
    if amount <= 0:
        return 0, 0
    asset = asset_of(topup)
    source = ledger.account(session, AccountKind.FUNDING, PROVIDER, asset, now)
    reader = ledger.account(
        session, AccountKind.READER, funding.reader_account_owner(topup.user_id), asset, now
    )
    # Funding before reader: the order a credit locks them in, so the two cannot deadlock. The
    # reader's row stays locked, so no stream increment spends between this read and the debit.
    balances = ledger.lock(session, [source.id, reader.id])
    from_reader = min(balances[reader.id], amount)
    loss = amount - from_reader
    if from_reader:
        ledger.post_transfer(
            session,
            TransferRequest(
                reader.id,
                source.id,
                from_reader,
                asset.code,
                TransferKind.TOPUP_REVERSAL,
                key,
                reference=reference,
            ),
            now,
        )
    if loss:
        losses = ledger.account(session, AccountKind.OPERATOR_LOSSES, PROVIDER, asset, now)
        ledger.post_transfer(
            session,
            TransferRequest(
                losses.id, source.id, loss, asset.code, TransferKind.LOSS, key, reference=reference
            ),
            now,
        )
    return from_reader, loss
