"""Thirty checks of a silent site on a real ``trickle serve`` while readers stream and people log
in: the checks wait on the site with no database connection held and a bounded number at once,
so receipts keep their schedule, logins answer, and the excess checks are refused with a 429.

(Before: each check fetched inside its request's transaction — on SQLite the write lock of the
whole database for 5 s, on PostgreSQL a connection of the pool — and every check fetched.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.factories import create_payee, create_user, fund_reader
from tests.service.stream_client import (
    ISSUER,
    ServerProcess,
    StreamClient,
    new_kek,
    pointer,
    server_env,
    wait_for,
)
from tests.service.test_siteverify import HeldSite, holding
from trickle import accounts, siteverify
from trickle.db import transaction
from trickle.runtime import bootstrap
from trickle.settings import Settings

INTERVAL_MS = 250
STREAMS = 4
CREATORS = 10
CHECKS_PER_CREATOR = 3  # 30 checks in all
MAX_CHECKS = 4
MAX_CHECKS_PER_USER = 2
PASSWORD = "correct horse battery"
# Generous for a loaded 2-core machine, far below the 5 s a check used to hold the database.
MAX_RECEIPT_GAP_S = 2.5
MAX_LOGIN_S = 3.0


def _seed(database_url: str, data_dir: Path, kek: str, origin: str) -> dict[str, Any]:
    settings = Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        public_url=ISSUER,
        key_encryption_key=kek,
    ).validate()
    runtime = bootstrap(settings)
    try:
        reader = create_user(runtime)
        fund_reader(runtime, reader.id, 10_000_000_000)
        payee = create_payee(runtime, create_user(runtime).id)
        creators = []
        for index in range(CREATORS):
            creator = create_user(runtime)
            name = f"silent-{index}"
            made = create_payee(runtime, creator.id, name)
            with transaction(runtime.sessions) as session:
                siteverify.start(session, made, origin, allow_private=True, now=runtime.clock())
            creators.append((creator.token, name))
        with transaction(runtime.sessions) as session:
            accounts.sign_up(
                session,
                email="logs-in@example.test",
                password=PASSWORD,
                now=runtime.clock(),
                settings=settings,
            )
    finally:
        runtime.close()
    return {"reader": reader.token, "pointer": pointer(payee.name), "creators": creators}


def _post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any, float]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, payload = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, payload = error.code, json.loads(error.read())
    return status, payload, time.monotonic() - started


class GapClient(StreamClient):
    """Remembers when each stream's receipts arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: dict[str, list[float]] = {}

    def on_message(self, message: dict[str, Any], now_s: float) -> None:
        super().on_message(message, now_s)
        if message["type"] == "receipt":
            self.arrivals.setdefault(message["sid"], []).append(now_s)


async def _storm(
    server: ServerProcess, site: HeldSite, seeded: dict[str, Any]
) -> tuple[GapClient, list[tuple[int, Any, float]], list[tuple[int, Any, float]], float, float]:
    client = GapClient(server.ws_url, seeded["reader"], interval_ms=INTERVAL_MS)
    stop = asyncio.Event()
    streaming = asyncio.create_task(
        client.run([(f"s{i}", seeded["pointer"]) for i in range(STREAMS)], stop)
    )
    try:
        assert await wait_for(lambda: client.receipts >= 2 * STREAMS, 60), client.errors
        check_url = f"{server.http_url}/api/v1/payees/{{}}/sites/check"
        login_url = f"{server.http_url}/api/v1/sessions"
        login = {"email": "logs-in@example.test", "password": PASSWORD}
        logins: list[tuple[int, Any, float]] = []
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(CREATORS * CHECKS_PER_CREATOR + 1) as pool:
            started = time.monotonic()
            checks = [
                loop.run_in_executor(
                    pool, _post, check_url.format(name), {"origin": site.origin}, token
                )
                for _ in range(CHECKS_PER_CREATOR)
                for token, name in seeded["creators"]
            ]
            everything = asyncio.gather(*checks)
            while not everything.done():
                logins.append(await loop.run_in_executor(pool, _post, login_url, login))
                await asyncio.sleep(0.3)
            answered = await everything
            ended = time.monotonic()
        await asyncio.sleep(1.0)  # a receipt due at the storm's end has time to arrive
    finally:
        stop.set()
        await asyncio.wait_for(streaming, 30)
    return client, answered, logins, started, ended


def test_slow_site_checks_stall_neither_receipts_nor_logins(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    with holding() as site:  # never answers: every admitted check waits its full 5 s
        seeded = _seed(database_url, tmp_path / "seed", kek, site.origin)
        env = server_env(
            database_url,
            tmp_path / "data",
            kek,
            INTERVAL_MS,
            allow_private_site_urls="true",
            site_check_max_concurrent=MAX_CHECKS,
            site_check_max_concurrent_per_user=MAX_CHECKS_PER_USER,
        )
        server = ServerProcess(env, tmp_path / "logs")
        server.start()
        try:
            client, answered, logins, started, ended = asyncio.run(_storm(server, site, seeded))
        finally:
            server.stop()
        most_held = site.most_held

    refused = [payload for status, payload, _ in answered if status == 429]
    admitted = [(status, payload) for status, payload, _ in answered if status != 429]
    assert {payload["error"]["code"] for payload in refused} == {"too_many_site_checks"}
    assert 1 <= len(admitted) <= MAX_CHECKS, admitted
    for status, payload in admitted:  # the silent site: each admitted check timed out
        assert status == 409, payload  # site_verification_failed
        assert "did not answer within" in payload["error"]["message"]
    assert most_held <= MAX_CHECKS
    assert max(elapsed for status, _, elapsed in answered if status == 429) < MAX_LOGIN_S

    assert logins, "no login was tried during the checks"
    assert [status for status, _, _ in logins] == [201] * len(logins), logins
    assert max(elapsed for _, _, elapsed in logins) < MAX_LOGIN_S, logins

    assert ended - started > 4.0, "the checks did not wait on the silent site"
    for sid, arrivals in client.arrivals.items():
        during = [t for t in arrivals if started - 1.0 <= t <= ended + 1.0]
        gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
        assert len(during) >= (ended - started) / (INTERVAL_MS / 1000) / 2, (sid, len(during))
        assert max(gaps) < MAX_RECEIPT_GAP_S, (sid, max(gaps))
    assert len(client.arrivals) == STREAMS
    assert client.errors == []
