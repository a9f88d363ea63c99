"""The end-to-end harness: a real ``trickle`` service in a subprocess (SQLite in a temp folder),
a small test site on another port, and the unpacked extension in a real headless Chromium
(launch options from ``/work/shared/BROWSER-TESTING.md``). The fixtures are in conftest.py.

The service runs with ``TRICKLE_STREAM_INTERVAL_MS=250`` and ``TRICKLE_FEE_BPS=0``: with no fee,
a payee's earnings are exactly the sum of the receipts' ``amt``. Earnings are held only
``CLAIM_HOLD_S`` (1 s) and the smallest claim is ``MIN_CLAIM_MINOR``, so that a creator can claim
what a test's reading earned.

The demo publisher (``publisher/trickle_publisher/``) runs as its own process (``DemoPublisher``),
exactly as ``trickle demo`` starts it (``start_publisher``), against the test service's issuer and
keys, for a payee of the test's choosing.
"""

from __future__ import annotations

import dataclasses
import html
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Worker, expect

from tests.processes import terminate, wait_until_answering
from trickle_verifier import KeySet, Receipt, Verifier

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "extension"
SITE_DIR = Path(__file__).resolve().parent / "site"
OUTPUT_ROOT = REPO / "test-output" / "e2e"

STREAM_INTERVAL_MS = 250
CLAIM_HOLD_S = 1
MIN_CLAIM_MINOR = 1_000  # 0.000001 USD at scale 9
PASSWORD = "e2e-reader-password"
FUNDING_MAJOR = "5.00"
FUNDING_MINOR = 5_000_000_000  # 5.00 at scale 9
SMALL_FUNDING_MAJOR = "0.000200000"  # a handful of 250 ms increments at the default rate
SMALL_FUNDING_MINOR = 200_000

