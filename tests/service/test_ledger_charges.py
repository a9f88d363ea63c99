"""``ledger.post_charge`` and ``ledger.stage_charges``: the one recipe (reader -> payee, payee ->
fee, within the month's budget) for one-time payments and streamed increments, one at a time
and as a group, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from tests.factories import ChargeAccounts as Accounts
from tests.factories import charge_accounts, charge_of
from trickle import ledger, money, spending
from trickle.db import transaction
from trickle.errors import BudgetExhausted, InsufficientFunds
from trickle.ledger import TransferKind, TransferRequest
from trickle.models import Transfer
from trickle.runtime import Runtime

NOW = dt.datetime(2026, 11, 28, 12, 30, 45, 123456, tzinfo=dt.UTC)
MONTH = spending.month_of(NOW)


def _accounts(runtime: Runtime, funded_minor: int) -> Accounts:
    return charge_accounts(runtime, funded_minor, "charged")


def _charge(accounts: Accounts, amount: int, key: str, **changes: object) -> ledger.Charge:
    return charge_of(accounts, amount, key, MONTH, **({"fee_minor": amount // 4} | changes))


def _balances(runtime: Runtime, accounts: Accounts) -> tuple[int, int, int, int]:
    with transaction(runtime.sessions) as session:
        return (
            ledger.balance(session, accounts.reader),
            ledger.balance(session, accounts.payee),
            ledger.balance(session, accounts.fee),
            spending.spent(session, accounts.user_id, MONTH),
        )


_ROWS = (
    "SELECT debit_account_id, credit_account_id, amount_minor, currency, kind, origin, "
    "reference, created_at FROM transfers WHERE idempotency_key = :key ORDER BY id"
)


def test_a_charge_pays_the_payee_and_the_fee_and_counts_against_the_budget(
    runtime: Runtime,
) -> None:
    accounts = _accounts(runtime, 1_000)
    charge = _charge(accounts, 100, "payment:k1", kind=TransferKind.PAYMENT, reference="sid-1")
    with transaction(runtime.sessions) as session:
        ledger.post_charge(session, charge, NOW)  # the month's row need not exist
    assert _balances(runtime, accounts) == (900, 75, 25, 100)
    with transaction(runtime.sessions) as session:
        rows = session.scalars(
            select(Transfer).where(Transfer.idempotency_key == "payment:k1").order_by(Transfer.id)
        ).all()
        assert [
            (r.debit_account_id, r.credit_account_id, r.amount_minor, r.kind) for r in rows
        ] == [
            (accounts.reader, accounts.payee, 100, "payment"),
            (accounts.payee, accounts.fee, 25, "fee"),
        ]
        assert {(r.origin, r.reference) for r in rows} == {("https://blog.example", "sid-1")}


@pytest.mark.parametrize(
    ("amount", "budget", "refusal"),
    [
        (450, 1_000, InsufficientFunds),  # after its spend was counted
        (200, 100, BudgetExhausted),  # more than the whole budget
        (50, 120, BudgetExhausted),  # more than what is left of it
    ],
)
def test_a_refused_charge_moves_and_counts_nothing(
    runtime: Runtime, amount: int, budget: int, refusal: type[Exception]
) -> None:
    accounts = _accounts(runtime, 500)
    with transaction(runtime.sessions) as session:
        ledger.post_charge(session, _charge(accounts, 100, "first"), NOW)
    assert _balances(runtime, accounts) == (400, 75, 25, 100)
    # the refusal is caught inside the transaction, which commits what the charge left behind
    with transaction(runtime.sessions) as session, pytest.raises(refusal):
        ledger.post_charge(session, _charge(accounts, amount, "no", budget_minor=budget), NOW)
    assert _balances(runtime, accounts) == (400, 75, 25, 100)


def test_a_group_of_charges_writes_what_charges_one_at_a_time_write(runtime: Runtime) -> None:
    """The group's fast path (each database's own statements) against the ORM path: the same
    rows, column for column (the timestamp's stored form included), and the same balances."""
    accounts = _accounts(runtime, 1_000)
    with transaction(runtime.sessions) as session:
        ledger.post_charge(session, _charge(accounts, 40, "single"), NOW)
    after_single = _balances(runtime, accounts)
    group = [_charge(accounts, 40, "grouped"), _charge(accounts, 8, "other", fee_minor=0)]
    result = ledger.stage_charges(runtime.engine, runtime.sessions, group, NOW)()
    assert [charge.refused for charge in group] == [None, None]
    assert result.balances == {accounts.reader: after_single[0] - 48}
    assert result.spent[accounts.user_id, MONTH] == after_single[3] + 48
    assert _balances(runtime, accounts) == (
        after_single[0] - 48,
        after_single[1] + 30 + 8,
        after_single[2] + 10,
        after_single[3] + 48,
    )
    with transaction(runtime.sessions) as session:
        single = session.execute(text(_ROWS), {"key": "single"}).all()
        grouped = session.execute(text(_ROWS), {"key": "grouped"}).all()
        other = session.execute(text(_ROWS), {"key": "other"}).all()
    assert [tuple(row) for row in grouped] == [tuple(row) for row in single]
    assert len(single) == 2 and len(other) == 1  # no fee, no fee transfer


def test_a_refused_group_is_charged_one_at_a_time(runtime: Runtime) -> None:
    accounts = _accounts(runtime, 100)
    group = [
        _charge(accounts, 60, "s.1"),
        _charge(accounts, 60, "s.2"),
        _charge(accounts, 40, "s.3"),
    ]
    result = ledger.stage_charges(runtime.engine, runtime.sessions, group, NOW)()
    assert [charge.refused for charge in group] == [None, "insufficient_funds", None]
    assert result.balances == {accounts.reader: 0}
    assert _balances(runtime, accounts) == (0, 75, 25, 100)


def test_a_group_whose_spending_passes_2_63_is_charged_one_at_a_time(runtime: Runtime) -> None:
    """Issue 11 item 8: a group whose sums pass a budget or 2^63-1 never reaches the database as
    a sum (before, 2 x (2^63-1) went as a parameter: an error on both databases, and nothing of
    the group was committed); it is charged one at a time, refused per increment."""
    most = money.MAX_AMOUNT
    accounts = _accounts(runtime, most)
    with transaction(runtime.sessions) as session:
        spending.ensure_month(session, accounts.user_id, MONTH)
    group = [
        _charge(accounts, most, "s.1", fee_minor=0, budget_minor=most),
        _charge(accounts, most, "s.2", fee_minor=0, budget_minor=most),
    ]
    result = ledger.stage_charges(runtime.engine, runtime.sessions, group, NOW)()
    assert [charge.refused for charge in group] == [None, "budget_exhausted"]
    assert result.balances[accounts.reader] == 0
    assert result.spent[(accounts.user_id, MONTH)] == most


def test_a_batch_debits_an_account_before_it_credits_it(runtime: Runtime) -> None:
    """One statement per batch on PostgreSQL, which cannot update a row twice: an account both
    debited and credited is one move, under the same rule as on SQLite (its debits first)."""
    accounts = _accounts(runtime, 100)
    batch = [
        TransferRequest(accounts.reader, accounts.payee, 5, "USD", TransferKind.STREAM, "in"),
        TransferRequest(accounts.payee, accounts.fee, 3, "USD", TransferKind.FEE, "out"),
    ]
    with transaction(runtime.sessions) as session, pytest.raises(ledger.BatchRefused):
        ledger.post_batch(session.connection(), batch, NOW)  # the payee holds nothing yet
    with transaction(runtime.sessions) as session:
        ledger.post_batch(session.connection(), batch[:1], NOW)
        ledger.post_batch(
            session.connection(), [batch[0]._replace(idempotency_key="in2"), batch[1]], NOW
        )
    assert _balances(runtime, accounts)[:3] == (90, 7, 3)
