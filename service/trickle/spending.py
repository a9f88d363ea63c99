"""Monthly spending against the reader's budget cap, enforced in the database like the balance:
a conditional ``UPDATE ... WHERE spent_minor <= budget - amount``, so several processes paying
for one reader can never exceed it together. Months are calendar months in UTC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from trickle import money
from trickle.db import DriverCursor
from trickle.models import MonthlySpend

# One conditional UPDATE: the budget holds however many processes add at once. Through the
# driver (``db.DriverCursor``): the group commit runs it for every reader of every group. The
# bound is ``money.headroom(amount, budget)``, computed before the database sees it: the sum
# ``spent_minor + amount`` is only ever stored, never computed past the budget (which fits).
_ADD = (
    "UPDATE monthly_spend SET spent_minor = spent_minor + ? "
    "WHERE user_id = ? AND month = ? AND spent_minor <= ?"
)


class BudgetRefused(Exception):
    """Some spend of a batch would pass its budget: nothing of the batch was recorded."""


class Spend(NamedTuple):  # built per increment by the group commit: a cheap tuple
    user_id: int
    month: str
    amount_minor: int
    budget_minor: int


def month_of(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.UTC):%Y-%m}"


def ensure_month(session: Session, user_id: int, month: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(MonthlySpend)
        .values(user_id=user_id, month=month, spent_minor=0)
        .on_conflict_do_nothing(index_elements=["user_id", "month"])
    )


def spent(session: Session, user_id: int, month: str) -> int:
    value = session.scalar(
        select(MonthlySpend.spent_minor).where(
            MonthlySpend.user_id == user_id, MonthlySpend.month == month
        )
    )
    return int(value or 0)


def add(session: Session, spend: Spend) -> bool:
    """Record one spend; False (and nothing recorded) if it would pass the budget."""
    room = money.headroom(spend.amount_minor, spend.budget_minor)
    if room < 0:  # more than the whole budget
        return False
    ensure_month(session, spend.user_id, spend.month)
    row = (spend.amount_minor, spend.user_id, spend.month, room)
    return DriverCursor(session.connection()).executemany(_ADD, [row]) == 1


def add_batch(connection: Connection, spends: Sequence[Spend]) -> None:
    """Record many spends in one statement; ``BudgetRefused`` if any would pass its budget (the
    caller then rolls them all back). Month rows must exist (``ensure_month``). Through the
    driver, like ``ledger.post_batch``.

    One UPDATE per (user, month) for the sum of its spends, under the smallest budget among
    them: never looser than adding them one by one (a refusal here means "post them singly")."""
    if not spends:
        return
    rows = batch_rows(spends)
    if DriverCursor(connection).executemany(_ADD, rows) != len(rows):
        raise BudgetRefused("a spend would pass its monthly budget")


def batch_rows(spends: Sequence[Spend]) -> list[tuple[int, int, str, int]]:
    """``(amount, user_id, month, headroom)`` per (user, month), in that order: the sum of its
    spends, and how much may be spent already for the sum to fit the smallest budget among them.
    ``BudgetRefused`` when a sum is past its budget (it could not even be sent: it may be past
    2^63-1)."""
    totals: dict[tuple[int, str], list[int]] = {}
    for spend in spends:
        entry = totals.setdefault((spend.user_id, spend.month), [0, spend.budget_minor])
        entry[0] += spend.amount_minor
        entry[1] = min(entry[1], spend.budget_minor)
    rows = []
    for (user_id, month), (amount, budget) in sorted(totals.items()):
        room = money.headroom(amount, budget)
        if room < 0:
            raise BudgetRefused("a spend would pass its monthly budget")
        rows.append((amount, user_id, month, room))
    return rows
