"""The extension's trust rules end to end (issue 11): a session token goes only to the service
that issued it, even when the reader points the extension at another server (item 1), and a
stray key in the approval window pays nothing (item 5)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.harness import (
    FUNDING_MINOR,
    STREAM_INTERVAL_MS,
    DemoPublisher,
    ExtensionBrowser,
    Payee,
    Reader,
    TestSite,
    TrickleService,
    events,
    set_paused,
    wait_for_events,
)
from tests.e2e.test_payments import (
    PRICE_MINOR,
    assert_bought,
    buy_and_get_approval,
    open_sale,
    payments_of,
)

pytestmark = pytest.mark.e2e

_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


class RecordingServer:
    """A stranger's server on its own port: it takes HTTP requests and WebSocket connections
    (completing the handshake, so that a client would go on to send its messages) and records
    every byte it receives, plus the unmasked payload of every WebSocket frame. It answers HTTP
    with 503."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._received: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def heard(self) -> bytes:
        """Everything received so far: raw bytes, then the WebSocket payloads."""
        with self._lock:
            return b"\n".join(self._received)

    def close(self) -> None:
        self._listener.close()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)

    def _record(self, data: bytes) -> None:
        with self._lock:
            self._received.append(data)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, connection: socket.socket) -> bytes:
        data = connection.recv(65536)
        if data:
            self._record(data)
        return data

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer:
                chunk = self._read(connection)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
            }
            if headers.get(b"upgrade", b"").lower() == b"websocket":
                self._websocket(connection, headers[b"sec-websocket-key"], rest)
                return
            length = int(headers.get(b"content-length", b"0"))
            while len(rest) < length:
                chunk = self._read(connection)
                if not chunk:
                    break
                rest += chunk
            body = json.dumps({"error": {"code": "unavailable", "message": "a stranger"}}).encode()
            connection.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
        except (OSError, KeyError, ValueError):
            return
        finally:
            connection.close()

    def _websocket(self, connection: socket.socket, key: bytes, buffer: bytes) -> None:
        accept = base64.b64encode(hashlib.sha1(key + _WEBSOCKET_GUID).digest())
        connection.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        while True:
            while True:
                frame = _parse_frame(buffer)
                if frame is None:
                    break
                opcode, payload, buffer = frame
                self._record(payload)
                if opcode == 0x8:  # close
                    return
            chunk = self._read(connection)
            if not chunk:
                return
            buffer += chunk


def _parse_frame(buffer: bytes) -> tuple[int, bytes, bytes] | None:
    """One client frame from the front of ``buffer``: (opcode, unmasked payload, the rest)."""
    if len(buffer) < 2:
        return None
    opcode = buffer[0] & 0x0F
    length = buffer[1] & 0x7F
    offset = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = int.from_bytes(buffer[2:4], "big")
        offset = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = int.from_bytes(buffer[2:10], "big")
        offset = 10
    masked = buffer[1] & 0x80
    mask = buffer[offset : offset + 4] if masked else b"\0\0\0\0"
    offset += 4 if masked else 0
    if len(buffer) < offset + length:
        return None
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buffer[offset : offset + length]))
    return opcode, payload, buffer[offset + length :]


@pytest.fixture
def stranger() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


def _session_token(browser: ExtensionBrowser) -> str | None:
    """The token the extension holds (chrome.storage.session's `auth`), or None."""
    auth = browser.worker.evaluate("async () => (await chrome.storage.session.get('auth')).auth")
    return auth["token"] if auth else None


def _assert_quiet(page: Page, window_ms: int) -> None:
    before = len(events(page))
    page.wait_for_timeout(window_ms)
    assert len(events(page)) == before, "receipts arrived after the reader was signed out"


# --- item 1: the session token stays with its service ---------------------------------------------


