"""Private payments end to end (issue 13): a real headless Chromium with the extension as a new
install has it (private payments on) reads the demo publisher against a real service. The
extension buys tokens in the background, pays the page over the anonymous socket, and the
article unlocks with receipts the unchanged verifier accepts; the creator earns what was spent
(no fee in these tests), and the reader's balance and month moved only when tokens were bought.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.accessibility import assert_accessible
from tests.e2e.harness import (
    FAST_RATE_PER_HOUR_MINOR,
    DemoPublisher,
    ExtensionBrowser,
    Payee,
    Reader,
    TrickleService,
    events,
    set_paused,
    set_rate,
    verify_events,
)
from tests.e2e.test_payments import PRICE_MINOR as SALE_PRICE_MINOR
from tests.e2e.test_payments import assert_bought, buy_and_get_approval, open_sale, payments_of

pytestmark = pytest.mark.e2e

PREMIUM = "/articles/deep-dive"
PREMIUM_TEXT = "because your visit paid for it"
PRICE_MINOR = 1_000_000  # the demo's premium price: 0.001 USD, one token at the default value
TOKEN_VALUE_MINOR = 1_000_000  # TRICKLE_TOKEN_VALUE_MINOR's default


def wallet(browser: ExtensionBrowser) -> dict[str, Any]:
    """The extension's stored wallets and key document (chrome.storage.local)."""
    stored: dict[str, Any] = browser.worker.evaluate(
        "() => chrome.storage.local.get(['tokenWallets', 'tokenKeys', 'privatePayments'])"
    )
    return stored


def test_a_reader_reads_the_demo_site_privately_and_the_article_unlocks(
    private_browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    reader: Reader,
) -> None:
    browser = private_browser
    assert wallet(browser)["privatePayments"] is True, "a new install pays privately"
    # 1.80 USD an hour: the price (one token) takes two seconds of reading.
    set_rate(service, reader, FAST_RATE_PER_HOUR_MINOR // 2)
    balance_before = reader.balance_minor(service)
    earnings_before = publisher_payee.earnings_minor(service)

    popup = browser.sign_in(reader)
    # The wallet fills itself at a random moment a few seconds after sign-in, with no page open.
    expect(popup.locator("#tokens-line")).to_be_visible()
    popup.wait_for_function(
        "() => Number(document.querySelector('#tokens-held').dataset.count) >= 10",
        timeout=30_000,
        polling=200,
    )
    bought_minor = balance_before - reader.balance_minor(service)
    assert bought_minor > 0 and bought_minor % TOKEN_VALUE_MINOR == 0
    tokens_bought = bought_minor // TOKEN_VALUE_MINOR
    assert tokens_bought <= 20, "never more than the reserve"
    expect(popup.locator("#month-spent")).to_have_attribute(
        "data-minor", str(bought_minor), timeout=10_000
    )
    popup.close()

    page = browser.context.new_page()
    page.goto(publisher.url(PREMIUM))
    expect(page.locator("#article-body")).to_have_attribute(
        "data-state", "unlocked", timeout=30_000
    )
    expect(page.locator("#article-body")).to_contain_text(PREMIUM_TEXT)
    paid_minor = int(page.get_attribute("#paid", "data-minor") or "0")
    assert paid_minor >= PRICE_MINOR

    # The site got ordinary receipts: the unchanged verifier accepts every one, bound to the visit.
    binding = page.get_attribute('link[rel="monetization"]', "data-trickle-binding")
    receipts = verify_events(
        events(page),
        service=service,
        audience=publisher.origin,
        pointer=publisher_payee.pointer,
        binding=binding,
    )
    assert receipts and all(r.amount_minor % TOKEN_VALUE_MINOR == 0 for r in receipts)
    spent_minor = sum(r.amount_minor for r in receipts)

    popup = browser.popup(page)
    expect(popup.locator("#tab-way")).to_have_attribute("data-way", "private")
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "streaming")
    assert_accessible(popup)
    browser.screenshot(popup, "popup-private")
    page.close()  # the stream ends; a spend still out is answered and counted
    popup.wait_for_timeout(1_000)

    # Money: the creator earned what the tokens paid (no fee here), all of it private in the
    # reader's own history; the reader's balance moved only when tokens were bought — the
    # reading itself took nothing from it.
    earned = publisher_payee.earnings_minor(service) - earnings_before
    assert earned >= spent_minor
    assert earned % TOKEN_VALUE_MINOR == 0
    row = popup.locator(f'#history li[data-origin="{publisher.origin}"]')
    expect(row).to_have_attribute("data-private-minor", str(earned), timeout=5_000)
    expect(row).to_have_attribute("data-minor", str(earned))
    stored = wallet(browser)
    (mine,) = stored["tokenWallets"].values()
    held_now = len(mine["tokens"]) + len(mine["unsure"])
    out_now = sum(len(out["tokens"]) for out in mine["spending"].values())
    bought_total = (balance_before - reader.balance_minor(service)) // TOKEN_VALUE_MINOR
    assert bought_total * TOKEN_VALUE_MINOR == earned + (held_now + out_now) * TOKEN_VALUE_MINOR

    # Signing out gives the tokens held back to the balance.
    popup.click("#sign-out")
    expect(popup.locator("#signed-out-view")).to_be_visible()
    assert reader.balance_minor(service) == balance_before - earned


