"""The creator dashboard as people see it (issue 15), in a Chromium without the extension at
375 px (a phone) and 1100 px: every page (sign-in, overview, payee, earnings, claims) fits the
width, its text is at least 11 px and inside the page, the chart's axis has round amounts that sit
on its gridlines, messages are sentences, and axe finds no serious or critical violation.

The screenshots of README.md and docs/dashboard.md are taken here, so that they stay current:
``docs/images/dashboard-*.png`` (1100 px, and the earnings page at 375 px); full pages of both
widths go to ``test-output/e2e/<test>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.accessibility import assert_accessible
from tests.e2e.harness import (
    CLAIM_HOLD_S,
    MIN_CLAIM_MINOR,
    PASSWORD,
    REPO,
    TrickleService,
    make_reader,
)
from trickle.dashboard import chart
from trickle.money import format_minor, format_money

pytestmark = pytest.mark.e2e

DOCS_IMAGES = REPO / "docs" / "images"
WIDTHS = (375, 1100)
EMAIL = "alice@gazette.example"
SITE = "https://gazette.example"
PAYMENTS_MINOR = (50_440_665, 1_234_567)  # 0.050440665 + 0.001234567 USD, today
MIN_FONT_PX = 11

# Every element that shows text of its own, with its font size and box (visible ones only).
TEXT_BOXES = """(root) => {
  const found = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim()) continue;
    const element = node.parentElement;
    const hidden = '.visually-hidden, .skip-link, script, style, title, desc, [hidden], '
      + 'details:not([open]) > :not(summary)';
    if (element.closest(hidden)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const box = range.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const scroller = element.closest('.table-wrap, pre');
    found.push({
      text: node.textContent.trim().slice(0, 60),
      fontPx: parseFloat(getComputedStyle(element).fontSize),
      left: box.left + window.scrollX, right: box.right + window.scrollX,
      inScroller: scroller !== null,
    });
  }
  return found;
}"""


# Where the chart's parts are on the page (client coordinates).
CHART_GEOMETRY = """() => {
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  };
  const label = (e) => ({
    text: e.textContent, ...box(e), fontPx: parseFloat(getComputedStyle(e).fontSize),
    clipped: e.scrollWidth > e.clientWidth,
  });
  const figure = document.querySelector('figure.chart');
  return {
    figure: box(figure),
    yLabels: [...figure.querySelectorAll('.chart-y span')].map(label),
    xLabels: [...figure.querySelectorAll('.chart-x span')].map(label),
    gridlines: [...figure.querySelectorAll('.grid line')].map((e) => box(e).top),
    bars: [...figure.querySelectorAll('rect.bar')]
      .map((e) => ({minor: e.dataset.minor, ...box(e)})),
    plot: box(figure.querySelector('svg')),
  };
}"""


def shot(page: Page, folder: Path, name: str, *, docs: bool = False) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    if docs:
        DOCS_IMAGES.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(DOCS_IMAGES / f"{name}.png"))


def assert_readable(page: Page, width: int) -> None:
    """The page fits the width, and all its text is at least MIN_FONT_PX and inside the page;
    a wide table or a snippet scrolls in its own frame (a focusable region)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} at {width} px is {overflow} px too wide"
    for text in page.evaluate(TEXT_BOXES, page.locator("body").element_handle()):
        assert text["fontPx"] >= MIN_FONT_PX, (width, text)
        if not text["inScroller"]:
            assert text["left"] >= 0 and text["right"] <= width + 0.5, (width, text)
    assert_accessible(page)


def chart_geometry(page: Page) -> dict[str, Any]:
    geometry: dict[str, Any] = page.evaluate(CHART_GEOMETRY)
    return geometry


def assert_chart_readable(page: Page, width: int, total_minor: int) -> None:
    geometry = chart_geometry(page)
    figure = geometry["figure"]
    # Round amounts, from 0 to just above the tallest bar: 0, 0.02, 0.04, 0.06 for 0.0517.
    texts = [label["text"] for label in geometry["yLabels"]]
    assert texts == ["0.06", "0.04", "0.02", "0"], texts
    top = chart.axis(total_minor, 9)
    assert [format_minor(t, 9).rstrip("0").rstrip(".") or "0" for t in reversed(top.ticks)] == texts
    assert len(geometry["gridlines"]) == len(texts)
    for label, line_y in zip(geometry["yLabels"], geometry["gridlines"], strict=True):
        assert label["fontPx"] >= MIN_FONT_PX, (width, label)
        assert not label["clipped"], (width, label)
        assert figure["left"] <= label["left"] and label["right"] <= figure["right"], (width, label)
        middle = (label["top"] + label["bottom"]) / 2
        assert abs(middle - line_y) <= 2, (width, label, line_y)  # on its gridline
    assert geometry["yLabels"][0]["right"] <= geometry["plot"]["left"]  # beside the plot
    previous_right = figure["left"]
    for label in geometry["xLabels"]:
        assert label["fontPx"] >= MIN_FONT_PX, (width, label)
        assert previous_right <= label["left"] and label["right"] <= figure["right"], (width, label)
        previous_right = label["right"]
    # The tallest bar stands as high as its amount on the axis.
    (today,) = [bar for bar in geometry["bars"] if int(bar["minor"]) > 0]
    bottom, axis_top = geometry["gridlines"][-1], geometry["gridlines"][0]
    drawn = (bottom - today["top"]) / (bottom - axis_top)
    assert abs(drawn - total_minor / top.top_minor) < 0.02, drawn


