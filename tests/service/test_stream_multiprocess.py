"""Two service processes on one database race to spend one reader's last funds.

Each process keeps its own in-memory view of the reader; only the database's conditional debits
stand between them and an overdraft. The reader's balance covers part of the demand; every
stream must end blocked on insufficient funds with the balance >= 0 and every receipt backed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.service.stream_client import (
    ServerProcess,
    StreamClient,
    assert_receipts_match_ledger,
    ledger_check,
    new_kek,
    read_ledger,
    seed,
    server_env,
    verify_all,
    wait_for,
)

INTERVAL_MS = 20
STREAMS = 20
CONNECTIONS = 4  # two on each process, five streams each
# The default rate (0.60 USD/h at scale 9) is 3333 minor units per 20 ms interval per process:
# this covers ~60 intervals of both processes, ~3 increments per stream of each process.
FUNDED_MINOR = 200_000


async def _race(
    servers: list[ServerProcess], token: str, payee: str, database_url: str
) -> list[StreamClient]:
    per_connection = STREAMS // CONNECTIONS
    clients = [
        StreamClient(servers[i % len(servers)].ws_url, token, interval_ms=INTERVAL_MS)
        for i in range(CONNECTIONS)
    ]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(c.run([(f"c{i}s{j}", payee) for j in range(per_connection)], stop))
        for i, c in enumerate(clients)
    ]
    try:
        blocked = await wait_for(lambda: all(c.all_in("insufficient_funds") for c in clients), 60)
        assert blocked, [
            (log.state, log.reason, c.errors, c.close_code)
            for c in clients
            for log in c.streams.values()
        ]
        for client in clients:  # no new increment after this; in-flight ones still commit
            await client.stop_streams()
        assert await wait_for(
            lambda: all(log.stopped for c in clients for log in c.streams.values()), 30
        )
        # Until the last in-flight commit's receipt is in: every committed increment reaches
        # its client (the connections are up), so the two sums meet.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            view = await asyncio.to_thread(read_ledger, database_url)
            received = sum(log.total_minor for c in clients for log in c.streams.values())
            if received == sum(view.credits(sid) for sid in view.stream):
                break
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    return clients


def test_two_processes_never_overdraw_one_reader(database_url: str, tmp_path: Path) -> None:
    kek = new_kek()
    seeded = seed(database_url, tmp_path / "seed", kek, readers=1, funded_minor=FUNDED_MINOR)
    servers = [
        ServerProcess(
            server_env(database_url, tmp_path / f"data{i}", kek, INTERVAL_MS), tmp_path / f"logs{i}"
        )
        for i in range(2)
    ]
    try:
        for server in servers:
            server.start()
        jwks = servers[0].jwks()
        assert servers[1].jwks() == jwks
        clients = asyncio.run(_race(servers, seeded.tokens[0], seeded.payees[0], database_url))
    finally:
        for server in servers:
            server.stop()

    check = ledger_check(database_url)
    assert check.returncode == 0, check.stdout + check.stderr
    view = read_ledger(database_url)
    reader_account = view.accounts[("reader", f"user:{seeded.reader_ids[0]}")]
    payee_account = view.accounts[("payee", f"payee:{seeded.payee_ids[0]}")]
    balance = view.balances[reader_account]
    debits = sum(view.credits(sid) for sid in view.stream)
    received = sum(log.total_minor for c in clients for log in c.streams.values())

    assert balance >= 0
    assert balance == FUNDED_MINOR - debits
    assert debits > FUNDED_MINOR // 2, "the readers' funds were barely spent"
    assert received == debits, "a committed increment's receipt never arrived"
    assert_receipts_match_ledger(
        view,
        clients,
        reader_account=reader_account,
        payee_accounts={seeded.payees[0]: payee_account},
        fee_account=None,
        fee_bps=0,
    )
    assert verify_all(jwks, clients) == sum(c.receipts for c in clients)
    assert {log.reason for c in clients for log in c.streams.values()} == {"stopped"}
    both = {c.url for c in clients if any(log.receipts for log in c.streams.values())}
    assert len(both) == 2, "one of the processes never paid anything"
