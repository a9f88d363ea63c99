"""Claims and payouts: a creator claims a payee's available earnings (a ``claim`` transfer into
payout clearing and a pending payout); a payout provider pays them out; the operator marks each
payout paid (clearing -> settled) or failed (clearing -> back to the payee's earnings).

Built in: ``ManualPayoutProvider`` (the operator pays outside Trickle and marks payouts with
``trickle payouts mark``). Another provider implements ``PayoutProvider``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import enum
from typing import Protocol, TextIO

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import earnings, ledger, money, payees
from trickle.errors import (
    ClaimBelowMinimum,
    IdempotencyConflict,
    InsufficientFunds,
    PayoutAlreadySettled,
    PayoutNotFound,
    ValidationFailed,
)
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.models import LedgerAccount, Payee, Payout, User
from trickle.settings import Settings

MAX_NOTE_CHARS = 200  # an external reference or a failure reason (Payout.external_reference)
CREATOR_LIST_LIMIT = 200


class PayoutState(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


class PayoutProvider(Protocol):
    """Pays claimed earnings out. ``name`` names its clearing and settled accounts.

    ``submit`` is called inside the claim's transaction, right after the payout is recorded:
    it must only queue the work (the money is already in clearing), never wait on the outside
    world; the provider later reports the outcome through ``mark_paid`` / ``mark_failed``."""

    @property
    def name(self) -> str: ...

    def submit(self, payout: Payout) -> None: ...


class ManualPayoutProvider:
    """The operator pays each pending payout outside Trickle (``trickle payouts export``), then
    records the outcome (``trickle payouts mark``)."""

    name = "manual"

    def submit(self, payout: Payout) -> None:
        # Nothing to send: a pending payout is the operator's to-do item.
        return None


MANUAL = ManualPayoutProvider()


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    payout: Payout
    replayed: bool  # True: this idempotency key had claimed before; nothing moved now


@dataclasses.dataclass(frozen=True, slots=True)
class PayoutRow:
    """A payout with what the operator needs to pay it."""

    payout: Payout
    payee_name: str
    user_email: str


def _asset(currency: str, settings: Settings) -> Asset:
    return Asset(currency, settings.asset_scale)


def _transfer_key(payout_id: int) -> str:
    return f"payout:{payout_id}"


# --- claims -------------------------------------------------------------------------------


def claim(
    session: Session,
    *,
    user_id: int,
    payee_name: str,
    amount_minor: int | None,
    idempotency_key: str,
    settings: Settings,
    now: dt.datetime,
    provider: PayoutProvider = MANUAL,
) -> Claimed:
    """Claim all available earnings of the user's payee (or ``amount_minor`` of them): move
    them to payout clearing and record a pending payout. Idempotent per (payee, key).

    Never more than available, even when claims race: the payee's account row is locked
    (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE``)
    before the available amount is computed, so a racer computes after this claim commits."""
    if not 1 <= len(idempotency_key) <= MAX_NOTE_CHARS:
        raise ValidationFailed(f"an idempotency key is 1-{MAX_NOTE_CHARS} characters")
    if amount_minor is not None:
        ledger.check_amount(amount_minor)
    payee = payees.owned(session, user_id, payee_name)
    asset = ledger.asset_of(settings)
    account = payees.earnings_account(session, payee, settings, now)
    clearing = ledger.account(session, AccountKind.PAYOUT_CLEARING, provider.name, asset, now)
    balance_minor = _lock_balance(session, account.id)
    existing = _by_key(session, payee.id, idempotency_key)
    if existing is not None:
        return Claimed(_replay(existing, amount_minor, idempotency_key), replayed=True)
    held_minor = earnings.held(session, {account.id: payee.id}, settings, now)[account.id]
    available = earnings.standing(balance_minor, held_minor).available_minor
    amount = _claim_amount(amount_minor, available, settings)
    payout = Payout(
        user_id=user_id,
        payee_id=payee.id,
        amount_minor=amount,
        currency=asset.code,
        provider=provider.name,
        state=PayoutState.PENDING.value,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(payout)
            session.flush()
    except IntegrityError:
        # A racer with the same key committed first (it held the lock before us).
        existing = _by_key(session, payee.id, idempotency_key)
        if existing is None:
            raise
        return Claimed(_replay(existing, amount_minor, idempotency_key), replayed=True)
    ledger.post_transfer(
        session,
        TransferRequest(
            debit_account_id=account.id,
            credit_account_id=clearing.id,
            amount_minor=amount,
            currency=asset.code,
            kind=TransferKind.CLAIM,
            idempotency_key=_transfer_key(payout.id),
            reference=_transfer_key(payout.id),
        ),
        now,
    )
    provider.submit(payout)
    return Claimed(payout, replayed=False)


def _lock_balance(session: Session, account_id: int) -> int:
    value = session.scalar(
        select(LedgerAccount.balance_minor)
        .where(LedgerAccount.id == account_id)
        .with_for_update()  # PostgreSQL: racing claims queue here; SQLite: already serialized
    )
    return int(value or 0)


def _claim_amount(requested: int | None, available: int, settings: Settings) -> int:
    scale = settings.asset_scale
    minimum = max(settings.min_claim_minor, 1)
    if requested is not None and requested > available:
        raise InsufficientFunds(
            f"asked to claim {money.format_minor(requested, scale)} {settings.currency}, only "
            f"{money.format_minor(available, scale)} is available (recent earnings are held "
            f"for {settings.claim_hold_s} s, "
            f"{earnings.hold_s(settings, verified=True)} s from verified sites)"
        )
    amount = available if requested is None else requested
    if amount < minimum:
        raise ClaimBelowMinimum(
            f"a claim is at least {money.format_minor(minimum, scale)} {settings.currency}; "
            f"{money.format_minor(amount, scale)} "
            + ("was asked" if requested is not None else "is available")
        )
    return amount


def _by_key(session: Session, payee_id: int, key: str) -> Payout | None:
    return session.scalars(
        select(Payout).where(Payout.payee_id == payee_id, Payout.idempotency_key == key)
    ).first()


def _replay(existing: Payout, requested: int | None, key: str) -> Payout:
    if requested is not None and requested != existing.amount_minor:
        raise IdempotencyConflict(
            f"idempotency key {key!r} already claimed {existing.amount_minor}, not {requested}"
        )
    return existing


def for_creator(session: Session, user_id: int) -> list[tuple[Payout, str]]:
    """The user's payouts, newest first (at most ``CREATOR_LIST_LIMIT``), with payee names."""
    rows = session.execute(
        select(Payout, Payee.name)
        .join(Payee, Payee.id == Payout.payee_id)
        .where(Payout.user_id == user_id)
        .order_by(Payout.created_at.desc(), Payout.id.desc())
        .limit(CREATOR_LIST_LIMIT)
    ).all()
    return [(payout, str(name)) for payout, name in rows]


