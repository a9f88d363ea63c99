"""The streaming group commit (``streaming.committer``) at its bounds: a group whose sums pass a
budget or 2^63-1 never reaches the database as a sum; it is posted one by one, and the refusals
are per increment (issue 11 item 8), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from tests.factories import ChargeAccounts as Accounts
from tests.factories import charge_accounts
from trickle import ledger, money, spending
from trickle.db import transaction
from trickle.runtime import Runtime
from trickle.streaming import committer

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
MAX = money.MAX_AMOUNT


def _accounts(runtime: Runtime, funded_minor: int) -> Accounts:
    accounts = charge_accounts(runtime, funded_minor, "bounded")
    with transaction(runtime.sessions) as session:
        spending.ensure_month(session, accounts.user_id, spending.month_of(NOW))
    return accounts


def _posting(accounts: Accounts, amount: int, budget: int, key: str) -> committer.Posting:
    return committer.Posting(
        user_id=accounts.user_id,
        reader_account_id=accounts.reader,
        payee_account_id=accounts.payee,
        fee_account_id=accounts.fee,
        currency="USD",
        amount_minor=amount,
        fee_minor=0,
        key=key,
        origin="https://blog.example",
        budget_minor=budget,
        month=spending.month_of(NOW),
    )


def test_a_group_whose_spending_passes_2_63_is_posted_one_by_one(runtime: Runtime) -> None:
    # Before: the group's sum (2 x (2^63-1)) went to the database as a parameter: an error on
    # both databases, and no increment of the group was committed.
    accounts = _accounts(runtime, MAX)
    postings = [_posting(accounts, MAX, MAX, "s.1"), _posting(accounts, MAX, MAX, "s.2")]
    result = committer.stage(runtime.engine, runtime.sessions, postings, NOW)()
    assert [p.refused for p in postings] == [None, "budget_exhausted"]
    assert result.balances[accounts.reader] == 0
    assert result.spent[(accounts.user_id, spending.month_of(NOW))] == MAX


def test_a_group_within_its_bounds_commits_on_the_fast_path(runtime: Runtime) -> None:
    accounts = _accounts(runtime, 100)
    postings = [_posting(accounts, 30, 1_000, "s.1"), _posting(accounts, 40, 1_000, "s.2")]
    result = committer.stage(runtime.engine, runtime.sessions, postings, NOW)()
    assert [p.refused for p in postings] == [None, None]
    assert result.balances[accounts.reader] == 30
    with transaction(runtime.sessions) as session:
        assert ledger.balance(session, accounts.payee) == 70
