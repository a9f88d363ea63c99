"""The creator dashboard, driven like a browser without JavaScript would: sign-in with the cookie
session, CSRF on every form, payees, site verification against a tiny local site, earnings from
the ledger (tables, SVG chart, CSV), and a claim form that claims once however often it is sent."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.factories import add_site, asset, create_payee, create_user
from tests.service.test_earnings import NOW, earn
from tests.service.test_siteverify import holding, serving, write_at_once
from trickle import accounts, ledger
from trickle.app import create_app
from trickle.dashboard import chart, holds
from trickle.dashboard.web import sentence
from trickle.db import transaction
from trickle.ledger import AccountKind, TransferKind
from trickle.models import Payee, Payout
from trickle.runtime import Runtime

UNIT = 1_000_000_000  # 1.00 USD at scale 9
PASSWORD = "correct horse battery"
SIGN_IN = "/dashboard/sign-in"


@pytest.fixture(autouse=True)
def frozen_clock(runtime: Runtime) -> None:
    runtime.clock = lambda: NOW


@pytest.fixture
def browser(runtime: Runtime) -> Iterator[TestClient]:
    """https (the session cookie is Secure), and redirects shown, not followed."""
    app = create_app(runtime)
    with TestClient(
        app, base_url="https://testserver", raise_server_exceptions=False, follow_redirects=False
    ) as client:
        yield client


# --- helpers --------------------------------------------------------------------------------


def _account(runtime: Runtime, email: str) -> int:
    with transaction(runtime.sessions) as session:
        signed_up = accounts.sign_up(
            session, email=email, password=PASSWORD, now=NOW, settings=runtime.settings
        )
        return signed_up.user.id


def _field(page: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page)
    assert tag, f"no field {name} in the page"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    assert value, f"the field {name} has no value"
    return html.unescape(value.group(1))


def _sign_in(browser: TestClient, email: str, password: str = PASSWORD) -> Any:
    form = browser.get(SIGN_IN)
    assert form.status_code == 200
    nonce = _field(form.text, "login_nonce")
    return browser.post(SIGN_IN, data={"email": email, "password": password, "login_nonce": nonce})


def _signed_in(runtime: Runtime, browser: TestClient, email: str = "cat@example.com") -> int:
    user_id = _account(runtime, email)
    response = _sign_in(browser, email)
    assert response.status_code == 303
    return user_id


def _words(page: str) -> str:
    """The page's text as people read it: no tags, one space between words (an inline tag such
    as an amount's ``<span>`` or a link runs into the text around it, a block tag separates)."""
    inline = re.sub(r"</?(?:span|a|strong|em|code|abbr)\b[^>]*>", "", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def _csrf(browser: TestClient) -> str:
    return _field(browser.get("/dashboard/").text, "csrf_token")


class _Tables(HTMLParser):
    """Cell texts of every table with an id, row by row (header cells included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id")
            if self._table:
                self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _table(page: str, table_id: str) -> list[list[str]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables[table_id][1:]  # without the header row


def _payee_balance(runtime: Runtime, payee_id: int) -> int:
    with transaction(runtime.sessions) as session:
        account = ledger.account(
            session, AccountKind.PAYEE, f"payee:{payee_id}", asset(runtime), NOW
        )
        return ledger.balance(session, account.id)


# --- signing in -----------------------------------------------------------------------------


def test_sign_in_sets_the_http_only_cookie_and_redirects(
    runtime: Runtime, browser: TestClient
) -> None:
    _account(runtime, "ann@example.com")
    response = _sign_in(browser, "ann@example.com")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/"
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    session_cookie = cookies["trickle_session"]
    for attribute in ("httponly", "secure", "samesite=strict", "path=/;"):
        assert attribute in session_cookie + ";"
    assert "httponly" in cookies["trickle_dashboard_csrf"]
    token = browser.cookies["trickle_session"]
    assert token.startswith("trk_")

    home = browser.get("/dashboard/")
    assert home.status_code == 200
    assert "ann@example.com" in home.text
    assert token not in home.text  # page scripts never see the session token
    assert browser.get("/api/v1/me").json()["email"] == "ann@example.com"  # one session for both

    signed_out = browser.post("/dashboard/sign-out", data={"csrf_token": _csrf(browser)})
    assert (signed_out.status_code, signed_out.headers["location"]) == (
        303,
        "/dashboard/sign-in?signed_out=1",
    )
    browser.cookies.set("trickle_session", token)  # a revoked token is no way back in
    assert browser.get("/dashboard/").headers["location"] == SIGN_IN


def test_a_failed_sign_in_says_why_with_its_code(runtime: Runtime, browser: TestClient) -> None:
    _account(runtime, "bea@example.com")
    wrong = _sign_in(browser, "bea@example.com", "not the password")
    assert wrong.status_code == 401
    assert "invalid_credentials" in wrong.text
    assert "That did not work. Wrong email or password. Error code: invalid_credentials" in (
        _words(wrong.text)
    )
    assert "trickle_session" not in browser.cookies
    assert _field(wrong.text, "email") == "bea@example.com"

    forged = browser.post(SIGN_IN, data={"email": "bea@example.com", "password": PASSWORD})
    assert forged.status_code == 403
    assert "csrf_failed" in forged.text
    assert "trickle_session" not in browser.cookies


def test_sign_up_from_the_dashboard(runtime: Runtime, browser: TestClient) -> None:
    nonce = _field(browser.get(SIGN_IN).text, "login_nonce")
    form = {"email": "Dee@Example.com", "password": PASSWORD, "login_nonce": nonce}
    created = browser.post("/dashboard/sign-up", data=form)
    assert created.status_code == 303
    assert "dee@example.com" in browser.get("/dashboard/").text
    browser.cookies.clear()
    nonce = _field(browser.get(SIGN_IN).text, "login_nonce")
    again = browser.post("/dashboard/sign-up", data={**form, "login_nonce": nonce})
    assert again.status_code == 409
    assert "email_taken" in again.text


def test_pages_need_a_dashboard_session(runtime: Runtime, browser: TestClient) -> None:
    assert browser.get("/").headers["location"] == "/dashboard/"
    for path in (
        "/dashboard/",
        "/dashboard/earnings",
        "/dashboard/earnings.csv",
        "/dashboard/payouts",
        "/dashboard/payees/anything",
    ):
        response = browser.get(path)
        assert (response.status_code, response.headers["location"]) == (303, SIGN_IN), path
    posted = browser.post("/dashboard/claims", data={"payee": "x", "idempotency_key": "k" * 10})
    assert (posted.status_code, posted.headers["location"]) == (303, SIGN_IN)
    # A session opened by the extension or the API: its CSRF token is not the dashboard's to use.
    other = create_user(runtime)
    browser.cookies.set("trickle_session", other.token)
    assert browser.get("/dashboard/").headers["location"] == SIGN_IN


def test_every_change_needs_the_forms_csrf_token(runtime: Runtime, browser: TestClient) -> None:
    user_id = _signed_in(runtime, browser)
    payee = create_payee(runtime, user_id, "guarded")
    earn(runtime, payee.id, 3 * UNIT, None, at=NOW - dt.timedelta(days=1))
    forms = [
        ("/dashboard/payees", {"name": "sneaky"}),
        ("/dashboard/claims", {"payee": "guarded", "idempotency_key": "dash-forged-1"}),
        ("/dashboard/payees/guarded/sites", {"origin": "https://evil.example"}),
        ("/dashboard/sign-out", {}),
    ]
    for path, form in forms:
        for token in (None, "wrong-token"):
            data = form if token is None else {**form, "csrf_token": token}
            refused = browser.post(path, data=data)
            assert refused.status_code == 403, path
            assert "csrf_failed" in refused.text
    with transaction(runtime.sessions) as session:
        assert session.query(Payee).count() == 1
        assert session.query(Payout).count() == 0
    assert browser.get("/dashboard/").status_code == 200  # still signed in
    as_json = browser.post("/dashboard/payees", json={"name": "x", "csrf_token": _csrf(browser)})
    assert as_json.status_code == 415
    assert "unsupported_media_type" in as_json.text


# --- payees and sites -----------------------------------------------------------------------


def test_create_a_payee_and_copy_its_snippets(runtime: Runtime, browser: TestClient) -> None:
    _signed_in(runtime, browser)
    csrf = _csrf(browser)
    form = {"name": "alice-blog", "display_name": "Alice's blog", "csrf_token": csrf}
    created = browser.post("/dashboard/payees", data=form)
    assert created.headers["location"] == "/dashboard/payees/alice-blog?created=1"
    page = browser.get(created.headers["location"])
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Alice's blog" in text
    # The site of docs/site-owners.md, with this payee's values (tests/service/
    # test_site_owner_doc.py pins that they are the doc's files).
    assert '<link rel="monetization" href="https://trickle.test/p/alice-blog">' in text
    assert 'TRICKLE = "https://trickle.test"' in text
    assert 'POINTER = "https://trickle.test/p/alice-blog"' in text
    assert 'ORIGIN = "https://your-site.example"' in text
    assert 'data-trickle-binding="{{ binding }}"' in text
    assert "import { createBridge } from '/sdk/bridge.js';" in text
    assert 'Mount("/sdk", StaticFiles(directory="sdk"))' in text
    assert "binding_key=KEY_FILE.read_bytes()" in text
    assert "MemoryCreditStore" not in text and "CreditTracker" not in text
    assert '<link rel="monetization"' not in page.text  # escaped: shown, never part of the page
    assert 'data-copy="Monetization link tag"' in page.text
    assert "alice-blog" in browser.get("/dashboard/").text

    taken = browser.post("/dashboard/payees", data=form)
    assert taken.status_code == 409
    assert "payee_name_taken" in taken.text
    assert _field(taken.text, "display_name") == "Alice's blog"  # the form keeps what was typed
    bad = browser.post("/dashboard/payees", data={"name": "No Spaces!", "csrf_token": csrf})
    assert bad.status_code == 422
    assert "validation_failed" in bad.text


def test_prove_site_ownership_with_the_guided_flow(runtime: Runtime, browser: TestClient) -> None:
    runtime.settings = dataclasses.replace(runtime.settings, allow_private_site_urls=True)
    user_id = _signed_in(runtime, browser)
    create_payee(runtime, user_id, "proven")
    csrf = _csrf(browser)
    with serving() as site:
        started = browser.post(
            "/dashboard/payees/proven/sites", data={"origin": site.origin, "csrf_token": csrf}
        )
        assert started.status_code == 303
        page = browser.get(started.headers["location"]).text
        assert f"{site.origin}/.well-known/trickle.txt" in page
        assert "Not verified yet" in page
        token = re.search(r"(trickle-site-verification=[A-Za-z0-9_-]+)", page)
        assert token is not None

        site.body = b"somebody else's token\n"
        check = {"origin": site.origin, "csrf_token": csrf}
        failed = browser.post("/dashboard/payees/proven/sites/check", data=check)
        assert failed.status_code == 409
        assert "The check failed." in failed.text
        assert "site_verification_failed" in failed.text
        assert "Not verified yet" in failed.text

        site.body = f"other-line\n{token.group(1)}\n".encode()
        verified = browser.post("/dashboard/payees/proven/sites/check", data=check)
        assert verified.status_code == 303
        done = browser.get(verified.headers["location"]).text
        assert f"{site.origin} is verified for proven" in done
        assert "Verified on 2026-03-10" in done
    assert browser.get("/p/proven").json()["verified_origins"] == [site.origin]


def test_the_guided_check_holds_no_database_connection_while_the_site_answers(
    runtime: Runtime, browser: TestClient
) -> None:
    runtime.settings = dataclasses.replace(runtime.settings, allow_private_site_urls=True)
    user_id = _signed_in(runtime, browser)
    create_payee(runtime, user_id, "patient")
    csrf = _csrf(browser)
    with holding() as site:
        started = browser.post(
            "/dashboard/payees/patient/sites", data={"origin": site.origin, "csrf_token": csrf}
        )
        token = re.search(
            r"(trickle-site-verification=[A-Za-z0-9_-]+)",
            browser.get(started.headers["location"]).text,
        )
        assert token is not None
        site.body = f"{token.group(1)}\n".encode()
        check = {"origin": site.origin, "csrf_token": csrf}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            checking = pool.submit(
                browser.post, "/dashboard/payees/patient/sites/check", data=check
            )
            try:
                assert site.wait_for_requests(1)
                assert runtime.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
                assert write_at_once(runtime.settings.database_url) < 1.0
            finally:
                site.release.set()
            verified = checking.result(timeout=30)
    assert verified.status_code == 303
    assert (
        f"{site.origin} is verified for patient" in browser.get(verified.headers["location"]).text
    )


def test_someone_elses_payee_is_not_found(runtime: Runtime, browser: TestClient) -> None:
    _signed_in(runtime, browser)
    stranger = create_user(runtime)
    create_payee(runtime, stranger.id, "not-mine")
    response = browser.get("/dashboard/payees/not-mine")
    assert response.status_code == 404
    assert "payee_not_found" in response.text
    bad_days = browser.get("/dashboard/earnings?days=forever")
    assert bad_days.status_code == 422
    assert "validation_failed" in bad_days.text


def test_a_nul_character_is_the_same_4xx_on_both_databases(
    runtime: Runtime, browser: TestClient
) -> None:
    # Issue 11 item 7: each of these was a 500 on PostgreSQL ("cannot contain NUL characters").
    _account(runtime, "nul@example.com")
    form = browser.get(SIGN_IN)
    nonce = _field(form.text, "login_nonce")
    signed_in = browser.post(
        SIGN_IN, data={"email": "nul\x00@example.com", "password": PASSWORD, "login_nonce": nonce}
    )
    assert signed_in.status_code == 422
    assert "validation_failed" in signed_in.text
    _signed_in(runtime, browser)
    for path in ("/dashboard/payees/%00", "/dashboard/earnings?payee=%00"):
        response = browser.get(path)
        assert response.status_code == 422, path
        assert "validation_failed" in response.text


# --- earnings -------------------------------------------------------------------------------


def test_the_earnings_page_shows_what_the_ledger_holds(
    runtime: Runtime, browser: TestClient
) -> None:
    user_id = _signed_in(runtime, browser)
    payee = create_payee(runtime, user_id, "earner")
    create_payee(runtime, user_id, "idle")
    a, b = "https://a.example", "https://b.example"
    earn(runtime, payee.id, 3 * UNIT, a, at=NOW - dt.timedelta(days=1), fee_minor=UNIT // 10)
    earn(runtime, payee.id, UNIT // 2, b, at=NOW - dt.timedelta(minutes=10))  # still held
    earn(runtime, payee.id, 7, None, at=NOW - dt.timedelta(days=2), kind=TransferKind.PAYMENT)

    page = browser.get("/dashboard/earnings")
    assert page.status_code == 200
    assert _table(page.text, "per-payee") == [
        ["earner", "$3.500000007", "$0.10", "$3.400000007", "$2.900000007", "$0.50"],
        ["idle", "$0.00", "$0.00", "$0.00", "$0.00", "$0.00"],
    ]
    assert _table(page.text, "per-origin") == [
        ["earner", "(no site: one-time payments)", "$0.000000007", "$0.00", "$0.000000007"],
        ["earner", a, "$3.00", "$0.10", "$2.90"],
        ["earner", b, "$0.50", "$0.00", "$0.50"],
    ]
    assert _table(browser.get("/dashboard/").text, "payees") == [
        [
            "Earner earner",
            "https://trickle.test/p/earner",
            "None yet: add one for earner",
            "$2.900000007",
            "$0.50",
        ],
        [
            "Idle idle",
            "https://trickle.test/p/idle",
            "None yet: add one for idle",
            "$0.00",
            "$0.00",
        ],
    ]
    only_idle = browser.get("/dashboard/earnings?payee=idle")
    assert _table(only_idle.text, "per-origin") == [["Nothing earned in this period."]]


def test_the_chart_has_one_bar_per_day_scaled_in_whole_pixels(
    runtime: Runtime, browser: TestClient
) -> None:
    user_id = _signed_in(runtime, browser)
    payee = create_payee(runtime, user_id, "charted")
    earn(runtime, payee.id, 4 * UNIT, None, at=NOW - dt.timedelta(days=2))
    earn(runtime, payee.id, UNIT, None, at=NOW - dt.timedelta(hours=2))
    page = browser.get("/dashboard/earnings?days=7").text
    bars = re.findall(r'<rect class="bar"[^>]*height="(\d+)" data-day="([0-9-]+)"', page)
    days = [(NOW.date() - dt.timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
    assert [day for _, day in bars] == days
    heights = [int(height) for height, _ in bars]
    assert heights == [0, 0, 0, 0, chart.PLOT_HEIGHT, 0, chart.PLOT_HEIGHT // 4]
    assert '<title id="chart-title">' in page
    assert '<desc id="chart-desc">' in page
    assert page.count('<tr><th scope="row">2026-03-') == 7  # the table alternative


@pytest.mark.parametrize(
    ("max_minor", "scale", "labels"),
    [
        (50_440_665, 9, ["0.06", "0.04", "0.02", "0"]),  # 0.050440665 USD: the day
        (51_675_232, 9, ["0.06", "0.04", "0.02", "0"]),
        (4 * UNIT, 9, ["4", "3", "2", "1", "0"]),
        (UNIT, 9, ["1", "0.5", "0"]),
        (3 * UNIT + 1, 9, ["4", "3", "2", "1", "0"]),
        (7, 9, ["0.000000008", "0.000000006", "0.000000004", "0.000000002", "0"]),
        (1, 9, ["0.000000001", "0"]),
        (0, 9, ["0.01", "0"]),  # nothing earned: an empty chart still has an axis
        (-5, 9, ["0.01", "0"]),
        (123, 2, ["1.5", "1", "0.5", "0"]),
        (0, 0, ["1", "0"]),
        (2**62, 9, ["6000000000", "4000000000", "2000000000", "0"]),
    ],
)
def test_the_y_axis_has_round_amounts_computed_in_integers(
    max_minor: int, scale: int, labels: list[str]
) -> None:
    axis = chart.axis(max_minor, scale)
    assert all(isinstance(tick, int) for tick in axis.ticks)
    assert axis.ticks[0] == 0 and axis.top_minor >= max_minor
    assert len(axis.ticks) - 1 <= chart.MAX_INTERVALS
    step = axis.step_minor
    assert str(step).rstrip("0") in ("1", "2", "5")  # 1, 2 or 5 times a power of ten
    drawn = chart.build([(dt.date(2026, 3, 10), max_minor)], scale)
    assert drawn.y_labels == labels
    assert len(drawn.gridlines) == len(labels)
    assert drawn.gridlines[0] == chart.TOP and drawn.gridlines[-1] == chart.BASELINE


def test_the_tallest_bar_stands_as_high_as_its_amount_on_the_axis() -> None:
    drawn = chart.build([(dt.date(2026, 3, 9), 0), (dt.date(2026, 3, 10), 50_440_665)], 9)
    assert drawn.axis.top_minor == 60_000_000
    assert drawn.bars[1].height == 50_440_665 * chart.PLOT_HEIGHT // 60_000_000
    assert drawn.bars[1].y + drawn.bars[1].height == chart.BASELINE
    assert [label.text for label in drawn.x_labels] == ["Mar 09", "Mar 10"]
    assert [label.place for label in drawn.x_labels] == ["first", "last"]
    week = chart.build([(dt.date(2026, 3, d), 0) for d in range(4, 11)], 9)
    assert [(x.place, x.text) for x in week.x_labels] == [
        ("first", "Mar 04"),
        ("middle", "Mar 07"),
        ("last", "Mar 10"),
    ]


def test_bar_heights_are_integer_and_never_hide_a_small_day() -> None:
    assert chart.bar_height(0, 100) == 0
    assert chart.bar_height(100, 100) == chart.PLOT_HEIGHT
    assert chart.bar_height(1, 2**62) == 1  # tiny, but not nothing
    assert chart.bar_height(2**62 - 1, 2**62) == chart.PLOT_HEIGHT - 1
    drawn = chart.build([(dt.date(2026, 1, d), d * 10**15) for d in range(1, 31)], scale=9)
    assert len(drawn.bars) == 30
    assert all(isinstance(bar.height, int) for bar in drawn.bars)
    assert drawn.bars[-1].height == chart.PLOT_HEIGHT
    assert drawn.bars[-1].amount == "30000000.00"
    assert all(bar.x + bar.width <= chart.WIDTH for bar in drawn.bars)


def test_the_csv_export_is_exact(runtime: Runtime, browser: TestClient) -> None:
    user_id = _signed_in(runtime, browser)
    first = create_payee(runtime, user_id, "first")
    second = create_payee(runtime, user_id, "second")
    a = "https://a.example"
    earn(runtime, first.id, 3 * UNIT, a, at=NOW - dt.timedelta(days=1), fee_minor=UNIT // 10)
    earn(runtime, first.id, 250_000_000, a, at=NOW - dt.timedelta(days=1))
    earn(runtime, first.id, 7, None, at=NOW, kind=TransferKind.PAYMENT)
    earn(runtime, second.id, UNIT, "https://b.example", at=NOW - dt.timedelta(days=40))  # too old
    earn(runtime, second.id, 12 * UNIT, "https://b.example", at=NOW)
    response = browser.get("/dashboard/earnings.csv?days=30")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="trickle-earnings-2026-02-09-2026-03-10.csv"'
    )
    assert response.text == (
        "date,payee,origin,credited,fees,net,currency\n"
        "2026-03-09,first,https://a.example,3.25,0.10,3.15,USD\n"
        "2026-03-10,first,,0.000000007,0.00,0.000000007,USD\n"
        "2026-03-10,second,https://b.example,12.00,0.00,12.00,USD\n"
    )


def test_the_overview_says_how_many_sites_are_verified(
    runtime: Runtime, browser: TestClient
) -> None:
    user_id = _signed_in(runtime, browser)
    payee = create_payee(runtime, user_id, "sited")
    add_site(runtime, payee.id, "https://a.example")
    add_site(runtime, payee.id, "https://b.example", verified=False)
    create_payee(runtime, user_id, "siteless")
    page = browser.get("/dashboard/").text
    assert [row[2] for row in _table(page, "payees")] == [
        "1 of 2 verified",
        "None yet: add one for siteless",
    ]
    assert 'href="/dashboard/payees/siteless#sites"' in page


# --- claims and payouts ---------------------------------------------------------------------


def test_the_claims_page_says_what_is_held_when_it_is_released_and_the_minimum(
    runtime: Runtime, browser: TestClient
) -> None:
    assert (runtime.settings.claim_hold_s, runtime.settings.min_claim_minor) == (3600, UNIT)
    user_id = _signed_in(runtime, browser)
    short = create_payee(runtime, user_id, "short")  # far from the minimum
    earn(runtime, short.id, 3 * UNIT // 10, None, at=NOW - dt.timedelta(days=1))
    earn(runtime, short.id, UNIT // 10, "https://a.example", at=NOW - dt.timedelta(minutes=50))
    earn(runtime, short.id, 3 * UNIT // 10, "https://a.example", at=NOW - dt.timedelta(seconds=90))
    waiting = create_payee(runtime, user_id, "waiting")  # enough once the hold is over
    earn(runtime, waiting.id, UNIT // 5, None, at=NOW - dt.timedelta(days=1))
    earn(
        runtime, waiting.id, 3 * UNIT // 10, "https://b.example", at=NOW - dt.timedelta(minutes=30)
    )
    add_site(runtime, waiting.id, "https://b.example")  # verified: held 10 minutes only
    earn(runtime, waiting.id, UNIT, "https://b.example", at=NOW - dt.timedelta(minutes=5))
    text = _words(browser.get("/dashboard/payouts").text)
    assert "New earnings are held 1 hour (10 minutes from a site you verified)" in text
    assert (
        "$0.30 available · $0.40 held "
        "$0.40 is held: the next part becomes available by 2026-03-10 12:10 UTC, "
        "all of it by 2026-03-10 12:59 UTC. "  # 12:58:30, rounded up
        "Not enough available to claim yet: claims start at $1.00. "
        "This payee needs $0.30 more in earnings first."
    ) in text
    assert (
        "$0.50 available · $1.00 held "
        "$1.00 is held: the next part becomes available by 2026-03-10 12:05 UTC. "
        "Not enough available to claim yet: claims start at $1.00. "
        "Enough is available by 2026-03-10 12:05 UTC, once what is held is released."
    ) in text
    runtime.clock = lambda: NOW + dt.timedelta(minutes=5)
    text = _words(browser.get("/dashboard/payouts").text)
    assert "$1.50 available · $0.00 held Amount in USD" in text


def test_held_earnings_and_minimum_in_words() -> None:
    assert [holds.duration(s) for s in (3600, 600, 1, 90, 86_400, 7200, 0)] == [
        "1 hour",
        "10 minutes",
        "1 second",
        "90 seconds",
        "1 day",
        "2 hours",
        "0 seconds",
    ]
    at = dt.datetime(2026, 3, 10, 12, 4, 0, 1, tzinfo=dt.UTC)
    assert holds.release_time(at) == "2026-03-10 12:05 UTC"  # rounded up: available *by* then
    assert holds.release_time(at.replace(microsecond=0)) == "2026-03-10 12:04 UTC"
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert holds.release_time(dt.datetime(2026, 3, 11, 1, 0, tzinfo=plus_two)) == (
        "2026-03-10 23:00 UTC"
    )


def test_error_messages_are_shown_as_sentences() -> None:
    assert sentence("wrong email or password") == "Wrong email or password."
    assert sentence("days must be 1..366, got 'x'") == "Days must be 1..366, got 'x'."
    assert sentence("Already a sentence.") == "Already a sentence."
    assert sentence("") == ""


def test_a_claim_form_sent_twice_claims_once(runtime: Runtime, browser: TestClient) -> None:
    user_id = _signed_in(runtime, browser)
    payee = create_payee(runtime, user_id, "claimer")
    earn(runtime, payee.id, 3 * UNIT, None, at=NOW - dt.timedelta(days=1))
    page = browser.get("/dashboard/payouts").text
    # Amounts as people read them, the exact value in the title (tests/vectors/amount-format.json).
    exact = '<span class="amount" title="3.000000000 USD">$3.00</span>'
    assert f"<strong>{exact}</strong> available" in page
    form = {name: _field(page, name) for name in ("csrf_token", "payee", "idempotency_key")}
    form["amount"] = ""  # empty: all that is available
    assert form["idempotency_key"].startswith("dash-")

    first = browser.post("/dashboard/claims", data=form)
    second = browser.post("/dashboard/claims", data=form)  # a double click, a reload
    with transaction(runtime.sessions) as session:
        (payout,) = session.query(Payout).all()
        assert (payout.amount_minor, payout.state) == (3 * UNIT, "pending")
    assert first.headers["location"] == f"/dashboard/payouts?claimed={payout.id}"
    assert second.headers["location"] == f"/dashboard/payouts?claimed={payout.id}&replayed=1"
    assert _payee_balance(runtime, payee.id) == 0

    after = browser.get(first.headers["location"]).text
    assert f"Claimed $3.00 for claimer: payout #{payout.id} is pending." in after
    assert _table(after, "payouts") == [
        [f"#{payout.id}", "2026-03-10 12:00", "claimer", "$3.00", "pending", ""]
    ]
    assert "already made" in browser.get(second.headers["location"]).text
    assert (
        "Not enough available to claim yet: claims start at $1.00. "
        "This payee needs $1.00 more in earnings first."
    ) in _words(after)

    fresh = _field(after, "idempotency_key")
    assert fresh != form["idempotency_key"]
    nothing_left = browser.post("/dashboard/claims", data={**form, "idempotency_key": fresh})
    assert nothing_left.status_code == 409
    assert "claim_below_minimum" in nothing_left.text


def test_a_partial_claim_in_decimal_units(runtime: Runtime, browser: TestClient) -> None:
    user_id = _signed_in(runtime, browser)
    payee = create_payee(runtime, user_id, "partial")
    earn(runtime, payee.id, 5 * UNIT, None, at=NOW - dt.timedelta(days=1))
    page = browser.get("/dashboard/payouts").text
    form = {name: _field(page, name) for name in ("csrf_token", "payee", "idempotency_key")}
    too_much = browser.post("/dashboard/claims", data={**form, "amount": "9.00"})
    assert too_much.status_code == 409
    assert "insufficient_funds" in too_much.text
    nonsense = browser.post("/dashboard/claims", data={**form, "amount": "1e3"})
    assert nonsense.status_code == 422
    assert "invalid_amount" in nonsense.text
    claimed = browser.post("/dashboard/claims", data={**form, "amount": "1.25"})
    assert claimed.status_code == 303
    assert _payee_balance(runtime, payee.id) == 5 * UNIT - 1_250_000_000


# --- the pages themselves -------------------------------------------------------------------


def test_pages_carry_security_headers_and_no_inline_script(
    runtime: Runtime, browser: TestClient
) -> None:
    sign_in_page = browser.get(SIGN_IN)
    _signed_in(runtime, browser)
    for response in (
        sign_in_page,
        browser.get("/dashboard/"),
        browser.get("/dashboard/earnings"),
        browser.get("/dashboard/payouts"),
        browser.get("/dashboard/static/dashboard.css"),
    ):
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        if response.headers["content-type"].startswith("text/html"):
            assert '<meta name="viewport"' in response.text
            assert not re.search(r"<script(?![^>]*\bsrc=)", response.text)  # no inline script
            assert " style=" not in response.text
    script = browser.get("/dashboard/static/dashboard.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "addCopyButtons" in script.text
    assert browser.get("/dashboard/static/../web.py").status_code == 404
    assert browser.get("/dashboard/static/nope.css").status_code == 404


def test_every_input_has_a_label(runtime: Runtime, browser: TestClient) -> None:
    user_id = _signed_in(runtime, browser)
    payee = create_payee(runtime, user_id, "labelled")
    earn(runtime, payee.id, 3 * UNIT, None, at=NOW - dt.timedelta(days=1))
    browser.cookies.clear()
    pages = [browser.get(SIGN_IN).text]
    _sign_in(browser, "cat@example.com")
    for path in ("/dashboard/", "/dashboard/payees/labelled", "/dashboard/earnings"):
        pages.append(browser.get(path).text)
    pages.append(browser.get("/dashboard/payouts").text)
    for page in pages:
        ids = set(re.findall(r'<(?:input|select)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page))
        unlabelled = re.findall(r'<(?:input|select)(?![^>]*type="hidden")(?![^>]*\bid=)', page)
        assert not unlabelled
        labels = set(re.findall(r'<label for="([^"]+)"', page))
        assert ids <= labels, ids - labels
        # Every table is named by a title shown above it (outside its scrolling frame).
        for table in re.findall(r"<table[^>]*>", page):
            (title,) = re.findall(r'aria-labelledby="([^"]+)"', table)
            assert f'id="{title}"' in page, title
