"""The private stream under real servers (``trickle serve``): a token shown on 20 connections
of two processes on one database at once pays once; ``kill -9`` while readers spend loses no
receipt a client holds and makes no money (``trickle ledger check``: the token float is what
the unspent tokens are worth); every receipt verifies with the unchanged verifier."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

from sqlalchemy import select
from websockets.asyncio.client import connect

from tests.service.stream_client import (
    PrivateStreamClient,
    ServerProcess,
    buy_wallet,
    ledger_check,
    new_kek,
    seed,
    server_env,
    verify_private,
    wait_for,
)
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.ledger import TransferKind
from trickle.models import SpentToken, Transfer

FEE_BPS = 100
FUNDED_MINOR = 10**12
TOKEN_VALUE_MINOR = 1_000_000


def _servers(database_url: str, tmp_path: Path, kek: str, count: int) -> list[ServerProcess]:
    return [
        ServerProcess(
            server_env(database_url, tmp_path / f"data{i}", kek, 1000, fee_bps=FEE_BPS),
            tmp_path / f"logs{i}",
        )
        for i in range(count)
    ]


def _books(database_url: str) -> tuple[dict[str, list[int]], set[bytes]]:
    """The token-spend transfers by their receipts' sid (amounts), and the spent nullifiers."""
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            rows = session.execute(
                select(Transfer.reference, Transfer.amount_minor).where(
                    Transfer.kind == TransferKind.TOKEN_SPEND
                )
            ).all()
            spent = {bytes(n) for n in session.scalars(select(SpentToken.nullifier))}
    finally:
        engine.dispose()
    by_sid: dict[str, list[int]] = {}
    for sid, amount in rows:
        by_sid.setdefault(str(sid), []).append(int(amount))
    return by_sid, spent


def _nullifier(token: dict[str, Any]) -> bytes:
    from trickle.tokens import b64url_decode

    return hashlib.sha256(b64url_decode(token["input"], 32)).digest()


# --- one token, 20 connections, two processes -----------------------------------------------


async def _show_everywhere(
    urls: list[str], wallet: list[dict[str, Any]], payee: str
) -> list[list[dict[str, Any]]]:
    """Every connection shows every token (one per spend), all connections at once; returns
    each connection's answers."""
    ready = asyncio.Event()
    opened = 0

    async def one(url: str, index: int) -> list[dict[str, Any]]:
        nonlocal opened
        async with connect(url, proxy=None, ping_interval=None, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "hello", "v": 1, "private": True}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            start = {"type": "start", "stream": "s", "origin": ORIGIN, "pointer": payee}
            await ws.send(json.dumps(start))
            assert json.loads(await ws.recv())["type"] == "started"
            opened += 1
            if opened == len(urls):
                ready.set()
            await ready.wait()
            order = list(wallet)
            random.Random(index).shuffle(order)  # each connection in its own order
            for token in order:
                await ws.send(json.dumps({"type": "spend", "stream": "s", "tokens": [token]}))
            return [json.loads(await ws.recv()) for _ in wallet]

    return list(await asyncio.gather(*(one(url, i) for i, url in enumerate(urls))))


ORIGIN = "https://blog.example"


