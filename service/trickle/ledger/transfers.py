"""One transfer at a time, through the ORM: the reference path every batch path must agree with.

The debit is one conditional ``UPDATE ... WHERE balance_minor >= amount``: atomic on PostgreSQL
under READ COMMITTED (the row lock makes a racing debit re-check the new balance) and on SQLite
(every transaction is BEGIN IMMEDIATE). The caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import NamedTuple

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import money
from trickle.errors import (
    AccountNotFound,
    AmountOverflow,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
)
from trickle.models import LedgerAccount, Transfer


class TransferKind(enum.StrEnum):
    TOPUP = "topup"
    STREAM = "stream"
    PAYMENT = "payment"
    FEE = "fee"
    CLAIM = "claim"
    PAYOUT_PAID = "payout_paid"
    PAYOUT_FAILED = "payout_failed"
    TOPUP_REVERSAL = "topup_reversal"  # reader -> funding: a refunded or disputed top-up
    LOSS = "loss"  # operator_losses -> funding: the part of it the reader had already spent
    LOSS_RECOVERED = "loss_recovered"  # funding -> operator_losses: a dispute won back
    # private-payment tokens (the kinds are names, not secrets):
    TOKEN_ISSUE = "token_issue"  # noqa: S105 - reader -> token float: tokens bought
    TOKEN_SPEND = "token_spend"  # noqa: S105 - token float -> payee: tokens spent (no reader)
    TOKEN_REFUND = "token_refund"  # noqa: S105 - token float -> reader: unspent tokens back


class TransferRequest(NamedTuple):
    """One transfer to post. A named tuple, not a frozen dataclass: the group commit builds
    thousands a second, and a frozen dataclass costs several times more to build."""

    debit_account_id: int
    credit_account_id: int
    amount_minor: int
    currency: str
    kind: TransferKind
    idempotency_key: str
    origin: str | None = None
    reference: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PostedTransfer:
    id: int
    amount_minor: int
    replayed: bool  # True: this idempotency key had posted before; nothing moved now


def check_amount(amount_minor: object) -> int:
    # bool is an int in Python; money is never a bool (nor a float)
    if type(amount_minor) is not int or not 0 < amount_minor <= money.MAX_AMOUNT:
        raise InvalidAmount(
            f"amount must be a positive integer of minor units below 2^63, got {amount_minor!r}"
        )
    return amount_minor


def post_transfer(session: Session, request: TransferRequest, now: dt.datetime) -> PostedTransfer:
    """Move money once. A retry with the same idempotency key and amount is a replay."""
    amount = check_amount(request.amount_minor)
    existing = _find(session, request)
    if existing is not None:
        return _replay(existing, request)
    try:
        with session.begin_nested():
            _debit(session, request, amount)
            _credit(session, request, amount)
            transfer = Transfer(
                debit_account_id=request.debit_account_id,
                credit_account_id=request.credit_account_id,
                amount_minor=amount,
                currency=request.currency,
                kind=request.kind.value,
                idempotency_key=request.idempotency_key,
                origin=request.origin,
                reference=request.reference,
                created_at=now,
            )
            session.add(transfer)
            session.flush()
    except IntegrityError:
        # A racer posted the same idempotency key first and committed; ours rolled back whole.
        existing = _find(session, request)
        if existing is None:
            raise
        return _replay(existing, request)
    return PostedTransfer(transfer.id, amount, replayed=False)


def _debit(session: Session, request: TransferRequest, amount: int) -> None:
    # An account that may go negative still stops at -(2^63-1): the bound is computed here, so
    # the database never computes a balance it cannot hold (money.headroom).
    covered = (LedgerAccount.balance_minor >= amount) | (
        LedgerAccount.may_go_negative & (LedgerAccount.balance_minor >= -money.headroom(amount))
    )
    if _move(session, request.debit_account_id, request.currency, -amount, covered):
        return
    found = _account_in(session, request.debit_account_id, request.currency)
    if found.may_go_negative:
        raise AmountOverflow(f"account {found.id} cannot go {amount} minor units further down")
    raise InsufficientFunds(f"account {found.id} cannot cover {amount} minor units")


def _credit(session: Session, request: TransferRequest, amount: int) -> None:
    fits = LedgerAccount.balance_minor <= money.headroom(amount)
    if _move(session, request.credit_account_id, request.currency, amount, fits):
        return
    found = _account_in(session, request.credit_account_id, request.currency)
    raise AmountOverflow(f"account {found.id} cannot hold {amount} minor units more")


def _move(
    session: Session, account_id: int, currency: str, delta: int, bound: ColumnElement[bool]
) -> bool:
    """One conditional UPDATE of a balance: whether it moved."""
    moved = session.execute(
        update(LedgerAccount)
        .where(LedgerAccount.id == account_id, LedgerAccount.currency == currency, bound)
        .values(balance_minor=LedgerAccount.balance_minor + delta)
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def _account_in(session: Session, account_id: int, currency: str) -> LedgerAccount:
    """The account a refused move named, if it exists and holds the transfer's asset."""
    found = session.get(LedgerAccount, account_id)
    if found is None:
        raise AccountNotFound(f"no ledger account {account_id}")
    if found.currency != currency:
        raise CurrencyMismatch(
            f"account {found.id} holds {found.currency}, the transfer is in {currency}"
        )
    return found


def _find(session: Session, request: TransferRequest) -> Transfer | None:
    return session.scalars(
        select(Transfer).where(
            Transfer.debit_account_id == request.debit_account_id,
            Transfer.credit_account_id == request.credit_account_id,
            Transfer.kind == request.kind.value,
            Transfer.idempotency_key == request.idempotency_key,
        )
    ).first()


def _replay(existing: Transfer, request: TransferRequest) -> PostedTransfer:
    if existing.amount_minor != request.amount_minor or existing.currency != request.currency:
        raise IdempotencyConflict(
            f"idempotency key {request.idempotency_key!r} already moved "
            f"{existing.amount_minor} {existing.currency}, not "
            f"{request.amount_minor} {request.currency}"
        )
    return PostedTransfer(existing.id, existing.amount_minor, replayed=True)
