"""Account freezes: a reader's spending held after a card payment was taken back (a dispute, or a
refund of money already spent), until the dispute is won or the operator lifts it.

A frozen reader's streams stop (state ``account_frozen``) and one-time payments are refused
(``account_frozen``); their balance and history stay as they are. Domain code: the caller owns
the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from trickle.errors import AccountFrozen
from trickle.models import AccountFreeze

NOTE_MAX_CHARS = 200


class FreezeReason(enum.StrEnum):
    DISPUTE = "dispute"  # the cardholder disputed a top-up
    REFUND = "refund"  # a top-up was refunded after part of it was spent


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    user_id: int
    reasons: tuple[str, ...]
    since: dt.datetime


def frozen_among(session: Session, user_ids: Collection[int]) -> set[int]:
    """Which of these readers are frozen (one query, for the streaming engine's refresh)."""
    if not user_ids:
        return set()
    rows = session.scalars(
        select(AccountFreeze.user_id)
        .where(AccountFreeze.user_id.in_(list(user_ids)), AccountFreeze.lifted_at.is_(None))
        .distinct()
    )
    return set(rows)


def is_frozen(session: Session, user_id: int) -> bool:
    return bool(frozen_among(session, [user_id]))


def refuse_if_frozen(session: Session, user_id: int) -> None:
    if is_frozen(session, user_id):
        raise AccountFrozen(
            "your spending is frozen: a card payment of yours was disputed or refunded; "
            "the operator of this service can lift it"
        )


def freeze(
    session: Session, user_id: int, *, topup_id: int | None, reason: FreezeReason, now: dt.datetime
) -> None:
    """Freeze the reader for this top-up and reason, unless such a freeze is in force already."""
    active = session.scalars(
        select(AccountFreeze.id).where(
            AccountFreeze.user_id == user_id,
            AccountFreeze.topup_id == topup_id,
            AccountFreeze.reason == reason.value,
            AccountFreeze.lifted_at.is_(None),
        )
    ).first()
    if active is None:
        session.add(
            AccountFreeze(user_id=user_id, topup_id=topup_id, reason=reason.value, created_at=now)
        )
        session.flush()


def lift(
    session: Session,
    user_id: int,
    *,
    now: dt.datetime,
    note: str,
    topup_id: int | None = None,
    reason: FreezeReason | None = None,
) -> int:
    """Lift the reader's freezes (only those of one top-up and reason, when given); how many."""
    conditions = [AccountFreeze.user_id == user_id, AccountFreeze.lifted_at.is_(None)]
    if topup_id is not None:
        conditions.append(AccountFreeze.topup_id == topup_id)
    if reason is not None:
        conditions.append(AccountFreeze.reason == reason.value)
    lifted = session.execute(
        update(AccountFreeze)
        .where(*conditions)
        .values(lifted_at=now, lifted_note=note[:NOTE_MAX_CHARS])
        .execution_options(synchronize_session=False)
    )
    return int(lifted.rowcount)  # type: ignore[attr-defined]


def frozen_readers(session: Session) -> list[Frozen]:
    """Every frozen reader, oldest freeze first (for ``trickle topups frozen``)."""
    rows = session.scalars(
        select(AccountFreeze)
        .where(AccountFreeze.lifted_at.is_(None))
        .order_by(AccountFreeze.created_at, AccountFreeze.id)
    )
    by_user: dict[int, Frozen] = {}
    for row in rows:
        seen = by_user.get(row.user_id)
        reasons = (*seen.reasons, row.reason) if seen else (row.reason,)
        since = seen.since if seen else row.created_at
        by_user[row.user_id] = Frozen(row.user_id, reasons, since)
    return list(by_user.values())
