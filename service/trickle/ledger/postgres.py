"""PostgreSQL's batch statement (``ledger.plan``'s spends, moves and rows), through the driver
(``db.DriverCursor``): psycopg's own placeholders, ``%s``.

A whole batch is ONE statement, one round trip: the spends, the moves and the rows as
data-modifying CTEs over arrays. Their RETURNING rows say how many rows each part changed, and
what the debited accounts (the readers) and the months now hold; a part that changed fewer rows
than it should was refused, and the caller rolls the statement back. One statement cannot update
a row twice: ``plan`` gives each account one move, each (reader, month) one spend. Under READ
COMMITTED each conditional UPDATE re-checks a row another transaction changed meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from trickle.db import DriverCursor
from trickle.ledger.plan import AlsoWrite, Batch, BatchRefused, GroupResult, RateSum

# plan.RateSum's allowances: an upsert whose proposed row carries what the update needs (only
# ``excluded`` is in scope there): the capacity is its rate x burst_ms, the cost is the capacity
# less its allowance (a fresh row starts full, less the cost). The allowance is refilled (rate x
# the ms since its as_of, none if this node's clock is behind), capped at the capacity, less the
# cost; no overflow: the refill is at most the capacity and is added only below capacity -
# refill. A row whose cost does not fit is not updated, nor returned.
_REFILL = (
    "excluded.rate_per_hour_minor * LEAST(GREATEST(excluded.as_of_ms - r.as_of_ms, 0), "
    "excluded.burst_ms)"
)
_CAPACITY = "excluded.rate_per_hour_minor * excluded.burst_ms"
_FILLED = (
    f"(CASE WHEN r.allowance >= {_CAPACITY} - {_REFILL} THEN {_CAPACITY} "
    f"ELSE r.allowance + {_REFILL} END)"
)
_COST = f"({_CAPACITY} - excluded.allowance)"
_RATE = f"""
  INSERT INTO reader_rates AS r (user_id, allowance, as_of_ms, rate_per_hour_minor, burst_ms)
  SELECT user_id, allowance, %s::bigint, rate, burst FROM unnest(
    %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS v(user_id, allowance, rate, burst)
  ON CONFLICT (user_id) DO UPDATE SET
    allowance = {_FILLED} - {_COST}, as_of_ms = GREATEST(r.as_of_ms, excluded.as_of_ms),
    rate_per_hour_minor = excluded.rate_per_hour_minor, burst_ms = excluded.burst_ms
  WHERE {_FILLED} >= {_COST}
  RETURNING 1"""  # noqa: S608 - constants only

_BATCH = """
WITH spend AS (
  UPDATE monthly_spend AS m SET spent_minor = m.spent_minor + v.amount
  FROM unnest(%s::bigint[], %s::varchar[], %s::bigint[], %s::bigint[])
    AS v(user_id, month, amount, room)
  WHERE m.user_id = v.user_id AND m.month = v.month AND m.spent_minor <= v.room
  RETURNING m.user_id, m.month, m.spent_minor
), rate AS ({rate}
), move AS (
  UPDATE ledger_accounts AS a SET balance_minor = a.balance_minor + v.net
  FROM unnest(%s::bigint[], %s::varchar[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
    AS v(id, currency, net, need, floor, room)
  WHERE a.id = v.id AND a.currency = v.currency
    AND (a.balance_minor >= v.need OR (a.may_go_negative AND a.balance_minor >= v.floor))
    AND a.balance_minor <= v.room
  RETURNING a.id, a.balance_minor, v.net
), inserted AS (
  INSERT INTO transfers (debit_account_id, credit_account_id, amount_minor, currency, kind,
                         idempotency_key, origin, reference, created_at)
  SELECT d, c, amt, cur, k, ik, o, ref, %s FROM unnest(
    %s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[], %s::varchar[],
    %s::varchar[], %s::varchar[]
  ) AS t(d, c, amt, cur, k, ik, o, ref)
  RETURNING 1
){also}
SELECT 'spent', user_id, month, spent_minor FROM spend
UNION ALL SELECT 'balance', id, NULL, balance_minor FROM move WHERE net < 0
UNION ALL SELECT 'moves', count(*), NULL, NULL FROM move
UNION ALL SELECT 'rates', count(*), NULL, NULL FROM rate
UNION ALL SELECT 'rows', count(*), NULL, NULL FROM inserted
"""


_PLAIN = _BATCH.format(rate=_RATE, also="")


def post(cursor: DriverCursor, batch: Batch, created_at: object) -> GroupResult:
    """The whole batch, in the caller's transaction; ``BatchRefused`` if anything of it was
    refused (the caller rolls back)."""
    return _run(cursor, batch, params(batch, created_at))


def params(batch: Batch, created_at: object) -> list[object]:
    """The statement's parameters: each part's columns as arrays."""
    requests = batch.rows
    kinds = [request.kind.value for request in requests]
    rows = _columns(requests, 8)
    return [
        *_columns(batch.spends, 4),
        *rate_params(batch.rates),
        *_columns(batch.moves, 6),
        created_at,
        *rows[:4],
        kinds,
        *rows[5:],
    ]


def rate_params(rates: Sequence[RateSum]) -> list[object]:
    """The allowances' parameters: the clock, then (user, allowance of a fresh row, rate,
    burst) as arrays."""
    now_ms = rates[0].now_ms if rates else 0
    return [
        now_ms,
        [r.user_id for r in rates],
        [r.capacity - r.cost for r in rates],
        [r.rate_per_hour_minor for r in rates],
        [r.burst_ms for r in rates],
    ]


def take_rates(cursor: DriverCursor, rates: Sequence[RateSum]) -> int:
    """Draw each reader's rate allowance; how many had room (the rest: nothing changed)."""
    if not rates:
        return 0
    return len(cursor.execute(_RATE, rate_params(rates)))


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


def _run(
    cursor: DriverCursor, batch: Batch, params: Sequence[object], statement: str = _PLAIN
) -> GroupResult:
    try:
        returned = cursor.execute(statement, params)
    except cursor.integrity_error:
        raise BatchRefused("a transfer in the batch was posted before") from None
    spent: dict[tuple[int, str], int] = {}
    balances: dict[int, int] = {}
    counts: dict[str, int] = {}
    for part, number, month, value in returned:
        if part == "spent":
            spent[number, month] = value
        elif part == "balance":
            balances[number] = value
        else:
            counts[part] = number
    if len(spent) != len(batch.spends):
        raise BatchRefused("a spend would pass its monthly budget")
    if counts["rates"] != len(batch.rates):
        raise BatchRefused("streamed charges would pass a reader's rate")
    if counts["moves"] != len(batch.moves) or counts["rows"] != len(batch.rows):
        raise BatchRefused("a balance would pass its bounds, or an account is missing")
    return GroupResult(balances, spent)


def stage(
    engine: Engine,
    batch: Batch | None,
    created_at: object,
    one_by_one: Callable[[], GroupResult],
    also: AlsoWrite | None = None,
) -> Callable[[], GroupResult]:
    """A group of charges: its parameters here, on the caller's thread; ``finish`` runs the
    statement (with ``also`` as one more CTE) and the COMMIT in a transaction of its own, and
    posts the group ``one_by_one`` there if anything of it was refused (rare)."""
    statement_params = None if batch is None else params(batch, created_at)
    statement = _PLAIN
    if also is not None and statement_params is not None:
        statement = _BATCH.format(rate=_RATE, also=f", also AS (\n{also.statement})")
        statement_params = [*statement_params, *also.params]

    def finish() -> GroupResult:
        if batch is None or statement_params is None:
            return one_by_one()
        try:
            with engine.begin() as connection:
                return _run(DriverCursor(connection), batch, statement_params, statement)
        except BatchRefused:
            return one_by_one()

    return finish


# spent_tokens' columns as arrays, in this order (``ledger.tokens``)
_INSERT_NULLIFIERS = """
INSERT INTO spent_tokens (currency, epoch, nullifier, use, day)
SELECT * FROM unnest(%s::varchar[], %s::integer[], %s::bytea[], %s::varchar[], %s::date[])
ON CONFLICT DO NOTHING
RETURNING currency, epoch, nullifier
"""


def insert_nullifiers(
    cursor: DriverCursor, rows: Sequence[tuple[str, int, bytes, str, dt.date]]
) -> set[tuple[str, int, bytes]]:
    """Insert every spent token's row unless present, in one statement; the (currency, epoch,
    nullifier) of the rows inserted now (a racer's insert of the same waits for its commit)."""
    if not rows:
        return set()
    returned = cursor.execute(_INSERT_NULLIFIERS, _columns(rows, 5))
    return {(currency, epoch, bytes(nullifier)) for currency, epoch, nullifier in returned}
