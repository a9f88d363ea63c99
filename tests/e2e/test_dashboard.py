"""The creator dashboard end to end (issue 6): a creator signs up and creates a payee in the
dashboard (a Chromium without the extension), a reader with the extension reads the demo
publisher's premium article for that payee, and the creator sees exactly what the receipts say,
claims it through the form (once, however often the form is sent) and the operator's
``trickle payouts list`` shows the payout.

The service holds earnings for only ``CLAIM_HOLD_S`` (1 s) and allows claims from
``MIN_CLAIM_MINOR`` (harness.py). Screenshots of the dashboard pages go to
``test-output/e2e/<test>/``.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.harness import (
    FAST_RATE_PER_HOUR_MINOR,
    PASSWORD,
    DemoPublisher,
    ExtensionBrowser,
    PublisherFactory,
    Reader,
    TrickleService,
    events,
    set_paused,
    set_rate,
    verify_events,
)
from trickle.money import format_minor, format_money

pytestmark = pytest.mark.e2e

SCALE = 9


def money(minor: int) -> str:
    """As the dashboard shows amounts (``trickle.money.format_money``, en-US)."""
    return format_money(minor, SCALE, "USD")


def shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def payee_earnings_minor(service: TrickleService, token: str, name: str) -> int:
    earnings = service.api("GET", "/api/v1/earnings", token=token)
    (mine,) = [p for p in earnings["payees"] if p["payee"] == name]
    return int(mine["balance_minor"])


def settled_total(page: Page, service: TrickleService, token: str, name: str) -> int:
    """Once streaming stopped: the receipts on ``page`` add up to the payee's earnings (the last
    one may still be on its way for a moment). Returns that total."""
    deadline = time.monotonic() + 10
    while True:
        on_page = sum(int(e["amountMinor"] or 0) for e in events(page))
        earned = payee_earnings_minor(service, token, name)
        if on_page == earned:
            return on_page
        assert time.monotonic() < deadline, (on_page, earned)
        page.wait_for_timeout(100)


def submit_form_again(page: Page, fields: dict[str, str], action: str) -> None:
    """Send a form with exactly these fields again, as the browser does on a resend."""
    page.evaluate(
        """([fields, action]) => {
          const form = document.createElement('form');
          form.method = 'post';
          form.action = action;
          for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement('input');
            input.type = 'hidden';
            input.name = name;
            input.value = value;
            form.appendChild(input);
          }
          document.body.appendChild(form);
          form.submit();
        }""",
        [fields, action],
    )


def test_the_creator_sees_the_readings_earnings_in_the_dashboard_claims_them_once_and_the_operator_lists_the_payout(  # noqa: E501
    browser: ExtensionBrowser,
    plain_context: BrowserContext,
    service: TrickleService,
    start_publisher: PublisherFactory,
    reader: Reader,
) -> None:
    folder = browser.output_dir
    dashboard = f"{service.url}/dashboard"

    # The creator signs up and creates a payee, in the dashboard.
    creator = plain_context.new_page()
    creator.goto(f"{dashboard}/sign-in")
    shot(creator, folder, "dashboard-sign-in")
    email = f"creator-{secrets.token_hex(5)}@e2e.trickle.test"
    creator.fill("#sign-up-email", email)
    creator.fill("#sign-up-password", PASSWORD)
    creator.get_by_role("button", name="Create account").click()
    expect(creator).to_have_url(f"{dashboard}/")
    name = f"gazette-{secrets.token_hex(4)}"
    creator.fill("#payee-name", name)
    creator.fill("#payee-display-name", "The Trickle Gazette")
    creator.get_by_role("button", name="Create payee").click()
    expect(creator).to_have_url(f"{dashboard}/payees/{name}?created=1")
    pointer = f"{service.url}/p/{name}"
    expect(creator.locator("main")).to_contain_text(pointer)
    shot(creator, folder, "dashboard-payee")
    token = service.api("POST", "/api/v1/sessions", {"email": email, "password": PASSWORD})["token"]

    # The publisher names that payee; a reader with the extension reads a premium article.
    publisher: DemoPublisher = start_publisher(pointer)
    browser.sign_in(reader).close()
    set_rate(service, reader, FAST_RATE_PER_HOUR_MINOR)
    page = browser.open(publisher.url("/articles/deep-dive"))
    expect(page.locator("#article-body")).to_have_attribute(
        "data-state", "unlocked", timeout=30_000
    )
    set_paused(service, reader, True)
    total = settled_total(page, service, token, name)
    receipts = verify_events(
        events(page), service=service, audience=publisher.origin, pointer=pointer
    )
    assert sum(r.amount_minor for r in receipts) == total >= 1_000_000

    # Overview: the payee with what it holds; once the hold passed, all of it is available.
    creator.goto(f"{dashboard}/")
    row = creator.locator("#payees tbody tr", has_text=name)
    expect(row).to_contain_text(pointer)
    cells = row.locator("td.num")
    deadline = time.monotonic() + 15
    while True:
        creator.reload()
        available, held = cells.nth(0).inner_text(), cells.nth(1).inner_text()
        if available == money(total) and held == money(0):
            break
        assert time.monotonic() < deadline, (available, held, money(total))
        creator.wait_for_timeout(250)
    shot(creator, folder, "dashboard-overview")

    # Earnings: the chart's bars (two days: the test may straddle midnight UTC) and the tables
    # add up to exactly the receipts' total.
    creator.goto(f"{dashboard}/earnings?days=2&payee={name}")
    bars = creator.locator("svg rect.bar")
    expect(bars).to_have_count(2)
    bar_minor = [int(bars.nth(i).get_attribute("data-minor") or "0") for i in range(2)]
    assert sum(bar_minor) == total, bar_minor
    per_payee = creator.locator("#per-payee tbody tr", has_text=name)
    per_payee_cells = per_payee.locator("td.num")
    # credited, fees, net, available, held
    assert per_payee_cells.nth(0).inner_text() == money(total)
    assert per_payee_cells.nth(1).inner_text() == money(0)
    assert per_payee_cells.nth(2).inner_text() == money(total)
    assert per_payee_cells.nth(3).inner_text() == money(total)
    per_site = creator.locator("#per-origin tbody tr", has_text=publisher.origin)
    expect(per_site).to_have_count(1)
    expect(per_site.locator("td.num").nth(2)).to_have_text(money(total))
    shot(creator, folder, "dashboard-earnings")

    # Claim everything available through the form, then send the very same form again.
    creator.goto(f"{dashboard}/payouts")
    form = creator.locator(
        "form.claim", has=creator.locator(f'input[name="payee"][value="{name}"]')
    )
    expect(form).to_contain_text(f"{money(total)} available")
    fields = {
        field: form.locator(f'input[name="{field}"]').get_attribute("value") or ""
        for field in ("csrf_token", "payee", "idempotency_key")
    }
    fields["amount"] = ""
    form.get_by_role("button", name="Claim").click()
    expect(creator.locator(".notice")).to_contain_text(f"Claimed {money(total)} for {name}")
    history = creator.locator("#payouts tbody tr", has_text=name)
    expect(history).to_have_count(1)
    expect(history).to_have_attribute("data-state", "pending")
    expect(history.locator("td.num")).to_have_text(money(total))
    shot(creator, folder, "dashboard-payouts")

    submit_form_again(creator, fields, f"{dashboard}/claims")
    expect(creator.locator(".notice")).to_contain_text("This claim was already made")
    expect(creator.locator("#payouts tbody tr", has_text=name)).to_have_count(1)
    assert payee_earnings_minor(service, token, name) == 0
    shot(creator, folder, "dashboard-payouts-resubmitted")

    # The operator sees the payout, once, for exactly the receipts' total.
    listing = service.cli(
        "payouts", "list", "--database-url", f"sqlite:///{service.data_dir / 'trickle.db'}"
    )
    out, err = listing.communicate(timeout=60)
    assert listing.returncode == 0, err
    lines = [line for line in out.splitlines() if f" {name} " in line]
    assert len(lines) == 1, out
    # The operator's CLI writes the exact decimal and the code (for scripts and copy-paste).
    assert f"{format_minor(total, SCALE)} USD" in lines[0] and "pending" in lines[0], lines[0]
