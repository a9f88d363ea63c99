"""Backups as docs/deploy.md tells an operator to take them: ``pg_dump`` of a PostgreSQL
database while a node streams into it, ``pg_restore`` into a fresh database, then ``trickle
ledger check`` passes on the restored one and a service started on it (with the same
key-encryption key) publishes the keys that verify every receipt the old one signed."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.service.stream_client import (
    ServerProcess,
    StreamClient,
    ledger_check,
    new_kek,
    read_ledger,
    seed,
    server_env,
    verify_all,
    wait_for,
)

pytestmark = pytest.mark.postgres
INTERVAL_MS = 50


@pytest.fixture
def two_databases(postgres_admin_url: str) -> Iterator[tuple[str, str]]:
    """A source and an empty target database, named after this branch (shared server)."""
    suffix = secrets.token_hex(4)
    names = [f"trickle_i14_ops_source_{suffix}", f"trickle_i14_ops_restored_{suffix}"]
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin_url)
    try:
        yield (
            url.set(database=names[0]).render_as_string(hide_password=False),
            url.set(database=names[1]).render_as_string(hide_password=False),
        )
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _stream_and_dump(server: ServerProcess, token: str, payee: str, dump: Path, url: str):  # type: ignore[no-untyped-def]
    client = StreamClient(server.ws_url, token, interval_ms=INTERVAL_MS)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run([(f"s{i}", payee) for i in range(4)], stop))
    try:
        assert await wait_for(lambda: client.receipts >= 40, 30), client.errors
        # The dump is taken while the node streams: pg_dump reads one snapshot.
        started = time.monotonic()
        done = await asyncio.to_thread(
            subprocess.run,
            ["pg_dump", "--format=custom", f"--file={dump}", libpq(url)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 60
        received_at_dump = client.receipts
        assert await wait_for(lambda: client.receipts >= received_at_dump + 20, 30)
        await client.stop_streams()
        assert await wait_for(lambda: all(s.stopped for s in client.streams.values()), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return client


def test_a_dump_taken_while_streaming_restores_into_a_checked_ledger_and_verifying_keys(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    source, restored = two_databases
    kek = new_kek()
    seeded = seed(source, tmp_path / "seed", kek, readers=1, funded_minor=10**12)
    server = ServerProcess(server_env(source, tmp_path / "data", kek, INTERVAL_MS), tmp_path / "a")
    dump = tmp_path / "trickle.dump"
    server.start()
    try:
        client = asyncio.run(
            _stream_and_dump(server, seeded.tokens[0], seeded.payees[0], dump, source)
        )
    finally:
        server.stop()
    assert dump.stat().st_size > 0

    restore = subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={libpq(restored)}", str(dump)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert restore.returncode == 0, restore.stderr

    checked = ledger_check(restored)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ledger check passed" in checked.stdout
    # The dump holds some of the stream's transfers (those committed before its snapshot).
    before, after = read_ledger(restored), read_ledger(source)
    moved_before = sum(before.credits(sid) for sid in before.stream)
    assert 0 < moved_before < sum(after.credits(sid) for sid in after.stream)

    # A service on the restored database, with the key-encryption key from its own backup,
    # publishes the keys of every receipt the old service signed, before and after the dump.
    node = ServerProcess(server_env(restored, tmp_path / "data2", kek, INTERVAL_MS), tmp_path / "b")
    node.start()
    try:
        checked_receipts = verify_all(node.jwks(), [client])
    finally:
        node.stop()
    assert checked_receipts == client.receipts > 0


def test_without_the_key_encryption_key_a_restored_database_cannot_sign(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    """Why docs/deploy.md says to back the key-encryption key up apart from the dumps: a
    restored database with another one does not start (key_store_error), it never signs."""
    source, _ = two_databases
    seed(source, tmp_path / "seed", new_kek(), readers=1, funded_minor=1)
    done = subprocess.run(
        [sys.executable, "-m", "trickle.cli", "keys", "list"],
        env={**server_env(source, tmp_path / "data", new_kek(), INTERVAL_MS)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0  # listing needs no private key
    node = ServerProcess(
        server_env(source, tmp_path / "data", new_kek(), INTERVAL_MS), tmp_path / "c"
    )
    with pytest.raises(AssertionError, match=r"key_store_error|KeyStoreError|does not open"):
        node.start(timeout_s=60)
