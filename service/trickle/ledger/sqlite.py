"""SQLite's batch statements (``ledger.plan``'s spends, moves and rows), through the driver
(``db.DriverCursor``): SQLite's own placeholders, ``?`` and ``?N`` (the N-th parameter).

A batch is three statements: the spends and the moves (``executemany``, one row each, run by
the caller), then every transfer row in ONE statement (a JSON array unnested by ``json_each``):
one call into SQLite, so the thread that runs it releases the GIL once for all of it. Every
SQLite transaction is BEGIN IMMEDIATE, so nothing races between a check and its write.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Engine

from trickle.db import DriverCursor
from trickle.ledger.plan import Batch, BatchRefused, GroupResult, RateSum

T = TypeVar("T")

# plan.SpendSum's columns, in its order
_SPEND = (
    "UPDATE monthly_spend SET spent_minor = spent_minor + ?3 "
    "WHERE user_id = ?1 AND month = ?2 AND spent_minor <= ?4"
)
# plan.RateSum's columns, in its order: the allowance refilled (rate x the ms since its as_of,
# none if the clock went back), capped at the capacity, less the cost; no overflow: the
# refill is at most the capacity and is added only below capacity - refill. A fresh row
# starts full. Nothing changes (0 rows) when the cost does not fit.
_FILLED = (
    "(CASE WHEN allowance >= ?5 - ?3 * min(max(?6 - as_of_ms, 0), ?4) THEN ?5 "
    "ELSE allowance + ?3 * min(max(?6 - as_of_ms, 0), ?4) END)"
)
_RATE = (
    "INSERT INTO reader_rates (user_id, allowance, as_of_ms, rate_per_hour_minor, burst_ms) "  # noqa: S608 - constants only
    "VALUES (?1, ?5 - ?2, ?6, ?3, ?4) ON CONFLICT (user_id) DO UPDATE SET "
    f"allowance = {_FILLED} - ?2, as_of_ms = max(as_of_ms, ?6), rate_per_hour_minor = ?3, "
    f"burst_ms = ?4 WHERE {_FILLED} >= ?2"
)
# plan.Move's columns, in its order
_MOVE = (
    "UPDATE ledger_accounts SET balance_minor = balance_minor + ?3 "
    "WHERE id = ?1 AND currency = ?2 "
    "AND (balance_minor >= ?4 OR (may_go_negative AND balance_minor >= ?5)) "
    "AND balance_minor <= ?6"
)
# TransferRequest's fields, in its order, as JSON arrays
_INSERT_TRANSFERS = (
    "INSERT INTO transfers (debit_account_id, credit_account_id, amount_minor, currency, kind, "
    "idempotency_key, origin, reference, created_at) "
    "SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, "
    "value->>7, ? FROM json_each(?)"
)


def post(cursor: DriverCursor, batch: Batch, created_at: object) -> None:
    """The whole batch, in the caller's transaction; ``BatchRefused`` if anything of it was
    refused (the caller rolls back)."""
    write_balances(cursor, batch)
    try:
        cursor.execute(_INSERT_TRANSFERS, rows(batch, created_at))
    except cursor.integrity_error:
        raise BatchRefused("a transfer in the batch was posted before") from None


def write_balances(cursor: DriverCursor, batch: Batch) -> None:
    """The spends, the rate allowances, then the moves; ``BatchRefused`` if one was refused."""
    if batch.spends and cursor.executemany(_SPEND, batch.spends) != len(batch.spends):
        raise BatchRefused("a spend would pass its monthly budget")
    if batch.rates and take_rates(cursor, batch.rates) != len(batch.rates):
        raise BatchRefused("streamed charges would pass a reader's rate")
    if cursor.executemany(_MOVE, batch.moves) != len(batch.moves):
        raise BatchRefused("a balance would pass its bounds, or an account is missing")


def take_rates(cursor: DriverCursor, rates: Sequence[RateSum]) -> int:
    """Draw each reader's rate allowance; how many had room (the rest: nothing changed)."""
    return cursor.executemany(_RATE, rates)


