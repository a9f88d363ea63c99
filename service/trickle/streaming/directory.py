"""What the engine reads from the database: readers' settings and accounts, payees by pointer,
and a reader's balance and month spend. Plain synchronous functions, run off the event loop."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from trickle import freezes, ledger, spending
from trickle.ledger import AccountKind, Asset
from trickle.models import MonthlySpend, Payee, ReaderSettings, SiteOverride
from trickle.settings import Settings
from trickle.streaming.sources import FundingSource, ReaderBalance

_POINTER_PATH = re.compile(r"^/p/([a-z0-9][a-z0-9-]{0,63})$")


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


@dataclasses.dataclass(frozen=True, slots=True)
class ReaderAccount:
    user_id: int
    account_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class PayeeInfo:
    id: int
    pointer: str
    account_id: int
    fee_account_id: int


def asset_of(settings: Settings) -> Asset:
    return Asset(settings.currency, settings.asset_scale)


def reader_account(session: Session, user_id: int, settings: Settings, now: dt.datetime) -> int:
    """The reader's own balance account (the ``ReaderBalance`` funding source)."""
    return ReaderBalance(settings).account_for(session, user_id, now)


def reader_policy(session: Session, user_id: int, settings: Settings) -> ReaderPolicy:
    row = session.get(ReaderSettings, user_id)
    overrides = {
        o.origin: (o.rate_per_hour_minor, o.disabled)
        for o in session.scalars(select(SiteOverride).where(SiteOverride.user_id == user_id))
    }
    frozen = freezes.is_frozen(session, user_id)
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


def payee_by_pointer(
    session: Session, pointer: str, settings: Settings, now: dt.datetime
) -> PayeeInfo | None:
    """The payee a payment pointer of this service names (``<issuer>/p/<name>``), or None."""
    issuer = settings.issuer
    if not pointer.startswith(issuer + "/"):
        return None
    match = _POINTER_PATH.match(pointer[len(issuer) :])
    if match is None:
        return None
    payee = session.scalars(select(Payee).where(Payee.name == match.group(1))).first()
    if payee is None or payee.currency != settings.currency:
        return None
    asset = asset_of(settings)
    account = ledger.account(session, AccountKind.PAYEE, f"payee:{payee.id}", asset, now)
    fees = ledger.account(session, AccountKind.FEE, "platform", asset, now)
    return PayeeInfo(payee.id, pointer, account.id, fees.id)


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
    out = {}
    for user_id, account_id in readers:
        row = rows.get(user_id)
        policy = ReaderPolicy(
            row.rate_per_hour_minor if row else settings.default_rate_per_hour_minor,
            row.monthly_budget_minor if row else settings.default_monthly_budget_minor,
            row.paused if row else False,
            overrides[user_id],
            user_id in frozen,
        )
        out[user_id] = (policy, int(balances.get(account_id, 0)), int(spent.get(user_id, 0)))
    return out
