"""Several ``trickle serve`` nodes on one PostgreSQL behave like one: a stream resumes on another
node (after a drop, a graceful stop or a kill -9 of its node) with the same sid, seq and tot and
its latest receipt re-sent; a reader's rate is shared by their streams on every node; the
per-reader socket cap counts every node's connections."""

from __future__ import annotations

import asyncio
import json
import statistics
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.service.node_client import StayingClient
from tests.service.stream_client import (
    ServerProcess,
    ledger_check,
    new_kek,
    read_ledger,
    seed,
    server_env,
    wait_for,
)
from trickle_verifier import KeySet, Verifier

pytestmark = pytest.mark.postgres
INTERVAL_MS = 200
RATE_PER_HOUR_MINOR = 600_000_000  # the default: 33,333 minor units per 200 ms interval


@pytest.fixture
def kek() -> str:
    return new_kek()


@pytest.fixture
def nodes(postgres_url: str, tmp_path: Path, kek: str) -> Iterator[list[ServerProcess]]:
    servers = [
        ServerProcess(
            server_env(
                postgres_url,
                tmp_path / f"data{i}",
                kek,
                INTERVAL_MS,
                stream_max_connections_per_reader=3,
            ),
            tmp_path / f"logs{i}",
        )
        for i in range(2)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def assert_streams_match_ledger(url: str, clients: list[StayingClient], jwks: object) -> None:
    """Every receipt a client holds is backed by the ledger, and the ledger holds nothing more:
    per stream, the transfers are seq 1..n and their sum is the client's last ``tot``."""
    check = ledger_check(url)
    assert check.returncode == 0, check.stdout + check.stderr
    view = read_ledger(url)
    keys = KeySet.from_jwks(jwks)  # type: ignore[arg-type]
    for client in clients:
        assert client.problems() == []
        for tracked in client.streams.values():
            assert tracked.sid is not None and not tracked.lost, tracked
            seqs = [seq for seq, _, _, _ in view.stream.get(tracked.sid, [])]
            assert seqs == list(range(1, tracked.seq + 1)), (tracked.ref, seqs, tracked.seq)
            assert view.credits(tracked.sid) == tracked.total_minor
            verifier = Verifier(
                issuer="https://trickle.test",
                audience="https://blog.example",
                payees=[tracked.pointer],
                keys=keys,
            )
            for seq, token in tracked.tokens.items():
                receipt = verifier.verify(token)
                assert (receipt.sid, receipt.seq) == (tracked.sid, seq)


async def _run_until(
    clients: list[StayingClient], done: object, timeout_s: float = 60
) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in clients]
    assert await wait_for(done, timeout_s), [c.problems() or c.errors for c in clients]
    return stop, tasks


async def _finish(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)


@pytest.mark.parametrize("drop", ["socket", "sigterm", "kill9"])
def test_a_stream_resumes_on_the_other_node(
    nodes: list[ServerProcess], postgres_url: str, tmp_path: Path, kek: str, drop: str
) -> None:
    seeded = seed(postgres_url, tmp_path / "seed", kek, readers=1, funded_minor=10**12)
    a, b = nodes
    jwks = a.jwks()
    client = StayingClient(
        [a.ws_url, b.ws_url], seeded.tokens[0], [(f"s{i}", seeded.payees[0]) for i in range(3)]
    )

    async def scenario() -> dict[str, tuple[str | None, int, int]]:
        streams = client.streams.values()
        stop, tasks = await _run_until([client], lambda: all(t.seq >= 3 for t in streams))
        before = {t.ref: (t.sid, t.seq, t.total_minor) for t in streams}
        if drop == "socket":
            assert client._ws is not None
            await client._ws.close()
        elif drop == "sigterm":
            await asyncio.to_thread(a.stop)
        else:
            await asyncio.to_thread(a.kill9)
        assert await wait_for(
            lambda: all(t.resumes == 1 and t.seq >= before[t.ref][1] + 3 for t in streams), 30
        ), (client.errors, client.closes, [(t.seq, t.resumes) for t in streams])
        await _finish(stop, tasks)
        return before

    before = asyncio.run(scenario())
    assert client.connections == 2, client.closes  # the second one went to node b
    for tracked in client.streams.values():
        sid, seq, _ = before[tracked.ref]
        assert tracked.sid == sid and tracked.seq > seq + 2 and tracked.stopped
        assert tracked.resent == 1
    # the resent copy is byte for byte the receipt the client already had (same claims, key
    # and jti; Ed25519 is deterministic), unless the drop cut the delivery of a newer one
    assert sum(t.resent_identical for t in client.streams.values()) >= 1
    assert_streams_match_ledger(postgres_url, [client], jwks)


