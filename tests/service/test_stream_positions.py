"""Several nodes on one PostgreSQL (``trickle.nodes``): the streams' positions are written in
the group commit's own transaction (``ledger.stage_charges``'s ``also``), so another node reads
what the ledger holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.factories import ChargeAccounts as Accounts
from tests.factories import charge_accounts, charge_of
from trickle import ledger, nodes, spending
from trickle.db import DriverCursor, transaction
from trickle.models import StreamPosition
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)


def _charge(accounts: Accounts, amount: int, key: str) -> ledger.Charge:
    return charge_of(accounts, amount, key, spending.month_of(NOW))


def _positions(accounts: Accounts, charges: list[ledger.Charge]) -> ledger.AlsoWrite:
    rows = [
        (
            charge,
            nodes.PositionRow(
                charge.key.split(".")[0],
                accounts.user_id,
                0,
                charge.origin,
                "https://trickle.test/p/positions",
                None,
                int(charge.key.split(".")[1]),
                charge.amount_minor,
                charge.amount_minor,
                1,
                2,
                "k",
                f"j{charge.key}",
            ),
        )
        for charge in charges
    ]

    def write(cursor: DriverCursor) -> None:
        nodes.write_positions(cursor, 7, [row for c, row in rows if c.refused is None])

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
    """On the fast path as one more CTE of the group's one statement; posted one by one, only
    the increments that were paid have one."""
    settings = Settings(
        env="test", data_dir=tmp_path, database_url=postgres_url, key_encryption_key=kek_b64
    ).validate()
    runtime = bootstrap(settings)
    try:
        accounts = charge_accounts(runtime, 100, "positions")
        with transaction(runtime.sessions) as session:
            spending.ensure_month(session, accounts.user_id, spending.month_of(NOW))
        fast = [_charge(accounts, 30, "a.1"), _charge(accounts, 40, "b.1")]
        ledger.stage_charges(
            runtime.engine, runtime.sessions, fast, NOW, _positions(accounts, fast)
        )()
        assert _stored_positions(runtime) == {"a": 1, "b": 1}
        # 30 left: the first is paid, the second is refused (insufficient funds)
        slow = [_charge(accounts, 20, "a.2"), _charge(accounts, 20, "b.2")]
        ledger.stage_charges(
            runtime.engine, runtime.sessions, slow, NOW, _positions(accounts, slow)
        )()
        assert [c.refused for c in slow] == [None, "insufficient_funds"]
        assert _stored_positions(runtime) == {"a": 2, "b": 1}
    finally:
        runtime.close()
