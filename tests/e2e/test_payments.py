"""One-time payments end to end (issue 7): the demo publisher sells one article for 0.05 USD
(``/articles/field-guide``); the page asks with ``bridge.requestPayment``, the extension asks
the reader in its own approval window (``pages/approve.html``, a popup window the page cannot
reach) or approves under the site's limit, the service pays and signs a one-time receipt, and the
publisher's server verifies it and records the purchase.

Every reader here has streaming paused at the service (one-time payments go through a pause), so
that balances and earnings move by the one-time payments alone and can be compared exactly.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.harness import (
    FUNDING_MINOR,
    DemoPublisher,
    ExtensionBrowser,
    Payee,
    Reader,
    TrickleService,
    set_paused,
)
from trickle_verifier import Verifier

pytestmark = pytest.mark.e2e

SALE = "/articles/field-guide"
ORDER_REF = "article:field-guide"
PRICE_MINOR = 50_000_000  # 0.05 USD at scale 9
TITLE = "For sale: a field guide to one-time payments"
BOUGHT_TEXT = "because your visit bought it"

# Every `payment-result` the extension posts to the page, kept by the page (its own world).
RESULT_COLLECTOR = """
(() => {
  window.__paymentResults = [];
  window.addEventListener("message", (event) => {
    const data = event.data;
    if (event.source === window && data && data.source === "trickle-extension"
        && data.type === "payment-result") {
      window.__paymentResults.push(data);
    }
  });
})();
"""


@pytest.fixture
def buyer(browser: ExtensionBrowser, service: TrickleService, reader: Reader) -> Reader:
    """The reader, signed in to the extension, streaming paused at the service."""
    set_paused(service, reader, True)
    browser.sign_in(reader).close()
    return reader


def payments_of(service: TrickleService, reader: Reader) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = service.api("GET", "/api/v1/payments", token=reader.token)[
        "payments"
    ]
    return listed


def access(page: Page, slug: str = "field-guide") -> dict[str, Any]:
    answer: dict[str, Any] = page.evaluate(
        "async (url) => (await fetch(url, {cache: 'no-store'})).json()", f"/api/access/{slug}"
    )
    return answer


def post_purchase(page: Page, receipt: str, order_ref: str) -> dict[str, Any]:
    """POST a receipt to the publisher's purchase endpoint as this visit (its cookie)."""
    answer: dict[str, Any] = page.evaluate(
        """async ([receipt, order_ref]) => {
          const response = await fetch('/trickle/purchase', {
            method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({receipt, order_ref}),
          });
          return {status: response.status, body: await response.json()};
        }""",
        [receipt, order_ref],
    )
    return answer


def open_sale(browser: ExtensionBrowser, publisher: DemoPublisher) -> Page:
    page = browser.open(publisher.url(SALE))
    expect(page.locator("#purchase")).to_have_attribute("data-state", "locked")
    expect(page.locator("#article-body")).to_have_attribute("data-state", "locked")
    expect(page.locator("#sale-price")).to_have_attribute("data-minor", str(PRICE_MINOR))
    assert BOUGHT_TEXT not in page.content()
    return page


def buy_and_get_approval(browser: ExtensionBrowser, page: Page) -> Page:
    """Press Buy; returns the extension's approval window (a page of its own)."""
    with browser.context.expect_page(
        lambda p: p.url.startswith(f"chrome-extension://{browser.extension_id}/pages/approve.html")
    ) as opened:
        page.click("#buy-button")
    approval = opened.value
    approval.wait_for_load_state()
    return approval


def assert_bought(page: Page) -> None:
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "purchased")
    expect(page.locator("#article-body")).to_have_attribute("data-state", "unlocked")
    expect(page.locator("#article-body")).to_contain_text(BOUGHT_TEXT)
    expect(page.locator("#purchase")).to_be_hidden()
    sale = access(page)["sale"]
    assert sale == {
        "order_ref": ORDER_REF,
        "price": {
            "total": str(PRICE_MINOR),
            "currency": "USD",
            "scale": 9,
            "text": "$0.05",
            "exact": "0.050000000 USD",
        },
        "purchased": True,
    }


