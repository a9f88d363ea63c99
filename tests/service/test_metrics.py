"""Prometheus metrics scraped from a real ``trickle serve --workers 2`` after real streaming: on
the metrics port and at the token-protected /metrics, the workers' values added up
(prometheus-client's multiprocess mode) and equal to what the ledger and the clients saw."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.stream_client import (
    ServerProcess,
    StreamClient,
    free_port,
    ledger_check,
    new_kek,
    read_ledger,
    seed,
    server_env,
    wait_for,
)

INTERVAL_MS = 50
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def pool_size(port: int) -> float:
    return value(scrape(f"http://127.0.0.1:{port}/metrics"), "trickle_db_pool_size", pool="service")


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _stream(server: ServerProcess, rich: list[str], poor: str, payee: str, port: int):  # type: ignore[no-untyped-def]
    clients = [StreamClient(server.ws_url, token, interval_ms=INTERVAL_MS) for token in rich]
    clients.append(StreamClient(server.ws_url, poor, interval_ms=INTERVAL_MS))
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(client.run([(f"c{i}s{j}", payee) for j in range(3)], stop))
        for i, client in enumerate(clients)
    ]
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    try:
        assert await wait_for(lambda: all(c.started for c in clients), 30)
        assert await wait_for(lambda: clients[-1].all_in("insufficient_funds"), 30)
        assert await wait_for(lambda: all(c.receipts >= 30 for c in clients[:-1]), 30)
        # While they stream: every socket is open, the rich readers' streams are active.
        live: Samples = {}

        def streaming_seen() -> bool:
            nonlocal live
            live = scrape(metrics_url)
            return value(live, "trickle_open_sockets") == len(clients) and (
                value(live, "trickle_active_streams") == 3 * len(rich)
            )

        for _ in range(50):
            if await asyncio.to_thread(streaming_seen):
                break
            await asyncio.sleep(0.2)
        assert value(live, "trickle_open_sockets") == len(clients), live
        assert value(live, "trickle_active_streams") == 3 * len(rich), live
        # A stream error, counted by its code.
        ws = clients[0]._ws
        assert ws is not None
        await ws.send(json.dumps({"type": "stop", "sid": "s_no_such_stream_00000000000"}))
        assert await wait_for(lambda: bool(clients[0].errors), 10)
        for client in clients:
            await client.stop_streams()
        assert await wait_for(
            lambda: all(log.stopped for c in clients for log in c.streams.values()), 30
        )
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    return clients


def test_metrics_after_real_streaming_on_two_workers(database_url: str, tmp_path: Path) -> None:
    kek = new_kek()
    rich = seed(database_url, tmp_path / "seed", kek, readers=2, funded_minor=10**12)
    poor = seed(database_url, tmp_path / "seed2", kek, readers=1, funded_minor=20_000)
    token = secrets.token_hex(32)
    metrics_port = free_port()
    env = server_env(
        database_url,
        tmp_path / "data",
        kek,
        INTERVAL_MS,
        workers=2,
        metrics_port=metrics_port,
        metrics_token=token,
    )
    server = ServerProcess(env, tmp_path / "logs")
    server.start()
    try:
        # Both workers are up once both service pools count (uvicorn answers from the first).
        assert asyncio.run(wait_for(lambda: pool_size(metrics_port) == 10, 60, 0.2)), pool_size(
            metrics_port
        )
        clients = asyncio.run(
            _stream(server, rich.tokens, poor.tokens[0], rich.payees[0], metrics_port)
        )
        status, _ = http_get(f"{server.http_url}/api/v1/me")  # an HTTP error, by its code
        assert status == 401
        view = read_ledger(database_url)
        moved = sum(view.credits(sid) for sid in view.stream)
        received = sum(c.receipts for c in clients)
        assert moved > 0 and received > 0

        # Both ways of serving agree: the port, and /metrics on the service's port with a token.
        on_port = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        with_token = scrape(f"{server.http_url}/metrics", token)
        for samples in (on_port, with_token):
            assert value(samples, "trickle_receipts_issued_total", kind="stream") == received
            assert (
                value(samples, "trickle_money_moved_minor_total", currency="USD", kind="stream")
                == moved
            )
            assert value(samples, "trickle_refusals_total", reason="insufficient_funds") >= 1
            assert (
                value(samples, "trickle_errors_total", surface="stream", code="unknown_stream") == 1
            )
            assert (
                value(samples, "trickle_errors_total", surface="http", code="unauthenticated") >= 1
            )
            groups = value(samples, "trickle_commit_group_size_count")
            assert groups > 0
            assert value(samples, "trickle_commit_latency_seconds_count") == groups
            assert value(samples, "trickle_commit_group_size_sum") >= received
            assert value(samples, "trickle_commit_latency_seconds_sum") > 0
            # Two workers, each with a service pool (5) and, streaming, a group-commit pool.
            assert value(samples, "trickle_db_pool_size", pool="service") == 10
            assert value(samples, "trickle_db_pool_size", pool="commit") >= 5
            assert value(samples, "trickle_db_pool_checked_out") >= 0
            assert value(samples, "trickle_signing_key_age_seconds") > 0
        # Once the sockets closed, the sampled gauges fall back to zero.
        assert asyncio.run(
            wait_for(
                lambda: (
                    value(
                        scrape(f"http://127.0.0.1:{metrics_port}/metrics"), "trickle_open_sockets"
                    )
                    == 0
                ),
                10,
                0.2,
            )
        )
        status, body = http_get(f"{server.http_url}/metrics", {"Authorization": "Bearer wrong"})
        assert status == 401
        assert body == {
            "error": {
                "code": "unauthenticated",
                "message": "metrics need Authorization: Bearer <TRICKLE_METRICS_TOKEN>",
            }
        }
    finally:
        server.stop()
    assert ledger_check(database_url).returncode == 0


@pytest.mark.parametrize("token", ["", "x" * 32])
def test_metrics_path_without_a_token_is_not_found(client: object, token: str) -> None:
    from starlette.testclient import TestClient

    assert isinstance(client, TestClient)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    if not token:
        response = client.get("/metrics")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        return
    import dataclasses

    runtime.settings = dataclasses.replace(runtime.settings, metrics_token=token)
    assert client.get("/metrics").status_code == 401
    served = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert served.status_code == 200
    assert (
        "trickle_receipts_issued_total" in served.text or "trickle_receipts_issued" in served.text
    )


def test_a_dead_workers_live_gauges_are_dropped_at_the_next_scrape(tmp_path: Path) -> None:
    """A worker killed with kill -9 never marks itself dead: its open sockets would count for
    ever. The scrape drops the live gauges of processes that are gone, and keeps the rest
    (a dead worker's counters still count: receipts it issued were issued)."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from trickle import metrics
    from trickle.settings import Settings

    settings = Settings(env="test", data_dir=tmp_path, workers=2).validate()
    folder = metrics.prepare_multiprocess_dir(settings)
    dead_pid = 2**22 + 12345  # above the kernel's pid_max: never alive
    files = {
        f"gauge_livesum_{dead_pid}.db": ("trickle_open_sockets", 7.0),
        f"gauge_livesum_{os.getpid()}.db": ("trickle_open_sockets", 3.0),
        f"counter_{dead_pid}.db": ("trickle_receipts_issued_total", 11.0),
    }
    for name, (metric, number) in files.items():
        stored = MmapedDict(str(Path(folder) / name))
        base = metric.removesuffix("_total")
        labels = {"kind": "stream"} if metric.endswith("_total") else {}
        stored.write_value(
            mmap_key(base, metric, list(labels), list(labels.values()), ""), number, 0
        )
        stored.close()
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry(settings).collect()
        for s in family.samples
    }
    assert scraped[("trickle_open_sockets", ())] == 3.0
    assert scraped[("trickle_receipts_issued_total", (("kind", "stream"),))] == 11.0
    assert not (Path(folder) / f"gauge_livesum_{dead_pid}.db").exists()
