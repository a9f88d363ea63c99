from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import datetime as dt
import logging
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from trickle import keys
from trickle.db import transaction
from trickle.errors import ConfigError, KeyStoreError
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
RECEIPTS_MD = Path(__file__).resolve().parents[2] / "docs" / "receipts.md"


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def keyed(settings: Settings, clock: Clock) -> Iterator[Runtime]:
    """A runtime whose first key was made at T0, on the test's clock."""
    runtime = bootstrap(settings, clock=clock)
    yield runtime
    runtime.close()


def _kids(runtime: Runtime) -> list[str]:
    return [jwk["kid"] for jwk in runtime.key_ring.current.jwks["keys"]]


def _signer(runtime: Runtime) -> str:
    return runtime.key_ring.current.active.kid


def _rotate(runtime: Runtime) -> keys.Rotation:
    with transaction(runtime.sessions) as session:
        return keys.rotate(session, runtime.kek, runtime.settings, runtime.clock())


def _infos(runtime: Runtime) -> dict[str, keys.KeyInfo]:
    with transaction(runtime.sessions) as session:
        return {i.kid: i for i in keys.list_keys(session, runtime.settings, runtime.clock())}


def _states(runtime: Runtime) -> dict[str, str]:
    return {kid: info.state for kid, info in _infos(runtime).items()}


def test_the_first_key_of_a_database_signs_at_once(keyed: Runtime) -> None:
    (info,) = _infos(keyed).values()
    assert (info.state, info.created_at, info.activates_at, info.retired_at) == (
        "active",
        T0,
        T0,
        None,
    )
    assert _signer(keyed) == info.kid
    assert _kids(keyed) == [info.kid]


def test_restart_keeps_the_same_key(settings: Settings, runtime: Runtime) -> None:
    again = bootstrap(settings)
    try:
        assert again.key_ring.current.active.kid == runtime.key_ring.current.active.kid
        assert again.key_ring.current.jwks == runtime.key_ring.current.jwks
    finally:
        again.close()


def test_the_activation_delay_outlasts_every_cached_copy_of_the_key_set(
    settings: Settings,
) -> None:
    delay = keys.activation_delay(settings)
    assert delay == dt.timedelta(seconds=30 + 300 + 60)  # reload + max-age + leeway
    assert keys.jwks_cache_control(settings) == "public, max-age=300"


def test_a_rotated_in_key_is_published_first_and_signs_after_the_delay(
    keyed: Runtime, clock: Clock
) -> None:
    old = _signer(keyed)
    rotation = _rotate(keyed)
    new = rotation.kid
    assert rotation.created and new != old
    assert rotation.activates_at == T0 + keys.activation_delay(keyed.settings)

    keyed.reload_keys()
    assert _signer(keyed) == old  # published, not signing
    assert set(_kids(keyed)) == {old, new}
    assert _states(keyed) == {old: "active", new: "next"}

    clock.now = rotation.activates_at - dt.timedelta(microseconds=1)
    keyed.reload_keys()
    assert _signer(keyed) == old

    clock.now = rotation.activates_at
    keyed.reload_keys()
    assert _signer(keyed) == new
    assert set(_kids(keyed)) == {old, new}
    infos = _infos(keyed)
    window = keys.publication_window(keyed.settings)
    assert (infos[old].state, infos[old].retired_at) == ("retiring", rotation.activates_at)
    assert infos[old].published_until == rotation.activates_at + window
    assert (infos[new].state, infos[new].activates_at) == ("active", rotation.activates_at)

    clock.now = rotation.activates_at + window
    keyed.reload_keys()
    assert _states(keyed) == {old: "expired", new: "active"}
    assert _kids(keyed) == [new]


def test_rotating_while_a_key_waits_makes_no_second_key(keyed: Runtime, clock: Clock) -> None:
    first = _rotate(keyed)
    clock.now += dt.timedelta(seconds=10)
    again = _rotate(keyed)
    assert again == keys.Rotation(first.kid, first.activates_at, created=False)
    assert sorted(_states(keyed).values()) == ["active", "next"]

    clock.now = first.activates_at  # it signs now: the next rotation makes a new key
    later = _rotate(keyed)
    assert later.created and later.kid != first.kid
    assert later.activates_at == clock.now + keys.activation_delay(keyed.settings)
    assert sorted(_states(keyed).values()) == ["active", "next", "retiring"]


