"""Group commit: many streams' increments become ledger transfers in ONE transaction.

Runs in the engine's single committer thread. The fast path posts the whole batch with one
statement per step (spend, debits, credits, rows, fees); if anything in it is refused (a balance
or a budget), that savepoint rolls back and each increment is posted on its own, so one reader
running dry never costs another reader their receipt. Receipts are signed only after this returns,
i.e. after the commit is durable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trickle import ledger, spending
from trickle.db import transaction
from trickle.errors import InsufficientFunds
from trickle.ledger import BatchRefused, TransferKind, TransferRequest
from trickle.models import LedgerAccount, MonthlySpend


@dataclasses.dataclass(slots=True)
class Posting:
    """One increment to commit, and (after the commit) its outcome."""

    user_id: int
    reader_account_id: int
    payee_account_id: int
    fee_account_id: int
    currency: str
    amount_minor: int
    fee_minor: int
    key: str  # "<sid>.<seq>": unique per increment
    origin: str
    budget_minor: int
    month: str
    refused: str | None = None  # None: committed; else "insufficient_funds" | "budget_exhausted"


@dataclasses.dataclass(frozen=True, slots=True)
class CommitResult:
    balances: dict[int, int]  # reader account id -> balance after the commit
    spent: dict[tuple[int, str], int]  # (user id, month) -> spent after the commit


def _requests(postings: Sequence[Posting]) -> tuple[list[TransferRequest], list[TransferRequest]]:
    streams = [
        TransferRequest(
            p.reader_account_id,
            p.payee_account_id,
            p.amount_minor,
            p.currency,
            TransferKind.STREAM,
            p.key,
            origin=p.origin,
        )
        for p in postings
    ]
    fees = [
        TransferRequest(
            p.payee_account_id,
            p.fee_account_id,
            p.fee_minor,
            p.currency,
            TransferKind.FEE,
            p.key,
            origin=p.origin,
        )
        for p in postings
        if p.fee_minor > 0
    ]
    return streams, fees


def _spends(postings: Sequence[Posting]) -> list[spending.Spend]:
    return [spending.Spend(p.user_id, p.month, p.amount_minor, p.budget_minor) for p in postings]


def commit(
    sessions: sessionmaker[Session], postings: Sequence[Posting], now: dt.datetime
) -> CommitResult:
    """Post every posting (or mark it refused) and commit once."""
    with transaction(sessions) as session:
        try:
            with session.begin_nested():
                spending.add_batch(session, _spends(postings))
                streams, fees = _requests(postings)
                ledger.post_batch(session, streams, now)
                ledger.post_batch(session, fees, now)
        except (BatchRefused, spending.BudgetRefused):
            for posting in postings:
                _post_one(session, posting, now)
        return _read_back(session, postings)


def _post_one(session: Session, posting: Posting, now: dt.datetime) -> None:
    streams, fees = _requests([posting])
    try:
        with session.begin_nested():
            if not spending.add(session, _spends([posting])[0]):
                posting.refused = "budget_exhausted"
                return
            for request in streams + fees:
                ledger.post_transfer(session, request, now)
    except InsufficientFunds:
        posting.refused = "insufficient_funds"


def _read_back(session: Session, postings: Sequence[Posting]) -> CommitResult:
    account_ids = {p.reader_account_id for p in postings}
    balances = dict(
        session.execute(
            select(LedgerAccount.id, LedgerAccount.balance_minor).where(
                LedgerAccount.id.in_(account_ids)
            )
        ).all()
    )
    users = {p.user_id for p in postings}
    months = {p.month for p in postings}
    spent = {
        (user_id, month): value
        for user_id, month, value in session.execute(
            select(MonthlySpend.user_id, MonthlySpend.month, MonthlySpend.spent_minor).where(
                MonthlySpend.user_id.in_(users), MonthlySpend.month.in_(months)
            )
        ).all()
    }
    return CommitResult(balances, spent)
