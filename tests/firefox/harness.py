"""The extension in a real Firefox: Debian's ``firefox-esr``, headless, driven over Marionette (the
``marionette-driver`` package; no geckodriver), with the unpacked extension installed as a
temporary add-on. Launch options and prefs as /work/shared/BROWSER-TESTING.md measured them.

What differs from the Chromium harness (tests/e2e/harness.py), which this one reuses for the
service, the readers, the payees and the test site:

- There are no init scripts: a page that wants to collect its ``monetization`` events does so
  itself (``tests/e2e/site/spec-handlers.html``), or the test site adds the collector when asked
  (``collect=1``).
- Values of the page's own world need ``sandbox=None``; Marionette's default sandbox does not see
  what the extension's content scripts defined there.
- Only one window has the focus in headless Firefox: pages are read in the first window, and the
  popup is opened in a window of its own and switched to *without* focusing it, so that the page
  keeps the focus and keeps streaming.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.e2e.harness import EXTENSION_DIR, Reader, TrickleService, free_port
from tests.processes import terminate

# mozinfo (a dependency of marionette-driver) calls distro.linux_distribution() at import, which
# warns; the suite turns warnings into errors.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from marionette_driver.addons import Addons
    from marionette_driver.marionette import Marionette

GECKO_ID = "trickle@trickle.invalid"
START_TIMEOUT_S = 60.0

# Quiet, deterministic profile: no first-run pages, updates or telemetry. The MV3 extension-page
# CSP is left as Firefox ships it: it upgrades ws:// to wss:// unless the manifest says otherwise,
# and the test must see that.
BASE_PREFS: dict[str, Any] = {
    "devtools.console.stdout.content": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "startup.homepage_welcome_url": "about:blank",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "extensions.update.enabled": False,
    "app.normandy.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "intl.locale.requested": "en-US",
}


class FirefoxBrowser:
    """One Firefox profile with the extension installed, and helpers to drive it."""

    def __init__(self, client: Marionette, ext_uuid: str, output_dir: Path, log_path: Path) -> None:
        self.client = client
        self.base = f"moz-extension://{ext_uuid}"
        self.output_dir = output_dir
        self.log_path = log_path
        self.page_window: str = client.current_window_handle

    # -- the page world and waiting --

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body; ``arguments`` holds ``args``) in the current
        document's own world."""
        return self.client.execute_script(script, script_args=list(args), sandbox=None)

    def js_async(self, script: str, *args: Any) -> Any:
        """As ``js``, for a body that calls ``arguments[arguments.length - 1](value)``."""
        return self.client.execute_async_script(script, script_args=list(args), sandbox=None)

    def wait_for(self, script: str, *args: Any, timeout_s: float = 15.0, what: str = "") -> Any:
        """Poll ``script`` in the current document until it returns something truthy."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or script}; last: {value!r}")
            time.sleep(0.1)

    def screenshot(self, name: str) -> Path:
        path = self.output_dir / f"{name}.png"
        path.write_bytes(self.client.screenshot(format="binary"))
        return path

    # -- windows --

    def open_page(self, url: str) -> None:
        """Load ``url`` in the page window, which has the focus."""
        self.client.switch_to_window(self.page_window, focus=True)
        self.client.navigate(url)

    def open_popup(self, tab_url: str | None = None) -> str:
        """The popup in a window of its own, switched to without taking the focus from the page;
        about the tab showing ``tab_url`` when given. Returns the window's handle."""
        opened = self.client.open(type="window", focus=False)
        handle: str = opened["handle"]
        self.client.switch_to_window(handle, focus=False)
        url = f"{self.base}/pages/popup.html"
        self.client.navigate(url)
        if tab_url is not None:
            # Opened from the toolbar the popup is about the active tab; opened as a page here, it
            # is told which tab (as docs/extension.md describes: ?tab=<id>).
            tab_id = self.js_async(
                """const [url, done] = arguments;
                chrome.tabs.query({}).then((tabs) => done(tabs.filter((t) => t.url === url)
                  .map((t) => t.id)));""",
                tab_url,
            )
            assert len(tab_id) == 1, f"expected one tab at {tab_url}, found {tab_id}"
            self.client.navigate(f"{url}?tab={tab_id[0]}")
        return handle

    def use_service(self, url: str, *, private: bool = False) -> None:
        """Point the extension at the test service (from an extension page: it may write its
        storage). Identified payments unless ``private``: most tests read the service's own
        streams (a new install pays privately; ``test_firefox``'s private test covers that)."""
        handle = self.open_popup()
        self.js_async(
            "const [url, privately, done] = arguments;"
            " chrome.storage.local.set({serviceUrl: url, privatePayments: privately})"
            ".then(() => done(true));",
            url,
            private,
        )
        self.close_window(handle)

    def close_window(self, handle: str) -> None:
        self.client.switch_to_window(handle, focus=False)
        self.client.close()
        self.client.switch_to_window(self.page_window, focus=True)

    def sign_in(self, reader: Reader) -> str:
        """Sign in through the popup, as a reader does; returns the popup's window handle (the
        current window afterwards)."""
        handle = self.open_popup()
        self.client.find_element("css selector", "#email").send_keys(reader.email)
        self.client.find_element("css selector", "#password").send_keys(reader.password)
        self.client.find_element("css selector", "#sign-in").click()
        self.wait_for(
            "return document.querySelector('#account-email').textContent === arguments[0]",
            reader.email,
            what="the popup to show the account",
        )
        return handle

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _write_prefs(profile: Path, prefs: dict[str, Any]) -> None:
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in prefs.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise AssertionError(f"firefox exited at start-up:\n{log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError as error:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Marionette did not listen within {START_TIMEOUT_S} s:\n{log()}"
                ) from error
            time.sleep(0.1)


