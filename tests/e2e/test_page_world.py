"""The page-world script's Web Monetization surface in a real DOM (issue 15): the
``onmonetization`` event handler as the spec's GlobalEventHandlers extension defines it, on
window, document and elements, IDL and content attribute. A Chromium without the extension runs
``extension/content/page-world.js`` as the extension does (in the page's world, before the page's
own scripts); the events are dispatched by hand, so no service is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Route

from tests.e2e.harness import (
    EXTENSION_DIR,
    ExtensionBrowser,
    Payee,
    Reader,
    TestSite,
    TrickleService,
    events,
    format_minor,
    verify_events,
)

pytestmark = pytest.mark.e2e

PAGE_WORLD = EXTENSION_DIR / "content" / "page-world.js"
ORIGIN = "http://handlers.test"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>handlers</title>
<link id="paid" rel="monetization" href="https://t.example/p/a"
      onmonetization="calls.push(['attribute', this.id, event.type, typeof event.amountSent])">
</head><body>
<form id="f"><input name="answer" value="42"><input id="in-form" name="q"
      onmonetization="window.calls.push(['scope', answer.value, typeof URL, id])"></form>
<link id="bare" rel="monetization" href="https://t.example/p/c">
<script>
  window.calls = [];
  window.errors = [];
  window.addEventListener('error', (e) => window.errors.push(String(e.message)));
  window.fire = (id, init = {}) => {
    const event = new MonetizationEvent('monetization', {
      bubbles: true, cancelable: true,
      amountSent: {currency: 'USD', value: '0.000001'}, paymentPointer: 'https://t.example/p/a',
      incomingPayment: null, receipt: 'r', ...init,
    });
    const target =
      id === 'document' ? document : id === 'window' ? window : document.getElementById(id);
    return target.dispatchEvent(event);  // false: a handler canceled it
  };
</script>
</body></html>
"""


@pytest.fixture
def page(plain_context: BrowserContext) -> Iterator[Page]:
    plain_context.add_init_script(path=str(PAGE_WORLD))

    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE)

    plain_context.route(f"{ORIGIN}/**", serve)
    opened = plain_context.new_page()
    opened.goto(f"{ORIGIN}/")
    yield opened
    opened.close()


def calls(page: Page) -> list[Any]:
    found: list[Any] = page.evaluate("window.calls.splice(0)")
    return found


def test_the_handler_exists_on_window_document_and_elements(page: Page) -> None:
    assert page.evaluate(
        """() => ['onmonetization' in window, 'onmonetization' in document,
                  'onmonetization' in document.createElement('div'),
                  'onmonetization' in HTMLElement.prototype, window.onmonetization,
                  document.onmonetization, document.body.onmonetization]"""
    ) == [True, True, True, True, None, None, None]


def test_the_content_attribute_is_a_handler_with_event_this_and_the_html_scope(page: Page) -> None:
    assert page.evaluate("fire('paid')") is True
    assert calls(page) == [["attribute", "paid", "monetization", "object"]]
    # The element, its form (for a form control) and the document are in scope, as for onclick.
    page.evaluate("fire('in-form')")
    assert calls(page) == [["scope", "42", "string", "in-form"]]  # document.URL, not window.URL
    # The IDL attribute reads the compiled function.
    assert page.evaluate("typeof document.getElementById('paid').onmonetization") == "function"


def test_the_idl_attribute_on_window_document_and_an_element_with_bubbling(page: Page) -> None:
    page.evaluate(
        """() => {
          window.onmonetization = function (event) {
            calls.push(['window', this === window, event.target.id]);
          };
          document.onmonetization = (event) => calls.push(['document', event.eventPhase]);
          document.getElementById('bare').onmonetization = function (e) {
            calls.push(['element', this.id]);
          };
        }"""
    )
    page.evaluate("fire('bare')")
    # Target first, then document, then window: the event bubbles up from the <link>.
    assert calls(page) == [["element", "bare"], ["document", 3], ["window", True, "bare"]]
    # Non-objects are null; setting null removes the handler.
    assert (
        page.evaluate("() => { window.onmonetization = 'alert(1)'; return window.onmonetization; }")
        is None
    )
    page.evaluate("() => { document.onmonetization = null; }")
    page.evaluate("fire('bare')")
    assert calls(page) == [["element", "bare"]]