# Collects every `monetization` event that reaches the window (so: one that bubbled from the
# <link>), in the page's own world, from before any page script runs.
EVENT_COLLECTOR = """
(() => {
  window.__trickleEvents = [];
  window.addEventListener("monetization", (event) => {
    const amountSent = event.amountSent || null;
    window.__trickleEvents.push({
      at: Date.now(),
      isMonetizationEvent:
        typeof MonetizationEvent === "function" && event instanceof MonetizationEvent,
      bubbles: event.bubbles,
      targetIsLink: event.target instanceof HTMLLinkElement,
      targetHref: event.target instanceof HTMLLinkElement ? event.target.href : null,
      currency: amountSent ? amountSent.currency : null,
      value: amountSent ? amountSent.value : null,
      paymentPointer: event.paymentPointer,
      incomingPayment: event.incomingPayment,
      receipt: event.receipt,
      amountMinor: event.amountMinor,
      scale: event.scale,
    });
  });
})();
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def format_minor(amount_minor: int, scale: int) -> str:
    """Integer minor units as a decimal string with exactly ``scale`` fraction digits."""
    if scale == 0:
        return str(amount_minor)
    whole, fraction = divmod(amount_minor, 10**scale)
    return f"{whole}.{fraction:0{scale}d}"


# --- the service --------------------------------------------------------------------------------


class ApiError(AssertionError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


class TrickleService:
    """A real ``trickle serve`` subprocess on SQLite in ``root``; restartable on the same port."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._vouchers: dict[str, list[str]] = {}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
        env.update(
            TRICKLE_ENV="development",
            TRICKLE_STREAM_INTERVAL_MS=str(STREAM_INTERVAL_MS),
            TRICKLE_FEE_BPS="0",
            TRICKLE_LOG_LEVEL="warning",
            TRICKLE_SIGNUP_MAX_PER_ADDRESS="10000",  # every test's readers sign up from 127.0.0.1
            TRICKLE_CLAIM_HOLD_S=str(CLAIM_HOLD_S),
            TRICKLE_MIN_CLAIM_MINOR=str(MIN_CLAIM_MINOR),
        )
        return env

    def cli(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "trickle.cli", *args, "--data-dir", str(self.data_dir)],
            env=self._env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def mint_vouchers(self, amount: str, count: int, *, wait: bool = True) -> subprocess.Popen[str]:
        """``trickle vouchers create``; with ``wait=False`` call ``collect_vouchers`` later."""
        process = self.cli("vouchers", "create", "--amount", amount, "--count", str(count))
        if wait:
            self.collect_vouchers(amount, process)
        return process

    def collect_vouchers(self, amount: str, process: subprocess.Popen[str]) -> None:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, f"trickle vouchers create failed:\n{err}"
        codes = [line.strip() for line in out.splitlines() if line.strip()]
        self._vouchers.setdefault(amount, []).extend(codes)

    def voucher(self, amount: str) -> str:
        pool = self._vouchers.get(amount)
        if not pool:
            self.mint_vouchers(amount, 4)
            pool = self._vouchers[amount]
        return pool.pop()

    @property
    def log_path(self) -> Path:
        return self.root / "service.log"

    def start(self) -> None:
        assert self.process is None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "trickle.cli",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                ],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        finally:
            log.close()
        self.starts += 1
        wait_until_answering(self.process, f"{self.url}/healthz", 30, self.log, "trickle serve")

    def kill(self) -> None:
        """Stop the process at once (SIGKILL): no goodbye to the clients, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- the public HTTP API --

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        idempotent: bool = False,
        expect_status: int | tuple[int, ...] = (200, 201),
    ) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        payload = json.loads(raw) if raw else None
        wanted = (expect_status,) if isinstance(expect_status, int) else expect_status
        if status not in wanted:
            raise ApiError(method, path, status, payload)
        return payload

    def sign_up(self, email: str, password: str = PASSWORD) -> str:
        created = self.api("POST", "/api/v1/accounts", {"email": email, "password": password})
        token: str = created["token"]
        return token

    def jwks(self) -> KeySet:
        with urllib.request.urlopen(f"{self.url}/.well-known/jwks.json", timeout=5) as response:
            return KeySet.from_jwks(response.read())


@dataclasses.dataclass
class Reader:
    email: str
    password: str
    token: str

    def balance_minor(self, service: TrickleService) -> int:
        return int(service.api("GET", "/api/v1/balance", token=self.token)["balance_minor"])

    def settings(self, service: TrickleService) -> dict[str, Any]:
        result: dict[str, Any] = service.api("GET", "/api/v1/me/settings", token=self.token)
        return result


@dataclasses.dataclass
class Payee:
    name: str
    pointer: str
    creator_token: str

    def earnings_minor(self, service: TrickleService) -> int:
        earnings = service.api("GET", "/api/v1/earnings", token=self.creator_token)
        (mine,) = [p for p in earnings["payees"] if p["payee"] == self.name]
        return int(mine["balance_minor"])


def make_reader(service: TrickleService, amount: str | None = FUNDING_MAJOR) -> Reader:
    email = f"reader-{secrets.token_hex(5)}@e2e.trickle.test"
    token = service.sign_up(email)
    if amount is not None:
        service.api(
            "POST",
            "/api/v1/vouchers/redeem",
            {"code": service.voucher(amount)},
            token=token,
            idempotent=True,
        )
    return Reader(email, PASSWORD, token)


def make_payee(service: TrickleService, creator_token: str) -> Payee:
    name = f"site-{secrets.token_hex(4)}"
    created = service.api("POST", "/api/v1/payees", {"name": name}, token=creator_token)
    assert created["payment_pointer"] == f"{service.url}/p/{name}"
    return Payee(name, created["payment_pointer"], creator_token)


FAST_RATE_PER_HOUR_MINOR = 3_600_000_000  # 3.60 USD an hour: 0.001 USD a second


def set_rate(service: TrickleService, reader: Reader, rate_per_hour_minor: int) -> None:
    """The reader's hourly rate (at the service; the extension streams at it)."""
    service.api(
        "PUT",
        "/api/v1/me/settings",
        {"rate_per_hour_minor": str(rate_per_hour_minor)},
        token=reader.token,
    )


def set_paused(service: TrickleService, reader: Reader, paused: bool) -> None:
    """The reader's global pause, at the service: streaming stops (one-time payments do not)."""
    service.api("PUT", "/api/v1/me/settings", {"paused": paused}, token=reader.token)


def start_service(root: Path) -> TrickleService:
    service = TrickleService(root)
    service.data_dir.mkdir(parents=True)
    # The first command creates and migrates the database; then the second mint and the server
    # start side by side (each Python start-up costs seconds on this machine).
    service.mint_vouchers(FUNDING_MAJOR, 16)
    small = service.mint_vouchers(SMALL_FUNDING_MAJOR, 4, wait=False)
    service.start()
    service.collect_vouchers(SMALL_FUNDING_MAJOR, small)
    return service


# --- the test site -------------------------------------------------------------------------------


