from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import stat
from pathlib import Path

import pytest

from trickle import keys
from trickle.db import transaction
from trickle.errors import ConfigError, KeyStoreError
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _kids(runtime: Runtime) -> list[str]:
    return [jwk["kid"] for jwk in runtime.key_ring.current.jwks["keys"]]


def test_first_start_creates_one_active_key(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        infos = keys.list_keys(session, runtime.settings, T0)
    assert [info.state for info in infos] == ["active"]
    assert _kids(runtime) == [runtime.key_ring.current.active.kid]


def test_restart_keeps_the_same_key(settings: Settings, runtime: Runtime) -> None:
    again = bootstrap(settings)
    try:
        assert again.key_ring.current.active.kid == runtime.key_ring.current.active.kid
        assert again.key_ring.current.jwks == runtime.key_ring.current.jwks
    finally:
        again.close()


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(
    runtime: Runtime,
) -> None:
    old_kid = runtime.key_ring.current.active.kid
    now = dt.datetime.now(dt.UTC)
    with transaction(runtime.sessions) as session:
        new_kid = keys.rotate(session, runtime.kek, now)
    runtime.reload_keys()
    assert runtime.key_ring.current.active.kid == new_kid != old_kid
    assert set(_kids(runtime)) == {old_kid, new_kid}

    window = keys.publication_window(runtime.settings)
    with transaction(runtime.sessions) as session:
        states = {i.kid: i.state for i in keys.list_keys(session, runtime.settings, now)}
        later = {i.kid: i.state for i in keys.list_keys(session, runtime.settings, now + window)}
        ring_later = keys.load_key_ring(session, runtime.kek, runtime.settings, now + window)
    assert states == {old_kid: "retiring", new_kid: "active"}
    assert later == {old_kid: "expired", new_kid: "active"}
    assert [jwk["kid"] for jwk in ring_later.jwks["keys"]] == [new_kid]


def test_publication_window_outlives_every_receipt_the_key_signed(settings: Settings) -> None:
    window = keys.publication_window(settings)
    # a process that has not reloaded yet may still sign; its receipt then lives receipt_ttl_s
    assert window.total_seconds() >= settings.key_reload_interval_s + settings.receipt_ttl_s + 60


def test_processes_sharing_a_database_share_the_key_set(settings: Settings) -> None:
    first = bootstrap(settings)
    second = bootstrap(settings)
    try:
        assert first.key_ring.current.active.kid == second.key_ring.current.active.kid
        with transaction(first.sessions) as session:
            new_kid = keys.rotate(session, first.kek, dt.datetime.now(dt.UTC))
        second.reload_keys()
        assert second.key_ring.current.active.kid == new_kid
    finally:
        first.close()
        second.close()


def test_a_wrong_key_encryption_key_cannot_unseal(settings: Settings, runtime: Runtime) -> None:
    other = base64.b64encode(b"\x01" * 32).decode()
    with pytest.raises(KeyStoreError, match="cannot be unsealed"):
        bootstrap(dataclasses.replace(settings, key_encryption_key=other))


def test_development_kek_file_is_created_0600(tmp_path: Path) -> None:
    settings = Settings(env="development", data_dir=tmp_path / "d")
    kek = keys.load_kek(settings)
    path = tmp_path / "d" / keys.KEK_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load_kek(settings).open(kek.seal(b"same")) == b"same"


def test_a_world_readable_kek_file_is_refused(tmp_path: Path) -> None:
    settings = Settings(env="development", data_dir=tmp_path)
    keys.load_kek(settings)
    (tmp_path / keys.KEK_FILE_NAME).chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        keys.load_kek(settings)


def test_secrets_never_print_themselves(runtime: Runtime) -> None:
    pair = runtime.key_ring.current.active
    assert repr(pair) == f"SigningKeyPair(kid={pair.kid!r})"
    assert repr(runtime.kek) == "KeyEncryptionKey(<hidden>)"


def test_private_keys_never_reach_the_logs(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rt = bootstrap(settings)
    try:
        with transaction(rt.sessions) as session:
            keys.rotate(session, rt.kek, dt.datetime.now(dt.UTC))
        rt.reload_keys()
        seed = rt.key_ring.current.active.secret_key[:32]
    finally:
        rt.close()
    for form in (seed.hex(), base64.b64encode(seed).decode(), keys.b64url(seed)):
        assert form not in caplog.text
    assert settings.key_encryption_key not in caplog.text
