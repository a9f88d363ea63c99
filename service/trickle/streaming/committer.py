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

from trickle import ledger, money, spending
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
) -> Callable[[], CommitResult]:
    """Prepare the group's transaction and return ``finish``, which completes it and returns
    what the readers' accounts hold after it. Nothing is durable, so no receipt may leave, until
    ``finish`` has returned; if it raises, nothing moved. ``finish`` spends its time in one or
    two calls that hold no GIL (SQLite: the transfer rows' one statement, then the COMMIT;
    PostgreSQL: the group's one statement, then the COMMIT), so the engine runs it in a thread;
    ``stage`` itself is CPU work for the caller's thread (SQLite: the spends and balances)."""
    if engine.dialect.name == "postgresql":
        try:
            statement: _PostgresGroup | None = _postgres_group(postings, now)
        except (BatchRefused, spending.BudgetRefused):  # a sum past a budget or 2^63-1
            statement = None

        def finish_postgres() -> CommitResult:
            if statement is None:
                return _one_by_one(sessions, postings, now)  # rare: in the thread too
            try:
                with engine.begin() as connection:
                    return statement.run(connection)
            except (BatchRefused, spending.BudgetRefused):
                return _one_by_one(sessions, postings, now)  # rare: in the thread too

        return finish_postgres
    connection = engine.connect()
    try:
        group = connection.begin()
        spending.add_batch(connection, _spends(postings))
        streams, fees = _requests(postings)
        ledger.move_balances(connection, streams)
        ledger.move_balances(connection, fees)
        # the rows go with the COMMIT: one statement, SQLite's work off the event loop
        rows = ledger.transfer_rows(connection, streams + fees, now)
        result = _read_back(connection, postings)
    except (BatchRefused, spending.BudgetRefused):
        connection.close()  # rolls back; one by one now, so one refusal costs no one else
    except BaseException:
        connection.close()
        raise
    else:

        def finish() -> CommitResult:
            try:
                DriverCursor(connection).execute(*rows)
                group.commit()
            finally:
                connection.close()  # rolls back if the rows or the commit failed
            return result

        return finish
    committed = _one_by_one(sessions, postings, now)  # rare: on the caller's thread
    return lambda: committed


def _one_by_one(
    sessions: sessionmaker[Session], postings: Sequence[Posting], now: dt.datetime
) -> CommitResult:
    with transaction(sessions) as session:
        for posting in postings:
            _post_one(session, posting, now)
        return _read_back(session.connection(), postings)


# PostgreSQL: the whole group in ONE statement (one round trip; each one blocks the event loop):
# the spends, the conditional debits, the credits and the rows, as data-modifying CTEs over
# arrays. Their RETURNING rows say what changed, and what the readers now hold.
_PG_GROUP = """
WITH spend AS (
  UPDATE monthly_spend AS m SET spent_minor = m.spent_minor + v.amount
  FROM unnest(?::bigint[], ?::varchar[], ?::bigint[], ?::bigint[])
    AS v(user_id, month, amount, room)
  WHERE m.user_id = v.user_id AND m.month = v.month AND m.spent_minor <= v.room
  RETURNING m.user_id, m.month, m.spent_minor
), debit AS (
  UPDATE ledger_accounts AS a SET balance_minor = a.balance_minor - v.amount
  FROM unnest(?::bigint[], ?::varchar[], ?::bigint[], ?::bigint[])
    AS v(id, currency, amount, floor)
  WHERE a.id = v.id AND a.currency = v.currency
    AND (a.balance_minor >= v.amount OR (a.may_go_negative AND a.balance_minor >= v.floor))
  RETURNING a.id, a.balance_minor
), credit AS (
  UPDATE ledger_accounts AS a SET balance_minor = a.balance_minor + v.amount
  FROM unnest(?::bigint[], ?::varchar[], ?::bigint[], ?::bigint[])
    AS v(id, currency, amount, room)
  WHERE a.id = v.id AND a.currency = v.currency AND a.balance_minor <= v.room
  RETURNING a.id
), moved AS (
  INSERT INTO transfers (debit_account_id, credit_account_id, amount_minor, currency, kind,
                         idempotency_key, origin, reference, created_at)
  SELECT d, c, amt, cur, k, ik, o, NULL, ? FROM unnest(
    ?::bigint[], ?::bigint[], ?::bigint[], ?::varchar[], ?::varchar[], ?::varchar[], ?::varchar[]
  ) AS t(d, c, amt, cur, k, ik, o)
  RETURNING 1
)
SELECT 'spend', user_id, month, spent_minor FROM spend
UNION ALL SELECT 'debit', id, NULL, balance_minor FROM debit
UNION ALL SELECT 'credit', id, NULL, NULL FROM credit
UNION ALL SELECT 'moved', count(*), NULL, NULL FROM moved
"""


