"""A key rotation seen by sites: a Python site (trickle_verifier) and a JavaScript site
(sdk_js_bridge, in node) fetched the key set just before ``rotate`` and refetch it only as its
``Cache-Control: max-age`` allows. Every receipt a real ``trickle serve`` streams after the
rotation must verify at both, on arrival: before and after the new key starts signing.

(Before: the new key signed within one key reload of the rotation without ever having been
published, and both sites rejected its receipts as ``unknown_kid`` until their copy of the set
was max-age old.) The windows are seconds here instead of minutes: max-age 3 s, key reload 1 s,
leeway 2 s.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any, TypedDict

from tests.prerequisites import unavailable
from tests.service.stream_client import (
    ISSUER,
    ORIGIN,
    ServerProcess,
    StreamClient,
    new_kek,
    seed,
    server_env,
    wait_for,
)
from trickle import keys
from trickle.db import transaction
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings
from trickle_verifier import KeySet, ReceiptError, Verifier

INTERVAL_MS = 250


class Windows(TypedDict):
    """The key rotation's windows, short for the test."""

    key_reload_interval_s: int
    jwks_max_age_s: int
    key_activation_leeway_s: int


WINDOWS = Windows(key_reload_interval_s=1, jwks_max_age_s=3, key_activation_leeway_s=2)
JS_SITE = Path(__file__).with_name("rotation_site.mjs")


class Sites(StreamClient):
    """The reader's connection; once ``watching``, each receipt goes to both sites on arrival."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.python_site: Verifier | None = None
        self.js_site: asyncio.subprocess.Process | None = None
        self.python_results: list[tuple[str, str | None]] = []  # (kid, error code or None)
        self.sent_to_js = 0

    def on_message(self, message: dict[str, Any], now_s: float) -> None:
        super().on_message(message, now_s)
        if message["type"] != "receipt" or self.python_site is None or self.js_site is None:
            return
        token: str = message["receipt"]
        kid = json.loads(_b64url(token.split(".", maxsplit=1)[0]))["kid"]
        try:
            self.python_site.verify(token)
            self.python_results.append((kid, None))
        except ReceiptError as error:
            self.python_results.append((kid, error.code))
        assert self.js_site.stdin is not None
        self.js_site.stdin.write(f"{token}\n".encode())
        self.sent_to_js += 1


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rotate(rotator: Runtime) -> keys.Rotation:
    with transaction(rotator.sessions) as session:
        return keys.rotate(session, rotator.kek, rotator.settings, rotator.clock())


async def _watch_a_rotation(
    server: ServerProcess, rotator: Runtime, token: str, pointer: str, node: str
) -> tuple[Sites, list[dict[str, Any]], keys.Rotation]:
    client = Sites(server.ws_url, token, interval_ms=INTERVAL_MS)
    stop = asyncio.Event()
    streaming = asyncio.create_task(client.run([("s", pointer)], stop))
    jwks_url = f"{server.http_url}/.well-known/jwks.json"
    max_age_s = WINDOWS["jwks_max_age_s"]
    js_site = await asyncio.create_subprocess_exec(
        node,
        str(JS_SITE),
        jwks_url,
        ISSUER,
        ORIGIN,
        pointer,
        str(max_age_s * 1000),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await wait_for(lambda: client.receipts >= 2, 60), client.errors
        assert js_site.stdout is not None
        ready = await asyncio.wait_for(js_site.stdout.readline(), 30)
        assert ready == b"ready\n", ready
        python_keys = await asyncio.to_thread(
            KeySet.from_url, jwks_url, refresh_interval_s=max_age_s
        )
        # Both sites hold the set as it was just before the rotation.
        rotation = _rotate(rotator)
        client.python_site = Verifier(
            issuer=ISSUER, audience=ORIGIN, payees=[pointer], keys=python_keys
        )
        client.js_site = js_site
        # Until the new key has signed for a few seconds (it signs from activates_at, at the
        # server's next key reload).
        until = rotation.activates_at + dt.timedelta(seconds=3)
        while dt.datetime.now(dt.UTC) < until:
            await asyncio.sleep(0.1)
        client.js_site = None
    finally:
        stop.set()
        await asyncio.wait_for(streaming, 30)
        assert js_site.stdin is not None
        js_site.stdin.close()
        output, _ = await asyncio.wait_for(js_site.communicate(), 30)
    js_results = [json.loads(line) for line in output.decode().splitlines()]
    return client, js_results, rotation


def test_sites_that_fetched_the_key_set_before_a_rotation_accept_every_later_receipt(
    database_url: str, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        unavailable("node", "not on PATH")
    kek = new_kek()
    seeded = seed(database_url, tmp_path / "seed", kek, readers=1, funded_minor=10_000_000_000)
    server = ServerProcess(
        server_env(database_url, tmp_path / "data", kek, INTERVAL_MS, **WINDOWS),
        tmp_path / "logs",
    )
    rotator = bootstrap(
        Settings(
            env="test",
            data_dir=tmp_path / "rotator",
            database_url=database_url,
            public_url=ISSUER,
            key_encryption_key=kek,
            **WINDOWS,
        ).validate()
    )
    server.start()
    try:
        old_kid = server.jwks()["keys"][0]["kid"]
        client, js_results, rotation = asyncio.run(
            _watch_a_rotation(server, rotator, seeded.tokens[0], seeded.payees[0], node)
        )
    finally:
        server.stop()
        rotator.close()

    assert client.errors == []
    python_results = client.python_results
    assert [code for _, code in python_results] == [None] * len(python_results), python_results
    assert len(js_results) == client.sent_to_js == len(python_results)
    assert [r for r in js_results if not r["ok"]] == []
    kids = [kid for kid, _ in python_results]
    assert kids == [r["kid"] for r in js_results]
    assert kids.count(old_kid) >= 4, "too few receipts before the new key signed"
    assert kids.count(rotation.kid) >= 4, "the new key did not sign within the test"
    assert set(kids) == {old_kid, rotation.kid}
