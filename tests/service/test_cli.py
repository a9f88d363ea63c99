"""The ``trickle`` command as a user runs it: a real process, a real uvicorn, a real socket."""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from trickle import cli, tokens
from trickle.cli import main
from trickle.errors import KeyStoreError
from trickle.runtime import bootstrap
from trickle.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str, deadline_s: float = 20.0) -> object:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_trickle_serve_publishes_the_jwks_with_no_configuration(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "trickle.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        jwks = _get_json(f"http://127.0.0.1:{port}/.well-known/jwks.json")
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode()
    assert isinstance(jwks, dict)
    (jwk,) = jwks["keys"]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert (tmp_path / "data" / "trickle.db").exists()
    assert (tmp_path / "data" / "key-encryption.key").stat().st_mode & 0o077 == 0
    key_file = (tmp_path / "data" / "key-encryption.key").read_text().strip()
    assert key_file not in output


def test_keys_rotate_then_list(
    database_url: str,
    tmp_path: Path,
    kek_b64: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRICKLE_KEY_ENCRYPTION_KEY", kek_b64)
    common = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    assert main(["keys", "rotate", *common]) == 0
    made = capsys.readouterr().out
    assert re.search(r"new key k\S+: published now, signs from \S+Z \(in 390 s\)", made), made
    assert main(["keys", "rotate", *common]) == 0  # a key is waiting already: no second one
    again = capsys.readouterr().out
    assert "is already waiting" in again and "no new key made" in again
    assert main(["keys", "list", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " ".join(lines[0].split()) == "kid state signs from signs until published until"
    rows = [line.split() for line in lines[1:]]
    assert [row[1] for row in rows] == ["active", "next"]
    (active, waiting) = rows
    assert active[3] == waiting[2]  # the active key signs until the next one signs
    assert waiting[3:] == ["-", "-"]


def test_keys_reseal_replaces_the_key_encryption_key(
    database_url: str,
    tmp_path: Path,
    kek_b64: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRICKLE_KEY_ENCRYPTION_KEY", kek_b64)
    common = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    assert main(["keys", "rotate", *common]) == 0  # two keys: the first and a waiting one
    settings = Settings(
        env="test", data_dir=tmp_path, database_url=database_url, key_encryption_key=kek_b64
    )
    before = bootstrap(settings)
    jwks = before.key_ring.current.jwks
    before.close()
    new_kek = base64.b64encode(secrets.token_bytes(32)).decode()
    new_file = tmp_path / "new.kek"
    new_file.write_text(new_kek + "\n")
    new_file.chmod(0o644)
    assert main(["keys", "reseal", "--new-key-file", str(new_file), *common]) == 2  # readable
    new_file.chmod(0o600)
    capsys.readouterr()
    assert main(["keys", "reseal", "--new-key-file", str(new_file), *common]) == 0
    out = capsys.readouterr().out
    assert "2 signing keys and 2 token keys resealed" in out and new_kek not in out
    after = bootstrap(dataclasses.replace(settings, key_encryption_key=new_kek))
    assert after.key_ring.current.jwks == jwks  # the same keys, sealed anew
    after.close()
    with pytest.raises(KeyStoreError):  # the old key-encryption key opens nothing any more
        bootstrap(settings)
    # Run again with the old key in the settings: nothing opens, nothing changes.
    assert main(["keys", "reseal", "--new-key-file", str(new_file), *common]) == 2


def test_tokens_keys_lists_the_keys_the_service_publishes(
    database_url: str,
    tmp_path: Path,
    kek_b64: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRICKLE_KEY_ENCRYPTION_KEY", kek_b64)
    common = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    assert main(["tokens", "keys", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " ".join(lines[0].split()) == "epoch state value issues from pays until public key"
    rows = [line.split() for line in lines[1:]]
    assert [row[1] for row in rows] == ["issuing", "next"]
    assert {row[2] for row in rows} == {"0.001000000"}
    assert main(["tokens", "keys", "--json", *common]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [key["public_key"] for key in document["keys"]] == [rows[1][-1], rows[0][-1]]
    runtime = bootstrap(
        Settings(
            env="test", database_url=database_url, data_dir=tmp_path, key_encryption_key=kek_b64
        )
    )
    try:
        assert tokens.key_document(runtime.token_keys.current, runtime.clock()) == document
    finally:
        runtime.close()


def test_db_commands(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    assert main(["db", "downgrade", "base", *common]) == 0
    assert capsys.readouterr().out.strip().endswith("revision: base")
    assert main(["db", "upgrade", *common]) == 0
    assert "revision: base" not in capsys.readouterr().out


def test_a_bad_setting_is_a_clear_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRICKLE_PORT", "eighty")
    assert main(["db", "current"]) == 2
    err = capsys.readouterr().err
    assert "TRICKLE_PORT must be an integer" in err and "(config_error)" in err
    assert "Traceback" not in err


def test_demo_seeds_a_funded_reader_and_a_payee_once(
    database_url: str,
    tmp_path: Path,
    kek_b64: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRICKLE_KEY_ENCRYPTION_KEY", kek_b64)
    common = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    assert main(["demo", "--no-serve", *common]) == 0
    assert main(["demo", "--no-serve", *common]) == 0  # idempotent: no second top-up
    out = capsys.readouterr().out
    assert out.count("reader@demo.trickle.test / trickle-demo-password (5.00 USD)") == 2
    assert 'href="http://127.0.0.1:8420/p/demo"' in out
    assert main(["ledger", "check", *common]) == 0
    assert "1 transfers" in capsys.readouterr().out


def test_trickle_serve_with_workers_shares_one_database_and_key_set(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "trickle.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        key_sets = [_get_json(f"http://127.0.0.1:{port}/.well-known/jwks.json") for _ in range(20)]
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert output.count("Started server process") == 2, output
    assert all(key_set == key_sets[0] for key_set in key_sets)  # whichever worker answered
    assert len(key_sets[0]["keys"]) == 1  # type: ignore[index]
    assert list((tmp_path / "data").glob("*.db")) == [tmp_path / "data" / "trickle.db"]


_WITHOUT_THE_LIBRARIES = """
import importlib, pkgutil, sys
sys.modules["trickle_verifier"] = None  # any import of them now fails
sys.modules["trickle_publisher"] = None
import trickle
from trickle.cli import main, start_demo_publisher
from trickle.settings import load_settings
for module in pkgutil.walk_packages(trickle.__path__, "trickle."):
    if not module.name.startswith("trickle.migrations."):  # Alembic runs those
        importlib.import_module(module.name)
data_dir = sys.argv[1]
assert main(["demo", "--no-serve", "--data-dir", data_dir]) == 0
settings = load_settings({}, data_dir=data_dir)
assert start_demo_publisher(settings, "http://127.0.0.1:8420/p/demo", 8421) is None
"""


def test_the_service_needs_neither_the_verifier_nor_the_publisher(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _WITHOUT_THE_LIBRARIES, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "trickle demo: reader  reader@demo.trickle.test" in result.stdout
    assert (
        "trickle demo: the demo publisher site is not served: trickle_publisher is not "
        "installed. From a checkout, `make setup`"
    ) in result.stderr
    assert "--publisher-port 0 leaves it out" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """The tests' own garbage collector schedule, back after a test that sets a serving one."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_a_serving_process_runs_with_the_serving_collector_schedule(
    database_url: str, tmp_path: Path, kek_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When uvicorn starts, what start-up made is frozen and young collections are rare (Python's
    default schedule stopped the event loop for ~200 ms every few seconds at 5,000 streams)."""
    monkeypatch.setenv("TRICKLE_KEY_ENCRYPTION_KEY", kek_b64)
    seen: list[tuple[tuple[int, int, int], int]] = []

    def run(app: object, **options: object) -> None:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))

    monkeypatch.setattr("uvicorn.run", run)
    assert gc.get_threshold()[0] < cli.YOUNG_COLLECTION_EVERY  # the default, as tests run
    common = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    assert main(["serve", "--port", str(_free_port()), *common]) == 0
    ((threshold, frozen),) = seen
    assert threshold[0] == cli.YOUNG_COLLECTION_EVERY
    assert frozen > 10_000  # the modules, the runtime, the app