def test_a_stream_on_a_live_connection_is_not_taken_by_another_node(
    nodes: list[ServerProcess], postgres_url: str, tmp_path: Path, kek: str
) -> None:
    seeded = seed(postgres_url, tmp_path / "seed", kek, readers=1, funded_minor=10**12)
    a, b = nodes
    client = StayingClient([a.ws_url], seeded.tokens[0], [("s0", seeded.payees[0])])

    async def scenario() -> dict[str, object]:
        stream = client.streams["s0"]
        stop, tasks = await _run_until([client], lambda: stream.seq >= 2)
        async with connect(b.ws_url, proxy=None) as ws:
            await ws.send(json.dumps({"type": "hello", "v": 1, "token": seeded.tokens[0]}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(json.dumps({"type": "resume", "sid": stream.sid}))
            answer: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        seq = stream.seq
        assert await wait_for(lambda: stream.seq >= seq + 2, 10), "the stream stopped on a"
        await _finish(stop, tasks)
        return answer

    answer = asyncio.run(scenario())
    assert answer["type"] == "error" and answer["code"] == "unknown_stream", answer
    assert client.connections == 1 and client.problems() == []


def test_a_readers_rate_is_shared_by_their_streams_on_both_nodes(
    nodes: list[ServerProcess], postgres_url: str, tmp_path: Path, kek: str
) -> None:
    """Two browsers of one reader, one on each node, one active stream each: together they pay
    the reader's rate, each half of it (without sharing each would pay all of it)."""
    seeded = seed(postgres_url, tmp_path / "seed", kek, readers=1, funded_minor=10**12)
    a, b = nodes
    first = StayingClient([a.ws_url], seeded.tokens[0], [("a0", seeded.payees[0])])
    second = StayingClient([b.ws_url], seeded.tokens[0], [("b0", seeded.payees[0])])
    both_from: dict[str, int] = {}

    def mark(tracked: object, message: dict[str, object]) -> None:
        if "seq" not in both_from and first.all_active() and second.all_active():
            both_from["seq"] = 0
        if "seq" in both_from:
            both_from.setdefault(str(message["sid"]), int(str(message["seq"])))

    first.on_receipt = second.on_receipt = mark

    async def scenario() -> None:
        stop, tasks = await _run_until(
            [first, second], lambda: all(t.seq >= 3 for t in first.streams.values())
        )
        seq = second.streams["b0"].seq
        assert await wait_for(lambda: second.streams["b0"].seq >= seq + 15, 30)
        await _finish(stop, tasks)

    asyncio.run(scenario())
    one_interval = RATE_PER_HOUR_MINOR * INTERVAL_MS // 3_600_000
    for client in (first, second):
        tracked = next(iter(client.streams.values()))
        start = both_from[str(tracked.sid)] + 2  # an interval later both pay at the shared rate
        amounts = [amt for seq, amt, _ in tracked.receipts if seq > start][:-1]  # not the final
        assert len(amounts) >= 8, tracked.receipts
        median = statistics.median(amounts)
        assert abs(median - one_interval / 2) <= one_interval * 0.1, (median, one_interval)
    assert_streams_match_ledger(postgres_url, [first, second], a.jwks())


def test_the_socket_cap_counts_the_readers_connections_on_every_node(
    nodes: list[ServerProcess], postgres_url: str, tmp_path: Path, kek: str
) -> None:
    seeded = seed(postgres_url, tmp_path / "seed", kek, readers=1, funded_minor=10**9)
    a, b = nodes
    hello = json.dumps({"type": "hello", "v": 1, "token": seeded.tokens[0]})

    async def open_on(server: ServerProcess) -> tuple[object, str]:
        ws = await connect(server.ws_url, proxy=None)
        await ws.send(hello)
        try:
            return ws, json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return ws, str(closed.rcvd.code)

    async def scenario() -> list[str]:
        outcomes = []
        held = []
        for server in (a, b, a, b):  # the cap is 3 (the fixture's setting)
            ws, outcome = await open_on(server)
            outcomes.append(outcome)
            held.append(ws)
        await held[0].close()  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)  # its node forgets it
        ws, outcome = await open_on(b)
        outcomes.append(outcome)
        held.append(ws)
        for ws in held:
            await ws.close()  # type: ignore[attr-defined]
        return outcomes

    assert asyncio.run(scenario()) == ["welcome", "welcome", "welcome", "4429", "welcome"]


def test_the_login_rate_limit_counts_attempts_on_every_node(
    nodes: list[ServerProcess], postgres_url: str, tmp_path: Path, kek: str
) -> None:
    """Failed logins alternate between the nodes: the limit (10 per window, the default) holds
    for the two together, not 10 on each (the attempts are counted in the database)."""
    a, b = nodes
    body = json.dumps({"email": "nobody@example.com", "password": "not the password"}).encode()
    statuses = []
    for attempt in range(12):
        server = (a, b)[attempt % 2]
        request = urllib.request.Request(
            f"{server.http_url}/api/v1/sessions",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    assert statuses == [401] * 10 + [429] * 2
