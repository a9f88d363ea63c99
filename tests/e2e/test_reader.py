"""What a reader reads and does in the extension (issue 15): messages that are sentences, amounts
as people write them, the limit that stopped a payment and what to do about it, controls that look
the way they work, the purchase made before, accessibility and the keyboard.

Screenshots for review go to ``test-output/e2e/<test>/``; the ones the docs show are written to
``docs/images/`` (``DOCS_IMAGES``) so that they stay current.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.accessibility import assert_accessible
from tests.e2e.harness import (
    FUNDING_MINOR,
    REPO,
    ExtensionBrowser,
    Payee,
    PublisherFactory,
    Reader,
    TestSite,
    TrickleService,
    make_reader,
    set_paused,
)
from trickle.money import format_exact, format_money

pytestmark = pytest.mark.e2e

DOCS_IMAGES = REPO / "docs" / "images"
SCALE = 9
USD = 10**SCALE
# What a developer wrote and a reader must never read: snake_case names, units, exceptions.
DEVELOPER_TEXT = re.compile(r"[a-z]+_[a-z_]+|minor units|Failed to construct|Error:|undefined")
POPUP_WIDTH = 360  # about the width Chromium gives an extension's popup


def money(minor: int) -> str:
    return format_money(minor, SCALE, "USD")


def space(text: str) -> str:
    """Intl writes some spaces as no-break spaces (U+00A0, U+202F): compare words, not bytes."""
    return re.sub(r"[\u00a0\u202f]", " ", text)


def docs_shot(page: Page, name: str) -> Path:
    """A screenshot the docs show (docs/images/<name>.png), made by the test that drives it."""
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    path = DOCS_IMAGES / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def narrow_popup(browser: ExtensionBrowser, tab: Page | None = None) -> Page:
    popup = browser.popup(tab)
    popup.set_viewport_size({"width": POPUP_WIDTH, "height": 600})
    return popup


def assert_sentence(text: str) -> None:
    assert text.strip(), "empty message"
    assert not DEVELOPER_TEXT.search(text), f"developer text shown to a reader: {text!r}"


def monetized(browser: ExtensionBrowser, site: TestSite, payee: Payee) -> Page:
    return browser.open(site.url("monetized.html", pointer=payee.pointer, binding="visit-1"))


def set_budget(service: TrickleService, reader: Reader, budget_minor: int) -> None:
    service.api(
        "PUT",
        "/api/v1/me/settings",
        {"monthly_budget_minor": str(budget_minor)},
        token=reader.token,
    )


# --- 1. messages are sentences ----------------------------------------------------------------


def test_what_went_wrong_is_said_in_sentences_never_in_field_names(
    browser: ExtensionBrowser, service: TrickleService, site: TestSite, payee: Payee
) -> None:
    # Sign-up with a short password (today: "password: String should have at least 10 …").
    popup = narrow_popup(browser)
    popup.fill("#email", f"new-{secrets.token_hex(4)}@e2e.trickle.test")
    popup.fill("#password", "short")
    popup.click("#sign-up")
    error = popup.locator("#auth-error")
    expect(error).to_have_attribute("data-code", "validation_failed")
    expect(error).to_have_text("Choose a password of at least 10 characters.")
    assert_accessible(popup)
    browser.screenshot(popup, "sign-up-short-password")

    # A wrong password.
    reader = make_reader(service)
    popup.fill("#email", reader.email)
    popup.fill("#password", "not-the-right-one")
    popup.click("#sign-in")
    expect(error).to_have_attribute("data-code", "invalid_credentials")
    assert_sentence(error.inner_text())
    popup.close()
    browser.sign_in(reader).close()

    # A site rate past the service's maximum (today: "rate_per_hour_minor: must be 0..…").
    page = monetized(browser, site, payee)
    popup = narrow_popup(browser, page)
    expect(popup.locator("#site-controls")).to_be_enabled()
    popup.fill("#site-rate", "1000")
    popup.click("#site-rate-save")
    site_error = popup.locator("#site-error")
    expect(site_error).to_have_attribute("data-code", "validation_failed")
    expect(site_error).to_have_text(
        "Not saved. An hourly rate can be at most $100.00; you wrote $1,000.00."
    )
    popup.fill("#site-rate", "0.0000000001")
    popup.click("#site-rate-save")
    expect(site_error).to_have_text(
        "Not saved. Write the amount with at most 9 digits after the point."
    )
    browser.screenshot(popup, "site-rate-refused")

    # The options page: a URL that is not one (today: "Failed to construct 'URL': Invalid URL").
    options = browser.context.new_page()
    options.goto(f"chrome-extension://{browser.extension_id}/pages/options.html")
    options.fill("#service-url", "not a url")
    options.click("#save-service-url")
    saved = options.locator("#saved")
    expect(saved).to_have_attribute("data-code", "invalid_service_url")
    expect(saved).to_have_text(
        "Not saved. Write the service URL in full, like https://trickle.example or "
        "http://127.0.0.1:8420."
    )
    options.fill("#service-url", service.url)
    options.fill("#budget", "abc")
    options.click("#save-limits")
    expect(saved).to_have_text(
        "Not saved. Write the amount with digits and at most one point, like 0.50."
    )
    options.fill("#budget", "")
    options.fill("#rate", "1000")
    options.click("#save-limits")
    expect(saved).to_have_text(
        "Not saved. An hourly rate can be at most $100.00; you wrote $1,000.00."
    )
    assert_accessible(options)
    browser.screenshot(options, "options-refused")
    # Nothing reached the service: the rate is the reader's own still.
    assert reader.settings(service)["rate_per_hour_minor"] == "600000000"


# --- 2 and 4. which limit stopped a payment, and the way forward --------------------------------


def test_a_tip_past_what_is_left_names_the_limit_and_by_how_much(
    browser: ExtensionBrowser, service: TrickleService, site: TestSite, payee: Payee
) -> None:
    reader = make_reader(service)
    set_paused(service, reader, True)  # no streaming: the month's spending is the tips alone
    browser.sign_in(reader).close()
    page = monetized(browser, site, payee)
    popup = narrow_popup(browser, page)
    result = popup.locator("#tip-result")

    popup.fill("#tip-amount", "0.13")
    popup.click("#tip")
    expect(result).to_have_text(re.compile(r"^Tipped \$0\.13 to "), timeout=10_000)
    expect(popup.locator("#month-spent")).to_have_text("$0.13")

    # 0.13 of 5.00 spent: a tip of 4.95 is 0.08 too much for the budget (today: "This month's
    # budget is reached").
    popup.fill("#tip-amount", "4.95")
    popup.click("#tip")
    expect(result).to_have_attribute("data-code", "budget_exhausted", timeout=10_000)
    expect(result).to_contain_text(
        "No tip sent. This tip of $4.95 is $0.08 more than what is left of your monthly budget "
        "($4.87 of $5.00). Nothing was paid."
    )
    raise_budget = result.get_by_role("link", name="Raise your monthly budget in Options")
    expect(raise_budget).to_have_attribute("href", "options.html#limits")
    browser.screenshot(popup, "tip-over-budget")

    # Past the balance instead: the balance is named.
    set_budget(service, reader, 100 * USD)
    popup.fill("#tip-amount", "6.00")
    popup.click("#tip")
    expect(result).to_have_attribute("data-code", "insufficient_funds", timeout=10_000)
    expect(result).to_contain_text(
        "No tip sent. This tip of $6.00 is $1.13 more than your balance ($4.87). Nothing was "
        "paid: top up first."
    )
    result.get_by_role("link", name="Top up").click()
    expect(popup.locator("#voucher-code")).to_be_focused()
    assert reader.balance_minor(service) == FUNDING_MINOR - 13 * USD // 100

    # The link to the options page opens it with the budget field ready.
    set_budget(service, reader, 5 * USD)
    popup.fill("#tip-amount", "4.95")
    popup.click("#tip")
    expect(result).to_have_attribute("data-code", "budget_exhausted", timeout=10_000)
    with browser.context.expect_page() as opened:
        result.get_by_role("link", name="Raise your monthly budget in Options").click()
    options = opened.value
    options.wait_for_load_state()
    assert options.url.endswith("/pages/options.html#limits")
    expect(options.locator("#budget")).to_be_focused()
    expect(options.locator("#budget")).to_have_value("5.00")


def test_a_spent_budget_says_when_it_starts_again_and_where_to_raise_it(
    browser: ExtensionBrowser, service: TrickleService, site: TestSite, payee: Payee
) -> None:
    reader = make_reader(service)
    set_budget(service, reader, 200_000)  # about a second of reading at the default rate
    browser.sign_in(reader).close()
    page = monetized(browser, site, payee)
    popup = narrow_popup(browser, page)
    # The reader's own time zone: the month (UTC) starts again on the evening before there.
    cdp = browser.context.new_cdp_session(popup)
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    status = popup.locator("#tab-status")
    expect(status).to_have_attribute("data-reason", "budget_exhausted", timeout=15_000)

    now = dt.datetime.now(dt.UTC)
    first = dt.datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=dt.UTC)
    local = first.astimezone(ZoneInfo("America/New_York"))
    when = f"{local:%B} {local.day}, {local.year} at {local.hour % 12 or 12}:{local:%M %p}"
    expected = (
        f"Not paying: this month's budget of {money(200_000)} is spent. "
        f"It starts again on {when}. Raise your monthly budget in Options"
    )
    assert space(status.inner_text()) == expected
    expect(status.get_by_role("link")).to_have_attribute("href", "options.html#limits")
    # Said once: the account's note stays hidden while this tab's status says it.
    expect(popup.locator("#budget-note")).to_be_hidden()
    assert_accessible(popup)
    browser.screenshot(popup, "budget-spent")
    docs_shot(popup, "popup-budget-spent")
    # About a tab that is not monetized, the account's note says it.
    other = browser.context.new_page()
    other.goto(f"chrome-extension://{browser.extension_id}/pages/popup.html?tab=999999")
    note = other.locator("#budget-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("It starts again on")
    expect(note.get_by_role("link", name="Raise your monthly budget in Options")).to_be_visible()


def test_the_popup_shows_the_hourly_rate_this_tab_is_paid_at(
    browser: ExtensionBrowser, service: TrickleService, site: TestSite, payee: Payee
) -> None:
    reader = make_reader(service)
    browser.sign_in(reader).close()
    page = monetized(browser, site, payee)
    popup = narrow_popup(browser, page)
    rate = popup.locator("#tab-rate")
    expect(rate).to_have_text("$0.60")
    expect(rate).to_have_attribute("data-source", "default")
    expect(popup.locator("#tab-rate-line")).to_contain_text(
        "Paid at $0.60 an hour (your usual rate)"
    )
    popup.fill("#site-rate", "1.2")
    popup.click("#site-rate-save")
    expect(rate).to_have_text("$1.20")
    expect(rate).to_have_attribute("data-source", "site")
    expect(rate).to_have_attribute("data-minor", str(12 * USD // 10))
    expect(popup.locator("#tab-rate-line")).to_contain_text("(your rate for this site)")
    popup.fill("#site-rate", "")
    popup.click("#site-rate-save")
    expect(rate).to_have_attribute("data-source", "default")


# --- 3. controls look the way they work -----------------------------------------------------------


def test_controls_that_cannot_be_used_look_it_and_redeem_waits_for_sign_in(
    browser: ExtensionBrowser, service: TrickleService
) -> None:
    popup = narrow_popup(browser)
    expect(popup.locator("#auth-form")).to_be_visible()
    # Signed out: nothing to redeem a voucher into.
    expect(popup.locator("#redeem")).to_be_hidden()
    expect(popup.locator("#voucher-code")).to_be_hidden()
    # Buttons of a disabled fieldset: greyed, no hand cursor.
    for button in ("#tip", "#site-rate-save", "#site-auto-approve-save"):
        style = popup.locator(button).evaluate(
            "(b) => { const s = getComputedStyle(b); return [s.cursor, s.backgroundColor]; }"
        )
        assert style[0] == "not-allowed", (button, style)
        assert style[1] != "rgb(0, 112, 112)", (button, style)  # not the enabled teal
    assert_accessible(popup)
    browser.screenshot(popup, "signed-out")
    docs_shot(popup, "popup-signed-out")

    # Signed in with a long email: "Sign out" stays on one line.
    email = f"a-rather-long-reader-address-{secrets.token_hex(4)}@e2e.trickle.test"
    service.sign_up(email)
    popup.fill("#email", email)
    popup.fill("#password", "e2e-reader-password")
    popup.click("#sign-in")
    expect(popup.locator("#account-email")).to_have_text(email)
    sign_out = popup.locator("#sign-out").bounding_box()
    line = popup.locator("#sign-out").evaluate("(b) => parseFloat(getComputedStyle(b).lineHeight)")
    assert sign_out is not None and sign_out["height"] < 1.5 * line, sign_out
    expect(popup.locator("#redeem")).to_be_visible()
    expect(popup.locator("#redeem")).to_be_enabled()
    assert_accessible(popup)


# --- 5. amounts as people read them, the same everywhere ----------------------------------------


def test_amounts_read_the_same_in_the_popup_and_on_the_demo_site(
    browser: ExtensionBrowser,
    service: TrickleService,
    start_publisher: PublisherFactory,
    payee: Payee,
) -> None:
    reader = make_reader(service)
    browser.sign_in(reader).close()
    publisher = start_publisher(payee.pointer)
    page = browser.open(publisher.url("/articles/deep-dive"))
    paid = page.locator("#paid")
    expect(paid).not_to_have_attribute("data-minor", "0", timeout=15_000)
    popup = narrow_popup(browser, page)
    expect(popup.locator("#tab-status")).to_have_attribute("data-state", "streaming")
    assert_accessible(popup)
    docs_shot(popup, "popup-streaming")
    set_paused(service, reader, True)  # the figures stand still while they are compared
    page.wait_for_timeout(2500)
    balance = popup.locator("#balance")
    minor = int(balance.get_attribute("data-minor") or "0")
    expect(balance).to_have_text(money(minor))
    expect(balance).to_have_attribute("title", format_exact(minor, SCALE, "USD"))
    # The site's own "Paid this visit", as the server wrote it: the same rule.
    shown = int(paid.get_attribute("data-minor") or "0")
    expect(paid).to_have_text(money(shown))
    expect(paid).to_have_attribute("title", format_exact(shown, SCALE, "USD"))
    # As many decimals as the amount has, never trailing zeros past the usual two.
    assert not re.search(r"\.\d\d\d*0$", paid.inner_text()), paid.inner_text()
    history = popup.locator(f'#history li[data-origin="{publisher.origin}"]')
    listed = int(history.get_attribute("data-minor") or "0")
    assert money(listed) in history.inner_text()
    browser.screenshot(popup, "paused")
    browser.screenshot(page, "demo-site-paid")


# --- 7. the purchase made before -----------------------------------------------------------------


def buy(browser: ExtensionBrowser, page: Page) -> Page:
    with browser.context.expect_page(
        lambda p: "/pages/approve.html" in p.url and p.url.startswith("chrome-extension://")
    ) as opened:
        page.click("#buy-button")
    approval = opened.value
    approval.wait_for_load_state()
    approval.set_viewport_size({"width": 440, "height": 560})
    return approval


def test_the_approval_window_says_when_this_was_bought_before_on_this_site(
    browser: ExtensionBrowser,
    service: TrickleService,
    start_publisher: PublisherFactory,
    payee: Payee,
) -> None:
    reader = make_reader(service)
    set_paused(service, reader, True)
    browser.sign_in(reader).close()
    publisher = start_publisher(payee.pointer)
    page = browser.open(publisher.url("/articles/field-guide"))
    approval = buy(browser, page)
    expect(approval.locator("#approve-before")).to_be_hidden()
    expect(approval.locator("#approve-amount")).to_have_text("$0.05")
    expect(approval.locator("#approve")).to_be_enabled()
    assert_accessible(approval)
    docs_shot(approval, "approval-window")
    approval.click("#approve")
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "purchased")

    # The site forgets this visitor (a new browser, or its cookies cleared); the extension's
    # history remembers the purchase, and the window says so before the reader pays again.
    browser.context.clear_cookies()
    page.goto(publisher.url("/articles/field-guide"))
    expect(page.locator("#purchase")).to_have_attribute("data-state", "locked")
    again = buy(browser, page)
    before = again.locator("#approve-before")
    expect(before).to_be_visible()
    today = dt.date.today()
    expect(before).to_contain_text(
        f"You bought this before on this site, on {today:%B} {today.day}, {today.year} ($0.05)."
    )
    expect(before).to_contain_text("approving pays again")
    expect(again.locator("#approve")).to_be_enabled()
    assert_accessible(again)
    browser.screenshot(again, "approval-bought-before")
    docs_shot(again, "approval-window-bought-before")
    again.click("#decline")
    expect(page.locator("#purchase-status")).to_have_attribute("data-state", "declined")
    assert reader.balance_minor(service) == FUNDING_MINOR - 5 * USD // 100


# --- 9. the keyboard alone ------------------------------------------------------------------------


def tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until ``selector`` has the focus (only the keyboard moves it)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_the_popup_and_the_approval_window_work_with_the_keyboard_alone(
    browser: ExtensionBrowser,
    service: TrickleService,
    start_publisher: PublisherFactory,
    payee: Payee,
) -> None:
    reader = make_reader(service)
    set_paused(service, reader, True)
    publisher = start_publisher(payee.pointer)
    page = browser.open(publisher.url("/articles/welcome"))
    popup = narrow_popup(browser, page)

    # Sign in: Tab to the fields, type, Enter.
    tab_to(popup, "#email")
    popup.keyboard.type(reader.email)
    tab_to(popup, "#password")
    popup.keyboard.type(reader.password)
    popup.keyboard.press("Enter")
    expect(popup.locator("#account-email")).to_have_text(reader.email)

    # Tip with the keyboard: the field, the amount, Enter.
    tab_to(popup, "#tip-amount")
    popup.keyboard.type("0.02")
    popup.keyboard.press("Enter")
    expect(popup.locator("#tip-result")).to_contain_text("Tipped $0.02", timeout=10_000)
    # The pause switch with Space (the reader is paused: Space resumes, Space pauses again).
    tab_to(popup, "#global-pause")
    expect(popup.locator("#global-pause")).to_be_checked()
    popup.keyboard.press("Space")
    expect(popup.locator("#global-pause")).not_to_be_checked()
    popup.keyboard.press("Space")
    expect(popup.locator("#global-pause")).to_be_checked()
    # Every focused control shows where the focus is.
    tab_to(popup, "#redeem")
    outline = popup.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", outline

    # The approval window: Tab to Approve, Enter pays.
    sale = browser.open(publisher.url("/articles/field-guide"))
    approval = buy(browser, sale)
    expect(approval.locator("#approve")).to_be_enabled()
    tab_to(approval, "#approve")
    approval.keyboard.press("Enter")
    expect(sale.locator("#purchase-status")).to_have_attribute("data-state", "purchased")
    paid = service.api("GET", "/api/v1/payments", token=reader.token)["payments"]
    assert sorted(int(p["amount_minor"]) for p in paid) == [2 * USD // 100, 5 * USD // 100]