def test_a_replaced_handler_keeps_its_place_and_false_cancels(page: Page) -> None:
    page.evaluate(
        """() => {
          const link = document.getElementById('bare');
          link.onmonetization = () => window.calls.push('first handler');
          link.addEventListener('monetization', () => window.calls.push('listener'));
          link.onmonetization = () => { window.calls.push('second handler'); return false; };
        }"""
    )
    assert page.evaluate("fire('bare')") is False  # canceled by `return false`
    assert calls(page) == ["second handler", "listener"]


def test_changing_or_removing_the_content_attribute_changes_the_handler(page: Page) -> None:
    page.evaluate(
        """() => {
          const link = document.getElementById('bare');
          link.setAttribute('onmonetization', "window.calls.push('set later')");
        }"""
    )
    page.evaluate("fire('bare')")  # set just before the event: already the handler
    assert calls(page) == ["set later"]
    page.evaluate(
        """() => {
          const link = document.getElementById('bare');
          link.onmonetization = () => window.calls.push('idl');
        }"""
    )
    page.evaluate("fire('bare')")
    assert calls(page) == ["idl"]
    page.evaluate(
        """async () => {
          const link = document.getElementById('bare');
          link.setAttribute('onmonetization', "calls.push('attribute again')");
          await new Promise((r) => setTimeout(r, 0));
        }"""
    )
    page.evaluate("fire('bare')")
    assert calls(page) == ["attribute again"]
    page.evaluate(
        """async () => {
          document.getElementById('paid').removeAttribute('onmonetization');
          await new Promise((r) => setTimeout(r, 0));
        }"""
    )
    page.evaluate("fire('paid')")
    assert calls(page) == []


def test_a_syntax_error_in_the_attribute_is_reported_and_the_handler_is_null(page: Page) -> None:
    page.evaluate(
        "() => document.getElementById('bare').setAttribute('onmonetization', 'not ( js')"
    )
    assert page.evaluate("fire('bare')") is True
    assert page.evaluate("document.getElementById('bare').onmonetization") is None
    assert any("SyntaxError" in e or "Unexpected" in e for e in page.evaluate("window.errors"))


def test_an_outside_page_written_from_the_spec_gets_its_handlers_called(
    browser: ExtensionBrowser,
    service: TrickleService,
    site: TestSite,
    reader: Reader,
    payee: Payee,
) -> None:
    """``window.onmonetization = …`` and ``<link onmonetization="…">``, as the spec shows them,
    with the real extension and service: both see every receipt, and the receipts verify."""
    browser.sign_in(reader).close()
    page = browser.open(site.url("spec-handlers.html", pointer=payee.pointer))
    assert page.evaluate("window.supported") is True
    page.wait_for_function("window.viaWindowHandler.length >= 3", timeout=15_000, polling=50)
    service.api("PUT", "/api/v1/me/settings", {"paused": True}, token=reader.token)
    deadline = time.monotonic() + 5  # the last increment may still be on its way
    while time.monotonic() < deadline:
        on_page = sum(int(e["amountMinor"]) for e in events(page))
        if on_page == payee.earnings_minor(service):
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(200)  # and through both handlers
    collected = events(page)
    by_window = page.evaluate("window.viaWindowHandler")
    by_attribute = page.evaluate("window.viaAttribute")
    # Every event, once through each handler, in order, with the fields the spec names.
    assert [e["receipt"] for e in by_window] == [e["receipt"] for e in collected]
    assert [e["receipt"] for e in by_attribute] == [e["receipt"] for e in collected]
    assert {e["target"] for e in by_window} == {e["target"] for e in by_attribute} == {"LINK"}
    assert all(e["paymentPointer"] == payee.pointer for e in by_window)
    assert all(e["incomingPayment"] is None for e in by_window)  # docs/extension.md says why
    receipts = verify_events(
        collected, service=service, audience=site.origin, pointer=payee.pointer
    )
    assert [format_minor(r.amount_minor, r.scale) for r in receipts] == [
        e["value"] for e in by_window
    ]
    assert payee.earnings_minor(service) == sum(r.amount_minor for r in receipts)