def test_racing_rotations_make_one_next_key(settings: Settings, clock: Clock) -> None:
    runtimes = [bootstrap(settings, clock=clock) for _ in range(4)]
    barrier = threading.Barrier(len(runtimes))

    def rotate(runtime: Runtime) -> keys.Rotation:
        barrier.wait(timeout=30)
        return _rotate(runtime)

    try:
        with concurrent.futures.ThreadPoolExecutor(len(runtimes)) as pool:
            rotations = list(pool.map(rotate, runtimes))
        assert len({r.kid for r in rotations}) == 1
        assert sorted(r.created for r in rotations) == [False, False, False, True]
        assert sorted(_states(runtimes[0]).values()) == ["active", "next"]
    finally:
        for runtime in runtimes:
            runtime.close()


def test_a_site_that_refetches_as_cache_control_allows_always_has_the_signing_key(
    settings: Settings, clock: Clock
) -> None:
    """Second by second through a rotation: two service processes reload their keys on their
    own schedules; sites fetched the set from one of them at every second from just before the
    rotation until the last process published the new key, and fetch it again whenever their
    copy is max-age old. Every receipt signed meanwhile has its key at every site."""
    processes = [bootstrap(settings, clock=clock) for _ in range(2)]
    try:
        reload_s, max_age_s = settings.key_reload_interval_s, settings.jwks_max_age_s
        sites: list[tuple[set[str], int] | None] = [None] * (reload_s + 2)
        sites[0] = (set(_kids(processes[1])), -1)  # fetched just before the rotation
        rotation = _rotate(processes[0])
        end = rotation.activates_at + keys.publication_window(settings) + dt.timedelta(seconds=1)
        second = 0
        while clock.now < end:
            clock.now = T0 + dt.timedelta(seconds=second)
            for index, process in enumerate(processes):
                if (second + 1 + index * 13) % reload_s == 0:  # out of step with each other
                    process.reload_keys()
            for index, site in enumerate(sites):
                first_fetch = site is None and second == index - 1
                if first_fetch or (site is not None and second - site[1] >= max_age_s):
                    sites[index] = (set(_kids(processes[(index + second) % 2])), second)
            for process in processes:
                for site in sites:
                    assert site is None or _signer(process) in site[0], (second, site)
            second += 1
        assert {_signer(process) for process in processes} == {rotation.kid}
    finally:
        for process in processes:
            process.close()


def test_the_key_set_is_served_with_the_cache_control_receipts_md_states(
    client: TestClient,
) -> None:
    section = RECEIPTS_MD.read_text().split("## 2.")[0]
    documented = re.findall(r"`Cache-Control: ([^`]+)`", section)
    response = client.get("/.well-known/jwks.json")
    assert documented == [response.headers["cache-control"]]
    assert "stale" not in response.headers["cache-control"]


def test_publication_window_outlives_every_receipt_the_key_signed(settings: Settings) -> None:
    window = keys.publication_window(settings)
    # a process that has not reloaded yet may still sign; its receipt then lives receipt_ttl_s
    assert window.total_seconds() >= settings.key_reload_interval_s + settings.receipt_ttl_s + 60


def test_processes_sharing_a_database_share_the_key_set(settings: Settings, clock: Clock) -> None:
    first = bootstrap(settings, clock=clock)
    second = bootstrap(settings, clock=clock)
    try:
        assert first.key_ring.current.active.kid == second.key_ring.current.active.kid
        rotation = _rotate(first)
        second.reload_keys()
        assert rotation.kid in _kids(second)
        clock.now = rotation.activates_at
        second.reload_keys()
        assert second.key_ring.current.active.kid == rotation.kid
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
    settings: Settings, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rt = bootstrap(settings, clock=clock)
    try:
        clock.now = _rotate(rt).activates_at
        rt.reload_keys()
        seed = rt.key_ring.current.active.secret_key[:32]
    finally:
        rt.close()
    for form in (seed.hex(), base64.b64encode(seed).decode(), keys.b64url(seed)):
        assert form not in caplog.text
    assert settings.key_encryption_key not in caplog.text
