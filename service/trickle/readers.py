"""Readers as payments see them: their settings as a policy (rate, budget, pause, sites turned
off), the ledger account their money comes from (a ``FundingSource``), and their funds (balance
and month spend). Plain synchronous reads, shared by streaming and one-time payments."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from trickle import freezes, funding, ledger, spending
from trickle.ledger import AccountKind
from trickle.models import LedgerAccount, MonthlySpend, ReaderSettings, SiteOverride
from trickle.settings import Settings


@dataclasses.dataclass(frozen=True, slots=True)
class ReaderPolicy:
    rate_per_hour_minor: int
    monthly_budget_minor: int
    paused: bool
    overrides: dict[str, tuple[int | None, bool]]  # origin -> (rate or None, disabled)
    frozen: bool = False  # a card payment was taken back: no spending (trickle.freezes)

    def site_rate(self, origin: str) -> int | None:
        """The rate for a site, or None when the reader turned the site off."""
        rate, disabled = self.overrides.get(origin, (None, False))
        if disabled:
            return None
        return self.rate_per_hour_minor if rate is None else rate

    def top_rate(self) -> int:
        """The most the reader pays per hour, all streams together: their hourly rate, or a
        site's own rate set higher (streams share the reader's time, so they pay the average of
        the active sites' rates: ``streaming.accrual``). The ledger caps streams at it."""
        top = self.rate_per_hour_minor
        for rate, disabled in self.overrides.values():
            if rate is not None and rate > top and not disabled:
                top = rate
        return top


class FundingSource(Protocol):
    """Where a reader's streamed money comes from: which ledger account a connection's charges
    debit, and what it can still spend. Today there is one source, the reader's own prepaid
    balance (``ReaderBalance``). Private payments do not go through a source: their tokens are
    spent from the token float, naming no reader (``ledger.tokens``, docs/tokens.md). The debit
    itself is the same for every source, a ledger charge with its
    conditional debit, so no source can overdraw. Plain synchronous calls, run off the event
    loop inside the caller's transaction."""

    def account_for(self, session: Session, user_id: int, now: dt.datetime) -> int:
        """The ledger account that this reader's charges debit (created on first use)."""
        ...

    def balances(self, session: Session, account_ids: Collection[int]) -> dict[int, int]:
        """What each of these accounts can still spend, in minor units (missing: nothing)."""
        ...


class ReaderBalance:
    """The reader's own prepaid balance: one ledger account per reader and asset."""

    def __init__(self, settings: Settings) -> None:
        self.asset = ledger.asset_of(settings)

    def account_for(self, session: Session, user_id: int, now: dt.datetime) -> int:
        owner = funding.reader_account_owner(user_id)
        return ledger.account(session, AccountKind.READER, owner, self.asset, now).id

    def balances(self, session: Session, account_ids: Collection[int]) -> dict[int, int]:
        rows = session.execute(
            select(LedgerAccount.id, LedgerAccount.balance_minor).where(
                LedgerAccount.id.in_(list(account_ids))
            )
        )
        return {account_id: int(balance) for account_id, balance in rows}


def reader_account(session: Session, user_id: int, settings: Settings, now: dt.datetime) -> int:
    """The reader's own balance account (the ``ReaderBalance`` funding source)."""
    return ReaderBalance(settings).account_for(session, user_id, now)


def reader_policy(session: Session, user_id: int, settings: Settings) -> ReaderPolicy:
    row = session.get(ReaderSettings, user_id)
    overrides = {
        o.origin: (o.rate_per_hour_minor, o.disabled)
        for o in session.scalars(select(SiteOverride).where(SiteOverride.user_id == user_id))
    }
    return _policy(row, overrides, freezes.is_frozen(session, user_id), settings)


def _policy(
    row: ReaderSettings | None,
    overrides: dict[str, tuple[int | None, bool]],
    frozen: bool,
    settings: Settings,
) -> ReaderPolicy:
    """A reader's settings as a policy: the service's defaults where they saved none."""
    if row is None:
        return ReaderPolicy(
            settings.default_rate_per_hour_minor,
            settings.default_monthly_budget_minor,
            False,
            overrides,
            frozen,
        )
    return ReaderPolicy(
        row.rate_per_hour_minor, row.monthly_budget_minor, row.paused, overrides, frozen
    )


def funds(
    session: Session, source: FundingSource, user_id: int, account_id: int, month: str
) -> tuple[int, int]:
    """(balance, spent this month) for a reader."""
    spending.ensure_month(session, user_id, month)
    balance = source.balances(session, [account_id]).get(account_id, 0)
    return balance, spending.spent(session, user_id, month)


def bulk_refresh(
    session: Session,
    source: FundingSource,
    readers: list[tuple[int, int]],
    settings: Settings,
    month: str,
) -> dict[int, tuple[ReaderPolicy, int, int]]:
    """Policies, balances and month spend of many readers in five queries, not five per reader.
    ``readers`` holds (user id, funding account id) pairs."""
    user_ids = [user_id for user_id, _ in readers]
    rows = {
        r.user_id: r
        for r in session.scalars(select(ReaderSettings).where(ReaderSettings.user_id.in_(user_ids)))
    }
    overrides: dict[int, dict[str, tuple[int | None, bool]]] = {u: {} for u in user_ids}
    for o in session.scalars(select(SiteOverride).where(SiteOverride.user_id.in_(user_ids))):
        overrides[o.user_id][o.origin] = (o.rate_per_hour_minor, o.disabled)
    balances = source.balances(session, [account_id for _, account_id in readers])
    spent = dict(
        session.execute(
            select(MonthlySpend.user_id, MonthlySpend.spent_minor).where(
                MonthlySpend.user_id.in_(user_ids), MonthlySpend.month == month
            )
        ).all()
    )
    frozen = freezes.frozen_among(session, user_ids)
    return {
        user_id: (
            _policy(rows.get(user_id), overrides[user_id], user_id in frozen, settings),
            int(balances.get(account_id, 0)),
            int(spent.get(user_id, 0)),
        )
        for user_id, account_id in readers
    }