def assert_not_bought(page: Page) -> None:
    expect(page.locator("#article-body")).to_have_attribute("data-state", "locked")
    assert BOUGHT_TEXT not in page.content()
    answer = access(page)
    assert answer["unlocked"] is False and answer["html"] is None
    assert answer["sale"]["purchased"] is False


def test_buying_the_article_approved_in_the_extensions_window_unlocks_it_for_exactly_its_price(
    browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    buyer: Reader,
) -> None:
    earned_before = publisher_payee.earnings_minor(service)
    page = open_sale(browser, publisher)
    browser.screenshot(page, "sale-locked")

    approval = buy_and_get_approval(browser, page)
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "waiting")
    # The window names the site (from the browser, not the page), the payee, amount and item.
    expect(approval.locator("#approve-origin")).to_have_text(publisher.origin)
    expect(approval.locator("#approve-payee")).to_have_text(publisher_payee.pointer)
    expect(approval.locator("#approve-amount")).to_have_attribute("data-minor", str(PRICE_MINOR))
    expect(approval.locator("#approve-amount")).to_have_text("$0.05")
    expect(approval.locator("#approve-amount")).to_have_attribute("title", "0.050000000 USD")
    expect(approval.locator("#approve-description")).to_have_text(TITLE)
    browser.screenshot(approval, "approval-window")
    # Nothing is charged before the reader approves.
    assert buyer.balance_minor(service) == FUNDING_MINOR

    approval.click("#approve")
    assert_bought(page)
    browser.screenshot(page, "sale-bought")

    # Charged exactly the price, once; the payee earned exactly that.
    assert buyer.balance_minor(service) == FUNDING_MINOR - PRICE_MINOR
    (payment,) = payments_of(service, buyer)
    assert payment["amount_minor"] == str(PRICE_MINOR)
    assert payment["order_ref"] == ORDER_REF
    assert payment["origin"] == publisher.origin
    assert payment["payment_pointer"] == publisher_payee.pointer
    assert publisher_payee.earnings_minor(service) == earned_before + PRICE_MINOR

    # The server remembers the purchase: a reload renders the article open.
    page.reload()
    expect(page.locator("#article-body")).to_have_attribute("data-state", "unlocked")
    expect(page.locator("#purchase")).to_have_count(0)


def test_declining_in_the_extensions_window_keeps_the_article_locked_and_charges_nothing(
    browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    buyer: Reader,
) -> None:
    earned_before = publisher_payee.earnings_minor(service)
    page = open_sale(browser, publisher)
    approval = buy_and_get_approval(browser, page)
    expect(approval.locator("#approve-amount")).to_have_attribute("data-minor", str(PRICE_MINOR))
    approval.click("#decline")
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "declined")
    expect(page.locator("#purchase-status")).to_contain_text("Nothing was charged")
    assert_not_bought(page)
    browser.screenshot(page, "sale-declined")

    assert buyer.balance_minor(service) == FUNDING_MINOR
    assert payments_of(service, buyer) == []
    assert publisher_payee.earnings_minor(service) == earned_before


