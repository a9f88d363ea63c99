"""Group commit: many streams' increments become ledger transfers in ONE transaction.

Runs on the engine's event loop thread. The fast path posts the whole batch with one
statement per step (spend, debits, credits, rows, fees); if anything in it is refused (a balance
or a budget), the transaction rolls back and each increment is posted on its own, so one reader
running dry never costs another reader their receipt. Receipts are signed only after the group's
``finish`` (its COMMIT) returns, i.e. after the commit is durable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from trickle import ledger, spending
from trickle.db import DriverCursor, transaction
from trickle.errors import InsufficientFunds
from trickle.ledger import BatchRefused, TransferKind, TransferRequest


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


def stage(
    engine: Engine, sessions: sessionmaker[Session], postings: Sequence[Posting], now: dt.datetime
) -> tuple[CommitResult, Callable[[], None]]:
    """Post every posting (or mark it refused) in one transaction; return what the readers'
    accounts hold after it, and ``finish``: the COMMIT. Nothing is durable, so no receipt may
    leave, until ``finish`` has returned; it raises if the commit failed (then nothing moved).
    ``finish`` waits on the disk (SQLite's fsync) or the network, so the engine runs it off its
    event loop; everything else here is CPU work for the caller's thread."""
    connection = engine.connect()
    try:
        group = connection.begin()
        spending.add_batch(connection, _spends(postings))
        streams, fees = _requests(postings)
        ledger.post_batch(connection, streams, now)
        ledger.post_batch(connection, fees, now)
        result = _read_back(connection, postings)
    except (BatchRefused, spending.BudgetRefused):
        connection.close()  # rolls back; one by one now, so one refusal costs no one else
    except BaseException:
        connection.close()
        raise
    else:

        def finish() -> None:
            try:
                group.commit()
            finally:
                connection.close()

        return result, finish
    with transaction(sessions) as session:  # the rare path commits here, on the caller's thread
        for posting in postings:
            _post_one(session, posting, now)
        result = _read_back(session.connection(), postings)
    return result, _committed


def _committed() -> None:
    """``finish`` of a group that is committed already."""


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


def _read_back(connection: Connection, postings: Sequence[Posting]) -> CommitResult:
    cursor = DriverCursor(connection)
    accounts, account_ids = cursor.in_list(sorted({p.reader_account_id for p in postings}))
    query = f"SELECT id, balance_minor FROM ledger_accounts WHERE id {accounts}"  # noqa: S608 - placeholders only
    balances = dict(cursor.execute(query, account_ids))
    users, user_ids = cursor.in_list(sorted({p.user_id for p in postings}))
    months, month_values = cursor.in_list(sorted({p.month for p in postings}))
    rows = cursor.execute(
        "SELECT user_id, month, spent_minor FROM monthly_spend "  # noqa: S608 - placeholders only
        f"WHERE user_id {users} AND month {months}",
        user_ids + month_values,
    )
    return CommitResult(balances, {(user_id, month): value for user_id, month, value in rows})
