"""Posting many at once: ``post_batch`` (transfers, in the caller's transaction) and
``stage_charges`` (a group of charges in a transaction of its own: the streaming engine's group
commit). What a batch writes is computed once (``ledger.plan``); each database runs it with its
own statements (``ledger.sqlite``, ``ledger.postgres``). A refused group is posted one charge
at a time (``post_charge``), so one reader running dry never costs another reader a receipt.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker

from trickle.db import DriverCursor, transaction
from trickle.errors import BudgetExhausted, InsufficientFunds
from trickle.ledger import plan, postgres, sqlite
from trickle.ledger.charges import Charge, OverRate, post_charge, transfers
from trickle.ledger.plan import AlsoWrite, BatchRefused, GroupResult
from trickle.ledger.transfers import TransferRequest
from trickle.models import LedgerAccount, MonthlySpend, UTCDateTime


def post_batch(
    connection: Connection, requests: Sequence[TransferRequest], now: dt.datetime
) -> None:
    """Post many fresh transfers with one statement per step (moves, rows) instead of several
    per transfer, all or nothing: on any refusal the batch's savepoint rolls back and
    ``BatchRefused`` is raised. Runs inside the caller's transaction, through the driver.
    The same rules hold as for ``post_transfer`` (``ledger.plan``); an account's debits are
    counted before its credits."""
    post_steps(connection, [requests], now)


def post_steps(
    connection: Connection, steps: Sequence[Sequence[TransferRequest]], now: dt.datetime
) -> None:
    """``post_batch`` in steps: a later step may pay with what an earlier one credited (a payee
    pays its fee out of what it was just paid), as ``plan.moves`` counts them."""
    if not any(steps):
        return
    cursor = DriverCursor(connection)
    cursor.execute("SAVEPOINT trickle_batch")
    try:
        batch = plan.batch([step for step in steps if step])
        created_at = stored_time(connection.dialect, now)
        if connection.dialect.name == "postgresql":
            postgres.post(cursor, batch, created_at)
        else:
            sqlite.post(cursor, batch, created_at)
    except BatchRefused:
        cursor.execute("ROLLBACK TO SAVEPOINT trickle_batch")
        cursor.execute("RELEASE SAVEPOINT trickle_batch")
        raise
    cursor.execute("RELEASE SAVEPOINT trickle_batch")


def stage_charges(
    engine: Engine,
    sessions: sessionmaker[Session],
    charges: Sequence[Charge],
    now: dt.datetime,
    also: AlsoWrite | None = None,
) -> Callable[[], GroupResult]:
    """Prepare a group's transaction and return ``finish``, which completes it and returns what
    the readers' accounts and months hold after it. Nothing is durable, so no receipt may
    leave, until ``finish`` has returned; if it raises, nothing moved. A charge that could not
    be posted has its ``refused`` set.

    The two halves run on two threads: ``stage_charges`` is CPU work (and on SQLite the
    spends and moves) for the caller's thread; ``finish`` spends its time in one or two
    driver calls that hold no GIL (SQLite: the transfer rows' one statement, then the COMMIT;
    PostgreSQL: the group's one statement, then the COMMIT), so a caller can run it in another
    thread while it works on.

    ``also`` (PostgreSQL only): one more write in the group's transaction (``AlsoWrite``)."""
    if also is not None and engine.dialect.name != "postgresql":
        raise ValueError("a group's extra write is for PostgreSQL only")

    def one_by_one() -> GroupResult:
        return _one_by_one(sessions, charges, now, also)

    try:
        paid, fees = transfers(charges)
        rates = plan.rate_sums(charges, plan.epoch_ms(now))
        batch: plan.Batch | None = plan.batch([paid, fees], charges, rates)
    except BatchRefused:  # a sum past a budget, a rate or 2^63-1
        batch = None
    created_at = stored_time(engine.dialect, now)
    if engine.dialect.name == "postgresql":
        return postgres.stage(engine, batch, created_at, one_by_one, also)
    return sqlite.stage(engine, batch, created_at, one_by_one)


def _one_by_one(
    sessions: sessionmaker[Session],
    charges: Sequence[Charge],
    now: dt.datetime,
    also: AlsoWrite | None,
) -> GroupResult:
    with transaction(sessions) as session:
        for charge in charges:
            try:
                post_charge(session, charge, now)
            except InsufficientFunds:
                charge.refused = "insufficient_funds"
            except BudgetExhausted:
                charge.refused = "budget_exhausted"
            except OverRate:
                charge.refused = "over_rate"
        if also is not None:
            also.write(DriverCursor(session.connection()))
        return _read_back(session, charges)


def _read_back(session: Session, charges: Sequence[Charge]) -> GroupResult:
    readers = sorted({c.reader_account_id for c in charges})
    balances = session.execute(
        select(LedgerAccount.id, LedgerAccount.balance_minor).where(LedgerAccount.id.in_(readers))
    )
    spent = session.execute(
        select(MonthlySpend.user_id, MonthlySpend.month, MonthlySpend.spent_minor).where(
            MonthlySpend.user_id.in_(sorted({c.user_id for c in charges})),
            MonthlySpend.month.in_(sorted({c.month for c in charges})),
        )
    )
    return GroupResult(
        {account_id: value for account_id, value in balances},
        {(user_id, month): value for user_id, month, value in spent},
    )


def stored_time(dialect: Dialect, now: dt.datetime) -> object:
    """``now`` as the ORM would store it in a ``created_at`` column (on SQLite, its text)."""
    to_db = _time_processor(dialect)
    return to_db(now) if to_db is not None else now


@functools.cache
def _time_processor(dialect: Dialect) -> Callable[[Any], Any] | None:
    # once per engine's dialect: finding it costs more than a small group's planning
    return UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