def test_changing_the_service_url_signs_out_before_the_new_service_hears_of_the_token(
    browser: ExtensionBrowser,
    service: TrickleService,
    reader: Reader,
    payee: Payee,
    site: TestSite,
    stranger: RecordingServer,
) -> None:
    browser.sign_in(reader).close()
    page = browser.open(site.url("monetized.html", pointer=payee.pointer, binding="trust-1"))
    wait_for_events(page, 2)
    token = _session_token(browser)
    assert token is not None and token.startswith("trk_")

    # The reader points the extension at another server, in the options page, as readers do.
    options = browser.context.new_page()
    options.goto(f"chrome-extension://{browser.extension_id}/pages/options.html")
    expect(options.locator("#service-url")).to_have_value(service.url)
    options.fill("#service-url", stranger.url)
    options.click("#save-service-url")
    expect(options.locator("#saved")).to_contain_text(f"using {stranger.url}")
    # Time for anything that would reach the new server: the socket, a reconnect, the popup's
    # account refresh (opening the popup asks for the account).
    popup = browser.popup(page)
    page.wait_for_timeout(8 * STREAM_INTERVAL_MS)

    heard = stranger.heard()
    assert token.encode() not in heard, heard
    assert b"trk_" not in heard and b"bearer" not in heard.lower(), heard

    # Signed out: the popup says so, the token is gone from the extension's storage, and the
    # stream at the old service stopped.
    expect(popup.locator("#auth-form")).to_be_visible()
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "signed-out")
    expect(options.locator("#saved")).to_contain_text("You are signed out")
    browser.screenshot(popup, "popup-signed-out-after-url-change")
    assert _session_token(browser) is None
    stored = browser.worker.evaluate(
        "async () => JSON.stringify([await chrome.storage.session.get(null),"
        " await chrome.storage.local.get(null)])"
    )
    assert token not in stored
    _assert_quiet(page, 6 * STREAM_INTERVAL_MS)
    # The old session was ended at the service that issued it.
    service.api("GET", "/api/v1/me/settings", token=token, expect_status=401)

    # Control: the recorder does hear a token that is sent to it (here by a page's own socket).
    page.evaluate(
        """(url) => new Promise((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => { ws.send(JSON.stringify({type: 'hello', token: 'trk_control'}));
                              setTimeout(() => { ws.close(); resolve(); }, 200); };
          ws.onerror = () => resolve();
        })""",
        stranger.url.replace("http:", "ws:") + "/api/v1/stream",
    )
    page.wait_for_timeout(200)
    assert b"trk_control" in stranger.heard()


# --- item 5: the approval window's focus ---------------------------------------------------------


@pytest.fixture
def buyer(browser: ExtensionBrowser, service: TrickleService, reader: Reader) -> Reader:
    """The reader, signed in to the extension, streaming paused at the service."""
    set_paused(service, reader, True)
    browser.sign_in(reader).close()
    return reader


def _focused_id(page: Page) -> str:
    focused: str = page.evaluate("document.activeElement ? document.activeElement.id : ''")
    return focused


def test_a_stray_key_in_the_approval_window_pays_nothing_tab_then_enter_pays(
    browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    buyer: Reader,
) -> None:
    page = open_sale(browser, publisher)
    approval = buy_and_get_approval(browser, page)
    expect(approval.locator("#approve-amount")).to_have_attribute("data-minor", str(PRICE_MINOR))
    # Armed (the 0.5 s delay is over), and Approve did not take the focus.
    expect(approval.locator("#approve")).to_be_enabled()
    approval.wait_for_timeout(200)
    assert _focused_id(approval) != "approve"

    for key in ("Enter", "Space", "Enter"):
        approval.keyboard.press(key)
    approval.wait_for_timeout(1000)
    assert buyer.balance_minor(service) == FUNDING_MINOR
    assert payments_of(service, buyer) == []
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "waiting")
    expect(approval.locator("#approve-status")).to_have_text("")

    # The deliberate way by keyboard: Tab to Approve, then Enter.
    approval.keyboard.press("Tab")
    assert _focused_id(approval) == "approve"
    approval.keyboard.press("Enter")
    assert_bought(page)
    assert buyer.balance_minor(service) == FUNDING_MINOR - PRICE_MINOR
    (payment,) = payments_of(service, buyer)
    assert payment["amount_minor"] == str(PRICE_MINOR)
