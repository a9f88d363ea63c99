"""Monthly spending: the month a moment falls in (calendar months in UTC), a reader's row for it,
and what they spent. The budget is enforced where a spend is recorded, with the money it stands
for (``ledger.charges``): a conditional update in the database, like the balance, so several
processes paying for one reader can never exceed it together."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from trickle.db import insert_unless_present
from trickle.models import MonthlySpend


def month_of(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.UTC):%Y-%m}"


def ensure_month(session: Session, user_id: int, month: str) -> None:
    values = {"user_id": user_id, "month": month, "spent_minor": 0}
    insert_unless_present(session, MonthlySpend, values, ["user_id", "month"])


def spent(session: Session, user_id: int, month: str) -> int:
    value = session.scalar(
        select(MonthlySpend.spent_minor).where(
            MonthlySpend.user_id == user_id, MonthlySpend.month == month
        )
    )
    return int(value or 0)
