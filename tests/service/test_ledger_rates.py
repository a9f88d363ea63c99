"""The rate cap (issue 14): a reader's streamed charges draw on one allowance per reader
(``reader_rates``: a token bucket in minor units x ms per hour) in the transaction that pays
them, one charge at a time (``post_charge``) and in the group commit's statements
(``stage_charges``), on SQLite and PostgreSQL. One-time payments do not draw on it."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from tests.factories import ChargeAccounts as Accounts
from tests.factories import charge_accounts, charge_of
from trickle import ledger, money, spending
from trickle.db import transaction
from trickle.errors import BudgetExhausted, InsufficientFunds
from trickle.ledger import TransferKind, plan
from trickle.ledger.charges import take_rate
from trickle.models import ReaderRate
from trickle.runtime import Runtime

NOW = dt.datetime(2026, 11, 28, 12, 30, 45, 123000, tzinfo=dt.UTC)
MONTH = spending.month_of(NOW)
RATE = 3_600_000  # minor units per hour: one per ms
BURST_MS = 1_000  # so the allowance holds 1,000 minor units


def _accounts(runtime: Runtime, payee: str = "rated") -> Accounts:
    return charge_accounts(runtime, 10**9, payee)


def _charge(accounts: Accounts, amount: int, key: str, **changes: object) -> ledger.Charge:
    rated: dict[str, object] = {
        "budget_minor": 10**9,
        "rate_per_hour_minor": RATE,
        "rate_burst_ms": BURST_MS,
    }
    return charge_of(accounts, amount, key, MONTH, **(rated | changes))


def _post(runtime: Runtime, charge: ledger.Charge, at: dt.datetime = NOW) -> str | None:
    """Post one charge; its refusal code, or None."""
    try:
        with transaction(runtime.sessions) as session:
            ledger.post_charge(session, charge, at)
    except (ledger.OverRate, BudgetExhausted, InsufficientFunds) as refused:
        return refused.code
    return None


def _after(ms: int) -> dt.datetime:
    return NOW + dt.timedelta(milliseconds=ms)


def _state(runtime: Runtime, accounts: Accounts) -> tuple[int, int, int]:
    """(reader balance, month spent, allowance)."""
    with transaction(runtime.sessions) as session:
        allowance = session.scalar(
            select(ReaderRate.allowance).where(ReaderRate.user_id == accounts.user_id)
        )
        return (
            ledger.balance(session, accounts.reader),
            spending.spent(session, accounts.user_id, MONTH),
            -1 if allowance is None else allowance,
        )


def _units(minor: int) -> int:
    return minor * plan.HOUR_MS


def test_a_charge_within_the_allowance_passes_and_one_past_it_moves_nothing(
    runtime: Runtime,
) -> None:
    accounts = _accounts(runtime)
    assert _post(runtime, _charge(accounts, 600, "s.1")) is None  # a fresh allowance is full
    assert _state(runtime, accounts) == (10**9 - 600, 600, _units(400))
    assert _post(runtime, _charge(accounts, 401, "s.2")) == "over_rate"
    assert _state(runtime, accounts) == (10**9 - 600, 600, _units(400))  # nothing moved
    assert _post(runtime, _charge(accounts, 400, "s.2")) is None
    assert _state(runtime, accounts) == (10**9 - 1000, 1000, 0)


def test_the_allowance_refills_at_the_rate_up_to_its_capacity(runtime: Runtime) -> None:
    accounts = _accounts(runtime)
    assert _post(runtime, _charge(accounts, 1000, "s.1")) is None
    assert _post(runtime, _charge(accounts, 251, "s.2"), _after(250)) == "over_rate"
    assert _post(runtime, _charge(accounts, 250, "s.2"), _after(250)) is None  # 250 ms: 250
    assert _state(runtime, accounts)[2] == 0
    # an hour later it holds its capacity, not an hour's worth
    assert _post(runtime, _charge(accounts, 1001, "s.3"), _after(3_600_000)) == "over_rate"
    assert _post(runtime, _charge(accounts, 1000, "s.3"), _after(3_600_000)) is None


def test_a_clock_behind_refills_nothing_and_does_not_move_the_allowance_back(
    runtime: Runtime,
) -> None:
    """Two nodes' clocks differ: a charge from a node whose clock is behind the allowance's
    ``as_of`` refills nothing, and leaves ``as_of`` where it was (else the next charge from the
    node ahead would refill the difference a second time)."""
    accounts = _accounts(runtime)
    assert _post(runtime, _charge(accounts, 500, "s.1")) is None
    assert _post(runtime, _charge(accounts, 501, "s.2"), _after(-5_000)) == "over_rate"
    assert _post(runtime, _charge(accounts, 500, "s.2"), _after(-5_000)) is None
    with transaction(runtime.sessions) as session:
        row = session.get(ReaderRate, accounts.user_id)
        assert row is not None
        assert (row.allowance, row.as_of_ms) == (0, plan.epoch_ms(NOW))
    assert _post(runtime, _charge(accounts, 101, "s.3"), _after(100)) == "over_rate"
    assert _post(runtime, _charge(accounts, 100, "s.3"), _after(100)) is None


def test_one_time_payments_do_not_draw_on_the_allowance(runtime: Runtime) -> None:
    accounts = _accounts(runtime)
    for n in range(3):
        payment = _charge(
            accounts, 1000, f"p.{n}", kind=TransferKind.PAYMENT, rate_per_hour_minor=None
        )
        assert _post(runtime, payment) is None
    assert _state(runtime, accounts) == (10**9 - 3000, 3000, -1)  # no allowance row at all
    assert _post(runtime, _charge(accounts, 1000, "s.1")) is None


def test_a_lower_rate_caps_the_allowance_at_its_own_capacity(runtime: Runtime) -> None:
    """The reader lowered their rate: the allowance is capped at the new, smaller capacity."""
    accounts = _accounts(runtime)
    assert _post(runtime, _charge(accounts, 1, "s.1")) is None  # holds 999
    half = {"rate_per_hour_minor": RATE // 2}  # capacity 500
    assert _post(runtime, _charge(accounts, 501, "s.2", **half), _after(1)) == "over_rate"
    assert _post(runtime, _charge(accounts, 500, "s.2", **half), _after(1)) is None


def test_the_bounds_never_reach_the_database_past_2_63(runtime: Runtime) -> None:
    most = money.MAX_AMOUNT
    accounts = _accounts(runtime)
    with pytest.raises(ledger.BatchRefused):  # the cost of the amount is past 2^63-1
        plan.rate_sums([_charge(accounts, most // plan.HOUR_MS + 1, "x")], 0)
    with pytest.raises(ledger.BatchRefused):  # rate x burst is past 2^63-1
        plan.rate_sums([_charge(accounts, 1, "x", rate_per_hour_minor=most // BURST_MS + 1)], 0)
    with pytest.raises(ledger.BatchRefused):  # more than a whole allowance
        plan.rate_sums([_charge(accounts, 1001, "x")], 0)
    with pytest.raises(ledger.BatchRefused):  # two that fit alone, not together
        plan.rate_sums([_charge(accounts, 600, "x"), _charge(accounts, 600, "y")], 0)
    # the largest capacity, refilled after the longest pause, never overflows in the database
    rate = most // BURST_MS
    biggest = _charge(accounts, 1, "x", rate_per_hour_minor=rate)
    with transaction(runtime.sessions) as session:
        assert take_rate(session, biggest, dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        assert take_rate(session, biggest, dt.datetime(2262, 1, 1, tzinfo=dt.UTC))
        row = session.get(ReaderRate, accounts.user_id)
        assert row is not None and row.allowance == rate * BURST_MS - plan.HOUR_MS
        whole = dataclasses.replace(biggest, amount_minor=rate * BURST_MS // plan.HOUR_MS)
        assert not take_rate(session, whole, dt.datetime(2262, 1, 1, tzinfo=dt.UTC))


# --- the group commit ----------------------------------------------------------------------


def test_a_group_draws_each_readers_allowance_once_as_one_by_one_would(
    runtime: Runtime,
) -> None:
    first, second = _accounts(runtime), _accounts(runtime, "other")
    group = [
        _charge(first, 300, "a.1"),
        _charge(second, 700, "b.1"),
        _charge(first, 200, "a.2"),
    ]
    ledger.stage_charges(runtime.engine, runtime.sessions, group, NOW)()
    assert [charge.refused for charge in group] == [None, None, None]
    assert _state(runtime, first)[1:] == (500, _units(500))
    assert _state(runtime, second)[1:] == (700, _units(300))
    later = [_charge(first, 600, "a.3"), _charge(second, 400, "b.2")]
    ledger.stage_charges(runtime.engine, runtime.sessions, later, _after(100))()
    assert [charge.refused for charge in later] == [None, None]
    assert _state(runtime, first)[2] == 0 and _state(runtime, second)[2] == 0


def test_a_reader_over_the_rate_in_a_group_is_refused_alone(runtime: Runtime) -> None:
    """Another node drew most of the allowance: the group falls back to one at a time, the
    reader's increment past the rate is refused (``over_rate``) and moves nothing; the other
    reader's, and the first reader's that still fits, are posted."""
    over, other = _accounts(runtime), _accounts(runtime, "other")
    assert _post(runtime, _charge(over, 900, "elsewhere")) is None
    group = [
        _charge(over, 101, "o.1"),
        _charge(other, 500, "t.1"),
        _charge(over, 100, "o.2"),
    ]
    result = ledger.stage_charges(runtime.engine, runtime.sessions, group, NOW)()
    assert [charge.refused for charge in group] == ["over_rate", None, None]
    assert result.balances == {over.reader: 10**9 - 1000, other.reader: 10**9 - 500}
    assert _state(runtime, over) == (10**9 - 1000, 1000, 0)
    assert _state(runtime, other) == (10**9 - 500, 500, _units(500))