def test_a_purchase_approved_in_the_window_is_paid_privately_with_whole_tokens(
    private_browser: ExtensionBrowser,
    service: TrickleService,
    publisher: DemoPublisher,
    publisher_payee: Payee,
    reader: Reader,
) -> None:
    browser = private_browser
    # The sale costs 0.05 USD = 50 tokens: a reserve of 100 (options page) makes the wallet
    # refill to at least half of it, 50.
    options = browser.context.new_page()
    options.goto(f"chrome-extension://{browser.extension_id}/pages/options.html")
    expect(options.locator("#private-payments")).to_be_checked()
    options.fill("#token-reserve", "100")
    options.click("#save-token-reserve")
    expect(options.locator("#saved")).to_contain_text("at most 100 tokens")
    options.close()
    set_paused(service, reader, True)  # only the purchase moves money after the tokens are bought
    balance_before = reader.balance_minor(service)
    earnings_before = publisher_payee.earnings_minor(service)
    popup = browser.sign_in(reader)
    # One refill at a random moment after sign-in: batches of 10 until half the reserve is held.
    popup.wait_for_function(
        "() => Number(document.querySelector('#tokens-held').dataset.count) >= 50",
        timeout=30_000,
        polling=500,
    )
    bought_minor = balance_before - reader.balance_minor(service)
    popup.close()

    page = open_sale(browser, publisher)
    approval = buy_and_get_approval(browser, page)
    # Before approving, the window says how it is paid: privately, 50 whole tokens.
    expect(approval.locator("#approve-way")).to_have_attribute("data-way", "private")
    expect(approval.locator("#approve-way")).to_have_attribute("data-count", "50")
    expect(approval.locator("#approve-way")).to_contain_text("Paid privately with 50 tokens")
    assert_accessible(approval)
    browser.screenshot(approval, "approval-window-private")
    approval.click("#approve")
    assert_bought(page)  # the publisher's unchanged verifier accepted the one-time receipt

    # The purchase took nothing from the balance (the tokens did, when bought), no identified
    # payment of this reader exists, and the creator earned the price (no fee in these tests).
    assert balance_before - reader.balance_minor(service) == bought_minor
    assert payments_of(service, reader) == []
    assert publisher_payee.earnings_minor(service) == earnings_before + SALE_PRICE_MINOR
    popup = browser.popup(page)
    expect(popup.locator("#recent-payments li").first).to_have_attribute("data-way", "private")
