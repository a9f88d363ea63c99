"""Stripe delivers one payment's events to two ``trickle serve`` processes on one database at the
same moment — each event to both, both event types at once (``checkout.session.completed`` and
``payment_intent.succeeded``): every top-up is credited exactly once, every delivery is answered
2xx, and ``trickle ledger check`` passes. Real processes, a real socket each, against the Stripe
stand-in; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.service.stream_client import ServerProcess, ledger_check, new_kek, seed, server_env
from tests.service.stripe_standin import StripeStandIn
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.models import LedgerAccount, StripeEvent, Transfer

TOPUPS = 6
AMOUNT_MINOR = 5_000_000_000  # 5.00 USD


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    running = StripeStandIn().start()
    yield running
    running.stop()


def _post_topup(server: ServerProcess, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.http_url}/api/v1/topups",
        data=json.dumps({"amount_minor": str(AMOUNT_MINOR), "currency": "USD"}).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201
        body: dict[str, Any] = json.loads(response.read())
        return body


def test_duplicate_deliveries_racing_on_two_processes_credit_once(
    database_url: str, tmp_path: Path, standin: StripeStandIn
) -> None:
    kek = new_kek()
    seeded = seed(database_url, tmp_path / "seed", kek, readers=TOPUPS, funded_minor=1)
    stripe = {
        "stripe_secret_key": standin.secret_key,
        "stripe_webhook_secret": standin.webhook_secret,
        "stripe_api_base": standin.base,
    }
    servers = [
        ServerProcess(
            server_env(database_url, tmp_path / f"data{i}", kek, 2000, **stripe),
            tmp_path / f"logs{i}",
        )
        for i in range(2)
    ]
    try:
        for server in servers:
            server.start()
        topups = [_post_topup(servers[i % 2], token) for i, token in enumerate(seeded.tokens)]
        sessions = [t["checkout_url"].rsplit("/", 1)[1] for t in topups]
        events = [event for session in sessions for event in standin.pay(session)]
        # Every event to both processes, all at once.
        deliveries = [(event, server) for event in events for server in servers]
        barrier = threading.Barrier(len(deliveries))
        answers: list[tuple[str, int, dict[str, Any]]] = []

        def deliver(event: dict[str, Any], server: ServerProcess) -> None:
            barrier.wait()
            status, answer = standin.deliver(event, f"{server.http_url}/api/v1/stripe/webhook")
            answers.append((event["id"], status, answer))

        threads = [threading.Thread(target=deliver, args=pair) for pair in deliveries]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for server in servers:
            server.stop()
    logs = "".join(p.read_text() for p in tmp_path.glob("logs*/*.log"))
    assert "Traceback" not in logs, logs

    assert len(answers) == 4 * TOPUPS
    assert all(status == 200 for _, status, _ in answers), answers
    outcomes = sorted(answer["outcome"] for _, _, answer in answers)
    # Per top-up: one credit, and the other event type finds it credited; each event's
    # second delivery is a duplicate.
    assert outcomes == sorted(
        ["credited"] * TOPUPS + ["already_credited"] * TOPUPS + ["duplicate"] * 2 * TOPUPS
    )
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            credits = session.scalar(
                select(func.count()).select_from(Transfer).where(Transfer.kind == "topup")
            )
            stored = session.scalar(select(func.count()).select_from(StripeEvent))
            balances = dict(
                session.execute(
                    select(LedgerAccount.owner, LedgerAccount.balance_minor).where(
                        LedgerAccount.kind == "reader"
                    )
                ).all()
            )
    finally:
        engine.dispose()
    assert stored == 2 * TOPUPS
    assert credits == TOPUPS + TOPUPS  # the seed's own top-ups, and one per card top-up
    for user_id in seeded.reader_ids:
        assert balances[f"user:{user_id}"] == AMOUNT_MINOR + 1
    check = ledger_check(database_url)
    assert check.returncode == 0, check.stdout + check.stderr