# --- the operator -------------------------------------------------------------------------


def listing(session: Session, state: PayoutState | None) -> list[PayoutRow]:
    """Payouts (of one state, or all), oldest first: the order to pay them in."""
    query = (
        select(Payout, Payee.name, User.email)
        .join(Payee, Payee.id == Payout.payee_id)
        .join(User, User.id == Payout.user_id)
        .order_by(Payout.created_at, Payout.id)
    )
    if state is not None:
        query = query.where(Payout.state == state.value)
    return [PayoutRow(p, str(name), str(email)) for p, name, email in session.execute(query)]


def mark_paid(
    session: Session, payout_id: int, *, reference: str, settings: Settings, now: dt.datetime
) -> Payout:
    """The provider paid it: clearing -> settled (the money left the system)."""
    payout = _settle(session, payout_id, PayoutState.PAID, _note(reference, "reference"), now)
    asset = _asset(payout.currency, settings)
    clearing = ledger.account(session, AccountKind.PAYOUT_CLEARING, payout.provider, asset, now)
    settled = ledger.account(session, AccountKind.PAYOUT_SETTLED, payout.provider, asset, now)
    _post(
        session,
        payout,
        debit_id=clearing.id,
        credit_id=settled.id,
        kind=TransferKind.PAYOUT_PAID,
        now=now,
    )
    return payout


def mark_failed(
    session: Session, payout_id: int, *, reason: str, settings: Settings, now: dt.datetime
) -> Payout:
    """The payout failed: clearing -> the payee's earnings (claimable again at once)."""
    payout = _settle(session, payout_id, PayoutState.FAILED, _note(reason, "reason"), now)
    asset = _asset(payout.currency, settings)
    clearing = ledger.account(session, AccountKind.PAYOUT_CLEARING, payout.provider, asset, now)
    owner = payees.account_owner(payout.payee_id)
    account = ledger.account(session, AccountKind.PAYEE, owner, asset, now)
    _post(
        session,
        payout,
        debit_id=clearing.id,
        credit_id=account.id,
        kind=TransferKind.PAYOUT_FAILED,
        now=now,
    )
    return payout


def _note(text: str, what: str) -> str:
    cleaned = " ".join(text.split())
    if not cleaned or len(cleaned) > MAX_NOTE_CHARS or not cleaned.isprintable():
        raise ValidationFailed(f"the {what} is 1-{MAX_NOTE_CHARS} printable characters")
    return cleaned


def _settle(
    session: Session, payout_id: int, state: PayoutState, note: str, now: dt.datetime
) -> Payout:
    payout = session.get(Payout, payout_id)
    if payout is None:
        raise PayoutNotFound(f"no payout {payout_id}")
    # One conditional UPDATE: of two operators marking at once, exactly one changes the row.
    changed = session.execute(
        update(Payout)
        .where(Payout.id == payout_id, Payout.state == PayoutState.PENDING.value)
        .values(state=state.value, external_reference=note, settled_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(payout)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise PayoutAlreadySettled(f"payout {payout_id} is already {payout.state}")
    return payout


def _post(
    session: Session,
    payout: Payout,
    *,
    debit_id: int,
    credit_id: int,
    kind: TransferKind,
    now: dt.datetime,
) -> None:
    ledger.post_transfer(
        session,
        TransferRequest(
            debit_account_id=debit_id,
            credit_account_id=credit_id,
            amount_minor=payout.amount_minor,
            currency=payout.currency,
            kind=kind,
            idempotency_key=_transfer_key(payout.id),
            reference=payout.external_reference,
        ),
        now,
    )


CSV_COLUMNS = (
    "id", "created_at", "payee", "user_email", "amount", "amount_minor", "currency", "scale",
    "state", "provider", "external_reference", "settled_at",
)  # fmt: skip


def write_csv(rows: list[PayoutRow], out: TextIO, settings: Settings) -> None:
    """Payouts as CSV for the operator (amount as a decimal and as integer minor units)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    scale = settings.asset_scale
    for row in rows:
        p = row.payout
        writer.writerow(
            [
                p.id,
                p.created_at.isoformat(),
                row.payee_name,
                _cell(row.user_email),
                money.format_minor(p.amount_minor, scale),
                p.amount_minor,
                p.currency,
                scale,
                p.state,
                p.provider,
                _cell(p.external_reference or ""),
                p.settled_at.isoformat() if p.settled_at else "",
            ]
        )


def _cell(text: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