@dataclasses.dataclass(frozen=True, slots=True)
class _PostgresGroup:
    params: list[object]
    spends: int  # rows each part must change
    debits: int
    credits: int
    rows: int

    def run(self, connection: Connection) -> CommitResult:
        """Raises ``BatchRefused`` or ``BudgetRefused`` (the caller rolls back)."""
        cursor = DriverCursor(connection)
        try:
            returned = cursor.execute(_PG_GROUP, self.params)
        except cursor.integrity_error:
            raise BatchRefused("a transfer in the group was posted before") from None
        spent = {(row[1], row[2]): row[3] for row in returned if row[0] == "spend"}
        balances = {row[1]: row[3] for row in returned if row[0] == "debit"}
        credited = sum(1 for row in returned if row[0] == "credit")
        moved = next(row[1] for row in returned if row[0] == "moved")
        if len(spent) != self.spends:
            raise spending.BudgetRefused("a spend would pass its monthly budget")
        if len(balances) != self.debits or credited != self.credits or moved != self.rows:
            raise BatchRefused("a debit was refused, or an account is missing")
        return CommitResult(balances, spent)


def _postgres_group(postings: Sequence[Posting], now: dt.datetime) -> _PostgresGroup:
    """The fast path on PostgreSQL, with the rules of ``spending.add_batch`` and
    ``ledger.post_batch`` (and their bounds, from ``money.headroom``). One statement cannot update
    a row twice, so a payee's credit is netted with the fee it pays (the fee transfer's debit,
    which its credit always covers); the rows are the same two transfers as on SQLite.
    ``BudgetRefused`` or ``BatchRefused`` when a sum is past its budget or 2^63-1."""
    streams, fees = _requests(postings)
    for request in streams + fees:
        ledger.check_amount(request.amount_minor)
    spends = spending.batch_rows(_spends(postings))
    debits = ledger.per_account(streams, debit=True)
    net: dict[tuple[int, str], int] = {}
    for account, currency, total in ledger.per_account(streams, debit=False):
        net[account, currency] = total
    for account, currency, total in ledger.per_account(fees, debit=True):
        net[account, currency] -= total  # fee <= amount: never below zero
    for account, currency, total in ledger.per_account(fees, debit=False):
        net[account, currency] = net.get((account, currency), 0) + total
    credits = [(a, cur, total) for (a, cur), total in sorted(net.items()) if total > 0]
    rows = streams + fees
    params: list[object] = [
        [user for _, user, _, _ in spends],
        [month for _, _, month, _ in spends],
        [amount for amount, _, _, _ in spends],
        [room for _, _, _, room in spends],
        [a for a, _, _ in debits],
        [cur for _, cur, _ in debits],
        [total for _, _, total in debits],
        [-money.headroom(total) for _, _, total in debits],
        [a for a, _, _ in credits],
        [cur for _, cur, _ in credits],
        [total for _, _, total in credits],
        [money.headroom(total) for _, _, total in credits],
        now,
        [r.debit_account_id for r in rows],
        [r.credit_account_id for r in rows],
        [r.amount_minor for r in rows],
        [r.currency for r in rows],
        [r.kind.value for r in rows],
        [r.idempotency_key for r in rows],
        [r.origin for r in rows],
    ]
    return _PostgresGroup(params, len(spends), len(debits), len(credits), len(rows))


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