def rows(batch: Batch, created_at: object) -> list[object]:
    """The transfer rows statement's parameters (a named tuple is a JSON array; its kind, a
    ``StrEnum``, its value)."""
    return [created_at, json.dumps(batch.rows, separators=(",", ":"))]


def stage(
    engine: Engine,
    batch: Batch | None,
    created_at: object,
    one_by_one: Callable[[], GroupResult],
) -> Callable[[], GroupResult]:
    """A group of charges: the spends, the moves and what the readers now hold, here on the
    caller's thread; ``finish`` runs the rows' one statement and the COMMIT (its fsync). A
    refusal rolls back and posts the group ``one_by_one`` at once, here (rare)."""
    if batch is not None:
        staged = open_batch(engine, batch, created_at, _read_back)
        if staged is not None:
            return staged
    committed = one_by_one()
    return lambda: committed


def open_batch(
    engine: Engine,
    batch: Batch,
    created_at: object,
    read: Callable[[DriverCursor, Batch], T],
    first: Callable[[DriverCursor], None] | None = None,
) -> Callable[[], T] | None:
    """A batch in a transaction of its own, in two halves: here, on the caller's thread,
    ``first`` (more of the group's writes; it raises ``BatchRefused`` to refuse), the spends,
    the moves and ``read``; then ``finish`` (for another thread: one driver call and the
    COMMIT, which hold no GIL) inserts the rows, commits and returns what ``read`` read. None
    when something was refused: rolled back, nothing moved."""
    connection = engine.connect()
    try:
        group = connection.begin()
        cursor = DriverCursor(connection)
        if first is not None:
            first(cursor)
        write_balances(cursor, batch)
        params = rows(batch, created_at)
        result = read(cursor, batch)
    except BatchRefused:
        connection.close()  # rolls back
        return None
    except BaseException:
        connection.close()
        raise

    def finish() -> T:
        try:
            cursor.execute(_INSERT_TRANSFERS, params)
            group.commit()
        finally:
            connection.close()  # rolls back if the rows or the commit failed
        return result

    return finish


def _read_back(cursor: DriverCursor, batch: Batch) -> GroupResult:
    readers = [move.account_id for move in batch.moves if move.net_minor < 0]
    balances = dict(
        cursor.execute(
            f"SELECT id, balance_minor FROM ledger_accounts WHERE id IN ({_marks(readers)})",  # noqa: S608 - placeholders only
            readers,
        )
    )
    users = sorted({spend.user_id for spend in batch.spends})
    months = sorted({spend.month for spend in batch.spends})
    spent = cursor.execute(
        "SELECT user_id, month, spent_minor FROM monthly_spend "  # noqa: S608 - placeholders only
        f"WHERE user_id IN ({_marks(users)}) AND month IN ({_marks(months)})",
        [*users, *months],
    )
    return GroupResult(balances, {(user_id, month): value for user_id, month, value in spent})


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


# spent_tokens' columns, in this order (``ledger.tokens``)
_INSERT_NULLIFIER = (
    "INSERT INTO spent_tokens (currency, epoch, nullifier, use, day) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


def insert_nullifiers(
    cursor: DriverCursor, rows: Sequence[tuple[str, int, bytes, str, dt.date]]
) -> set[tuple[str, int, bytes]]:
    """Insert each spent token's row unless present; the (currency, epoch, nullifier) of the
    rows inserted now. One call per row into SQLite, no statement compiled per batch."""
    inserted = set()
    for currency, epoch, nullifier, use, day in rows:
        cursor.execute(_INSERT_NULLIFIER, (currency, epoch, nullifier, use, day.isoformat()))
        if cursor.rowcount == 1:
            inserted.add((currency, epoch, nullifier))
    return inserted


def insert_fresh_nullifiers(
    cursor: DriverCursor, rows: Sequence[tuple[str, int, bytes, str, dt.date]]
) -> None:
    """Insert every row (``executemany``: one call from Python); ``BatchRefused`` if one was
    present (the caller rolls back and learns which with ``insert_nullifiers``)."""
    params = [(currency, epoch, n, use, day.isoformat()) for currency, epoch, n, use, day in rows]
    if cursor.executemany(_INSERT_NULLIFIER, params) != len(params):
        raise BatchRefused("a token was spent before")
