"""nginx (Debian's package) terminating WebSockets in front of two nodes on one PostgreSQL: one
node is killed with kill -9, or both restart one after the other; the clients reconnect through
nginx to the node that runs and resume. No acknowledged receipt is lost, no money is created,
``trickle ledger check`` is clean."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nginx import Nginx
from tests.service.node_client import StayingClient
from tests.service.stream_client import (
    ServerProcess,
    free_port,
    new_kek,
    read_ledger,
    seed,
    server_env,
    wait_for,
)
from tests.service.test_stream_nodes import assert_streams_match_ledger

pytestmark = pytest.mark.postgres
INTERVAL_MS = 200
CLIENTS = 6
STREAMS_PER_CLIENT = 3
FUNDED_MINOR = 10**12


@pytest.fixture
def proxied(postgres_url: str, tmp_path: Path) -> Iterator[tuple[list[ServerProcess], Nginx, str]]:
    kek = new_kek()
    nodes = [
        ServerProcess(
            server_env(postgres_url, tmp_path / f"data{i}", kek, INTERVAL_MS), tmp_path / f"logs{i}"
        )
        for i in range(2)
    ]
    proxy = Nginx(tmp_path / "nginx", free_port(), [node.port for node in nodes])
    try:
        for node in nodes:
            node.start()
        proxy.start()
        yield nodes, proxy, kek
    finally:
        proxy.stop()
        for node in nodes:
            node.stop()


def _clients(proxy: Nginx, token: str, payee: str) -> list[StayingClient]:
    return [
        StayingClient(
            [proxy.ws_url], token, [(f"c{c}s{s}", payee) for s in range(STREAMS_PER_CLIENT)]
        )
        for c in range(CLIENTS)
    ]


def _progress(clients: list[StayingClient], at_least: dict[str, int]) -> bool:
    return all(
        t.seq >= at_least.get(str(t.sid), 0) for c in clients for t in c.streams.values()
    ) and all(c.all_active() for c in clients)


async def _advance(clients: list[StayingClient], by: int, timeout_s: float = 60) -> None:
    """Wait until every stream paid ``by`` more receipts (on a live connection, active)."""
    assert await wait_for(lambda: all(c.all_active() for c in clients), timeout_s)
    target = {str(t.sid): t.seq + by for c in clients for t in c.streams.values()}
    assert await wait_for(lambda: _progress(clients, target), timeout_s), [
        (c.closes, c.errors, [(t.seq, t.state, t.lost) for t in c.streams.values()])
        for c in clients
    ]


def _assert_clean(database_url: str, clients: list[StayingClient], jwks: object) -> None:
    assert_streams_match_ledger(database_url, clients, jwks)
    view = read_ledger(database_url)
    paid = sum(view.credits(sid) for sid in view.stream)
    received = sum(t.total_minor for c in clients for t in c.streams.values())
    assert paid == received  # every committed increment reached its client, nothing more moved
    readers = [v for (kind, _), v in view.accounts.items() if kind == "reader"]
    assert [view.balances[r] for r in readers] == [FUNDED_MINOR - paid]  # no money created


def test_kill_9_of_a_node_behind_nginx_loses_no_receipt(
    proxied: tuple[list[ServerProcess], Nginx, str],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    (a, _), proxy, kek = proxied
    seeded = seed(postgres_url, tmp_path / "seed", kek, readers=1, funded_minor=FUNDED_MINOR)
    jwks = a.jwks()
    clients = _clients(proxy, seeded.tokens[0], seeded.payees[0])

    async def scenario() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(c.run(stop)) for c in clients]
        await _advance(clients, 3)
        await asyncio.to_thread(a.kill9)
        await _advance(clients, 5)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    asyncio.run(scenario())
    moved = [c for c in clients if c.connections > 1]
    assert moved, "no client was on the killed node"
    assert all(t.resumes >= 1 for c in moved for t in c.streams.values())
    _assert_clean(postgres_url, clients, jwks)


def test_a_rolling_restart_behind_nginx_loses_no_receipt(
    proxied: tuple[list[ServerProcess], Nginx, str],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    (a, b), proxy, kek = proxied
    seeded = seed(postgres_url, tmp_path / "seed", kek, readers=1, funded_minor=FUNDED_MINOR)
    jwks = a.jwks()
    clients = _clients(proxy, seeded.tokens[0], seeded.payees[0])

    async def scenario() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(c.run(stop)) for c in clients]
        await _advance(clients, 3)
        for node in (a, b):
            await asyncio.to_thread(node.stop)  # SIGTERM: it drains, its sockets close 1001
            await _advance(clients, 3)
            await asyncio.to_thread(node.start)
            await _advance(clients, 2)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    asyncio.run(scenario())
    assert all(c.connections > 1 for c in clients), [c.closes for c in clients]
    assert all(t.resumes >= 1 for c in clients for t in c.streams.values())
    _assert_clean(postgres_url, clients, jwks)
