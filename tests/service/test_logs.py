"""Structured logs: a whole run of a real ``trickle serve`` (sign-up, a wrong password, log-in, a
voucher, a payee, streaming, a one-time payment, log-out) at debug level, then every line of its
logs is a JSON event, each request's under its id, and none holds a secret the run used:
passwords, session and CSRF tokens, the voucher code, receipts, the keys."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.service.stream_client import (
    ISSUER,
    ServerProcess,
    StreamClient,
    new_kek,
    server_env,
    wait_for,
)
from trickle import logs
from trickle.settings import Settings

INTERVAL_MS = 50
ORIGIN = "https://blog.example"


def _voucher(database_url: str, data_dir: Path, kek: str) -> str:
    env = server_env(database_url, data_dir, kek, INTERVAL_MS)
    done = subprocess.run(
        [sys.executable, "-m", "trickle.cli", "vouchers", "create", "--amount", "5.00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def _scenario(server: ServerProcess, secrets_used: list[str], voucher: str) -> None:
    reader_password = "reader pass " + secrets.token_hex(8)
    creator_password = "creator pass " + secrets.token_hex(8)
    wrong_password = "wrong pass " + secrets.token_hex(8)
    secrets_used += [reader_password, creator_password, wrong_password, voucher]
    with httpx.Client(base_url=server.http_url, timeout=30) as http:
        signed_up = http.post(
            "/api/v1/accounts", json={"email": "ann@example.com", "password": reader_password}
        )
        assert signed_up.status_code == 201, signed_up.text
        secrets_used += [signed_up.json()["token"], signed_up.json()["csrf_token"]]
        wrong = http.post(
            "/api/v1/sessions", json={"email": "ann@example.com", "password": wrong_password}
        )
        assert wrong.status_code == 401
        logged_in = http.post(
            "/api/v1/sessions", json={"email": "ann@example.com", "password": reader_password}
        )
        assert logged_in.status_code == 201
        token = logged_in.json()["token"]
        secrets_used += [token, logged_in.json()["csrf_token"]]
        reader = {"Authorization": f"Bearer {token}"}
        redeemed = http.post(
            "/api/v1/vouchers/redeem",
            json={"code": voucher},
            headers={**reader, "Idempotency-Key": "redeem-0001"},
        )
        assert redeemed.status_code == 200, redeemed.text

        creator = http.post(
            "/api/v1/accounts", json={"email": "cal@example.com", "password": creator_password}
        )
        assert creator.status_code == 201
        secrets_used += [creator.json()["token"], creator.json()["csrf_token"]]
        created = http.post(
            "/api/v1/payees",
            json={"name": "calsblog"},
            headers={"Authorization": f"Bearer {creator.json()['token']}"},
        )
        assert created.status_code == 201, created.text
        pointer = created.json()["payment_pointer"]

        receipts = asyncio.run(_stream(server, token, pointer))
        assert receipts
        secrets_used += receipts

        paid = http.post(
            "/api/v1/payments",
            json={
                "payment_pointer": pointer,
                "origin": ORIGIN,
                "amount_minor": "250000000",
                "currency": "USD",
                "order_ref": "article-42",
            },
            headers={**reader, "Idempotency-Key": "pay-0000001"},
        )
        assert paid.status_code == 201, paid.text
        secrets_used.append(paid.json()["receipt"])
        # A request with the token in its query string (a client's mistake): never logged.
        http.get(f"/api/v1/me?token={token}")
        assert http.delete("/api/v1/sessions/current", headers=reader).status_code == 200
        assert http.get("/api/v1/me", headers=reader).status_code == 401


async def _stream(server: ServerProcess, token: str, pointer: str) -> list[str]:
    client = StreamClient(server.ws_url, token, interval_ms=INTERVAL_MS)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run([("s1", pointer), ("s2", pointer)], stop))
    try:
        assert await wait_for(lambda: client.receipts >= 10, 30), client.errors
        await client.stop_streams()
        assert await wait_for(lambda: all(s.stopped for s in client.streams.values()), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return [token for log in client.streams.values() for token in log.tokens]


WINDOW = 16  # no 16 characters in a row of any secret may appear in the logs


def _secret_windows(secret: str) -> set[str]:
    """Every run of ``WINDOW`` characters of a secret; of a compact JWS (a receipt), of its
    payload and signature (its header is the same for every receipt, and public)."""
    parts = secret.split(".")[1:] if secret.count(".") == 2 else [secret]
    return {part[i : i + WINDOW] for part in parts for i in range(len(part) - WINDOW + 1)}


def test_a_whole_run_logs_json_lines_with_ids_and_no_secret(
    database_url: str, tmp_path: Path
) -> None:
    kek = new_kek()
    metrics_token = secrets.token_hex(32)
    voucher = _voucher(database_url, tmp_path / "cli", kek)
    env = server_env(
        database_url,
        tmp_path / "data",
        kek,
        INTERVAL_MS,
        log_level="debug",
        log_format="json",
        metrics_token=metrics_token,
    )
    server = ServerProcess(env, tmp_path / "logs")
    server.start()
    used: list[str] = [kek, metrics_token]
    try:
        _scenario(server, used, voucher)
    finally:
        server.stop()
    text = server.log_path.read_text()

    in_logs = {text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)}
    for secret in used:
        leaked = _secret_windows(secret) & in_logs
        assert not leaked, f"part of a secret is in the logs: {sorted(leaked)[:3]}"

    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"log line {number} is not JSON: {line[:200]}")
    requests = [e for e in events if e.get("message") == "request"]
    paths = {(e["method"], e["path"], e["status"]) for e in requests}
    assert ("POST", "/api/v1/accounts", 201) in paths
    assert ("POST", "/api/v1/sessions", 401) in paths
    assert ("POST", "/api/v1/payments", 201) in paths
    assert ("DELETE", "/api/v1/sessions/current", 200) in paths
    assert all(len(e["request_id"]) >= 8 for e in requests)
    assert len({e["request_id"] for e in requests}) == len(requests)  # one id per request
    connections = [e for e in events if e.get("message") == "connection closed"]
    assert connections and connections[0]["path"] == "/api/v1/stream"
    opened = [e for e in events if e.get("message") == "connection opened"]
    assert {e["request_id"] for e in opened} == {e["request_id"] for e in connections}
    assert any(e["message"] == "trickle serving" for e in events)
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in events)


def test_the_formatters_redact_what_an_exception_might_carry() -> None:
    jws = "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJodHRwczovL3gifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
    message = (
        f"failed for trk_{'a' * 43} with Authorization: Bearer abc.def and {jws} at "
        "postgresql+psycopg://trickle:hunter2@db/trickle, key sk_live_abcdefghijkl"
    )
    record = logging.LogRecord("trickle", logging.ERROR, __file__, 1, message, None, None)
    record.request_id = "req12345"
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        line = formatter.format(record)
        for secret in ("a" * 43, "abc.def", jws, "hunter2", "abcdefghijkl"):
            assert secret not in line, (type(formatter).__name__, line)
    event: dict[str, Any] = json.loads(logs.JsonFormatter().format(record))
    assert event["request_id"] == "req12345"
    assert event["message"].startswith("failed for trk_[token] with Authorization: Bearer [token]")


def test_a_proxys_request_id_is_taken_and_answered(client: Any) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "nginx-4f9a2b7c"})
    assert response.headers["x-request-id"] == "nginx-4f9a2b7c"
    odd = client.get("/healthz", headers={"X-Request-Id": "no spaces allowed here"})
    assert odd.headers["x-request-id"] != "no spaces allowed here"
    assert len(odd.headers["x-request-id"]) == 16


def test_the_log_config_sends_everything_to_one_json_handler(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path, public_url=ISSUER).validate()
    config = logs.config(settings)
    assert config["root"]["handlers"] == ["stderr"]
    assert config["handlers"]["stderr"]["formatter"] == "json"
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"