def test_a_token_shown_on_20_connections_of_two_processes_pays_once(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    seeded = seed(database_url, tmp_path / "seed", kek, readers=1, funded_minor=FUNDED_MINOR)
    wallet = buy_wallet(database_url, tmp_path / "seed", kek, seeded.reader_ids[0], 40)
    servers = _servers(database_url, tmp_path, kek, 2)
    try:
        for server in servers:
            server.start()
        jwks = servers[0].jwks()
        urls = [servers[i % 2].private_ws_url for i in range(20)]
        answers = asyncio.run(_show_everywhere(urls, wallet, seeded.payees[0]))
    finally:
        for server in servers:
            server.stop()
    flat = [m for own in answers for m in own]
    receipts = [m for m in flat if m["type"] == "receipt"]
    assert len(flat) == 20 * len(wallet)
    assert len(receipts) == len(wallet), sorted({m.get("code", "") for m in flat})
    assert {m["code"] for m in flat if m["type"] == "error"} == {"token_spent"}
    assert {i % 2 for i, own in enumerate(answers) if any(m["type"] == "receipt" for m in own)}
    by_sid, spent = _books(database_url)
    assert sum(len(amounts) for amounts in by_sid.values()) == len(wallet)
    assert spent == {_nullifier(t) for t in wallet}
    for own in answers:  # each connection's receipts: its stream's, seq 1..n, tot = the sum
        paid = [m for m in own if m["type"] == "receipt"]
        assert [m["seq"] for m in paid] == list(range(1, len(paid) + 1))
        if paid:
            assert by_sid[paid[0]["sid"]] == [TOKEN_VALUE_MINOR] * len(paid)
            assert int(paid[-1]["tot"]) == TOKEN_VALUE_MINOR * len(paid)
    client = PrivateStreamClient("ws://unused")
    for index, own in enumerate(answers):
        client.streams[str(index)] = _log(seeded.payees[0], own)
    assert verify_private(jwks, [client]) == len(wallet)
    check = ledger_check(database_url)
    assert check.returncode == 0, check.stdout + check.stderr


def _log(payee: str, own: list[dict[str, Any]]) -> Any:
    from tests.service.stream_client import PrivateLog

    paid = [m for m in own if m["type"] == "receipt"]
    log = PrivateLog("s", payee, [], sid=paid[0]["sid"] if paid else None)
    log.tokens = [m["receipt"] for m in paid]
    return log


# --- kill -9 while spending -------------------------------------------------------------------

CONNECTIONS = 4
STREAMS = 3
WALLET_PER_STREAM = 150


async def _spend_until_killed(
    server: ServerProcess, wallets: list[list[dict[str, Any]]], payee: str, kill_at: int
) -> list[PrivateStreamClient]:
    """Spend on every stream; kill -9 the server once ``kill_at`` receipts came (a count, not a
    delay: a fast run spends every wallet within a second, and the kill must find spends out)."""
    clients = [PrivateStreamClient(server.private_ws_url, in_flight=3) for _ in range(CONNECTIONS)]
    stop = asyncio.Event()
    plans = [
        [(f"c{c}s{s}", payee, wallets[c * STREAMS + s]) for s in range(STREAMS)]
        for c in range(CONNECTIONS)
    ]
    tasks = [asyncio.create_task(c.run(p, stop)) for c, p in zip(clients, plans, strict=True)]
    try:
        assert await wait_for(lambda: sum(c.receipts for c in clients) >= kill_at, 30, 0.002)
        workers = _descendants(server.pid)
        assert workers, "the token check process runs beside the server"
        server.kill9()
        # the check process follows its killed parent
        assert await wait_for(lambda: not any(_alive(pid) for pid in workers), 10), workers
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return clients


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _show_again(url: str, tokens: list[dict[str, Any]], payee: str) -> PrivateStreamClient:
    client = PrivateStreamClient(url, in_flight=4)
    await asyncio.wait_for(client.run([("again", payee, tokens)], asyncio.Event()), 60)
    return client


def test_kill_9_while_spending_loses_no_receipt_and_makes_no_money(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    seeded = seed(database_url, tmp_path / "seed", kek, readers=1, funded_minor=FUNDED_MINOR)
    count = CONNECTIONS * STREAMS * WALLET_PER_STREAM
    bought = buy_wallet(database_url, tmp_path / "seed", kek, seeded.reader_ids[0], count)
    wallets = [bought[i :: CONNECTIONS * STREAMS] for i in range(CONNECTIONS * STREAMS)]
    [server] = _servers(database_url, tmp_path, kek, 1)
    # anywhere from early on to half the tokens spent: every stream still has tokens to spend
    kill_at = random.Random(os.urandom(8)).randint(30, count // 2)
    try:
        server.start()
        jwks = server.jwks()
        clients = asyncio.run(_spend_until_killed(server, wallets, seeded.payees[0], kill_at))
        server.start()  # recovery on the same database
        check = ledger_check(database_url)
        assert check.returncode == 0, check.stdout + check.stderr
        by_sid, spent = _books(database_url)
        context = f"killed after {kill_at} receipts"
        # every receipt a client holds is backed: its stream's transfers cover seq and tot
        held = 0
        for client in clients:
            for log in client.streams.values():
                assert log.gaps == 0, context
                if log.sid is None or not log.seq:
                    continue
                amounts = by_sid.get(log.sid, [])
                assert len(amounts) >= log.seq, (context, log.sid)
                assert sum(amounts[: log.seq]) == log.total_minor, context
                # at most the spends whose answer was cut off committed besides
                assert len(amounts) <= log.seq + len(log.sent), context
                for token in log.paid:
                    assert _nullifier(token) in spent, context
                held += log.receipts
        assert held > 0
        assert verify_private(jwks, clients) == held
        # the tokens whose answer never came: each paid once at most, now or before the kill
        unanswered = [t for c in clients for t in c.unanswered()]
        left = sum(len(log.wallet) for c in clients for log in c.streams.values())
        assert unanswered and left, f"{context}: the kill must come while spends are out"
        again = asyncio.run(_show_again(server.private_ws_url, unanswered, seeded.payees[0]))
        [log] = again.streams.values()
        assert len(log.paid) + len(log.refused) == len(unanswered)
        assert {code for _, code in log.refused} <= {"token_spent"}
        for token, _ in log.refused:
            assert _nullifier(token) in spent, context  # it was paid before the kill
    finally:
        server.stop()
    by_sid, spent = _books(database_url)
    assert sum(len(a) for a in by_sid.values()) == len(spent), context  # one payment per token
    check = ledger_check(database_url)
    assert check.returncode == 0, check.stdout + check.stderr