@pytest.fixture(scope="module")
def creator(service: TrickleService) -> dict[str, Any]:
    """A creator with two payees: one paid twice today from an unverified site, one idle."""
    token = service.sign_up(EMAIL)
    service.api(
        "POST",
        "/api/v1/payees",
        {"name": "gazette", "display_name": "The Trickle Gazette"},
        token=token,
    )
    service.api(
        "POST", "/api/v1/payees", {"name": "notes", "display_name": "Field notes"}, token=token
    )
    service.api("POST", "/api/v1/payees/gazette/sites", {"origin": SITE}, token=token)
    reader = make_reader(service)
    for index, amount in enumerate(PAYMENTS_MINOR):
        service.api(
            "POST",
            "/api/v1/payments",
            {
                "payment_pointer": f"{service.url}/p/gazette",
                "origin": SITE,
                "amount_minor": str(amount),
                "currency": "USD",
                "order_ref": f"article-{index}",
                "description": "An article",
            },
            token=reader.token,
            idempotent=True,
        )
    return {"token": token}


def test_every_dashboard_page_is_readable_and_accessible_at_375_and_1100_px(
    plain_browser: Browser, service: TrickleService, creator: dict[str, Any], output_dir: Path
) -> None:
    total = sum(PAYMENTS_MINOR)
    dashboard = f"{service.url}/dashboard"
    for width in WIDTHS:
        docs = width == 1100
        context = plain_browser.new_context(viewport={"width": width, "height": 800})
        context.set_default_timeout(10_000)
        page = context.new_page()

        page.goto(f"{dashboard}/sign-in")
        assert_readable(page, width)
        shot(page, output_dir, f"dashboard-sign-in-{width}")
        page.fill("#sign-in-email", EMAIL)
        page.fill("#sign-in-password", "not the password")
        page.get_by_role("button", name="Sign in").click()
        notice = page.locator(".notice.error")
        expect(notice).to_contain_text("That did not work. Wrong email or password.")
        assert_readable(page, width)
        page.fill("#sign-in-password", PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{dashboard}/")

        # Overview: sites in words, never "0 of 0".
        page.wait_for_timeout(CLAIM_HOLD_S * 1000 + 200)  # today's payments are claimable now
        page.reload()
        rows = page.locator("#payees tbody tr")
        expect(rows.filter(has_text="Field notes")).to_contain_text("None yet: add one")
        expect(rows.filter(has_text="The Trickle Gazette")).to_contain_text("0 of 1 verified")
        assert "0 of 0" not in page.inner_text("main")
        assert_readable(page, width)
        shot(page, output_dir, f"dashboard-overview-{width}")
        if docs:
            shot(page, output_dir, "dashboard-overview", docs=True)

        page.goto(f"{dashboard}/payees/gazette")
        expect(page.locator("#snippet-server")).to_contain_text(
            f'POINTER = "{service.url}/p/gazette"'
        )
        assert_readable(page, width)
        shot(page, output_dir, f"dashboard-payee-{width}")
        if docs:
            shot(page, output_dir, "dashboard-payee", docs=True)

        page.goto(f"{dashboard}/earnings?days=7&payee=gazette")
        expect(page.locator("rect.bar")).to_have_count(7)
        assert_chart_readable(page, width, total)
        page.locator("details summary").click()  # the table alternative, open
        assert_readable(page, width)
        page.locator("details summary").click()
        shot(page, output_dir, f"dashboard-earnings-{width}")
        shot(
            page,
            output_dir,
            "dashboard-earnings" if docs else "dashboard-earnings-phone",
            docs=True,
        )

        # Claims: the idle payee says why it cannot claim, with the minimum and what it lacks.
        page.goto(f"{dashboard}/payouts")
        hint = page.locator("#cannot-claim-notes")
        minimum = format_money(MIN_CLAIM_MINOR, 9, "USD")
        expect(hint).to_contain_text(
            f"Not enough available to claim yet: claims start at {minimum}."
        )
        expect(hint).to_contain_text(f"This payee needs {minimum} more in earnings first.")
        expect(
            page.locator("form.claim", has_text="The Trickle Gazette").get_by_role(
                "button", name="Claim"
            )
        ).to_be_visible()
        assert_readable(page, width)
        shot(page, output_dir, f"dashboard-claims-{width}")
        if docs:
            shot(page, output_dir, "dashboard-claims", docs=True)

        # Signed out: the sign-in page again, for the docs.
        page.get_by_role("button", name="Sign out").click()
        expect(page.locator(".notice.ok")).to_contain_text("You are signed out.")
        if docs:
            shot(page, output_dir, "dashboard-sign-in", docs=True)
        context.close()