class _SiteHandler(http.server.BaseHTTPRequestHandler):
    """Serves site/*.html, filling in the payment pointer and binding given in the query."""

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        name = parsed.path.lstrip("/") or "plain.html"
        if not re.fullmatch(r"[a-z-]+\.html", name) or not (SITE_DIR / name).is_file():
            self.send_error(404)
            return
        query = dict(urllib.parse.parse_qsl(parsed.query))
        pointer = query.get("pointer", "")
        binding = query.get("binding", "")
        text = (SITE_DIR / name).read_text()
        text = text.replace("__POINTER_JSON__", json.dumps(pointer).replace("<", "\\u003c"))
        text = text.replace("__BINDING_JSON__", json.dumps(binding).replace("<", "\\u003c"))
        text = text.replace("__POINTER__", html.escape(pointer))
        text = text.replace("__BINDING__", html.escape(binding))
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class TestSite:
    """A local site at ``origin`` (another port than the service's)."""

    __test__ = False

    def __init__(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SiteHandler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, page: str, pointer: str = "", binding: str = "") -> str:
        # A fresh `visit` parameter makes every URL unique, so a test can find its tab by URL.
        query = urllib.parse.urlencode(
            {"pointer": pointer, "binding": binding, "visit": secrets.token_hex(4)}
        )
        return f"{self.origin}/{page}?{query}"


# --- the demo publisher ------------------------------------------------------------------------

# The publisher's process: the settings from the TRICKLE_* variables (the service's issuer), then
# `start_publisher` as `trickle demo` calls it, until the process is terminated.
_PUBLISHER_MAIN = """
import sys
from trickle.settings import load_settings
from trickle_publisher.server import start_publisher
thread = start_publisher(load_settings(), sys.argv[1], int(sys.argv[2]))
while thread.is_alive():
    thread.join(0.5)
"""


class DemoPublisher:
    """The demo publisher site (``trickle demo``'s) in a subprocess, naming ``pointer``; it trusts
    ``service`` (issuer and JWKS) and keeps its credits and purchases in ``root``."""

    def __init__(self, service: TrickleService, pointer: str, root: Path) -> None:
        self.service = service
        self.pointer = pointer
        self.root = root
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "publisher.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, path: str = "/") -> str:
        return f"{self.origin}{path}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
        env.update(
            TRICKLE_ENV="development",
            TRICKLE_PORT=str(self.service.port),  # the issuer: http://127.0.0.1:<service port>
            TRICKLE_DATA_DIR=str(self.root),
            TRICKLE_LOG_LEVEL="warning",
        )
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _PUBLISHER_MAIN, self.pointer, str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        finally:
            log.close()
        wait_until_answering(self.process, f"{self.origin}/", 30, self.log, "the demo publisher")

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None


# Starts a demo publisher for a payment pointer (the ``start_publisher`` fixture).
PublisherFactory = Callable[[str], DemoPublisher]


# --- the browser ---------------------------------------------------------------------------------


class ExtensionBrowser:
    """A Chromium profile with the unpacked extension loaded, and helpers to drive it."""

    def __init__(
        self, context: BrowserContext, worker: Worker, output_dir: Path, service: TrickleService
    ) -> None:
        self.context = context
        self.worker = worker
        self.extension_id = worker.url.split("/")[2]
        self.output_dir = output_dir
        self.service = service

    # -- extension state --

    def use_service(self, url: str) -> None:
        self.worker.evaluate("(url) => chrome.storage.local.set({serviceUrl: url})", url)

    def use_private_payments(self, enabled: bool) -> None:
        """Private payments on or off (docs/extension.md, "Private payments"). A new install turns
        them on by itself (``runtime.onInstalled``); this waits for that first, so that it cannot
        overwrite the choice made here."""
        self.worker.evaluate(
            """async (enabled) => {
              for (let i = 0; i < 100; i++) {
                const {privatePayments} = await chrome.storage.local.get(['privatePayments']);
                if (typeof privatePayments === 'boolean') break;
                await new Promise((resolve) => setTimeout(resolve, 50));
              }
              await chrome.storage.local.set({privatePayments: enabled});
            }""",
            enabled,
        )

    def tab_id(self, page: Page) -> int:
        ids: list[int] = self.worker.evaluate(
            "async (url) => (await chrome.tabs.query({})).filter((t) => t.url === url)"
            ".map((t) => t.id)",
            page.url,
        )
        assert len(ids) == 1, f"expected one tab at {page.url}, found {ids}"
        return ids[0]

    def popup(self, tab: Page | None = None) -> Page:
        """The popup, opened as an ordinary page; about ``tab`` when given."""
        url = f"chrome-extension://{self.extension_id}/pages/popup.html"
        if tab is not None:
            url += f"?tab={self.tab_id(tab)}"
        page = self.context.new_page()
        page.goto(url)
        return page

    def screenshot(self, page: Page, name: str) -> Path:
        path = self.output_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def sign_in(self, reader: Reader) -> Page:
        """Sign in through the popup, as a reader does; returns the popup."""
        popup = self.popup()
        popup.fill("#email", reader.email)
        popup.fill("#password", reader.password)
        popup.click("#sign-in")
        expect(popup.locator("#account-email")).to_have_text(reader.email, timeout=10_000)
        return popup

    # -- pages --

    def open(self, url: str) -> Page:
        page = self.context.new_page()
        page.goto(url)
        return page


