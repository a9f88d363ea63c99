"""Fixtures of the Firefox tests (the harness is in harness.py).

Firefox comes from ``TRICKLE_TEST_FIREFOX`` (default: Debian's ``firefox-esr``), the driver from
the ``marionette-driver`` package. Without either these tests skip locally and FAIL in CI (``CI``
set): CI must run them (``.ci/run`` installs ``firefox-esr``). Screenshots and Firefox's log go to
``test-output/firefox/<test>/`` (ignored by git).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    EXTENSION_DIR,
    REPO,
    DemoPublisher,
    Payee,
    Reader,
    TestSite,
    TrickleService,
    make_payee,
    make_reader,
    start_service,
)
from tests.prerequisites import unavailable

FIREFOX = os.environ.get("TRICKLE_TEST_FIREFOX", "firefox-esr")
OUTPUT_ROOT = REPO / "test-output" / "firefox"


@pytest.fixture(scope="session")
def firefox_executable() -> str:
    path = shutil.which(FIREFOX) or (FIREFOX if os.access(FIREFOX, os.X_OK) else None)
    if path is None:
        unavailable("Firefox ESR", f"no executable {FIREFOX} (apt-get install firefox-esr)")
    if importlib.util.find_spec("marionette_driver") is None:
        unavailable("marionette-driver", "the Python package is not installed (make setup)")
    assert (EXTENSION_DIR / "manifest.json").is_file(), f"no extension at {EXTENSION_DIR}"
    return str(path)


@pytest.fixture(scope="session")
def service(
    firefox_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrickleService]:
    """The service the Firefox tests share; at the end the ledger's invariants must hold and the
    service must have logged no traceback."""
    running = start_service(tmp_path_factory.mktemp("trickle-service-ff"))
    yield running
    running.stop()
    check = running.cli("ledger", "check")
    out, err = check.communicate(timeout=60)
    assert check.returncode == 0, f"trickle ledger check failed:\n{out}\n{err}"
    assert "Traceback" not in running.log(), running.log()


@pytest.fixture(scope="session")
def creator_token(service: TrickleService) -> str:
    return service.sign_up(f"creator-{secrets.token_hex(5)}@ff.trickle.test")


@pytest.fixture
def reader(service: TrickleService) -> Reader:
    return make_reader(service)


@pytest.fixture
def payee(service: TrickleService, creator_token: str) -> Payee:
    return make_payee(service, creator_token)


@pytest.fixture(scope="session")
def site() -> Iterator[TestSite]:
    served = TestSite()
    served.thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()
    served.thread.join(timeout=5)


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = OUTPUT_ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def firefox(firefox_executable: str, service: TrickleService, output_dir: Path) -> Iterator[object]:
    """A fresh Firefox profile with the extension installed and pointed at the test service."""
    from tests.firefox.harness import launch_firefox  # after the prerequisites are checked

    yield from launch_firefox(firefox_executable, service, output_dir)


@pytest.fixture
def publisher(
    service: TrickleService, payee: Payee, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoPublisher]:
    """The demo publisher, paying this test's payee."""
    running = DemoPublisher(service, payee.pointer, tmp_path_factory.mktemp("publisher-ff"))
    running.start()
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()
