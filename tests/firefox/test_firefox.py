"""The extension in Firefox, for real (issue 15): firefox-esr, the extension as a temporary add-on,
a real service. The popup signs in and shows the balance; an outside page written from the Web
Monetization spec and the demo publisher get ``monetization`` events whose receipts verify with
the Python verifier against the service's JWKS; and the demo publisher is paid privately, with
tokens over the anonymous socket (issue 13), as in Chromium (tests/e2e/test_private.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.harness import (
    FAST_RATE_PER_HOUR_MINOR,
    FUNDING_MINOR,
    DemoPublisher,
    Payee,
    Reader,
    TestSite,
    TrickleService,
    format_minor,
    set_paused,
    set_rate,
)
from trickle.money import format_money
from trickle_verifier import Receipt, Verifier

if TYPE_CHECKING:
    # The harness imports marionette-driver: the `firefox` fixture imports it once the
    # prerequisites are checked (so that without them the tests skip locally, fail in CI).
    from tests.firefox.harness import FirefoxBrowser

pytestmark = pytest.mark.firefox

# Collects the page's `monetization` events from the moment it runs (the page world).
LATE_COLLECTOR = """
window.__late = [];
window.addEventListener('monetization', (event) => window.__late.push({
  receipt: event.receipt, value: event.amountSent.value, currency: event.amountSent.currency,
  paymentPointer: event.paymentPointer, target: event.target.tagName,
}));
return true;
"""


def settle(firefox: FirefoxBrowser, on_page: str, earned: Any) -> None:
    """After a pause: wait until what the page holds adds up to what the payee earned (the last
    increment may still be on its way)."""
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        if firefox.js(on_page) == earned():
            return
        time.sleep(0.1)


def verify(
    receipts: list[str], service: TrickleService, audience: str, pointer: str, binding: str | None
) -> list[Receipt]:
    keys = service.jwks()
    verifier = Verifier(issuer=service.url, audience=audience, payees=[pointer], keys=keys)
    return [verifier.verify(receipt, binding=binding) for receipt in receipts]


def read_until_unlocked(firefox: FirefoxBrowser, publisher: DemoPublisher) -> str:
    """Open the demo's premium article, collect its ``monetization`` events from then on
    (``window.__late``), and wait until the publisher's server, having verified the forwarded
    receipts (trickle_verifier, the service's JWKS), opened it; the visit's binding."""
    firefox.open_page(publisher.url("/articles/deep-dive"))
    firefox.js(LATE_COLLECTOR)
    binding: str = firefox.js(
        "return document.querySelector('link[rel=monetization]').dataset.trickleBinding"
    )
    firefox.wait_for(
        "return document.querySelector('#article-body').dataset.state === 'unlocked'",
        timeout_s=30,
        what="the article to unlock",
    )
    return binding


def test_the_extension_runs_and_the_popup_signs_in_and_shows_the_balance(
    firefox: FirefoxBrowser, reader: Reader
) -> None:
    from tests.firefox.harness import extension_state

    state = extension_state(firefox)
    assert state["background"] == "running", state
    assert "http://127.0.0.1/*" in state["origins"], state
    firefox.sign_in(reader)
    balance = firefox.wait_for(
        "const b = document.querySelector('#balance');"
        " return b.dataset.minor ? [b.dataset.minor, b.textContent, b.title] : null",
        what="the balance",
    )
    assert balance == [str(FUNDING_MINOR), "$5.00", "5.000000000 USD"]
    firefox.screenshot("popup-signed-in")


def test_an_outside_page_written_from_the_spec_gets_receipts_that_verify(
    firefox: FirefoxBrowser, service: TrickleService, site: TestSite, reader: Reader, payee: Payee
) -> None:
    firefox.close_window(firefox.sign_in(reader))
    url = site.url("spec-handlers.html", pointer=payee.pointer)
    firefox.open_page(url)
    assert firefox.js("return window.supported") is True
    firefox.wait_for("return window.viaWindowHandler.length >= 3", what="three events")

    # The popup, in its own window (the page keeps the focus), says this tab is paying.
    popup = firefox.open_popup(url)
    firefox.wait_for(
        "return document.querySelector('#tab-status').dataset.state === 'streaming'",
        what="the popup to say streaming",
    )
    assert firefox.js("return document.querySelector('#tab-status').textContent") == (
        "Paying this site."
    )
    assert firefox.js("return document.querySelector('#tab-rate').textContent") == "$0.60"
    firefox.screenshot("popup-streaming")
    firefox.close_window(popup)

    set_paused(service, reader, True)
    settle(
        firefox,
        "return window.viaWindowHandler.reduce((s, e) => s + Number(e.value.replace('.', '')), 0)",
        lambda: payee.earnings_minor(service),
    )
    by_window = firefox.js("return window.viaWindowHandler")
    by_attribute = firefox.js("return window.viaAttribute")
    assert [e["receipt"] for e in by_attribute] == [e["receipt"] for e in by_window]
    receipts = verify(
        [e["receipt"] for e in by_window], service, site.origin, payee.pointer, binding=None
    )
    for event, receipt in zip(by_window, receipts, strict=True):
        assert event["target"] == "LINK" and event["paymentPointer"] == payee.pointer
        assert event["incomingPayment"] is None
        assert event["currency"] == receipt.currency == "USD"
        assert event["value"] == format_minor(receipt.amount_minor, receipt.scale)
    assert sum(r.amount_minor for r in receipts) == payee.earnings_minor(service)
    firefox.screenshot("spec-page")


def test_the_demo_site_is_paid_and_its_server_verifies_the_receipts(
    firefox: FirefoxBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    reader: Reader,
    payee: Payee,
) -> None:
    set_rate(service, reader, FAST_RATE_PER_HOUR_MINOR)  # the premium price in about a second
    firefox.close_window(firefox.sign_in(reader))
    binding = read_until_unlocked(firefox, publisher)
    firefox.wait_for("return window.__late.length >= 2", what="events after load")
    set_paused(service, reader, True)
    time.sleep(2)  # the last batch reaches the publisher
    access = firefox.js_async(
        "const done = arguments[arguments.length - 1];"
        " fetch('/api/access/deep-dive', {cache: 'no-store'}).then((r) => r.json()).then(done);"
    )
    assert access["unlocked"] is True
    paid = int(access["paid"]["total"])
    assert 0 < paid <= payee.earnings_minor(service)
    assert firefox.js("return document.querySelector('#paid').textContent") == format_money(
        int(firefox.js("return document.querySelector('#paid').dataset.minor")), 9, "USD"
    )
    late = firefox.js("return window.__late")
    receipts = verify(
        [e["receipt"] for e in late], service, publisher.origin, payee.pointer, binding=binding
    )
    assert all(e["target"] == "LINK" for e in late)
    assert [e["value"] for e in late] == [format_minor(r.amount_minor, r.scale) for r in receipts]
    firefox.screenshot("demo-site-unlocked")


TOKEN_VALUE_MINOR = 1_000_000  # TRICKLE_TOKEN_VALUE_MINOR's default


def test_the_demo_site_is_paid_privately_with_tokens(
    firefox: FirefoxBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    reader: Reader,
    payee: Payee,
) -> None:
    """Issue 13 in Firefox: the wallet buys tokens in the background (the VOPRF client in
    Firefox's JavaScript), the page is paid over the anonymous socket, the article unlocks, the
    receipts verify, and the reader's balance moved only when the tokens were bought."""
    firefox.use_service(service.url, private=True)
    set_rate(service, reader, FAST_RATE_PER_HOUR_MINOR // 2)  # the price in ~2 s of reading
    balance_before = reader.balance_minor(service)
    earnings_before = payee.earnings_minor(service)
    popup = firefox.sign_in(reader)
    firefox.wait_for(
        "return Number(document.querySelector('#tokens-held').dataset.count) >= 10",
        timeout_s=30,
        what="the wallet to buy tokens",
    )
    bought_minor = balance_before - reader.balance_minor(service)
    assert bought_minor > 0 and bought_minor % TOKEN_VALUE_MINOR == 0, bought_minor
    firefox.close_window(popup)

    binding = read_until_unlocked(firefox, publisher)
    firefox.wait_for("return window.__late.length >= 1", timeout_s=15, what="events after load")
    late = firefox.js("return window.__late")
    receipts = verify(
        [e["receipt"] for e in late], service, publisher.origin, payee.pointer, binding=binding
    )
    assert all(r.amount_minor % TOKEN_VALUE_MINOR == 0 for r in receipts)

    popup = firefox.open_popup(publisher.url("/articles/deep-dive"))
    firefox.wait_for(
        "return document.querySelector('#tab-way').dataset.way === 'private'",
        what="the popup to say private",
    )
    firefox.screenshot("popup-private")
    # The reading took nothing from the balance: only the tokens bought (the wallet may have
    # refilled meanwhile); the creator earned whole tokens, no more than were bought.
    spent_on_tokens = balance_before - reader.balance_minor(service)
    earned = payee.earnings_minor(service) - earnings_before
    assert spent_on_tokens % TOKEN_VALUE_MINOR == 0
    assert 0 < sum(r.amount_minor for r in receipts) <= earned <= spent_on_tokens
    assert earned % TOKEN_VALUE_MINOR == 0
    firefox.close_window(popup)
