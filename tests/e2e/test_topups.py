"""Card top-ups end to end (issue 16): in the popup the reader picks an amount under "Top up";
the extension asks the service, which makes a Checkout Session at the Stripe stand-in
(tests/service/stripe_standin.py) and answers with its page; the extension opens that page in a
tab; the popup shows the top-up pending; the reader pays on the stand-in's page, which sends
Stripe's signed webhooks to the service and redirects to the service's return page; the popup
shows it credited and the new balance.

A service of its own (``CardService``: the harness's service with the Stripe settings pointing at
the stand-in), shared by this module's tests; every test makes its own reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, expect

from tests.e2e.harness import (
    ExtensionBrowser,
    TrickleService,
    launch_browser,
    make_reader,
)
from tests.service.stripe_standin import StripeStandIn

pytestmark = pytest.mark.e2e

FIVE_MINOR = 5_000_000_000  # 5.00 USD at scale 9


class CardService(TrickleService):
    """The harness's ``trickle serve``, with card top-ups through the stand-in."""

    def __init__(self, root: Path, standin: StripeStandIn) -> None:
        super().__init__(root)
        self.standin = standin

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(
            TRICKLE_STRIPE_SECRET_KEY=self.standin.secret_key,
            TRICKLE_STRIPE_WEBHOOK_SECRET=self.standin.webhook_secret,
            TRICKLE_STRIPE_API_BASE=self.standin.base,
        )
        return env


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandIn]:
    running = StripeStandIn().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def card_service(
    chromium_executable: str, tmp_path_factory: pytest.TempPathFactory, standin: StripeStandIn
) -> Iterator[CardService]:
    service = CardService(tmp_path_factory.mktemp("card-service"), standin)
    service.data_dir.mkdir(parents=True)
    service.start()
    standin.webhook_url = f"{service.url}/api/v1/stripe/webhook"
    yield service
    service.stop()
    check = service.cli("ledger", "check")
    out, err = check.communicate(timeout=60)
    assert check.returncode == 0, f"trickle ledger check failed:\n{out}\n{err}"
    assert "Traceback" not in service.log(), service.log()


@pytest.fixture
def card_browser(
    playwright_driver: Playwright,
    chromium_executable: str,
    card_service: CardService,
    output_dir: Path,
) -> Iterator[ExtensionBrowser]:
    yield from launch_browser(playwright_driver, chromium_executable, card_service, output_dir)


def test_a_reader_tops_up_by_card_from_the_popup(
    card_browser: ExtensionBrowser, card_service: CardService, standin: StripeStandIn
) -> None:
    reader = make_reader(card_service, amount=None)
    popup = card_browser.sign_in(reader)
    expect(popup.locator("#balance")).to_have_attribute("data-minor", "0", timeout=10_000)
    presets = popup.locator("#card-presets button")
    expect(presets).to_have_text(["$5.00", "$10.00", "$20.00"], timeout=10_000)
    card_browser.screenshot(popup, "popup-card-presets")

    with card_browser.context.expect_page() as opened:
        popup.click('#card-presets button[data-amount-minor="5000000000"]')
    checkout = opened.value
    checkout.wait_for_load_state()
    assert checkout.url.startswith(f"{standin.base}/pay/cs_test_"), checkout.url
    status = popup.locator("#topup-status")
    expect(status).to_have_attribute("data-state", "pending", timeout=10_000)
    expect(status).to_have_text("Top-up of $5.00: waiting for your payment at Stripe…")
    assert reader.balance_minor(card_service) == 0
    card_browser.screenshot(popup, "popup-topup-pending")

    checkout.click("#pay")  # the stand-in "charges the card" and sends the signed events
    expect(checkout).to_have_url(re.compile(r"/topups/return\?topup=\d+$"), timeout=10_000)
    expect(checkout.locator("h1")).to_have_text("Thank you")

    expect(status).to_have_attribute("data-state", "credited", timeout=15_000)
    expect(status).to_have_text("Credited $5.00.")
    expect(popup.locator("#balance")).to_have_attribute(
        "data-minor", str(FIVE_MINOR), timeout=15_000
    )
    card_browser.screenshot(popup, "popup-topup-credited")
    assert reader.balance_minor(card_service) == FIVE_MINOR
    delivered = [(status, answer["outcome"]) for _, status, answer in standin.delivered]
    assert delivered[-2:] == [(200, "credited"), (200, "already_credited")]
    (topup,) = card_service.api("GET", "/api/v1/topups", token=reader.token)["topups"]
    assert (topup["state"], topup["amount_minor"]) == ("credited", str(FIVE_MINOR))


def test_without_stripe_settings_the_popup_offers_no_card(
    browser: ExtensionBrowser, service: TrickleService
) -> None:
    """The shared e2e service has no Stripe settings: vouchers only."""
    reader = make_reader(service)
    popup = browser.sign_in(reader)
    expect(popup.locator("#balance")).not_to_have_attribute("data-minor", "", timeout=10_000)
    popup.wait_for_timeout(1500)  # a few refreshes of the popup
    expect(popup.locator("#card-topup")).to_be_hidden()
    expect(popup.locator("#voucher-form")).to_be_visible()
