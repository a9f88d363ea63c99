"""Charges: a reader pays a payee for a site, the payee pays the platform's fee, and the amount
counts against the reader's monthly budget. The one recipe for streamed increments and one-time
payments; ``post_charge`` posts one through the ORM, ``batches.stage_charges`` a group of them.

The spend is one conditional ``UPDATE monthly_spend ... WHERE spent_minor <= budget - amount``
(its bound from ``money.headroom``), like the debit: several processes charging one reader can
never pass the budget together. A streamed increment also draws on the reader's rate
allowance (``plan.rate_sums``, table ``reader_rates``), so that all of a reader's streams, on
every node, never pay more than their rate plus one burst; one-time payments do not. The caller
owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Literal

from sqlalchemy import update
from sqlalchemy.orm import Session

from trickle import money, spending
from trickle.db import DriverCursor
from trickle.errors import BudgetExhausted
from trickle.ledger import plan, postgres, sqlite
from trickle.ledger.plan import Rated, Spending
from trickle.ledger.transfers import TransferKind, TransferRequest, post_transfer
from trickle.models import MonthlySpend

# Why a charge of a group was not posted: the codes of the errors ``post_charge`` raises for them.
Refusal = Literal["insufficient_funds", "budget_exhausted", "over_rate"]


class OverRate(Exception):
    """A streamed charge would pass the reader's rate allowance (``plan.rate_sums``). Never an
    API error: only streamed increments carry a rate; the engine drops the increment."""

    code = "over_rate"


@dataclasses.dataclass(slots=True)
class Charge:
    """One charge to post, and (after a group's commit) its outcome. Built for every streamed
    increment: a plain slotted class, its outcome written in place."""

    user_id: int
    reader_account_id: int
    payee_account_id: int
    fee_account_id: int
    currency: str
    amount_minor: int
    fee_minor: int  # money.fee_of(amount_minor, ...): at most the amount
    key: str  # the idempotency key of its transfers: unique per charge
    origin: str  # the site the reader was on
    budget_minor: int  # the reader's monthly budget
    month: str  # spending.month_of(now)
    kind: TransferKind = TransferKind.STREAM  # or PAYMENT: a one-time payment
    reference: str | None = None  # a one-time payment's receipt ``sid``
    refused: Refusal | None = None  # None: posted (or not yet)
    # A streamed increment's cap (``plan.rate_sums``): the reader's highest hourly rate, and
    # the burst (ms at that rate) their allowance holds. None: not capped (a payment).
    rate_per_hour_minor: int | None = None
    rate_burst_ms: int = 0


def transfers(charges: Sequence[Charge]) -> tuple[list[TransferRequest], list[TransferRequest]]:
    """The charges' transfers: reader -> payee, then (where there is a fee) payee -> fee
    account, both with the charge's key. The second list's transfers come after the first's:
    a payee pays its fee out of what it was just paid."""
    paid = [
        TransferRequest(
            c.reader_account_id,
            c.payee_account_id,
            c.amount_minor,
            c.currency,
            c.kind,
            c.key,
            c.origin,
            c.reference,
        )
        for c in charges
    ]
    fees = [
        TransferRequest(
            c.payee_account_id,
            c.fee_account_id,
            c.fee_minor,
            c.currency,
            TransferKind.FEE,
            c.key,
            c.origin,
            c.reference,
        )
        for c in charges
        if c.fee_minor > 0
    ]
    return paid, fees


def post_charge(session: Session, charge: Charge, now: dt.datetime) -> None:
    """Post one charge, all or nothing (in a savepoint): count it against the month's budget,
    move the money, then (a streamed increment) draw the reader's rate allowance. Raises
    ``BudgetExhausted``, ``InsufficientFunds``, ``OverRate`` and whatever else
    ``post_transfer`` raises. The month's row need not exist. Post a charge once: its transfers
    would replay on a second try, its spend would count again (a payment's own row makes it
    once; every streamed increment has a key of its own)."""
    with session.begin_nested():
        if not add_spend(session, charge):
            raise BudgetExhausted(
                f"paying {charge.amount_minor} minor units would pass the monthly budget of "
                f"{charge.budget_minor}"
            )
        paid, fees = transfers([charge])
        for request in paid + fees:
            post_transfer(session, request, now)
        if charge.rate_per_hour_minor is not None and not take_rate(session, charge, now):
            raise OverRate(
                f"paying {charge.amount_minor} minor units now would pass the rate of "
                f"{charge.rate_per_hour_minor} per hour"
            )


def take_rate(session: Session, charge: Rated, now: dt.datetime) -> bool:
    """Draw one streamed charge from the reader's rate allowance, with the group commit's own
    statement (``ledger.sqlite``, ``ledger.postgres``); False (and nothing drawn) if it does not
    fit. A charge with no rate draws nothing."""
    try:
        rates = plan.rate_sums([charge], plan.epoch_ms(now))
    except plan.BatchRefused:
        return False
    if not rates:
        return True
    connection = session.connection()
    cursor = DriverCursor(connection)
    if connection.dialect.name == "postgresql":
        return postgres.take_rates(cursor, rates) == 1
    return sqlite.take_rates(cursor, rates) == 1


def add_spend(session: Session, spend: Spending) -> bool:
    """Record one spend; False (and nothing recorded) if it would pass the budget."""
    room = money.headroom(spend.amount_minor, spend.budget_minor)
    if room < 0:  # more than the whole budget
        return False
    spending.ensure_month(session, spend.user_id, spend.month)
    added = session.execute(
        update(MonthlySpend)
        .where(
            MonthlySpend.user_id == spend.user_id,
            MonthlySpend.month == spend.month,
            MonthlySpend.spent_minor <= room,
        )
        .values(spent_minor=MonthlySpend.spent_minor + spend.amount_minor)
        .execution_options(synchronize_session=False)
    )
    return bool(added.rowcount == 1)  # type: ignore[attr-defined]
