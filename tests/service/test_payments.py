"""One-time payments (docs/payments.md): the endpoint, the domain function, their idempotency under
retries and races, and the rules (balance, budget, per-site off switch), on SQLite and PostgreSQL.
The ``runtime`` fixture checks every ledger invariant after each test."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from typing import Any

import pytest
from nacl.bindings import crypto_sign
from sqlalchemy import func, select
from starlette.testclient import TestClient

from tests import factories
from tests.factories import create_payee, create_user, fund_reader
from trickle import ledger, money, origins, payments, spending
from trickle.db import transaction
from trickle.errors import (
    BudgetExhausted,
    IdempotencyKeyReused,
    InsufficientFunds,
    PayeeNotFound,
    SiteDisabled,
)
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.models import Base, IdempotentRequest, Payment, SiteOverride, Transfer
from trickle.receipts import ReceiptSigner
from trickle.runtime import Runtime
from trickle.streaming import engine
from trickle_verifier import InvalidClaim, KeySet, Verifier

UNIT = 1_000_000_000  # 1.00 USD at scale 9
ORIGIN = "https://shop.example"


@dataclasses.dataclass(frozen=True)
class Shop:
    reader: factories.TestUser
    creator: factories.TestUser
    payee_id: int
    pointer: str


@pytest.fixture
def shop(runtime: Runtime) -> Shop:
    reader = create_user(runtime)
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "shopkeeper")
    fund_reader(runtime, reader.id, 2 * UNIT)
    return Shop(reader, creator, payee.id, f"{runtime.settings.issuer}/p/shopkeeper")


def _body(shop: Shop, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payment_pointer": shop.pointer,
        "origin": ORIGIN,
        "amount_minor": "250000000",
        "currency": "USD",
        "order_ref": "article-42",
        "binding": "visitor-session-7",
        "description": "The long read",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _pay(
    client: TestClient, user: factories.TestUser, key: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = client.post(
        "/api/v1/payments", json=body, headers={**user.auth, "Idempotency-Key": key}
    )
    return response.status_code, response.json(), dict(response.headers)


def _verifier(client: TestClient, runtime: Runtime, shop: Shop) -> Verifier:
    return Verifier(
        issuer=runtime.settings.issuer,
        audience=ORIGIN,
        payees=[shop.pointer],
        keys=KeySet.from_jwks(client.get("/.well-known/jwks.json").json()),
    )


def _asset(runtime: Runtime) -> Asset:
    return Asset(runtime.settings.currency, runtime.settings.asset_scale)


def _balance(runtime: Runtime, kind: AccountKind, owner: str) -> int:
    with transaction(runtime.sessions) as session:
        account = ledger.account(session, kind, owner, _asset(runtime), runtime.clock())
        return account.balance_minor


def _reader_balance(runtime: Runtime, shop: Shop) -> int:
    return _balance(runtime, AccountKind.READER, f"user:{shop.reader.id}")


def _payee_balance(runtime: Runtime, shop: Shop) -> int:
    return _balance(runtime, AccountKind.PAYEE, f"payee:{shop.payee_id}")


def _count(runtime: Runtime, model: type[Base], **where: object) -> int:
    with transaction(runtime.sessions) as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(session.scalar(query) or 0)


def _month_spent(runtime: Runtime, user_id: int) -> int:
    with transaction(runtime.sessions) as session:
        return spending.spent(session, user_id, spending.month_of(runtime.clock()))


# --- the endpoint -----------------------------------------------------------------------------


def test_a_reader_pays_once_and_the_site_verifies_a_one_time_receipt(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    status, body, headers = _pay(client, shop.reader, "buy-article-42", _body(shop))
    assert status == 201, body
    assert "idempotent-replayed" not in headers
    assert body["amount_minor"] == "250000000"
    assert (body["currency"], body["scale"]) == ("USD", 9)
    assert body["balance_minor"] == str(2 * UNIT - 250_000_000)
    assert body["month_spent_minor"] == "250000000"
    assert body["month_budget_minor"] == str(runtime.settings.default_monthly_budget_minor)
    assert (body["order_ref"], body["origin"], body["payment_pointer"]) == (
        "article-42",
        ORIGIN,
        shop.pointer,
    )

    receipt = _verifier(client, runtime, shop).verify(body["receipt"], binding="visitor-session-7")
    assert receipt.one_time is True
    assert receipt.order_ref == "article-42"
    assert (receipt.seq, receipt.amount_minor, receipt.total_minor) == (1, 250_000_000, 250_000_000)
    assert receipt.sid == body["sid"]
    assert receipt.expires_at - receipt.issued_at == runtime.settings.receipt_ttl_s

    assert _reader_balance(runtime, shop) == 2 * UNIT - 250_000_000
    assert _payee_balance(runtime, shop) == 250_000_000
    assert _count(runtime, Transfer, kind="payment") == 1
    assert _month_spent(runtime, shop.reader.id) == 250_000_000

    earnings = client.get("/api/v1/earnings", headers=shop.creator.auth).json()
    (payee,) = earnings["payees"]
    assert payee["balance_minor"] == "250000000"
    (day,) = payee["days"]
    assert day["sites"] == [{"origin": ORIGIN, "credited_minor": "250000000", "fees_minor": "0"}]


def test_every_payment_gets_a_fresh_sid(runtime: Runtime, client: TestClient, shop: Shop) -> None:
    sids = {
        _pay(client, shop.reader, f"tip-key-{i:04}", _body(shop, amount_minor="1000"))[1]["sid"]
        for i in range(3)
    }
    assert len(sids) == 3


def test_a_retry_replays_the_same_receipt_and_charges_once(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    first = _pay(client, shop.reader, "buy-retry-0001", _body(shop))
    second = _pay(client, shop.reader, "buy-retry-0001", _body(shop))
    assert first[0] == second[0] == 201
    assert second[1] == first[1]  # the same JWS, byte for byte
    assert second[2]["idempotent-replayed"] == "true"
    assert _reader_balance(runtime, shop) == 2 * UNIT - 250_000_000
    assert _count(runtime, Payment) == 1
    assert _month_spent(runtime, shop.reader.id) == 250_000_000


def test_the_stored_answer_has_no_receipt_it_is_signed_after_the_commit(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    status, body, _ = _pay(client, shop.reader, "buy-stored-01", _body(shop))
    assert status == 201
    with transaction(runtime.sessions) as session:
        stored = session.scalars(select(IdempotentRequest)).one()
    assert "receipt" not in json.loads(stored.response_body)
    assert json.loads(stored.response_body)["sid"] == body["sid"]


def test_the_same_key_with_another_body_is_refused(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    assert _pay(client, shop.reader, "buy-reuse-001", _body(shop))[0] == 201
    status, body, _ = _pay(client, shop.reader, "buy-reuse-001", _body(shop, order_ref="other"))
    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
    assert _reader_balance(runtime, shop) == 2 * UNIT - 250_000_000


def test_ten_racing_requests_with_one_key_charge_once(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    barrier = threading.Barrier(10)
    answers: list[tuple[int, dict[str, Any], dict[str, str]]] = []
    lock = threading.Lock()

    def pay() -> None:
        barrier.wait()
        answer = _pay(client, shop.reader, "buy-race-key-1", _body(shop))
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=pay) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _, _ in answers] == [201] * 10
    assert len({body["receipt"] for _, body, _ in answers}) == 1
    assert sum(1 for _, _, headers in answers if "idempotent-replayed" not in headers) == 1
    assert _reader_balance(runtime, shop) == 2 * UNIT - 250_000_000
    assert _count(runtime, Payment) == 1
    assert _count(runtime, Transfer, kind="payment") == 1


def test_racing_payments_with_different_keys_never_overdraw(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    # 2.00 USD covers 4 payments of 0.45 USD; 10 race.
    barrier = threading.Barrier(10)
    statuses: list[tuple[int, str]] = []
    lock = threading.Lock()

    def pay(index: int) -> None:
        barrier.wait()
        status, body, _ = _pay(
            client, shop.reader, f"buy-many-{index:04}", _body(shop, amount_minor="450000000")
        )
        with lock:
            statuses.append((status, body["error"]["code"] if status != 201 else "paid"))

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [(201, "paid")] * 4 + [(409, "insufficient_funds")] * 6
    assert _reader_balance(runtime, shop) == 2 * UNIT - 4 * 450_000_000
    assert _payee_balance(runtime, shop) == 4 * 450_000_000
    assert _count(runtime, Payment) == 4
    assert _month_spent(runtime, shop.reader.id) == 4 * 450_000_000


def test_insufficient_funds_charges_nothing_and_records_nothing(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    status, body, _ = _pay(
        client, shop.reader, "buy-toomuch1", _body(shop, amount_minor="3000000000")
    )
    assert (status, body["error"]["code"]) == (409, "insufficient_funds")
    assert _reader_balance(runtime, shop) == 2 * UNIT
    assert (_count(runtime, Payment), _month_spent(runtime, shop.reader.id)) == (0, 0)
    # The key is free again: a retry after a top-up pays.
    fund_reader(runtime, shop.reader.id, 2 * UNIT)
    body = _body(shop, amount_minor="3000000000")
    assert _pay(client, shop.reader, "buy-toomuch1", body)[0] == 201
    assert _reader_balance(runtime, shop) == UNIT


def test_the_monthly_budget_caps_one_time_payments(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    response = client.put(
        "/api/v1/me/settings", json={"monthly_budget_minor": "300000000"}, headers=shop.reader.auth
    )
    assert response.status_code == 200
    assert _pay(client, shop.reader, "buy-budget-1", _body(shop))[0] == 201
    status, body, _ = _pay(client, shop.reader, "buy-budget-2", _body(shop))
    assert (status, body["error"]["code"]) == (409, "budget_exhausted")
    assert _reader_balance(runtime, shop) == 2 * UNIT - 250_000_000
    assert _month_spent(runtime, shop.reader.id) == 250_000_000
    small = _body(shop, amount_minor="50000000")
    assert _pay(client, shop.reader, "buy-budget-3", small)[0] == 201  # exactly to the cap


def test_a_site_the_reader_turned_off_gets_nothing(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    response = client.put(
        "/api/v1/me/site-overrides",
        json={"origin": "HTTPS://Shop.Example:443", "disabled": True},
        headers=shop.reader.auth,
    )
    assert response.status_code == 200
    status, body, _ = _pay(client, shop.reader, "buy-off-0001", _body(shop))
    assert (status, body["error"]["code"]) == (409, "site_disabled")
    other = _body(shop, origin="https://other.example")
    assert _pay(client, shop.reader, "buy-off-0002", other)[0] == 201
    assert _reader_balance(runtime, shop) == 2 * UNIT - 250_000_000


def test_the_global_pause_does_not_block_an_approved_payment(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    response = client.put("/api/v1/me/settings", json={"paused": True}, headers=shop.reader.auth)
    assert response.status_code == 200
    assert _pay(client, shop.reader, "buy-paused-1", _body(shop))[0] == 201


@pytest.mark.parametrize(
    "pointer",
    [
        "https://trickle.test/p/nobody",
        "https://elsewhere.example/p/shopkeeper",
        "https://trickle.test/p/../p/shopkeeper",
        "not a url",
    ],
)
def test_an_unknown_payee_is_refused(
    runtime: Runtime, client: TestClient, shop: Shop, pointer: str
) -> None:
    status, body, _ = _pay(
        client, shop.reader, "buy-nobody-1", _body(shop, payment_pointer=pointer)
    )
    assert (status, body["error"]["code"]) == (404, "payee_not_found")
    assert _reader_balance(runtime, shop) == 2 * UNIT


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"amount_minor": "0"}, 422, "invalid_amount"),
        ({"amount_minor": "-5"}, 422, "validation_failed"),
        ({"amount_minor": "1.5"}, 422, "validation_failed"),
        ({"amount_minor": "007"}, 422, "validation_failed"),
        ({"amount_minor": 5}, 422, "validation_failed"),
        ({"amount_minor": "9223372036854775808"}, 422, "invalid_amount"),
        ({"currency": "EUR"}, 422, "currency_mismatch"),
        ({"currency": "usd"}, 422, "validation_failed"),
        ({"order_ref": ""}, 422, "validation_failed"),
        ({"order_ref": "x" * 129}, 422, "validation_failed"),
        ({"order_ref": "caf\u00e9"}, 422, "validation_failed"),
        ({"binding": "line\nbreak"}, 422, "validation_failed"),
        ({"description": "   "}, 422, "validation_failed"),
        ({"origin": "https://shop.example/path"}, 422, "validation_failed"),
        ({"origin": "javascript:alert(1)"}, 422, "validation_failed"),
        # Issue 11 item 9: these were paid, and signed into the receipt's `aud`.
        ({"origin": 'https://x"onmouseover="alert(1)'}, 422, "validation_failed"),
        ({"origin": "https://<b>"}, 422, "validation_failed"),
        ({"origin": "https://shop\x01.example"}, 422, "validation_failed"),
        ({"origin": "https://shop.example\n"}, 422, "validation_failed"),
        ({"origin": "https://shop\x00.example"}, 422, "validation_failed"),
        ({"origin": "https://1.2.3"}, 422, "validation_failed"),
        ({"description": "bidi \u202e override"}, 422, "validation_failed"),
        ({"extra": "field"}, 422, "validation_failed"),
    ],
)
def test_bad_payments_get_typed_errors(
    runtime: Runtime,
    client: TestClient,
    shop: Shop,
    overrides: dict[str, Any],
    status: int,
    code: str,
) -> None:
    answer = _pay(client, shop.reader, "buy-bad-0001", _body(shop, **overrides))
    assert (answer[0], answer[1]["error"]["code"]) == (status, code)
    assert _reader_balance(runtime, shop) == 2 * UNIT


def test_a_payment_takes_origins_exactly_as_a_stream_start_does() -> None:
    # One function decides what an origin is, for a stream's `aud` and a payment's alike.
    # (The name each module imported, read from its namespace.)
    by_payments, by_engine = vars(payments)["normalize_origin"], vars(engine)["normalize_origin"]
    assert by_payments is by_engine is origins.normalize_origin


def test_a_payment_of_2_63_minus_1_is_past_the_budget_on_both_databases(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    # Issue 11 item 8: with something spent this month, PostgreSQL computed spent + amount in
    # the budget's UPDATE and failed ("bigint out of range", a 500); SQLite said 409.
    assert _pay(client, shop.reader, "buy-small-01", _body(shop, amount_minor="5"))[0] == 201
    big = _body(shop, amount_minor=str(money.MAX_AMOUNT), order_ref="article-43")
    status, body, _ = _pay(client, shop.reader, "buy-huge-001", big)
    assert (status, body["error"]["code"]) == (409, "budget_exhausted")
    assert (_month_spent(runtime, shop.reader.id), _count(runtime, Payment)) == (5, 1)


def test_a_payment_that_would_overflow_the_payee_s_balance_moves_nothing(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    with transaction(runtime.sessions) as session:
        now = runtime.clock()
        source = ledger.account(session, AccountKind.FUNDING, "fill", _asset(runtime), now)
        payee = ledger.account(
            session, AccountKind.PAYEE, f"payee:{shop.payee_id}", _asset(runtime), now
        )
        request = TransferRequest(
            source.id, payee.id, money.MAX_AMOUNT - 1, "USD", TransferKind.TOPUP, "fill-payee"
        )
        ledger.post_transfer(session, request, now)
    status, body, _ = _pay(client, shop.reader, "buy-over-001", _body(shop))
    assert (status, body["error"]["code"]) == (409, "amount_overflow")
    assert _reader_balance(runtime, shop) == 2 * UNIT
    assert (_month_spent(runtime, shop.reader.id), _count(runtime, Payment)) == (0, 0)


def test_a_payment_needs_a_session_and_an_idempotency_key(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    response = client.post("/api/v1/payments", json=_body(shop), headers=shop.reader.auth)
    assert (response.status_code, response.json()["error"]["code"]) == (
        400,
        "idempotency_key_required",
    )
    response = client.post(
        "/api/v1/payments", json=_body(shop), headers={"Idempotency-Key": "anon-key-01"}
    )
    assert response.status_code == 401
    # The documented character set is enforced (before: any 8-200 ASCII characters passed).
    for key in ("not allowed!", "with space", "semi;colon", "x" * 7, "y" * 201):
        response = client.post(
            "/api/v1/payments",
            json=_body(shop),
            headers={**shop.reader.auth, "Idempotency-Key": key},
        )
        assert (response.status_code, response.json()["error"]["code"]) == (
            422,
            "validation_failed",
        ), key
    assert _reader_balance(runtime, shop) == 2 * UNIT
    assert _count(runtime, IdempotentRequest) == 0


def test_readers_list_only_their_own_payments_newest_first(
    runtime: Runtime, client: TestClient, shop: Shop
) -> None:
    stranger = create_user(runtime)
    fund_reader(runtime, stranger.id, UNIT)
    _pay(client, shop.reader, "list-key-0001", _body(shop, order_ref="first"))
    _pay(client, shop.reader, "list-key-0002", _body(shop, order_ref="second", description=None))
    _pay(client, stranger, "list-key-0003", _body(shop, order_ref="theirs"))
    response = client.get("/api/v1/payments", headers=shop.reader.auth)
    assert response.status_code == 200
    listed = response.json()["payments"]
    assert [p["order_ref"] for p in listed] == ["second", "first"]
    assert listed[0]["description"] is None and listed[1]["description"] == "The long read"
    assert all("receipt" not in p for p in listed)


# --- the domain function ----------------------------------------------------------------------


def _request(shop: Shop, key: str, **overrides: Any) -> payments.PaymentRequest:
    fields: dict[str, Any] = {
        "user_id": shop.reader.id,
        "idempotency_key": key,
        "payment_pointer": shop.pointer,
        "origin": ORIGIN,
        "amount_minor": 100_000_000,
        "currency": "USD",
        "order_ref": "order-1",
    }
    fields.update(overrides)
    return payments.PaymentRequest(**fields)


def test_the_fee_goes_from_the_payee_to_the_platform(runtime: Runtime, shop: Shop) -> None:
    settings = dataclasses.replace(runtime.settings, fee_bps=250)  # 2.5 %
    with transaction(runtime.sessions) as session:
        paid = payments.pay(session, _request(shop, "fee-key-0001"), settings, runtime.clock())
    assert paid.payment.fee_minor == 2_500_000
    assert _payee_balance(runtime, shop) == 97_500_000
    assert _balance(runtime, AccountKind.FEE, "platform") == 2_500_000
    assert _reader_balance(runtime, shop) == 2 * UNIT - 100_000_000


def test_a_replay_signs_the_identical_receipt(runtime: Runtime, shop: Shop) -> None:
    settings = runtime.settings
    signer = ReceiptSigner(runtime.key_ring.current.active)
    tokens = []
    for expect_replayed in (False, True):
        with transaction(runtime.sessions) as session:
            paid = payments.pay(session, _request(shop, "replay-key-01"), settings, runtime.clock())
        assert paid.replayed is expect_replayed
        fresh_signer = ReceiptSigner(runtime.key_ring.current.active)
        tokens.append(payments.sign_receipt(paid.payment, settings, fresh_signer))
    assert tokens[0] == tokens[1]
    assert payments.sign_receipt(paid.payment, settings, signer) == tokens[0]
    with transaction(runtime.sessions) as session, pytest.raises(IdempotencyKeyReused):
        payments.pay(
            session, _request(shop, "replay-key-01", amount_minor=7), settings, runtime.clock()
        )


def test_ten_racing_domain_calls_with_one_key_pay_once(runtime: Runtime, shop: Shop) -> None:
    # No API placeholder here: the payments table's unique index alone must hold the line.
    barrier = threading.Barrier(10)
    results: list[payments.Paid] = []
    lock = threading.Lock()

    def pay() -> None:
        barrier.wait()
        with transaction(runtime.sessions) as session:
            paid = payments.pay(
                session, _request(shop, "domain-race-1"), runtime.settings, runtime.clock()
            )
        with lock:
            results.append(paid)

    threads = [threading.Thread(target=pay) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 10
    assert sorted(r.replayed for r in results) == [False] + [True] * 9
    assert len({r.payment.sid for r in results}) == 1
    assert _reader_balance(runtime, shop) == 2 * UNIT - 100_000_000
    assert _count(runtime, Transfer, kind="payment") == 1


def test_domain_refusals_leave_nothing_behind(runtime: Runtime, shop: Shop) -> None:
    settings = runtime.settings
    now = runtime.clock()
    with transaction(runtime.sessions) as session:
        with pytest.raises(InsufficientFunds):
            payments.pay(
                session, _request(shop, "dom-key-0001", amount_minor=5 * UNIT), settings, now
            )
        with pytest.raises(PayeeNotFound):
            payments.pay(
                session,
                _request(shop, "dom-key-0002", payment_pointer="https://trickle.test/p/ghost"),
                settings,
                now,
            )
        tight = dataclasses.replace(settings, default_monthly_budget_minor=10)
        with pytest.raises(BudgetExhausted):
            payments.pay(session, _request(shop, "dom-key-0003"), tight, now)
        # A refusal inside a bigger transaction rolls back only itself.
        paid = payments.pay(session, _request(shop, "dom-key-0004"), settings, now)
    assert not paid.replayed
    assert _count(runtime, Payment) == 1
    assert _reader_balance(runtime, shop) == 2 * UNIT - 100_000_000
    assert _month_spent(runtime, shop.reader.id) == 100_000_000


def test_site_disabled_is_checked_on_the_normalized_origin(runtime: Runtime, shop: Shop) -> None:
    with transaction(runtime.sessions) as session:
        session.add(SiteOverride(user_id=shop.reader.id, origin=ORIGIN, disabled=True))
    with transaction(runtime.sessions) as session, pytest.raises(SiteDisabled):
        payments.pay(
            session,
            _request(shop, "dom-off-0001", origin="HTTPS://SHOP.example"),
            runtime.settings,
            runtime.clock(),
        )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_the_verifier_refuses_a_malformed_ord_claim(runtime: Runtime, shop: Shop) -> None:
    key = runtime.key_ring.current.active
    with transaction(runtime.sessions) as session:
        paid = payments.pay(
            session, _request(shop, "ord-key-0001"), runtime.settings, runtime.clock()
        )
    token = payments.sign_receipt(paid.payment, runtime.settings, ReceiptSigner(key))
    verifier = Verifier(
        issuer=runtime.settings.issuer,
        audience=ORIGIN,
        payees=[shop.pointer],
        keys=KeySet.from_jwks(runtime.key_ring.current.jwks),
    )
    assert verifier.verify(token).order_ref == "order-1"
    # The same payload with a non-ASCII ord, signed by the same key: authentic, yet invalid.
    header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    for bad_ord in ("caf\u00e9", "", "x" * 129, 42):
        claims["ord"] = bad_ord
        forged = _b64url(json.dumps(claims).encode())
        signature = crypto_sign(f"{header}.{forged}".encode(), key.secret_key)[:64]
        with pytest.raises(InvalidClaim):
            verifier.verify(f"{header}.{forged}.{_b64url(signature)}")