def launch_browser(
    driver: Playwright,
    executable: str,
    service: TrickleService,
    output_dir: Path,
    *,
    private_payments: bool = False,
) -> Iterator[ExtensionBrowser]:
    """The extension in a fresh profile, pointed at ``service``. Identified payments unless
    ``private_payments``: the tests of the identified path read the service's own streams."""
    # A short path: Chromium's singleton socket path must stay below 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="trickle-e2e-"))
    for sub in ("config", "cache", "tmp", "profile"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    env: dict[str, str | float | bool] = {
        **os.environ,
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "TMPDIR": str(root / "tmp"),
    }
    try:
        context = driver.chromium.launch_persistent_context(
            str(root / "profile"),
            executable_path=executable,
            headless=True,
            env=env,
            # Amounts and dates are written in the reader's locale: the tests read en-US.
            locale="en-US",
            args=[
                f"--disable-extensions-except={EXTENSION_DIR}",
                f"--load-extension={EXTENSION_DIR}",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
                "--disable-quic",
            ],
        )
        try:
            context.set_default_timeout(10_000)
            context.add_init_script(EVENT_COLLECTOR)
            workers = [
                w for w in context.service_workers if w.url.startswith("chrome-extension://")
            ]
            worker = workers[0] if workers else context.wait_for_event("serviceworker")
            extension = ExtensionBrowser(context, worker, output_dir, service)
            extension.use_service(service.url)
            extension.use_private_payments(private_payments)
            yield extension
        finally:
            context.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def browser_environment(root: Path) -> dict[str, str | float | bool]:
    """Chromium's own files inside ``root`` (config, cache, temp)."""
    for sub in ("config", "cache", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "TMPDIR": str(root / "tmp"),
    }


def launch_plain_browser(driver: Playwright, executable: str) -> Iterator[Browser]:
    """A headless Chromium WITHOUT the extension: a reader who has none."""
    root = Path(tempfile.mkdtemp(prefix="trickle-plain-"))
    try:
        browser = driver.chromium.launch(
            executable_path=executable,
            headless=True,
            env=browser_environment(root),
            args=[
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
                "--disable-quic",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- receipts --------------------------------------------------------------------------------


def events(page: Page) -> list[dict[str, Any]]:
    collected: list[dict[str, Any]] = page.evaluate("window.__trickleEvents")
    return collected


def wait_for_events(page: Page, count: int, timeout_ms: int = 10_000) -> list[dict[str, Any]]:
    page.wait_for_function(
        "(n) => window.__trickleEvents.length >= n", arg=count, timeout=timeout_ms, polling=50
    )
    return events(page)


def verify_events(
    collected: list[dict[str, Any]],
    *,
    service: TrickleService,
    audience: str,
    pointer: str,
    binding: str | None = None,
) -> list[Receipt]:
    """Verify every event's receipt, and that the event's fields agree with it."""
    verifier = Verifier(
        issuer=service.url, audience=audience, payees=[pointer], keys=service.jwks()
    )
    receipts = []
    for event in collected:
        receipt = verifier.verify(event["receipt"], binding=binding)
        assert event["isMonetizationEvent"] and event["bubbles"] and event["targetIsLink"], event
        assert event["paymentPointer"] == pointer
        assert event["incomingPayment"] is None
        assert event["currency"] == receipt.currency == "USD"
        assert event["scale"] == receipt.scale
        assert event["amountMinor"] == str(receipt.amount_minor)
        assert event["value"] == format_minor(receipt.amount_minor, receipt.scale)
        receipts.append(receipt)
    return receipts
