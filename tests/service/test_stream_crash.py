"""Crash safety of streaming: ``kill -9`` the real server while readers stream, restart it on the
same database, and check that no client holds a receipt the ledger does not back.

A receipt is signed only after its increment is committed, so whatever moment the process dies,
every receipt a client received is covered by payee credits, and the ledger balances.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

from tests.service.stream_client import (
    LedgerView,
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
FEE_BPS = 100
READERS = 3
STREAMS_PER_READER = 3
KILLS = 2
FUNDED_MINOR = 10**12


async def _stream_until_killed(
    server: ServerProcess, tokens: list[str], payees: list[str], kill_after_s: float, round_: int
) -> list[StreamClient]:
    clients = [StreamClient(server.ws_url, token, interval_ms=INTERVAL_MS) for token in tokens]
    stop = asyncio.Event()
    starts = [
        [(f"k{round_}r{j}", payees[j % len(payees)]) for j in range(STREAMS_PER_READER)]
        for _ in clients
    ]
    tasks = [asyncio.create_task(c.run(s, stop)) for c, s in zip(clients, starts, strict=True)]
    try:
        assert await wait_for(lambda: all(c.all_in("active") for c in clients), 30), [
            (log.state, c.errors) for c in clients for log in c.streams.values()
        ]
        await asyncio.sleep(kill_after_s)
        server.kill9()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return clients


def test_kill_9_mid_stream_never_leaves_an_unbacked_receipt(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    seeded = seed(
        database_url, tmp_path / "seed", kek, readers=READERS, funded_minor=FUNDED_MINOR, payees=2
    )
    env = server_env(database_url, tmp_path / "data", kek, INTERVAL_MS, fee_bps=FEE_BPS)
    server = ServerProcess(env, tmp_path / "logs")
    rng = random.Random(os.urandom(8))
    clients: list[StreamClient] = []
    kill_times: list[float] = []
    try:
        server.start()
        jwks = server.jwks()
        for round_ in range(KILLS):
            kill_times.append(rng.uniform(1.0, 3.0))
            clients += asyncio.run(
                _stream_until_killed(server, seeded.tokens, seeded.payees, kill_times[-1], round_)
            )
            server.start()  # the restart: recovery on the same database
            check = ledger_check(database_url)
            assert check.returncode == 0, check.stdout + check.stderr
            assert server.jwks() == jwks  # the same key signs after the restart
    finally:
        server.stop()

    assert sum(c.receipts for c in clients) > 0, "no receipt arrived before the kills"
    assert verify_all(jwks, clients) == sum(c.receipts for c in clients)
    view = read_ledger(database_url)
    _assert_books(view, clients, seeded.reader_ids, seeded.payees, seeded.payee_ids, kill_times)


def _assert_books(
    view: LedgerView,
    clients: list[StreamClient],
    reader_ids: list[int],
    pointers: list[str],
    payee_ids: list[int],
    kill_times: list[float],
) -> None:
    context = f"kills after {kill_times} s"
    payee_accounts = {
        p: view.accounts[("payee", f"payee:{i}")] for p, i in zip(pointers, payee_ids, strict=True)
    }
    fee_account = view.accounts[("fee", "platform")]
    readers_clients = {uid: clients[i::READERS] for i, uid in enumerate(reader_ids)}
    all_fees = 0
    for user_id, own in readers_clients.items():
        account = view.accounts[("reader", f"user:{user_id}")]
        assert_receipts_match_ledger(
            view,
            own,
            reader_account=account,
            payee_accounts=payee_accounts,
            fee_account=fee_account,
            fee_bps=FEE_BPS,
        )
        debited = {sid for sid, rows in view.stream.items() if rows[0][1] == account}
        known = {log.sid for c in own for log in c.streams.values()}
        assert debited <= known, f"{context}: streams the clients never heard of"
        debits = sum(view.credits(sid) for sid in debited)
        credits_to_payees = sum(
            amount
            for sid in debited
            for _, _, credit, amount in view.stream[sid]
            if credit in payee_accounts.values()
        )
        fees = sum(view.fee_total(sid) for sid in debited)
        assert debits == credits_to_payees, context
        assert 0 < fees < debits, context
        assert view.balances[account] == FUNDED_MINOR - debits, context
        all_fees += fees
    for payee_account in payee_accounts.values():
        earned = sum(
            a for rows in view.stream.values() for _, _, c, a in rows if c == payee_account
        )
        fees = sum(a for rows in view.fees.values() for _, d, _, a in rows if d == payee_account)
        assert view.balances[payee_account] == earned - fees, context
    assert view.balances[fee_account] == all_fees, context
