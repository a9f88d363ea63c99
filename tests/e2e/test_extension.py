"""The extension end to end: a real headless Chromium, the unpacked extension, a real service.

Each test signs a fresh reader in through the popup and reads pages of the local test site whose
`<link rel="monetization">` names a fresh payee; the page collects its `monetization` events and
the test verifies their receipts with the Python verifier against the service's JWKS.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.harness import (
    FUNDING_MINOR,
    SMALL_FUNDING_MAJOR,
    SMALL_FUNDING_MINOR,
    STREAM_INTERVAL_MS,
    ExtensionBrowser,
    Payee,
    Reader,
    TestSite,
    TrickleService,
    events,
    make_payee,
    make_reader,
    verify_events,
    wait_for_events,
)
from trickle_verifier import Receipt

pytestmark = pytest.mark.e2e

# Long enough that a stream that should be paying pays several increments, and that one that
# should have stopped would show it.
QUIET_WINDOW_MS = 6 * STREAM_INTERVAL_MS
# A stop (pause, hidden tab, removed link) takes effect within this: the message to the service,
# plus one increment that was already committing.
SETTLE_MS = 4 * STREAM_INTERVAL_MS


def _assert_quiet(page: Page, window_ms: int = QUIET_WINDOW_MS) -> int:
    """No receipt arrives during ``window_ms``; returns the event count."""
    before = len(events(page))
    page.wait_for_timeout(window_ms)
    after = len(events(page))
    assert after == before, f"{after - before} receipts arrived while the stream should be stopped"
    return after


def _settle_then_assert_quiet(page: Page) -> int:
    page.wait_for_timeout(SETTLE_MS)
    return _assert_quiet(page)


def _settled_receipts(
    page: Page,
    service: TrickleService,
    site: TestSite,
    payee: Payee,
    binding: str | None = None,
) -> list[Receipt]:
    """Once streaming has stopped: the page's receipts, verified, after checking that they add up
    to exactly the payee's earnings (no fee is configured). The last receipt may still be on its
    way when streaming stops, so the sums get a few seconds to agree."""
    deadline = time.monotonic() + 5
    while True:
        on_page = sum(int(e["amountMinor"] or 0) for e in events(page))
        if on_page == payee.earnings_minor(service) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)
    receipts = verify_events(
        events(page), service=service, audience=site.origin, pointer=payee.pointer, binding=binding
    )
    assert payee.earnings_minor(service) == sum(r.amount_minor for r in receipts)
    return receipts


def _extension_tokens(browser: ExtensionBrowser) -> set[str]:
    """The session tokens the extension keeps (the contract: in chrome.storage.session)."""
    stored = browser.worker.evaluate(
        "async () => JSON.stringify([await chrome.storage.session.get(null),"
        " await chrome.storage.local.get(null)])"
    )
    return set(re.findall(r"trk_[A-Za-z0-9_-]+", stored))


def _open_monetized(
    browser: ExtensionBrowser, site: TestSite, payee: Payee, binding: str = "visit-1"
) -> Page:
    return browser.open(site.url("monetized.html", pointer=payee.pointer, binding=binding))


def _hide(browser: ExtensionBrowser, page: Page) -> None:
    """Take the reader's attention away from ``page``: another tab comes to the front of its
    window (headless Chromium keeps `visibilityState` "visible" for every tab, so the switch is
    seen through the tabs API) and the page loses focus (`blur`, `document.hasFocus()` false)."""
    tab_id = browser.tab_id(page)
    browser.worker.evaluate(
        "async (tabId) => { const tab = await chrome.tabs.get(tabId);"
        " await chrome.tabs.create({windowId: tab.windowId, url: 'about:blank', active: true}); }",
        tab_id,
    )
    cdp = browser.context.new_cdp_session(page)
    cdp.send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    cdp.detach()


def _show(browser: ExtensionBrowser, page: Page) -> None:
    tab_id = browser.tab_id(page)
    browser.worker.evaluate(
        "async (tabId) => { await chrome.tabs.update(tabId, {active: true}); }", tab_id
    )
    cdp = browser.context.new_cdp_session(page)
    cdp.send("Emulation.setFocusEmulationEnabled", {"enabled": True})
    cdp.detach()
    page.bring_to_front()


# --- signing in ---------------------------------------------------------------------------------


def test_sign_in_through_the_popup_shows_the_account_and_redeems_a_voucher(
    browser: ExtensionBrowser, service: TrickleService, reader: Reader
) -> None:
    popup = browser.popup()
    expect(popup.locator("#auth-form")).to_be_visible()
    popup.fill("#email", reader.email)
    popup.fill("#password", "not-the-password")
    popup.click("#sign-in")
    expect(popup.locator("#auth-error")).to_have_attribute("data-code", "invalid_credentials")
    browser.screenshot(popup, "popup-sign-in-refused")

    popup.fill("#password", reader.password)
    popup.click("#sign-in")
    expect(popup.locator("#account-email")).to_have_text(reader.email)
    expect(popup.locator("#balance")).to_have_attribute("data-minor", str(FUNDING_MINOR))
    expect(popup.locator("#balance")).to_contain_text("5.00")
    expect(popup.locator("#month-spent")).to_have_attribute("data-minor", "0")
    budget = reader.settings(service)["monthly_budget_minor"]
    expect(popup.locator("#month-budget")).to_have_attribute("data-minor", budget)

    popup.fill("#voucher-code", service.voucher(SMALL_FUNDING_MAJOR))
    popup.click("#redeem")
    expect(popup.locator("#voucher-result")).not_to_be_empty()
    total = FUNDING_MINOR + SMALL_FUNDING_MINOR
    expect(popup.locator("#balance")).to_have_attribute("data-minor", str(total))
    assert reader.balance_minor(service) == total
    browser.screenshot(popup, "popup-signed-in")

    # Signed in for good: a popup opened later still shows the account.
    popup.close()
    again = browser.popup()
    expect(again.locator("#account-email")).to_have_text(reader.email)
    (token,) = _extension_tokens(browser)
    service.api("GET", "/api/v1/me", token=token)
    again.click("#sign-out")
    expect(again.locator("#auth-form")).to_be_visible()
    browser.screenshot(again, "popup-signed-out")
    # Signing out revoked the extension's session at the service, and forgot it.
    service.api("GET", "/api/v1/me", token=token, expect_status=401)
    assert _extension_tokens(browser) == set()

    # A new reader signs up from the popup; the account exists at the service.
    email = f"new-{reader.email}"
    again.fill("#email", email)
    again.fill("#password", reader.password)
    again.click("#sign-up")
    expect(again.locator("#account-email")).to_have_text(email)
    expect(again.locator("#balance")).to_have_attribute("data-minor", "0")
    service.api("POST", "/api/v1/sessions", {"email": email, "password": reader.password})


def test_options_page_sets_the_service_url_and_the_readers_limits(
    browser: ExtensionBrowser, service: TrickleService, reader: Reader
) -> None:
    options = browser.context.new_page()
    options.goto(f"chrome-extension://{browser.extension_id}/pages/options.html")
    # Point the extension elsewhere and back, through the page a reader uses.
    stored = "async () => (await chrome.storage.local.get('serviceUrl')).serviceUrl"
    for url in ("http://127.0.0.1:9", service.url):
        options.fill("#service-url", url)
        options.click("#save-service-url")
        deadline = time.monotonic() + 5
        while browser.worker.evaluate(stored) != url:
            assert time.monotonic() < deadline, options.locator("#saved").text_content()
            options.wait_for_timeout(50)
        expect(options.locator("#saved")).to_have_attribute("data-code", "")
        expect(options.locator("#service-url")).to_have_value(url)

    browser.sign_in(reader).close()
    options.reload()
    options.fill("#rate", "1.20")
    options.fill("#budget", "7.50")
    options.click("#save-limits")
    expected = {"rate_per_hour_minor": "1200000000", "monthly_budget_minor": "7500000000"}
    deadline = time.monotonic() + 10
    while {k: reader.settings(service)[k] for k in expected} != expected:
        assert time.monotonic() < deadline, reader.settings(service)
        options.wait_for_timeout(100)
    browser.screenshot(options, "options-saved")


# --- receipts and earnings ---------------------------------------------------------------------


def test_monetized_page_receives_verified_receipts_that_match_the_creators_earnings(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
    payee: Payee,
) -> None:
    browser.sign_in(reader).close()
    assert payee.earnings_minor(service) == 0

    page = _open_monetized(browser, site, payee, binding="visit-42")
    assert page.evaluate("HTMLLinkElement.prototype.relList === undefined") is False
    assert page.evaluate("document.createElement('link').relList.supports('monetization')")
    wait_for_events(page, 4)

    popup = browser.popup(page)
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "streaming")
    browser.screenshot(popup, "popup-streaming")
    popup.close()

    # Stop paying through the service itself (not the extension), so that every receipt the
    # service signs has time to reach the page before the totals are compared.
    service.api("PUT", "/api/v1/me/settings", {"paused": True}, token=reader.token)
    receipts = _settled_receipts(page, service, site, payee, binding="visit-42")
    assert len(receipts) >= 4
    for receipt in receipts:
        assert receipt.amount_minor > 0
    # One stream: consecutive sequence numbers from 1, and `tot` the running sum of `amt`.
    assert len({r.sid for r in receipts}) == 1
    assert [r.seq for r in receipts] == list(range(1, len(receipts) + 1))
    running = 0
    for receipt in receipts:
        running += receipt.amount_minor
        assert receipt.total_minor == running
    # No fee (TRICKLE_FEE_BPS=0): the payee earned exactly what the receipts say (checked by
    # _settled_receipts), and the reader paid exactly that.
    paid = sum(r.amount_minor for r in receipts)
    assert reader.balance_minor(service) == FUNDING_MINOR - paid
    # The popup agrees: sent this visit, and the history per site.
    popup = browser.popup(page)
    expect(popup.locator("#tab-sent")).to_have_attribute("data-minor", str(paid))
    row = popup.locator(f'#history li[data-origin="{site.origin}"]')
    expect(row).to_have_attribute("data-minor", str(paid))

    # The reader's session token (in the extension's storage) never reaches the page.
    tokens = _extension_tokens(browser)
    assert tokens, "expected the extension's session token in chrome.storage.session"
    seen_by_page = page.content() + json.dumps(events(page))
    seen_by_page += page.evaluate("JSON.stringify({...localStorage, ...sessionStorage})")
    assert not any(token in seen_by_page for token in tokens)


def test_page_without_a_link_opens_no_stream(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
) -> None:
    browser.sign_in(reader).close()
    page = browser.open(site.url("plain.html"))
    # The page-world API is installed all the same, so sites can feature-detect.
    assert page.evaluate("typeof MonetizationEvent") == "function"
    assert page.evaluate("document.createElement('link').relList.supports('monetization')")
    page.wait_for_timeout(QUIET_WINDOW_MS)
    assert events(page) == []

    popup = browser.popup(page)
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "not-monetized")
    browser.screenshot(popup, "popup-not-monetized")
    # The service saw nothing: not a unit moved.
    assert reader.balance_minor(service) == FUNDING_MINOR


def test_a_link_added_later_starts_paying_and_removing_it_stops(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
    payee: Payee,
) -> None:
    browser.sign_in(reader).close()
    page = browser.open(site.url("dynamic.html", pointer=payee.pointer, binding="dyn-1"))
    page.wait_for_timeout(QUIET_WINDOW_MS)
    assert events(page) == []

    page.evaluate("addMonetizationLink()")
    wait_for_events(page, 2)
    page.evaluate("removeMonetizationLink()")
    count = _settle_then_assert_quiet(page)
    receipts = verify_events(
        events(page), service=service, audience=site.origin, pointer=payee.pointer, binding="dyn-1"
    )
    assert len(receipts) == count >= 2
    # The stop charged the time since the last receipt as a final increment (stream protocol,
    # `stop`); its receipt came after the link was gone, so it reached the extension (the
    # history counts it) but no page: the creator earned the page's receipts plus at most one
    # interval's worth.
    earned = payee.earnings_minor(service)
    one_interval = int(reader.settings(service)["rate_per_hour_minor"]) * STREAM_INTERVAL_MS
    assert 0 <= earned - sum(r.amount_minor for r in receipts) <= one_interval // 3_600_000 + 1
    popup = browser.popup(page)
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "not-monetized")
    row = popup.locator(f'#history li[data-origin="{site.origin}"]')
    expect(row).to_have_attribute("data-minor", str(earned))
    browser.screenshot(popup, "popup-link-removed")


# --- attention and the reader's controls ---------------------------------------------------------


def test_hiding_the_tab_stops_receipts_and_showing_it_resumes_them(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
    payee: Payee,
) -> None:
    browser.sign_in(reader).close()
    page = _open_monetized(browser, site, payee)
    wait_for_events(page, 2)

    _hide(browser, page)
    count = _settle_then_assert_quiet(page)
    popup = browser.popup(page)
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "paused")
    expect(popup.locator("#tab-status")).to_have_attribute("data-reason", "hidden")
    browser.screenshot(popup, "popup-tab-hidden")
    popup.close()

    _show(browser, page)
    wait_for_events(page, count + 2)
    verify_events(events(page), service=service, audience=site.origin, pointer=payee.pointer)


def test_global_pause_and_site_off_stop_receipts(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
    payee: Payee,
) -> None:
    browser.sign_in(reader).close()
    page = _open_monetized(browser, site, payee)
    wait_for_events(page, 2)
    popup = browser.popup(page)

    popup.check("#global-pause")
    expect(popup.locator("#tab-status")).to_have_attribute("data-reason", "global-pause")
    count = _settle_then_assert_quiet(page)
    browser.screenshot(popup, "popup-global-pause")
    popup.uncheck("#global-pause")
    wait_for_events(page, count + 2)
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "streaming")

    popup.uncheck("#site-enabled")
    expect(popup.locator("#tab-status")).to_have_attribute("data-reason", "site-disabled")
    count = _settle_then_assert_quiet(page)
    browser.screenshot(popup, "popup-site-disabled")
    popup.check("#site-enabled")
    wait_for_events(page, count + 2)

    # A rate of the site's own reaches the service as the reader's rule for this origin.
    popup.fill("#site-rate", "1.20")
    popup.click("#site-rate-save")
    rule = {"origin": site.origin, "rate_per_hour_minor": "1200000000", "disabled": False}
    deadline = time.monotonic() + 10
    while True:
        overrides = service.api("GET", "/api/v1/me/site-overrides", token=reader.token)
        found = [
            {k: o[k] for k in rule} for o in overrides["overrides"] if o["origin"] == site.origin
        ]
        if found == [rule]:
            break
        assert time.monotonic() < deadline, overrides
        page.wait_for_timeout(100)
    expect(popup.locator(f'#history li[data-origin="{site.origin}"]')).to_have_count(1)

    # Every receipt the service signed reached the page, across the pauses: stop through the
    # service, let the last one arrive, and compare with the payee's earnings.
    service.api("PUT", "/api/v1/me/settings", {"paused": True}, token=reader.token)
    _settled_receipts(page, service, site, payee)


def test_two_tabs_together_pay_no_more_than_the_hourly_rate(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
    creator_token: str,
) -> None:
    browser.sign_in(reader).close()
    rate_per_hour_minor = int(reader.settings(service)["rate_per_hour_minor"])
    first_payee, second_payee = (
        make_payee(service, creator_token),
        make_payee(service, creator_token),
    )

    started = time.monotonic()
    first = _open_monetized(browser, site, first_payee, binding="tab-1")
    second = _open_monetized(browser, site, second_payee, binding="tab-2")
    wait_for_events(first, 3)
    wait_for_events(second, 3)
    first.wait_for_timeout(1000)
    first_receipts = verify_events(
        events(first), service=service, audience=site.origin, pointer=first_payee.pointer
    )
    second_receipts = verify_events(
        events(second), service=service, audience=site.origin, pointer=second_payee.pointer
    )
    elapsed_s = time.monotonic() - started
    browser.screenshot(browser.popup(first), "popup-first-of-two-tabs")

    paid = sum(r.amount_minor for r in first_receipts + second_receipts)
    allowed = rate_per_hour_minor * elapsed_s / 3600
    one_interval = rate_per_hour_minor * STREAM_INTERVAL_MS / 3_600_000
    assert paid <= allowed + one_interval, (paid, allowed, one_interval)
    # Both tabs were paid, sharing the rate; the service agrees with what the pages hold.
    spent = FUNDING_MINOR - reader.balance_minor(service)
    assert spent >= paid
    assert spent <= rate_per_hour_minor * (time.monotonic() - started) / 3600 + one_interval


# --- failures the reader must see ----------------------------------------------------------------


def test_an_exhausted_balance_stops_receipts_and_the_popup_says_why(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    payee: Payee,
) -> None:
    reader = make_reader(service, SMALL_FUNDING_MAJOR)
    browser.sign_in(reader).close()
    page = _open_monetized(browser, site, payee)
    popup = browser.popup(page)
    expect(popup.locator("#tab-status")).to_have_attribute(
        "data-reason", "insufficient_funds", timeout=15_000
    )
    browser.screenshot(popup, "popup-insufficient-funds")
    expect(popup.locator("#tab-status")).not_to_have_attribute("data-state", "streaming")
    page.wait_for_timeout(SETTLE_MS)
    count = _assert_quiet(page)
    assert count >= 1

    receipts = _settled_receipts(page, service, site, payee)
    paid = sum(r.amount_minor for r in receipts)
    left = reader.balance_minor(service)
    assert paid + left == SMALL_FUNDING_MINOR
    assert left < max(r.amount_minor for r in receipts) * 2  # it really ran dry
    # The popup's balance is the service's, not one from before the last increments.
    expect(popup.locator("#balance")).to_have_attribute("data-minor", str(left), timeout=5_000)
    expect(popup.locator("#month-spent")).to_have_attribute("data-minor", str(paid))


def test_a_service_restart_mid_stream_is_survived(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
    payee: Payee,
) -> None:
    browser.sign_in(reader).close()
    page = _open_monetized(browser, site, payee)
    wait_for_events(page, 2)

    # A crash (SIGKILL: no goodbye to the clients), then the same service again on the same port
    # and data folder. Meanwhile the popup says why nothing is paid.
    service.kill()
    popup = browser.popup(page)
    expect(popup.locator("#tab-status")).to_have_attribute(
        "data-reason", "service_unreachable", timeout=5_000
    )
    browser.screenshot(popup, "popup-service-unreachable")
    during = len(events(page))
    service.start()
    # The extension reconnects (with backoff) and streams again.
    wait_for_events(page, during + 3, timeout_ms=20_000)
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "streaming")
    browser.screenshot(popup, "popup-after-restart")

    service.api("PUT", "/api/v1/me/settings", {"paused": True}, token=reader.token)
    page.wait_for_timeout(SETTLE_MS)
    receipts = verify_events(
        events(page), service=service, audience=site.origin, pointer=payee.pointer
    )
    assert len(receipts) >= during + 3
    # An increment committed just before the crash may never have reached the page; but the page
    # never holds a receipt for money that did not move.
    assert payee.earnings_minor(service) >= sum(r.amount_minor for r in receipts)