def test_a_payment_under_the_sites_auto_approve_limit_needs_no_window(
    browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    buyer: Reader,
) -> None:
    page = open_sale(browser, publisher)
    popup = browser.popup(page)

    # A limit below the price: the reader is still asked (declined here).
    popup.fill("#site-auto-approve", "0.01")
    popup.click("#site-auto-approve-save")
    expect(popup.locator("#auto-approve-result")).to_contain_text("0.01")
    expect(popup.locator("#auto-approve-result")).to_have_attribute("data-code", "")
    approval = buy_and_get_approval(browser, page)
    approval.click("#decline")
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "declined")
    assert buyer.balance_minor(service) == FUNDING_MINOR

    # "Up to 0.10 USD without asking": paid at once, no approval window at all.
    popup.fill("#site-auto-approve", "0.10")
    popup.click("#site-auto-approve-save")
    expect(popup.locator("#auto-approve-result")).to_contain_text("0.10")
    expect(popup.locator("#auto-approve-result")).to_have_attribute("data-code", "")
    browser.screenshot(popup, "popup-auto-approve")
    popup.close()
    opened: list[Page] = []

    def on_page(new_page: Page) -> None:
        opened.append(new_page)

    browser.context.on("page", on_page)
    try:
        page.click("#buy-button")
        assert_bought(page)
    finally:
        browser.context.remove_listener("page", on_page)
    assert [p.url for p in opened] == []
    assert buyer.balance_minor(service) == FUNDING_MINOR - PRICE_MINOR
    (payment,) = payments_of(service, buyer)
    assert payment["amount_minor"] == str(PRICE_MINOR)
    browser.screenshot(page, "sale-auto-approved")


