"""docs/site-owners.md followed literally, end to end: its code blocks written into a folder
(tests/site_doc.py), its setup block run, its server started with its run command, against a
real ``trickle serve``; a reader without the extension is told to install Trickle, a reader with
it unlocks the article once the site's server verified receipts bound to that visit, and buys
the guide through the extension's approval window. A page with nothing but the doc's link tag
earns too.

Screenshots go to ``test-output/e2e/<test>/``.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests import site_doc
from tests.e2e.accessibility import assert_accessible
from tests.e2e.harness import (
    FAST_RATE_PER_HOUR_MINOR,
    ExtensionBrowser,
    Payee,
    Reader,
    TrickleService,
    events,
    free_port,
    set_paused,
    set_rate,
    verify_events,
    wait_for_events,
)
from tests.processes import terminate, wait_until_answering
from trickle.dashboard import snippets

pytestmark = pytest.mark.e2e

PRICE_MINOR = 1_000_000  # the doc's PRICE_MINOR: 0.001 USD
GUIDE_PRICE_MINOR = 50_000_000  # the doc's field guide: 0.05 USD


class DocSite:
    """The doc's site, run as the doc says, for one payee of the test service."""

    def __init__(self, root: Path, service: TrickleService, payee: Payee) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.payee = payee
        self.folder = site_doc.write_site(
            root, issuer=service.url, pointer=payee.pointer, origin=self.origin
        )
        self.log_path = root / "site.log"
        command, environment = site_doc.run_command(self.port)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.folder, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def doc_site(service: TrickleService, payee: Payee, tmp_path: Path) -> Iterator[DocSite]:
    site = DocSite(tmp_path, service, payee)
    try:
        wait_until_answering(site.process, f"{site.origin}/", 30, site.log, "the doc's site")
        yield site
    finally:
        terminate(site.process)
    assert "Traceback" not in site.log(), site.log()


def binding_of(page: Page) -> str:
    value = page.get_attribute('link[rel="monetization"]', "data-trickle-binding")
    assert value, "the doc's page renders the visit's binding value into the link"
    return value


def test_without_the_extension_the_docs_pages_say_to_install_trickle_and_stay_locked(
    plain_context: BrowserContext, doc_site: DocSite, output_dir: Path
) -> None:
    page = plain_context.new_page()
    page.goto(f"{doc_site.origin}/")
    # onStateChange delivers the current state at once: 'unsupported' never changes.
    expect(page.locator("#status")).to_have_text(
        "Install Trickle (or another Web Monetization extension) to read on."
    )
    expect(page.locator("#locked")).to_be_visible()
    expect(page.locator("#premium")).to_have_count(0)
    assert_accessible(page)
    page.screenshot(path=str(output_dir / "doc-article-without-extension.png"), full_page=True)

    page.goto(f"{doc_site.origin}/guide")
    page.click("#buy")
    expect(page.locator("#outcome")).to_have_text(
        "Buying needs the Trickle extension: install it, then press Buy again."
    )
    expect(page.locator("#bought")).to_have_count(0)
    assert_accessible(page)
    page.screenshot(path=str(output_dir / "doc-guide-without-extension.png"), full_page=True)


def test_with_the_extension_the_docs_site_unlocks_the_article_and_sells_the_guide(
    browser: ExtensionBrowser,
    service: TrickleService,
    doc_site: DocSite,
    payee: Payee,
    reader: Reader,
) -> None:
    browser.sign_in(reader).close()
    set_rate(service, reader, FAST_RATE_PER_HOUR_MINOR)
    page = browser.open(f"{doc_site.origin}/")
    expect(page.locator("#locked")).to_be_visible()
    browser.screenshot(page, "doc-article-locked")
    # The bridge forwards receipts; once the server verified the price, the page reloads and the
    # server sends the premium part.
    expect(page.locator("#premium")).to_be_visible(timeout=30_000)
    expect(page.locator("#status")).to_have_text(
        "Thank you: your visit pays the writer while you read.", timeout=10_000
    )
    (cookie,) = [c for c in browser.context.cookies(doc_site.origin) if c["name"] == "visitor"]
    assert cookie["httpOnly"] is True
    assert cookie["value"] not in page.content()  # the page sees the binding value only
    receipts = verify_events(
        wait_for_events(page, 1),
        service=service,
        audience=doc_site.origin,
        pointer=payee.pointer,
        binding=binding_of(page),
    )
    assert receipts and all(not r.one_time for r in receipts)
    browser.screenshot(page, "doc-article-unlocked")

    # One-time payment: approved in the extension's own window; the server records the purchase.
    set_paused(service, reader, True)
    guide = browser.open(f"{doc_site.origin}/guide")
    expect(guide.locator("#buy")).to_have_text("Buy for 0.05 USD")
    approve_url = f"chrome-extension://{browser.extension_id}/pages/approve.html"
    with browser.context.expect_page(lambda p: p.url.startswith(approve_url)) as opened:
        guide.click("#buy")
    approval = opened.value
    approval.wait_for_load_state()
    expect(approval.locator("#approve-amount")).to_have_attribute(
        "data-minor", str(GUIDE_PRICE_MINOR)
    )
    expect(approval.locator("#approve-origin")).to_have_text(doc_site.origin)
    approval.click("#approve")
    expect(guide.locator("#bought")).to_be_visible(timeout=15_000)
    (payment,) = service.api("GET", "/api/v1/payments", token=reader.token)["payments"]
    assert (payment["amount_minor"], payment["order_ref"]) == (
        str(GUIDE_PRICE_MINOR),
        "field-guide",
    )
    browser.screenshot(guide, "doc-guide-bought")


def test_a_page_with_only_the_docs_link_tag_earns(
    browser: ExtensionBrowser,
    service: TrickleService,
    payee: Payee,
    reader: Reader,
    tmp_path: Path,
) -> None:
    link = snippets.personalize(
        site_doc.site_files()["link.html"],
        issuer=service.url,
        pointer=payee.pointer,
        origin="unused",
    )
    (tmp_path / "index.html").write_text(
        f"<!doctype html>\n<html lang=en><head><title>Earning</title>\n{link}</head>"
        "<body><p>Nothing else.</p></body></html>\n"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        browser.sign_in(reader).close()
        page = browser.open(f"{origin}/index.html")
        receipts = verify_events(
            wait_for_events(page, 2), service=service, audience=origin, pointer=payee.pointer
        )
        assert sum(r.amount_minor for r in receipts) > 0
        assert all(r.binding is None for r in receipts)
        assert events(page)[0]["paymentPointer"] == payee.pointer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
