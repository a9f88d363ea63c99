"""The demo publisher end to end (issue 6): a real headless Chromium with the extension reads the
demo site (``publisher/trickle_publisher/``, started as ``trickle demo`` starts it) against a real
service; premium articles open only when the publisher's server has verified receipts worth their
price for this visit.

Screenshots of the demo site go to ``test-output/e2e/<test>/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.accessibility import assert_accessible
from tests.e2e.harness import (
    FAST_RATE_PER_HOUR_MINOR,
    DemoPublisher,
    ExtensionBrowser,
    Payee,
    Reader,
    TrickleService,
    events,
    set_rate,
    verify_events,
    wait_for_events,
)

pytestmark = pytest.mark.e2e

PREMIUM = "/articles/deep-dive"
PREMIUM_TEXT = "because your visit paid for it"
PRICE_MINOR = 1_000_000  # the demo's premium price: 0.001 USD at scale 9


def access(page: Page, slug: str = "deep-dive") -> dict[str, Any]:
    """The publisher's answer to this visit (the page's own cookie): ``GET /api/access/<slug>``."""
    answer: dict[str, Any] = page.evaluate(
        "async (url) => (await fetch(url, {cache: 'no-store'})).json()", f"/api/access/{slug}"
    )
    return answer


def forward(page: Page, receipts: list[str]) -> dict[str, Any]:
    """POST receipts to the publisher's receipt endpoint as this visit (its cookie), as the
    bridge does."""
    answer: dict[str, Any] = page.evaluate(
        """async (receipts) => {
          const response = await fetch('/trickle/receipts', {
            method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({receipts}),
          });
          return {status: response.status, body: await response.json()};
        }""",
        receipts,
    )
    return answer


def binding_of(page: Page) -> str:
    value = page.get_attribute('link[rel="monetization"]', "data-trickle-binding")
    assert value, "the publisher renders the visit's binding value into the link"
    return value


def assert_locked(page: Page) -> None:
    expect(page.locator("#paywall")).to_have_attribute("data-state", "locked")
    expect(page.locator("#article-body")).to_have_attribute("data-state", "locked")
    expect(page.locator("#article-body")).to_be_hidden()
    assert PREMIUM_TEXT not in page.content()


def test_a_reader_with_the_extension_unlocks_a_premium_article_once_it_paid_its_price(
    browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    reader: Reader,
) -> None:
    browser.sign_in(reader).close()
    # 1.80 USD an hour: the price (0.001 USD) takes two seconds of reading.
    set_rate(service, reader, FAST_RATE_PER_HOUR_MINOR // 2)

    page = browser.context.new_page()
    response = page.goto(publisher.url(PREMIUM))
    assert response is not None and response.status == 200
    # The server sent a locked page: no premium text, nothing paid by this new visit yet.
    served = response.text()
    assert 'id="paywall" data-state="locked"' in served
    assert 'id="article-body" data-state="locked" hidden></div>' in served
    assert PREMIUM_TEXT not in served
    assert 'id="paid" data-minor="0"' in served
    expect(page.locator("#price")).to_have_attribute("data-minor", str(PRICE_MINOR))
    expect(page.locator("#bridge-status")).not_to_have_attribute("data-state", "unsupported")
    assert_accessible(page)
    browser.screenshot(page, "demo-premium-locked")

    # It opens once the server verified receipts worth the price for this visit.
    expect(page.locator("#article-body")).to_have_attribute(
        "data-state", "unlocked", timeout=30_000
    )
    expect(page.locator("#article-body")).to_contain_text(PREMIUM_TEXT)
    expect(page.locator("#paywall")).to_be_hidden()
    expect(page.locator("#supporter-badge")).to_be_visible()
    paid_minor = int(page.get_attribute("#paid", "data-minor") or "0")
    assert paid_minor >= PRICE_MINOR

    # The server decided: it reports the visit as paid and sends the body itself.
    decided = access(page)
    assert decided["unlocked"] is True and decided["supporter"] is True
    assert PREMIUM_TEXT in decided["html"]
    assert int(decided["paid"]["total"]) >= PRICE_MINOR
    # ... from verified receipts the extension handed the page, bound to this visit.
    receipts = verify_events(
        events(page),
        service=service,
        audience=publisher.origin,
        pointer=publisher_payee.pointer,
        binding=binding_of(page),
    )
    assert sum(r.amount_minor for r in receipts) >= PRICE_MINOR
    assert_accessible(page)
    browser.screenshot(page, "demo-premium-unlocked")

    # A reload is rendered unlocked by the server (no script needed).
    page.reload()
    expect(page.locator("#article-body")).to_have_attribute("data-state", "unlocked")
    expect(page.locator("#article-body")).to_contain_text(PREMIUM_TEXT)
    expect(page.locator("#paywall")).to_have_count(0)

    index = browser.open(publisher.url("/"))
    expect(index.locator("#supporter-badge")).to_be_visible()
    expect(index.locator("li[data-slug]")).to_have_count(5)
    expect(index.locator('li[data-slug="field-guide"] .tag')).to_contain_text("For sale")
    assert_accessible(index)
    browser.screenshot(index, "demo-index")

    free = browser.open(publisher.url("/articles/welcome"))
    expect(free.locator("#article-body")).to_have_attribute("data-state", "unlocked")
    assert_accessible(free)
    browser.screenshot(free, "demo-free")


def test_without_the_extension_a_premium_article_stays_locked_and_says_why(
    plain_context: BrowserContext, publisher: DemoPublisher, output_dir: Path
) -> None:
    page = plain_context.new_page()
    page.goto(publisher.url("/"))
    expect(page.locator("#bridge-status")).to_have_attribute("data-state", "unsupported")
    expect(page.locator("#supporter-badge")).to_be_hidden()
    assert_accessible(page)
    page.screenshot(path=str(output_dir / "demo-index-without-extension.png"), full_page=True)

    page.goto(publisher.url(PREMIUM))
    expect(page.locator("#bridge-status")).to_have_attribute("data-state", "unsupported")
    expect(page.locator("#bridge-status")).to_contain_text("Install Trickle")
    expect(page.locator("#paywall-hint")).to_contain_text(
        "without a Web Monetization extension this article stays locked"
    )
    assert page.evaluate("typeof MonetizationEvent") == "undefined"
    # Long enough for a stream to have paid the price several times over.
    page.wait_for_timeout(2_000)
    assert_locked(page)
    expect(page.locator("#paid")).to_have_attribute("data-minor", "0")
    assert_accessible(page)
    answer = access(page)
    assert answer["unlocked"] is False and answer["html"] is None and answer["paid"]["total"] == "0"
    page.screenshot(path=str(output_dir / "demo-premium-without-extension.png"), full_page=True)


def test_a_receipt_copied_from_another_visitors_session_unlocks_nothing(
    browser: ExtensionBrowser,
    plain_context: BrowserContext,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    reader: Reader,
) -> None:
    browser.sign_in(reader).close()
    set_rate(service, reader, FAST_RATE_PER_HOUR_MINOR)
    # Visitor A (the extension's browser) reads and pays: its page receives real receipts.
    visitor_a = browser.open(publisher.url(PREMIUM))
    wait_for_events(visitor_a, 3)
    expect(visitor_a.locator("#article-body")).to_have_attribute(
        "data-state", "unlocked", timeout=30_000
    )
    copied = [e["receipt"] for e in events(visitor_a)]
    # They are genuine: valid for this site and payee, bound to A's visit.
    genuine = verify_events(
        events(visitor_a),
        service=service,
        audience=publisher.origin,
        pointer=publisher_payee.pointer,
        binding=binding_of(visitor_a),
    )
    assert sum(r.amount_minor for r in genuine) > 0

    # Visitor B (another browser, its own cookie jar, no extension) forwards A's receipts.
    visitor_b = plain_context.new_page()
    visitor_b.goto(publisher.url(PREMIUM))
    assert binding_of(visitor_b) != binding_of(visitor_a)
    answer = forward(visitor_b, copied)
    assert answer["status"] == 200, answer
    codes = {result["code"] for result in answer["body"]["results"]}
    assert codes <= {"binding_mismatch", "session_mismatch"} and codes, json.dumps(answer)
    assert answer["body"]["paid"]["total"] == "0"
    # Nothing opened for B, by the server's own answer and on the page it renders.
    assert access(visitor_b)["unlocked"] is False
    visitor_b.reload()
    assert_locked(visitor_b)
    expect(visitor_b.locator("#paid")).to_have_attribute("data-minor", "0")
    visitor_b.screenshot(
        path=str(browser.output_dir / "demo-premium-copied-receipts.png"), full_page=True
    )

    # A's own visit is untouched: still open, with what its receipts credited.
    assert access(visitor_a)["unlocked"] is True
