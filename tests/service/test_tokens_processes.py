"""Tokens under races and crashes, with real ``trickle serve`` processes on one database (SQLite
and PostgreSQL):

- the same token shown by 20 concurrent requests, 10 to each of two processes, pays once;
- ``kill -9`` while readers buy tokens: after a restart every retry (same Idempotency-Key, same
  body) gets its issuance exactly once, with the same evaluations if it had been answered, and
  the reader paid for each issuance once;
- ``kill -9`` while private payments are made: every retry gets its receipt, each token paid
  once, the payee got what the tokens are worth;

and ``trickle ledger check`` (the token float's invariant included) passes after each.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests import factories
from tests.service.stream_client import (
    ISSUER,
    ServerProcess,
    ledger_check,
    new_kek,
    pointer,
    server_env,
)
from trickle import tokens, voprf
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.keys import b64url
from trickle.ledger import AccountKind
from trickle.models import LedgerAccount, PrivatePayment, SpentToken, TokenIssuance, Transfer
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings
from trickle_verifier import KeySet, Verifier

VALUE = 1_000_000
ORIGIN = "https://shop.example"


def _runtime(database_url: str, data_dir: Path, kek: str) -> Runtime:
    settings = Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        public_url=ISSUER,
        key_encryption_key=kek,
    ).validate()
    return bootstrap(settings)


def _post(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float = 60
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# What a request sees when the process is killed under it: no connection, a reset, or an answer
# cut off mid-way (http.client raises IncompleteRead or BadStatusLine, which are not OSErrors).
_DIED_UNDER_IT = (OSError, http.client.HTTPException)


def _wire(token: tokens.Token) -> dict[str, Any]:
    return {"epoch": token.epoch, "input": b64url(token.input), "output": b64url(token.output)}


def _payment(payee: str, minted: list[dict[str, Any]], order: str) -> dict[str, Any]:
    return {
        "payment_pointer": payee,
        "origin": ORIGIN,
        "amount_minor": str(VALUE * len(minted)),
        "currency": "USD",
        "order_ref": order,
        "tokens": minted,
    }


def _scalar(database_url: str, query: Any) -> Any:
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return session.scalar(query)
    finally:
        engine.dispose()


def _assert_ledger_clean(database_url: str) -> None:
    checked = ledger_check(database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _assert_no_traceback(tmp_path: Path) -> None:
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("logs*/*.log"))
    assert "Traceback" not in logs, logs


# --- the same token, 20 requests, two processes -------------------------------------------------


def test_one_token_shown_by_20_requests_on_two_processes_pays_once(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    runtime = _runtime(database_url, tmp_path / "seed", kek)
    try:
        reader = factories.create_user(runtime)
        factories.fund_reader(runtime, reader.id, 10 * VALUE)
        owner = factories.create_user(runtime)
        payee = factories.create_payee(runtime, owner.id, "racer")
        minted = [_wire(t) for t in factories.buy_tokens(runtime, reader.id, 2)]
    finally:
        runtime.close()
    servers = [
        ServerProcess(
            server_env(database_url, tmp_path / f"data{i}", kek, 2000), tmp_path / f"logs{i}"
        )
        for i in range(2)
    ]
    barrier = threading.Barrier(20)
    answers: list[tuple[int, dict[str, Any], float, float]] = []

    def pay(i: int) -> None:
        server = servers[i % 2]
        body = _payment(pointer(payee.name), minted[:1], f"race-{i}")
        barrier.wait()
        started = time.monotonic()
        status, answer = _post(
            f"{server.http_url}/api/v1/private/payments",
            body,
            {"Idempotency-Key": f"race-{i}-{secrets.token_hex(4)}"},
        )
        answers.append((status, answer, started, time.monotonic()))

    try:
        for server in servers:
            server.start()
        threads = [threading.Thread(target=pay, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for server in servers:
            server.stop()
    _assert_no_traceback(tmp_path)
    statuses = sorted(status for status, *_ in answers)
    assert statuses == [201] + [409] * 19, [a for _, a, *_ in answers]
    assert {a["error"]["code"] for s, a, *_ in answers if s == 409} == {"token_spent"}
    # the harness raced: requests were in flight together, not one after the other
    windows = sorted((start, end) for *_, start, end in answers)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(windows))
    assert _scalar(database_url, select(func.count()).select_from(SpentToken)) == 1
    earned = _scalar(
        database_url,
        select(LedgerAccount.balance_minor).where(
            LedgerAccount.kind == AccountKind.PAYEE.value,
            LedgerAccount.owner == f"payee:{payee.id}",
        ),
    )
    assert earned == VALUE
    _assert_ledger_clean(database_url)


# --- kill -9 during issuance ----------------------------------------------------------------------


def test_kill_9_during_issuance_loses_nothing_and_charges_each_issuance_once(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    runtime = _runtime(database_url, tmp_path / "seed", kek)
    try:
        readers = [factories.create_user(runtime) for _ in range(4)]
        for user in readers:
            factories.fund_reader(runtime, user.id, 1000 * VALUE)
        epoch = tokens.epoch_of(runtime.clock())
        public_key = runtime.token_keys.current.keys[epoch].public_key
    finally:
        runtime.close()
    server = ServerProcess(
        server_env(database_url, tmp_path / "data", kek, 2000), tmp_path / "logs"
    )
    # each request: (reader, key, blinded states, body)
    requests: list[tuple[factories.TestUser, str, list[voprf.BlindedInput], dict[str, Any]]] = []
    for n in range(40):
        user = readers[n % len(readers)]
        blinded = [voprf.blind(secrets.token_bytes(32)) for _ in range(8)]
        body = {
            "currency": "USD",
            "epoch": epoch,
            "blinded": [b64url(b.blinded_element) for b in blinded],
        }
        requests.append((user, f"issue-{n}-{secrets.token_hex(4)}", blinded, body))
    first: dict[str, tuple[int, dict[str, Any]]] = {}
    answered = threading.Event()

    def issue(index: int) -> None:
        user, key, _, body = requests[index]
        with contextlib.suppress(*_DIED_UNDER_IT):
            first[key] = _post(
                f"{server.http_url}/api/v1/tokens",
                body,
                {**user.auth, "Idempotency-Key": key},
                timeout_s=30,
            )
            answered.set()

    try:
        server.start()
        threads = [threading.Thread(target=issue, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        # cut in the middle: once the first answer is out, while the others are in flight
        assert answered.wait(timeout=60), server.log_tail()
        time.sleep(random.uniform(0, 0.05))
        server.kill9()
        for thread in threads:
            thread.join(timeout=60)
        _assert_ledger_clean(database_url)  # right after the crash: nothing half-done
        server.start()
        retried = {
            key: _post(
                f"{server.http_url}/api/v1/tokens", body, {**user.auth, "Idempotency-Key": key}
            )
            for user, key, _, body in requests
        }
    finally:
        server.stop()
    _assert_no_traceback(tmp_path)
    assert 0 < len(first) < len(requests), f"{len(first)} answered before the kill"
    for _, key, blinded, _ in requests:
        status, answer = retried[key]
        assert status == 201, answer
        if key in first and first[key][0] == 201:
            assert answer == first[key][1]  # what was answered before the kill, again
        outputs = voprf.finalize_batch(
            public_key,
            blinded,
            [tokens.b64url_decode(e, 32) for e in answer["evaluated"]],
            tokens.b64url_decode(answer["proof"], 64),
        )
        assert len(outputs) == 8
    assert _scalar(database_url, select(func.count()).select_from(TokenIssuance)) == 40
    for user in readers:
        balance = _scalar(
            database_url,
            select(LedgerAccount.balance_minor).where(
                LedgerAccount.kind == AccountKind.READER.value,
                LedgerAccount.owner == f"user:{user.id}",
            ),
        )
        assert balance == 1000 * VALUE - 10 * 8 * VALUE  # ten issuances of 8 each, once
    _assert_ledger_clean(database_url)


# --- kill -9 during private payments --------------------------------------------------------------


def test_kill_9_during_private_payments_pays_each_token_once(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    runtime = _runtime(database_url, tmp_path / "seed", kek)
    try:
        reader = factories.create_user(runtime)
        factories.fund_reader(runtime, reader.id, 1000 * VALUE)
        owner = factories.create_user(runtime)
        payee = factories.create_payee(runtime, owner.id, "crashed-shop")
        minted = [_wire(t) for t in factories.buy_tokens(runtime, reader.id, 30)]
        minted += [_wire(t) for t in factories.buy_tokens(runtime, reader.id, 30)]
    finally:
        runtime.close()
    server = ServerProcess(
        server_env(database_url, tmp_path / "data", kek, 2000), tmp_path / "logs"
    )
    payments = [
        (
            f"pay-{n}-{secrets.token_hex(4)}",
            _payment(pointer(payee.name), minted[3 * n : 3 * n + 3], f"order-{n}"),
        )
        for n in range(20)
    ]
    first: dict[str, tuple[int, dict[str, Any]]] = {}
    answered = threading.Event()

    def pay(index: int) -> None:
        key, body = payments[index]
        with contextlib.suppress(*_DIED_UNDER_IT):
            first[key] = _post(
                f"{server.http_url}/api/v1/private/payments",
                body,
                {"Idempotency-Key": key},
                timeout_s=30,
            )
            answered.set()

    try:
        server.start()
        threads = [threading.Thread(target=pay, args=(i,)) for i in range(len(payments))]
        for thread in threads:
            thread.start()
        assert answered.wait(timeout=60), server.log_tail()
        time.sleep(random.uniform(0, 0.05))
        server.kill9()
        for thread in threads:
            thread.join(timeout=60)
        _assert_ledger_clean(database_url)  # right after the crash: nothing half-done
        server.start()
        retried = {
            key: _post(f"{server.http_url}/api/v1/private/payments", body, {"Idempotency-Key": key})
            for key, body in payments
        }
        keys = KeySet.from_jwks(server.jwks())
    finally:
        server.stop()
    _assert_no_traceback(tmp_path)
    assert 0 < len(first) < len(payments), f"{len(first)} answered before the kill"
    verifier = Verifier(issuer=ISSUER, audience=ORIGIN, payees=[pointer(payee.name)], keys=keys)
    for key, _ in payments:
        status, answer = retried[key]
        assert status == 201, answer
        if key in first and first[key][0] == 201:
            assert answer["sid"] == first[key][1]["sid"]
        receipt = verifier.verify(answer["receipt"])
        assert receipt.amount_minor == 3 * VALUE
    assert _scalar(database_url, select(func.count()).select_from(PrivatePayment)) == 20
    assert _scalar(database_url, select(func.count()).select_from(SpentToken)) == 60
    spent = _scalar(
        database_url,
        select(func.count()).select_from(Transfer).where(Transfer.kind == "token_spend"),
    )
    assert spent == 20
    earned = _scalar(
        database_url,
        select(LedgerAccount.balance_minor).where(
            LedgerAccount.kind == AccountKind.PAYEE.value,
            LedgerAccount.owner == f"payee:{payee.id}",
        ),
    )
    assert earned == 60 * VALUE
    _assert_ledger_clean(database_url)
