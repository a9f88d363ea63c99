"""Fixtures of the end-to-end tests (the harness itself is in harness.py).

Chromium comes from ``TRICKLE_TEST_CHROMIUM`` (default ``/usr/bin/chromium``). Without it these
tests skip locally and FAIL in CI (``CI`` set): CI must run them. Screenshots of the popup go to
``test-output/e2e/<test>/`` (ignored by git).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from tests.e2e.harness import (
    EXTENSION_DIR,
    OUTPUT_ROOT,
    DemoPublisher,
    ExtensionBrowser,
    Payee,
    PublisherFactory,
    Reader,
    TestSite,
    TrickleService,
    launch_browser,
    launch_plain_browser,
    make_payee,
    make_reader,
    start_service,
)
from tests.prerequisites import unavailable

CHROMIUM = os.environ.get("TRICKLE_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        unavailable("Chromium", f"no executable at {CHROMIUM} (set TRICKLE_TEST_CHROMIUM)")
    assert (EXTENSION_DIR / "manifest.json").is_file(), f"no extension at {EXTENSION_DIR}"
    return str(path)


# Package scope, not session: Playwright's sync API runs an event loop in the main thread for as
# long as it lives, and the rest of the suite (asyncio.run in the streaming tests) needs none.
@pytest.fixture(scope="package")
def playwright_driver(chromium_executable: str) -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def service(
    chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrickleService]:
    """The service every test shares (each test makes its own reader and payee). At the end,
    the ledger's invariants must hold and the service must have logged no traceback."""
    running = start_service(tmp_path_factory.mktemp("trickle-service"))
    yield running
    running.stop()
    check = running.cli("ledger", "check")
    out, err = check.communicate(timeout=60)
    assert check.returncode == 0, f"trickle ledger check failed:\n{out}\n{err}"
    assert "Traceback" not in running.log(), running.log()


@pytest.fixture(scope="session")
def creator_token(service: TrickleService) -> str:
    return service.sign_up(f"creator-{secrets.token_hex(5)}@e2e.trickle.test")


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
def browser(
    playwright_driver: Playwright,
    chromium_executable: str,
    service: TrickleService,
    output_dir: Path,
) -> Iterator[ExtensionBrowser]:
    """A fresh Chromium profile with the extension loaded and pointed at the test service."""
    yield from launch_browser(playwright_driver, chromium_executable, service, output_dir)


@pytest.fixture
def private_browser(
    playwright_driver: Playwright,
    chromium_executable: str,
    service: TrickleService,
    output_dir: Path,
) -> Iterator[ExtensionBrowser]:
    """As ``browser``, with private payments on (what a new install has)."""
    yield from launch_browser(
        playwright_driver, chromium_executable, service, output_dir, private_payments=True
    )


@pytest.fixture(scope="package")
def plain_browser(playwright_driver: Playwright, chromium_executable: str) -> Iterator[Browser]:
    """A Chromium without the extension (shared; each test opens its own contexts)."""
    yield from launch_plain_browser(playwright_driver, chromium_executable)


@pytest.fixture
def plain_context(plain_browser: Browser) -> Iterator[BrowserContext]:
    """A fresh cookie jar in the Chromium without the extension."""
    context = plain_browser.new_context()
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def start_publisher(
    service: TrickleService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PublisherFactory]:
    """Starts the demo publisher for a payment pointer; stopped after the test."""
    started: list[DemoPublisher] = []

    def start(pointer: str) -> DemoPublisher:
        publisher = DemoPublisher(service, pointer, tmp_path_factory.mktemp("publisher"))
        started.append(publisher)
        publisher.start()
        return publisher

    yield start
    for publisher in started:
        publisher.stop()
        assert "Traceback" not in publisher.log(), publisher.log()


@pytest.fixture(scope="module")
def publisher_payee(service: TrickleService, creator_token: str) -> Payee:
    """The payee of the module's demo publisher."""
    return make_payee(service, creator_token)


@pytest.fixture(scope="module")
def publisher(
    service: TrickleService, publisher_payee: Payee, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoPublisher]:
    """The demo publisher the tests of one module share, paying ``publisher_payee``."""
    running = DemoPublisher(service, publisher_payee.pointer, tmp_path_factory.mktemp("publisher"))
    running.start()
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()