def launch_firefox(
    executable: str, service: TrickleService, output_dir: Path
) -> Iterator[FirefoxBrowser]:
    """A fresh profile, Firefox headless with Marionette, the extension as a temporary add-on
    pointed at ``service``. Everything Firefox writes stays in a temp folder."""
    root = Path(tempfile.mkdtemp(prefix="trickle-ff-"))
    profile = root / "profile"
    profile.mkdir()
    port = free_port()
    ext_uuid = str(uuid.uuid4())
    _write_prefs(
        profile,
        {
            **BASE_PREFS,
            "marionette.port": port,
            # The extension's moz-extension:// host, fixed in advance.
            "extensions.webextensions.uuids": json.dumps({GECKO_ID: ext_uuid}),
        },
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MOZ_")},
        "MOZ_HEADLESS_WIDTH": "1280",
        "MOZ_HEADLESS_HEIGHT": "900",
        "HOME": str(root),
        "TMPDIR": str(root),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    log_path = output_dir / "firefox.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--marionette",
                "-remote-allow-system-access",
                "--no-remote",
                "--profile",
                str(profile),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client: Marionette | None = None
    try:
        _wait_for_port(process, port, lambda: log_path.read_text(errors="replace"))
        client = Marionette(host="127.0.0.1", port=port)
        client.start_session()
        client.timeout.script = 20
        client.timeout.page_load = 30
        installed = Addons(client).install(str(EXTENSION_DIR), temp=True)
        assert installed == GECKO_ID, installed
        browser = FirefoxBrowser(client, ext_uuid, output_dir, log_path)
        browser.use_service(service.url)
        yield browser
    finally:
        if client is not None:
            # The browser may be gone already; it is stopped below either way.
            with contextlib.suppress(Exception):
                client.delete_session()
        terminate(process)
        shutil.rmtree(root, ignore_errors=True)


def extension_state(browser: FirefoxBrowser) -> dict[str, Any]:
    """What Firefox says about the add-on (chrome context): its background and granted origins."""
    with browser.client.using_context("chrome"):
        state: dict[str, Any] = browser.client.execute_script(
            """const policy = WebExtensionPolicy.getByID(arguments[0]);
            return {background: policy.extension.backgroundState,
                    origins: policy.allowedOrigins.patterns.map((p) => p.pattern)};""",
            script_args=[GECKO_ID],
        )
    return state
