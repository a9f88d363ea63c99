"""The demo publisher: premium articles stay locked until the visitor's own verified receipts
reach the price; receipts of another visitor, site or payee unlock nothing. The article for sale
opens only for the visitor session that bought it with a one-time receipt, which buys once."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from tests.factories import create_payee, create_user, fund_reader
from trickle import payments
from trickle.app import create_app
from trickle.db import transaction
from trickle.models import Payment
from trickle.receipts import ReceiptSigner
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings
from trickle_publisher.app import (
    COOKIE_NAME,
    PublisherConfig,
    create_publisher_app,
    find_sdk_dir,
)
from trickle_publisher.articles import BY_SLUG
from trickle_verifier import (
    KeySet,
    MemorySiteStore,
    SiteReceipts,
    SQLitePurchaseStore,
    SQLiteSiteStore,
    Verifier,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://trickle.test"
ORIGIN = "http://testserver"  # TestClient's origin: the publisher's own origin
POINTER = "https://trickle.test/p/alice"
PRICE = 1_000_000  # 0.001 USD at scale 9
PREMIUM = BY_SLUG["deep-dive"]
SECRET_LINE = str(escape(PREMIUM.body[0]))
FOR_SALE = BY_SLUG["field-guide"]
SOLD_LINE = str(escape(FOR_SALE.body[0]))
SALE_PRICE = 50_000_000  # 0.05 USD at scale 9


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "trickle_vectors_generate_publisher", REPO_ROOT / "tests" / "vectors" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.fixture
def site() -> SiteReceipts:
    verifier = Verifier(
        issuer=ISSUER, audience=ORIGIN, payees=[POINTER], keys=KeySet.from_jwks(GEN.JWKS)
    )
    return SiteReceipts(verifier, MemorySiteStore(), binding_key=b"publisher-test-binding-key-xx")


@pytest.fixture
def app(site: SiteReceipts) -> Any:
    return create_publisher_app(site, PublisherConfig(payment_pointer=POINTER, price_minor=PRICE))


def visitor(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def reader(app: Any) -> Iterator[TestClient]:
    with visitor(app) as client:
        yield client


def binding_of(html: str) -> str:
    match = re.search(
        r'<link rel="monetization" href="([^"]+)" data-trickle-binding="([^"]+)">', html
    )
    assert match is not None, html
    assert match.group(1) == POINTER
    return match.group(2)


def receipt(sid: str, seq: int, tot: int, bnd: str | None, **changes: Any) -> str:
    key = changes.pop("key", GEN.KEY_1)
    now = int(time.time())
    claims = GEN.claims(
        iss=ISSUER,
        aud=ORIGIN,
        pay=POINTER,
        sid=sid,
        seq=seq,
        amt=str(tot),
        tot=str(tot),
        iat=now,
        exp=now + 300,
        jti=f"{sid}-{seq}",
    )
    claims.update(changes)
    if bnd is not None:
        claims["bnd"] = bnd
    return str(GEN.token(body=claims, key=key))


def forward(client: TestClient, receipts: list[str]) -> Any:
    response = client.post("/trickle/receipts", json={"receipts": receipts})
    assert response.status_code == 200, response.text
    return response.json()


def open_premium(client: TestClient) -> tuple[str, str]:
    response = client.get(f"/articles/{PREMIUM.slug}")
    assert response.status_code == 200
    return response.text, binding_of(response.text)


def access(client: TestClient) -> Any:
    response = client.get(f"/api/access/{PREMIUM.slug}")
    assert response.status_code == 200
    return response.json()


def test_premium_is_locked_without_payment(reader: TestClient) -> None:
    html, binding = open_premium(reader)
    assert 'id="paywall" data-state="locked"' in html
    assert SECRET_LINE not in html
    assert "Install Trickle to unlock" in html
    assert re.search(r'id="supporter-badge" class="badge" hidden', html)
    assert 'src="/static/publisher.js"' in html and f'data-binding="{binding}"' in html
    cookie = reader.cookies.get(COOKIE_NAME)
    assert cookie is not None and binding != cookie and cookie not in html
    state = access(reader)
    assert state["unlocked"] is False and state["html"] is None and state["supporter"] is False
    assert state["paid"] == {
        "total": "0",
        "currency": "USD",
        "scale": 9,
        "text": "$0.00",
        "exact": "0.000000000 USD",
    }
    assert state["price"]["total"] == str(PRICE) and state["price"]["text"] == "$0.001"
    # Amounts as people read them (tests/vectors/amount-format.json), the exact one in the title.
    assert '<strong id="price" data-minor="1000000" title="0.001000000 USD">$0.001</strong>' in html
    assert 'data-price-text="$0.001"' in html
    # The binding is stable for the visit.
    assert open_premium(reader)[1] == binding


def test_free_articles_are_open(reader: TestClient) -> None:
    response = reader.get("/articles/welcome")
    assert response.status_code == 200
    assert (
        str(escape(BY_SLUG["welcome"].body[0])) in response.text
        and 'id="paywall"' not in response.text
    )
    index = reader.get("/")
    assert index.status_code == 200 and "/articles/deep-dive" in index.text


def test_unlocks_after_the_visitors_own_receipts_reach_the_price(reader: TestClient) -> None:
    _html, binding = open_premium(reader)
    answer = forward(reader, [receipt("S1", 1, 400_000, binding)])
    assert answer["results"] == [{"code": "ok", "credited": "400000"}]
    partial = access(reader)
    assert partial["unlocked"] is False and partial["supporter"] is True
    html, _ = open_premium(reader)
    assert SECRET_LINE not in html and 'id="supporter-badge" class="badge">' in html

    answer = forward(
        reader, [receipt("S1", 2, 1_000_000, binding), receipt("S1", 1, 400_000, binding)]
    )
    assert answer["results"] == [
        {"code": "ok", "credited": "600000"},
        {"code": "ok", "credited": "0"},
    ]
    assert answer["paid"] == {"total": "1000000", "currency": "USD", "scale": 9}
    state = access(reader)
    assert state["unlocked"] is True and SECRET_LINE in state["html"]
    html, _ = open_premium(reader)
    assert SECRET_LINE in html and 'id="paywall"' not in html
    assert 'data-minor="1000000"' in html
    # What the page script shows after each batch: the visit's total, formatted by the server.
    visit = reader.get("/api/visit").json()
    assert visit["paid"]["text"] == "$0.001" and visit["supporter"] is True


def test_a_receipt_from_another_visitors_session_does_not_unlock(app: Any) -> None:
    with visitor(app) as alice, visitor(app) as mallory:
        _html, alice_binding = open_premium(alice)
        _html, mallory_binding = open_premium(mallory)
        assert alice_binding != mallory_binding
        alices = receipt("A1", 1, 2_000_000, alice_binding)
        answer = forward(mallory, [alices])
        assert answer["results"][0]["code"] == "binding_mismatch"
        assert answer["paid"]["total"] == "0"
        assert access(mallory)["unlocked"] is False
        # Alice's receipt still counts for Alice.
        assert forward(alice, [alices])["results"] == [{"code": "ok", "credited": "2000000"}]
        assert access(alice)["unlocked"] is True
        assert access(mallory)["unlocked"] is False
        assert SECRET_LINE not in open_premium(mallory)[0]


def test_forged_foreign_and_expired_receipts_do_not_unlock(reader: TestClient) -> None:
    _html, binding = open_premium(reader)
    now = int(time.time())
    bad = [
        receipt("F1", 1, PRICE, binding, key=GEN.OUTSIDER),
        receipt("F2", 1, PRICE, binding, aud="https://other.example"),
        receipt("F3", 1, PRICE, binding, pay="https://trickle.test/p/bob"),
        receipt("F4", 1, PRICE, binding, iat=now - 1000, exp=now - 500),
        receipt("F5", 1, PRICE, None),
    ]
    answer = forward(reader, bad)
    assert [r["code"] for r in answer["results"]] == [
        "bad_signature",
        "wrong_audience",
        "wrong_payee",
        "expired",
        "binding_mismatch",
    ]
    assert answer["paid"]["total"] == "0"
    assert access(reader)["unlocked"] is False


def test_receipts_need_a_session_and_json(app: Any) -> None:
    with visitor(app) as stranger:
        response = stranger.post("/trickle/receipts", json={"receipts": []})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert stranger.get(f"/api/access/{PREMIUM.slug}").json()["error"]["code"] == (
            "unauthenticated"
        )
        stranger.get("/")
        bad = stranger.post(
            "/trickle/receipts", content=b"{", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_json"


def test_bridge_and_static_files(reader: TestClient) -> None:
    bridge = reader.get("/sdk/bridge.js")
    assert bridge.status_code == 200
    assert bridge.headers["content-type"].startswith("text/javascript")
    assert "createBridge" in bridge.text
    for path in ("/sdk/README.md", "/sdk/..%2Fpyproject.toml", "/sdk/nope.js"):
        assert reader.get(path).status_code == 404, path
    script = reader.get("/static/publisher.js")
    assert script.status_code == 200 and "from '/sdk/bridge.js'" in script.text
    assert reader.get("/static/publisher.css").status_code == 200


def test_every_top_level_file_of_the_page_bridge_is_served(reader: TestClient) -> None:
    sdk = REPO_ROOT / "sdk_js_bridge"
    names = {path.name for path in sdk.glob("*.js")}
    assert {"bridge.js", "bridge-forwarding.js", "bridge-payments.js", "bridge-shared.js"} <= names
    for name in sorted(names):
        served = reader.get(f"/sdk/{name}")
        assert served.status_code == 200, name
        assert served.text == (sdk / name).read_text("utf-8"), name
        # What a served file imports is served beside it, so the bridge loads in the page.
        assert set(re.findall(r"from '\./([a-z0-9-]+\.js)'", served.text)) <= names, name


def test_the_page_bridge_is_found_in_the_checkout_or_asked_for(
    site: SiteReceipts, tmp_path: Path
) -> None:
    assert find_sdk_dir() == REPO_ROOT / "sdk_js_bridge"
    with pytest.raises(FileNotFoundError, match=r"pip install -e \./publisher.*sdk_dir="):
        find_sdk_dir(tmp_path / "site-packages" / "trickle_publisher")
    (tmp_path / "bridge.js").write_text("export const mine = 1;\n", "utf-8")
    app = create_publisher_app(site, PublisherConfig(POINTER, sdk_dir=tmp_path))
    with visitor(app) as client:
        assert client.get("/sdk/bridge.js").text == "export const mine = 1;\n"


def test_unknown_pages(reader: TestClient) -> None:
    page = reader.get("/articles/nope")
    assert page.status_code == 404 and "Not found" in page.text
    api = reader.get("/api/access/nope")
    reader.get("/")
    api = reader.get("/api/access/nope")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_demo_command_runs_the_publisher_on_its_own_port(tmp_path: Path) -> None:
    from trickle.cli import build_parser
    from trickle.settings import load_settings
    from trickle_publisher.server import PublisherThread, publisher_origin

    args = build_parser().parse_args(["demo"])
    assert args.publisher_port == 8421
    assert build_parser().parse_args(["demo", "--publisher-port", "0"]).publisher_port == 0
    settings = load_settings({}, data_dir=tmp_path, port=1)  # nothing listens on port 1
    assert publisher_origin(settings, 8421) == "http://127.0.0.1:8421"
    assert publisher_origin(load_settings({}, host="0.0.0.0"), 9) == "http://127.0.0.1:9"
    thread = PublisherThread(settings, "http://127.0.0.1:1/p/demo", 8421)
    thread.start()  # waits for the service's keys ...
    time.sleep(0.2)
    assert thread.is_alive()
    thread.stop()  # ... until stopped
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, stream_interval_ms=50)


def test_real_stream_receipts_unlock_the_premium_article(
    fast_settings: Settings, tmp_path: Path
) -> None:
    """The service's own stream, bound to the visitor's binding, pays the publisher."""
    runtime = bootstrap(fast_settings)
    try:
        reader = create_user(runtime)
        fund_reader(runtime, reader.id, 10**12)
        create_payee(runtime, create_user(runtime).id, "alice")
        verifier = Verifier(
            issuer=fast_settings.issuer,
            audience=ORIGIN,
            payees=[POINTER],
            keys=KeySet.from_jwks(runtime.key_ring.current.jwks),
        )
        site = SiteReceipts(
            verifier, SQLiteSiteStore(tmp_path / "pub.sqlite3"), binding_key=b"k" * 32
        )
        price = 20_000  # a few receipts at 0.60 USD/h every 50 ms
        publisher = create_publisher_app(site, PublisherConfig(POINTER, price_minor=price))
        with TestClient(create_app(runtime)) as service, visitor(publisher) as browser:
            _html, binding = open_premium(browser)
            tokens: list[str] = []
            with service.websocket_connect("/api/v1/stream") as ws:
                ws.send_text(json.dumps({"type": "hello", "v": 1, "token": reader.token}))
                message = {"type": "start", "ref": "r1", "origin": ORIGIN, "pointer": POINTER}
                ws.send_text(json.dumps({**message, "binding": binding}))
                total = 0
                for _ in range(400):
                    event = ws.receive_json()
                    if event["type"] == "receipt":
                        tokens.append(event["receipt"])
                        total = int(event["tot"])
                        if total >= price:
                            break
                assert total >= price
            answer = forward(browser, tokens)
            assert all(result["code"] == "ok" for result in answer["results"])
            assert answer["paid"]["total"] == str(total)
            assert access(browser)["unlocked"] is True
            assert SECRET_LINE in open_premium(browser)[0]
            # Another visitor forwarding the same receipts gains nothing.
            with visitor(publisher) as other:
                open_premium(other)
                copied = forward(other, tokens)
                assert {r["code"] for r in copied["results"]} == {"binding_mismatch"}
                assert access(other)["unlocked"] is False
    finally:
        runtime.close()


# --- the article sold for a one-time payment ------------------------------------------------


def open_for_sale(client: TestClient) -> tuple[str, str]:
    response = client.get(f"/articles/{FOR_SALE.slug}")
    assert response.status_code == 200
    return response.text, binding_of(response.text)


def sale_access(client: TestClient) -> Any:
    response = client.get(f"/api/access/{FOR_SALE.slug}")
    assert response.status_code == 200
    return response.json()


def buy(client: TestClient, token: str, order_ref: str = FOR_SALE.order_ref) -> Any:
    return client.post("/trickle/purchase", json={"receipt": token, "order_ref": order_ref})


def one_time(sid: str, amount: int, bnd: str | None, order_ref: str = FOR_SALE.order_ref) -> str:
    return receipt(sid, 1, amount, bnd, otp=True, ord=order_ref)


def test_the_article_for_sale_is_locked_and_offers_to_buy(reader: TestClient) -> None:
    html, binding = open_for_sale(reader)
    assert 'id="purchase" data-state="locked"' in html and 'id="paywall"' not in html
    assert SOLD_LINE not in html and 'id="article-body" data-state="locked" hidden' in html
    assert re.search(r'<button type="button" id="buy-button"[^>]*>Buy for \$0\.05</button>', html)
    assert f'data-order-ref="{FOR_SALE.order_ref}"' in html
    assert 'data-sale-amount="0.05"' in html and 'data-purchase-url="/trickle/purchase"' in html
    assert "Buying needs the Trickle extension" in html
    state = sale_access(reader)
    assert state["unlocked"] is False and state["html"] is None
    assert state["sale"] == {
        "order_ref": FOR_SALE.order_ref,
        "price": {
            "total": str(SALE_PRICE),
            "currency": "USD",
            "scale": 9,
            "text": "$0.05",
            "exact": "0.050000000 USD",
        },
        "purchased": False,
    }
    assert access(reader)["sale"] is None
    assert 'For sale · <span title="0.050000000 USD">$0.05</span>' in reader.get("/").text
    # Streaming opens the premium articles, not the one for sale.
    forward(reader, [receipt("S9", 1, 10 * SALE_PRICE, binding)])
    assert access(reader)["unlocked"] is True
    assert sale_access(reader)["unlocked"] is False and SOLD_LINE not in open_for_sale(reader)[0]
    script = reader.get("/static/publisher.js").text
    assert "requestPayment" in script and "no_extension" in script


def test_a_test_signed_one_time_receipt_buys_the_article_once(app: Any) -> None:
    with visitor(app) as alice, visitor(app) as mallory:
        _html, binding = open_for_sale(alice)
        token = one_time("P1", SALE_PRICE, binding)
        bought = buy(alice, token)
        assert bought.status_code == 200, bought.text
        assert bought.json() == {
            "code": "ok",
            "order_ref": FOR_SALE.order_ref,
            "amount_minor": str(SALE_PRICE),
            "currency": "USD",
            "scale": 9,
        }
        assert sale_access(alice)["unlocked"] is True and SOLD_LINE in sale_access(alice)["html"]
        html, _ = open_for_sale(alice)
        assert SOLD_LINE in html and 'id="purchase"' not in html
        assert buy(alice, token).status_code == 200  # a retry: the same purchase
        open_for_sale(mallory)
        replay = buy(mallory, token)
        assert replay.status_code == 409 and replay.json()["error"]["code"] == "already_used"
        assert sale_access(mallory)["unlocked"] is False
        # A streamed receipt, a forged one, and no session buy nothing.
        _html, mallorys = open_for_sale(mallory)
        streamed = receipt("P2", 1, SALE_PRICE, mallorys)
        assert buy(mallory, streamed).json()["error"]["code"] == "not_one_time"
        forged = receipt(
            "P3", 1, SALE_PRICE, mallorys, otp=True, ord=FOR_SALE.order_ref, key=GEN.OUTSIDER
        )
        assert buy(mallory, forged).json()["error"]["code"] == "bad_signature"
        assert sale_access(mallory)["unlocked"] is False
    with visitor(app) as stranger:
        refused = buy(stranger, token)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"


def pay_once(
    runtime: Runtime, reader_id: int, key: str, amount_minor: int, order_ref: str, binding: str
) -> str:
    """A real one-time payment through the service's domain function, and its signed receipt."""
    with transaction(runtime.sessions) as session:
        paid = payments.pay(
            session,
            payments.PaymentRequest(
                user_id=reader_id,
                idempotency_key=key,
                payment_pointer=POINTER,
                origin=ORIGIN,
                amount_minor=amount_minor,
                currency="USD",
                order_ref=order_ref,
                binding=binding,
                description=FOR_SALE.title,
            ),
            runtime.settings,
            runtime.clock(),
        )
        payment_id = paid.payment.id
    with transaction(runtime.sessions) as session:  # signed only after the payment committed
        payment = session.get(Payment, payment_id)
        assert payment is not None
        signer = ReceiptSigner(runtime.key_ring.current.active)
        return payments.sign_receipt(payment, runtime.settings, signer)


