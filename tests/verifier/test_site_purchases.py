"""``Purchases``: one-time receipts (``otp``, ``ord``) sell an item at the site's own price, in
every store; a receipt buys at most once, also under racing replays; the framework-neutral and
the Starlette purchase endpoints."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient

from tests.verifier.signing import KEY, NOW, make_site, receipt
from tests.verifier.stores import store_fixture
from trickle_verifier import (
    PURCHASE_ERRORS,
    MemoryPurchaseStore,
    MemorySiteStore,
    PurchaseRefused,
    Purchases,
    SQLAlchemyPurchaseStore,
    SQLitePurchaseStore,
    Verifier,
)
from trickle_verifier.asgi import purchase_route

ORDER = "article-42"
PRICE = 50_000_000  # 0.05 USD at scale 9
CATALOGUE = {ORDER: PRICE, "tip-jar": 1}


make_store = store_fixture(MemoryPurchaseStore, SQLitePurchaseStore, SQLAlchemyPurchaseStore)


def make_shop(
    make_verifier: Callable[..., Verifier],
    store: Any,
    *,
    key: bytes | None = KEY,
    prices: Any = None,
    **extra: Any,
) -> Purchases:
    site = make_site(make_verifier, MemorySiteStore(), key=key, **extra)
    return Purchases(site, store, CATALOGUE if prices is None else prices)


def one_time(
    generator: ModuleType,
    sid: str,
    amount: int = PRICE,
    *,
    ord: str | None = ORDER,
    bnd: str | None = None,
    key: Any = None,
    **changes: Any,
) -> str:
    """A one-time receipt signed the way the service signs one (otp, seq 1, amt == tot)."""
    order: dict[str, Any] = {} if ord is None else {"ord": ord}
    changes = {"otp": True, "jti": f"j-{sid}", **order, **changes}
    return receipt(generator, sid, 1, amount, bnd=bnd, key=key, **changes)


def refused(shop: Purchases, session_id: str, token: str, order_ref: str = ORDER) -> str:
    with pytest.raises(PurchaseRefused) as caught:
        shop.purchase(session_id, token, order_ref)
    assert caught.value.message
    return caught.value.code


# --- buying, in every store -----------------------------------------------------------------


def test_a_one_time_receipt_buys_the_order_once(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    shop = make_shop(make_verifier, make_store())
    token = one_time(generator, "P1", bnd=shop.site.binding_for("visitor-1"))
    assert not shop.has_purchased("visitor-1", ORDER)
    result = shop.purchase("visitor-1", token, ORDER)
    assert result.replayed is False
    assert result.to_json() == {
        "code": "ok",
        "order_ref": ORDER,
        "amount_minor": str(PRICE),
        "currency": "USD",
        "scale": 9,
    }
    purchase = result.purchase
    assert (purchase.sid, purchase.session_id, purchase.order_ref) == ("P1", "visitor-1", ORDER)
    assert (purchase.jti, purchase.pay, purchase.purchased_ms) == (
        "j-P1",
        generator.ALICE,
        NOW * 1000,
    )
    assert shop.has_purchased("visitor-1", ORDER)
    assert not shop.has_purchased("visitor-1", "tip-jar")
    assert not shop.has_purchased("visitor-2", ORDER)
    # The same session sends it again (its answer was lost): the same purchase, nothing new.
    again = shop.purchase("visitor-1", token, ORDER)
    assert again.replayed is True and again.purchase == purchase
    assert shop.purchases_of("visitor-1") == [purchase]
    # Paying more than the price is accepted; the receipt's amount is what was paid.
    more = shop.purchase(
        "visitor-1",
        one_time(generator, "P2", PRICE + 7, ord="tip-jar", bnd=purchase_bnd(shop)),
        "tip-jar",
    )
    assert more.purchase.amount_minor == PRICE + 7
    assert [p.sid for p in shop.purchases_of("visitor-1")] == ["P1", "P2"]


def purchase_bnd(shop: Purchases, session_id: str = "visitor-1") -> str:
    return shop.site.binding_for(session_id)


def test_a_second_receipt_for_a_bought_order_is_a_second_purchase(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    shop = make_shop(make_verifier, make_store())
    bnd = purchase_bnd(shop)
    first = shop.purchase("visitor-1", one_time(generator, "Q1", bnd=bnd), ORDER)
    second = shop.purchase("visitor-1", one_time(generator, "Q2", bnd=bnd), ORDER)
    assert not first.replayed and not second.replayed
    assert [p.sid for p in shop.store.purchases("visitor-1", ORDER)] == ["Q1", "Q2"]


def test_receipts_that_do_not_pay_for_this_order_buy_nothing(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    shop = make_shop(make_verifier, make_store())
    mine, theirs = purchase_bnd(shop), purchase_bnd(shop, "visitor-2")
    streamed = generator.token(
        body={**generator.claims(sid="R0", amt=str(PRICE), tot=str(PRICE)), "bnd": mine}
    )
    cases: list[tuple[str, str, str]] = [
        ("not_one_time", str(streamed), ORDER),
        ("not_one_time", one_time(generator, "R1", bnd=mine, otp=False), ORDER),
        ("order_mismatch", one_time(generator, "R2", bnd=mine, ord="article-43"), ORDER),
        ("order_mismatch", one_time(generator, "R3", bnd=mine, ord=None), ORDER),
        ("unknown_order", one_time(generator, "R4", bnd=mine, ord="no-such-item"), "no-such-item"),
        ("wrong_asset", one_time(generator, "R5", bnd=mine, cur="EUR"), ORDER),
        ("wrong_asset", one_time(generator, "R6", bnd=mine, scale=6), ORDER),
        ("amount_too_low", one_time(generator, "R7", PRICE - 1, bnd=mine), ORDER),
        ("bad_signature", one_time(generator, "R8", bnd=mine, key=generator.OUTSIDER), ORDER),
        ("wrong_audience", one_time(generator, "R9", bnd=mine, aud="https://other.example"), ORDER),
        (
            "wrong_payee",
            one_time(generator, "RA", bnd=mine, pay="https://trickle.test/p/eve"),
            ORDER,
        ),
        ("wrong_issuer", one_time(generator, "RB", bnd=mine, iss="https://evil.example"), ORDER),
        ("expired", one_time(generator, "RC", bnd=mine, iat=NOW - 1000, exp=NOW - 100), ORDER),
        ("binding_mismatch", one_time(generator, "RD", bnd=theirs), ORDER),
        ("binding_mismatch", one_time(generator, "RE"), ORDER),
        ("malformed_jws", "not-a-token", ORDER),
    ]
    for code, token, order_ref in cases:
        assert refused(shop, "visitor-1", token, order_ref) == code, code
    assert shop.purchases_of("visitor-1") == [] and not shop.has_purchased("visitor-1", ORDER)
    # The receipt bound to visitor-2 was not consumed: it still buys for visitor-2.
    assert shop.purchase("visitor-2", cases[13][1], ORDER).replayed is False
    assert shop.has_purchased("visitor-2", ORDER) and not shop.has_purchased("visitor-1", ORDER)


def test_a_spent_receipt_buys_nothing_for_another_session_or_order(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    store = make_store()
    unbound = make_shop(make_verifier, store, key=None)
    token = one_time(generator, "U1")
    unbound.purchase("visitor-1", token, ORDER)
    assert refused(unbound, "visitor-2", token) == "already_used"
    assert not unbound.has_purchased("visitor-2", ORDER)
    # With binding values, a spent receipt is reported as spent before its binding is compared.
    bound = make_shop(make_verifier, store)
    spent = one_time(generator, "U2", bnd=purchase_bnd(bound))
    bound.purchase("visitor-1", spent, ORDER)
    assert refused(bound, "visitor-2", spent) == "already_used"
    assert [p.sid for p in store.purchases("visitor-1")] == ["U1", "U2"]
    assert store.purchases("visitor-2") == []


def test_the_price_comes_from_the_sites_catalogue(
    make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    asked: list[str] = []

    def price_of(order_ref: str) -> int | None:
        asked.append(order_ref)
        return 300 if order_ref.startswith("item-") else None

    shop = make_shop(make_verifier, MemoryPurchaseStore(), key=None, prices=price_of)
    assert shop.purchase("v", one_time(generator, "C1", 300, ord="item-1"), "item-1")
    assert refused(shop, "v", one_time(generator, "C2", 299, ord="item-2"), "item-2") == (
        "amount_too_low"
    )
    assert refused(shop, "v", one_time(generator, "C3", 300, ord="other"), "other") == (
        "unknown_order"
    )
    assert asked == ["item-1", "item-2", "other"]
    broken = make_shop(make_verifier, MemoryPurchaseStore(), key=None, prices={ORDER: 1.5})
    with pytest.raises(ValueError, match="int >= 1"):
        broken.purchase("v", one_time(generator, "C4"), ORDER)
    with pytest.raises(ValueError, match="session id"):
        shop.purchase("has space", one_time(generator, "C5", 300, ord="item-1"), "item-1")
    with pytest.raises(TypeError):
        Purchases(object(), MemoryPurchaseStore(), {})  # type: ignore[arg-type]


def test_stores_share_one_database(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    one = make_shop(make_verifier, make_store(), key=None)
    two = make_shop(make_verifier, make_store(), key=None)
    token = one_time(generator, "D1")
    one.purchase("visitor-1", token, ORDER)
    assert two.has_purchased("visitor-1", ORDER)
    assert two.purchase("visitor-1", token, ORDER).replayed is True
    assert refused(two, "visitor-2", token) == "already_used"


# --- races ----------------------------------------------------------------------------------


def race(shops: list[Purchases], sessions: list[str], token: str) -> list[str]:
    """Each thread sends ``token`` once as its session; the outcomes, "new"/"replayed"/code."""
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(sessions))

    def run(shop: Purchases, session_id: str) -> None:
        barrier.wait()
        try:
            outcome = "replayed" if shop.purchase(session_id, token, ORDER).replayed else "new"
        except PurchaseRefused as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [
        threading.Thread(target=run, args=(shops[i % len(shops)], session))
        for i, session in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return sorted(outcomes)


def test_ten_sessions_replaying_one_receipt_make_one_purchase(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    shops = [make_shop(make_verifier, make_store(), key=None) for _ in range(3)]
    sessions = [f"visitor-{i}" for i in range(10)]
    outcomes = race(shops, sessions, one_time(generator, "RACE1"))
    assert outcomes == ["already_used"] * 9 + ["new"]
    buyers = [s for s in sessions if shops[0].has_purchased(s, ORDER)]
    assert len(buyers) == 1
    assert [p.sid for p in shops[0].purchases_of(buyers[0])] == ["RACE1"]


def test_ten_retries_from_one_session_record_one_purchase(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    shops = [make_shop(make_verifier, make_store()) for _ in range(3)]
    token = one_time(generator, "RACE2", bnd=purchase_bnd(shops[0]))
    outcomes = race(shops, ["visitor-1"] * 10, token)
    assert outcomes == ["new"] + ["replayed"] * 9
    assert [p.sid for p in shops[0].purchases_of("visitor-1")] == ["RACE2"]


# --- the framework-neutral endpoint -----------------------------------------------------------


def body_of(token: str, order_ref: str = ORDER) -> bytes:
    return json.dumps({"receipt": token, "order_ref": order_ref}).encode()


def test_handle_purchase_answers_and_refuses(
    make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    shop = make_shop(make_verifier, MemoryPurchaseStore())
    ct = "application/json"
    token = one_time(generator, "H1", bnd=purchase_bnd(shop))
    ok = (
        200,
        {
            "code": "ok",
            "order_ref": ORDER,
            "amount_minor": str(PRICE),
            "currency": "USD",
            "scale": 9,
        },
    )
    assert (
        shop.handle_purchase("visitor-1", body_of(token), content_type=ct + "; charset=utf-8") == ok
    )
    assert shop.handle_purchase("visitor-1", body_of(token), content_type=ct) == ok
    low = one_time(generator, "H2", 5, bnd=purchase_bnd(shop))
    refusals: list[tuple[dict[str, Any], int, str]] = [
        (dict(session_id="visitor-2", body=body_of(token)), 409, "already_used"),
        (dict(body=body_of(low)), 422, "amount_too_low"),
        (dict(body=body_of(token, "article-43")), 422, "order_mismatch"),
        (dict(body=body_of(one_time(generator, "H3", ord="x"), "x")), 404, "unknown_order"),
        (dict(body=body_of("a.b.c")), 422, "malformed_jws"),
        (dict(method="GET"), 405, "method_not_allowed"),
        (dict(content_type="text/plain"), 415, "unsupported_media_type"),
        (dict(content_type=None), 415, "unsupported_media_type"),
        (dict(session_id=None), 401, "unauthenticated"),
        (dict(max_body_bytes=10), 413, "body_too_large"),
        (dict(body=b"{"), 400, "malformed_json"),
        (dict(body=b"\xff"), 400, "malformed_json"),
        (dict(body=b"[]"), 422, "validation_failed"),
        (dict(body=b'{"receipt": "x"}'), 422, "validation_failed"),
        (dict(body=b'{"receipt": 1, "order_ref": "a"}'), 422, "validation_failed"),
        (dict(body=b'{"receipt": "x", "order_ref": ""}'), 422, "validation_failed"),
        (dict(body=b'{"receipt": "x", "order_ref": "caf\\u00e9"}'), 422, "validation_failed"),
        (
            dict(body=json.dumps({"receipt": "x", "order_ref": "a" * 129}).encode()),
            422,
            "validation_failed",
        ),
        (dict(body=b'{"receipt": "x", "order_ref": "a", "price": "1"}'), 422, "validation_failed"),
    ]
    for kwargs, status, code in refusals:
        session_id = kwargs.pop("session_id", "visitor-1")
        raw = kwargs.pop("body", body_of(token))
        kwargs.setdefault("content_type", ct)
        got_status, document = shop.handle_purchase(session_id, raw, **kwargs)
        assert (got_status, document["error"]["code"]) == (status, code), kwargs
        assert document["error"]["message"]
        assert code not in PURCHASE_ERRORS or PURCHASE_ERRORS[code][0] == status
    assert [p.sid for p in shop.purchases_of("visitor-1")] == ["H1"]
    assert shop.purchases_of("visitor-2") == []


def test_handle_purchase_hides_store_failures(
    make_verifier: Callable[..., Verifier], generator: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(MemoryPurchaseStore):
        def record(self, purchase: Any) -> Any:
            raise RuntimeError("database is down: secret connection string")

    shop = make_shop(make_verifier, BrokenStore())
    token = one_time(generator, "B1", bnd=purchase_bnd(shop))
    status, document = shop.handle_purchase(
        "visitor-1", body_of(token), content_type="application/json"
    )
    assert status == 500 and document["error"]["code"] == "internal_error"
    assert "secret" not in json.dumps(document)
    assert "recording a purchase failed" in caplog.text


def test_refusal_statuses() -> None:
    assert PurchaseRefused("already_used").status == 409
    assert PurchaseRefused("unknown_order").status == 404
    assert PurchaseRefused("bad_signature", "forged").status == 422
    assert PurchaseRefused("already_used").to_document() == {
        "error": {"code": "already_used", "message": PURCHASE_ERRORS["already_used"][1]}
    }


# --- Starlette ----------------------------------------------------------------------------------


def visitor_of(request: Request) -> str | None:
    return request.cookies.get("visitor")


@pytest.fixture
def shop(make_verifier: Callable[..., Verifier]) -> Purchases:
    return make_shop(make_verifier, MemoryPurchaseStore())


@pytest.fixture
def client(shop: Purchases) -> Iterator[TestClient]:
    route = purchase_route("/trickle/purchase", shop, session_id=visitor_of, max_body_bytes=8000)
    with TestClient(Starlette(routes=[route]), raise_server_exceptions=False) as test_client:
        yield test_client


def test_the_route_buys_for_the_cookie_session(
    client: TestClient, shop: Purchases, generator: ModuleType
) -> None:
    token = one_time(generator, "A1", bnd=purchase_bnd(shop, "v-1"))
    client.cookies.set("visitor", "v-1")
    response = client.post("/trickle/purchase", json={"receipt": token, "order_ref": ORDER})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "code": "ok",
        "order_ref": ORDER,
        "amount_minor": str(PRICE),
        "currency": "USD",
        "scale": 9,
    }
    assert shop.has_purchased("v-1", ORDER)
    client.cookies.set("visitor", "v-2")
    replay = client.post("/trickle/purchase", json={"receipt": token, "order_ref": ORDER})
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "already_used"
    assert not shop.has_purchased("v-2", ORDER)


@pytest.mark.parametrize(
    ("method", "content_type", "content", "cookie", "status", "code"),
    [
        ("GET", None, b"", "v-1", 405, "method_not_allowed"),
        ("POST", "text/plain", b"{}", "v-1", 415, "unsupported_media_type"),
        ("POST", "application/json", b"{}", None, 401, "unauthenticated"),
        ("POST", "application/json", b"{" * 8001, "v-1", 413, "body_too_large"),
        ("POST", "application/json", b"{nope", "v-1", 400, "malformed_json"),
        ("POST", "application/json", b'{"receipt": []}', "v-1", 422, "validation_failed"),
    ],
)
def test_route_refusals_are_typed_json(
    client: TestClient,
    method: str,
    content_type: str | None,
    content: bytes,
    cookie: str | None,
    status: int,
    code: str,
) -> None:
    if cookie is not None:
        client.cookies.set("visitor", cookie)
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.request(method, "/trickle/purchase", headers=headers, content=content)
    assert response.status_code == status
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_route_streamed_body_over_the_limit(client: TestClient) -> None:
    client.cookies.set("visitor", "v-1")

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = client.post(
        "/trickle/purchase", headers={"content-type": "application/json"}, content=chunks()
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
