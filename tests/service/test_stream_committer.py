"""The streaming group commit (``streaming.committer``) at its bounds: a group whose sums pass a
budget or 2^63-1 never reaches the database as a sum; it is posted one by one, and the refusals
are per increment (issue 11 item 8), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.factories import ChargeAccounts as Accounts
from tests.factories import charge_accounts
from trickle import ledger, money, nodes, spending
from trickle.db import DriverCursor, transaction
from trickle.models import StreamPosition
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings
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


def _positions(accounts: Accounts, postings: list[committer.Posting]) -> ledger.AlsoWrite:
    rows = [
        (
            posting,
            nodes.PositionRow(
                posting.key.split(".")[0],
                accounts.user_id,
                0,
                posting.origin,
                "https://trickle.test/p/bounded",
                None,
                int(posting.key.split(".")[1]),
                posting.amount_minor,
                posting.amount_minor,
                1,
                2,
                "k",
                f"j{posting.key}",
            ),
        )
        for posting in postings
    ]

    def write(cursor: DriverCursor) -> None:
        nodes.write_positions(cursor, 7, [row for p, row in rows if p.refused is None])

    statement, params = nodes.positions_statement(7, [row for _, row in rows])
    return ledger.AlsoWrite(statement, params, write)


def _stored_positions(runtime: Runtime) -> dict[str, int]:
    with transaction(runtime.sessions) as session:
        rows = session.execute(select(StreamPosition.sid, StreamPosition.seq)).all()
    return {sid: seq for sid, seq in rows}


@pytest.mark.postgres
def test_positions_are_written_with_the_group_on_both_paths(
    postgres_url: str, tmp_path: Path, kek_b64: str
) -> None:
    """PostgreSQL: the streams' positions (``nodes``) are part of the group's transaction: on
    the fast path as one more CTE of its one statement; posted one by one, only the increments
    that were paid have one."""
    settings = Settings(
        env="test", data_dir=tmp_path, database_url=postgres_url, key_encryption_key=kek_b64
    ).validate()
    runtime = bootstrap(settings)
    try:
        accounts = _accounts(runtime, 100)
        fast = [_posting(accounts, 30, 1_000, "a.1"), _posting(accounts, 40, 1_000, "b.1")]
        committer.stage(runtime.engine, runtime.sessions, fast, NOW, _positions(accounts, fast))()
        assert _stored_positions(runtime) == {"a": 1, "b": 1}
        # 30 left: the first is paid, the second is refused (insufficient funds)
        slow = [_posting(accounts, 20, 1_000, "a.2"), _posting(accounts, 20, 1_000, "b.2")]
        committer.stage(runtime.engine, runtime.sessions, slow, NOW, _positions(accounts, slow))()
        assert [p.refused for p in slow] == [None, "insufficient_funds"]
        assert _stored_positions(runtime) == {"a": 2, "b": 1}
    finally:
        runtime.close()