def test_a_real_one_time_payment_buys_the_article(runtime: Runtime, tmp_path: Path) -> None:
    reader_user = create_user(runtime)
    fund_reader(runtime, reader_user.id, 10**10)
    create_payee(runtime, create_user(runtime).id, "alice")
    verifier = Verifier(
        issuer=runtime.settings.issuer,
        audience=ORIGIN,
        payees=[POINTER],
        keys=KeySet.from_jwks(runtime.key_ring.current.jwks),
    )
    path = tmp_path / "publisher.sqlite3"  # credits and purchases share the file, as in the demo
    site = SiteReceipts(verifier, SQLiteSiteStore(path), binding_key=b"k" * 32)
    publisher = create_publisher_app(
        site, PublisherConfig(POINTER, price_minor=PRICE), purchase_store=SQLitePurchaseStore(path)
    )
    with visitor(publisher) as alice, visitor(publisher) as mallory:
        _html, binding = open_for_sale(alice)
        _html, mallorys = open_for_sale(mallory)

        token = pay_once(runtime, reader_user.id, "buy-1", SALE_PRICE, FOR_SALE.order_ref, binding)
        bought = buy(alice, token)
        assert bought.status_code == 200, bought.text
        assert bought.json()["amount_minor"] == str(SALE_PRICE)
        assert sale_access(alice)["sale"]["purchased"] is True
        assert SOLD_LINE in open_for_sale(alice)[0]
        # The service replays the same key with the same receipt: still one purchase.
        again = pay_once(runtime, reader_user.id, "buy-1", SALE_PRICE, FOR_SALE.order_ref, binding)
        assert again == token and buy(alice, again).status_code == 200

        # Mallory replays Alice's receipt from her own session: it is spent.
        replay = buy(mallory, token)
        assert replay.status_code == 409 and replay.json()["error"]["code"] == "already_used"
        assert sale_access(mallory)["unlocked"] is False
        assert SOLD_LINE not in open_for_sale(mallory)[0]

        # Mallory's own payments that do not pay for this order at its price.
        other_order = pay_once(
            runtime, reader_user.id, "buy-2", SALE_PRICE, "article:deep-dive", mallorys
        )
        wrong = buy(mallory, other_order)
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "order_mismatch"
        too_low = pay_once(
            runtime, reader_user.id, "buy-3", SALE_PRICE - 1, FOR_SALE.order_ref, mallorys
        )
        low = buy(mallory, too_low)
        assert low.status_code == 422 and low.json()["error"]["code"] == "amount_too_low"
        unknown = buy(mallory, other_order, "article:deep-dive")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_order"
        assert sale_access(mallory)["unlocked"] is False
        assert sale_access(mallory)["sale"]["purchased"] is False