def _forged_receipt(publisher: DemoPublisher, pointer: str, issuer: str, binding: str) -> str:
    """A one-time receipt with every claim a real one would have, and no valid signature."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = {
        "iss": issuer,
        "aud": publisher.origin,
        "pay": pointer,
        "sid": "forged-session-000000",
        "seq": 1,
        "amt": str(PRICE_MINOR),
        "tot": str(PRICE_MINOR),
        "cur": "USD",
        "scale": 9,
        "iat": 1_795_000_000,
        "exp": 4_102_444_800,
        "jti": "forged-jti-00000000000",
        "bnd": binding,
        "otp": True,
        "ord": ORDER_REF,
    }
    signature = base64.urlsafe_b64encode(b"\0" * 64).rstrip(b"=").decode()
    return f"{part({'alg': 'EdDSA', 'typ': 'JWT', 'kid': 'forged'})}.{part(claims)}.{signature}"


def test_a_page_script_cannot_approve_a_payment_by_itself(
    browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    buyer: Reader,
) -> None:
    earned_before = publisher_payee.earnings_minor(service)
    page = open_sale(browser, publisher)
    binding = page.get_attribute('link[rel="monetization"]', "data-trickle-binding") or ""
    forged = _forged_receipt(publisher, publisher_payee.pointer, service.url, binding)
    # The page's own script answers its own request with a fake "approved" result...
    page.evaluate(
        """(forged) => {
          window.addEventListener('message', (event) => {
            const d = event.data;
            if (event.source !== window || !d || d.source !== 'trickle-page'
                || d.type !== 'payment-request') return;
            window.postMessage({source: 'trickle-extension', type: 'payment-ack', id: d.id},
                               location.origin);
            window.postMessage({source: 'trickle-extension', type: 'payment-result', id: d.id,
                                ok: true, receipt: forged, amountMinor: '50000000',
                                currency: 'USD', scale: 9}, location.origin);
          });
        }""",
        forged,
    )
    # ... and presses Buy itself, without the reader.
    with browser.context.expect_page(
        lambda p: p.url.startswith(f"chrome-extension://{browser.extension_id}/pages/approve.html")
    ) as opened:
        page.evaluate("document.getElementById('buy-button').click()")
    approval = opened.value
    approval.wait_for_load_state()
    expect(approval.locator("#approve-origin")).to_have_text(publisher.origin)

    # The site's server refused the fake result's receipt: nothing opened.
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "site_rejected")
    assert_not_bought(page)

    # The approval window is not the page's: not in its DOM, not loadable, no extension API.
    reach = page.evaluate(
        """async (url) => {
          const found = document.getElementById('approve') !== null
            || document.getElementById('approve-origin') !== null;
          let fetched = false;
          try { await fetch(url); fetched = true; } catch { fetched = false; }
          const api = typeof chrome !== 'undefined' && !!chrome.runtime
            && typeof chrome.runtime.sendMessage === 'function';
          return {found, fetched, api};
        }""",
        approval.url,
    )
    assert reach == {"found": False, "fetched": False, "api": False}
    page.wait_for_timeout(500)
    assert buyer.balance_minor(service) == FUNDING_MINOR
    assert payments_of(service, buyer) == []
    browser.screenshot(page, "sale-fake-result-rejected")

    # The reader closes the window: that declines; still nothing charged, nothing opened.
    approval.close()
    page.wait_for_timeout(500)
    assert buyer.balance_minor(service) == FUNDING_MINOR
    assert payments_of(service, buyer) == []
    assert publisher_payee.earnings_minor(service) == earned_before
    assert_not_bought(page)


def test_a_tip_from_the_popup_reaches_the_creators_earnings(
    browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    buyer: Reader,
) -> None:
    earned_before = publisher_payee.earnings_minor(service)
    page = browser.open(publisher.url("/articles/welcome"))
    popup = browser.popup(page)
    popup.fill("#tip-amount", "0.02")
    popup.click("#tip")
    expect(popup.locator("#tip-result")).to_contain_text("Tipped", timeout=10_000)
    expect(popup.locator("#tip-result")).to_have_attribute("data-code", "")
    browser.screenshot(popup, "popup-tipped")

    tip_minor = 20_000_000
    assert publisher_payee.earnings_minor(service) == earned_before + tip_minor
    assert buyer.balance_minor(service) == FUNDING_MINOR - tip_minor
    (payment,) = payments_of(service, buyer)
    assert payment["amount_minor"] == str(tip_minor)
    assert payment["origin"] == publisher.origin
    assert payment["payment_pointer"] == publisher_payee.pointer
    # The creator's earnings per site show it too.
    earnings = service.api("GET", "/api/v1/earnings", token=publisher_payee.creator_token)
    (mine,) = [p for p in earnings["payees"] if p["payee"] == publisher_payee.name]
    assert int(mine["balance_minor"]) == earned_before + tip_minor


def test_a_replayed_one_time_receipt_buys_nothing_twice(
    browser: ExtensionBrowser,
    plain_context: BrowserContext,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    buyer: Reader,
) -> None:
    browser.context.add_init_script(RESULT_COLLECTOR)
    page = open_sale(browser, publisher)
    approval = buy_and_get_approval(browser, page)
    approval.click("#approve")
    assert_bought(page)
    page.wait_for_function("window.__paymentResults.some((r) => r.ok)")
    (result,) = page.evaluate("window.__paymentResults")
    receipt = result["receipt"]
    # A genuine one-time receipt for this order, this site and payee, bound to this visit.
    binding = page.get_attribute('link[rel="monetization"]', "data-trickle-binding")
    verified = Verifier(
        issuer=service.url,
        audience=publisher.origin,
        payees=[publisher_payee.pointer],
        keys=service.jwks(),
    ).verify(receipt, binding=binding)
    assert verified.one_time and verified.order_ref == ORDER_REF
    assert verified.amount_minor == PRICE_MINOR

    # The same visit cannot spend it on another order.
    other = post_purchase(page, receipt, "article:deep-dive")
    assert other["status"] == 422 and other["body"]["error"]["code"] == "order_mismatch", other

    # Another visitor (another browser, its own cookie jar) replays it for the same article.
    visitor_b = plain_context.new_page()
    visitor_b.goto(publisher.url(SALE))
    replayed = post_purchase(visitor_b, receipt, ORDER_REF)
    assert replayed["status"] == 409, replayed
    assert replayed["body"]["error"]["code"] == "already_used", replayed
    assert_not_bought(visitor_b)
    visitor_b.reload()
    expect(visitor_b.locator("#purchase")).to_have_attribute("data-state", "locked")
    visitor_b.screenshot(path=str(browser.output_dir / "sale-replay-refused.png"), full_page=True)

    # The buyer's own retry is answered with the existing purchase: charged once, in all.
    again = post_purchase(page, receipt, ORDER_REF)
    assert again["status"] == 200 and again["body"]["code"] == "ok", again
    assert buyer.balance_minor(service) == FUNDING_MINOR - PRICE_MINOR
    assert len(payments_of(service, buyer)) == 1
