"""Card top-ups through Stripe Checkout, against a local stand-in for Stripe's API: creating the
session (and retrying it), the webhook (signatures, duplicates, order, unknown sessions), refunds
after spending, disputes, and the freeze they put on the reader. SQLite and PostgreSQL; the
``card_runtime`` fixture checks every ledger invariant after each test."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from tests import factories
from tests.factories import create_payee, create_user, fund_reader
from tests.service.stripe_standin import StripeStandIn
from trickle import ledger
from trickle.app import create_app
from trickle.cli import main
from trickle.db import transaction
from trickle.ledger import AccountKind, Asset
from trickle.models import StripeEvent, Topup, Transfer
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings
from trickle.streaming.engine import EngineLimits

UNIT = 1_000_000_000  # 1.00 USD at scale 9
FIVE = str(5 * UNIT)
CENTS = 10_000_000  # one US cent at scale 9
ORIGIN = "https://shop.example"
WEBHOOK = "/api/v1/stripe/webhook"


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    running = StripeStandIn().start()
    yield running
    running.stop()


@pytest.fixture
def card_settings(settings: Settings, standin: StripeStandIn) -> Settings:
    return dataclasses.replace(
        settings,
        stripe_secret_key=standin.secret_key,
        stripe_webhook_secret=standin.webhook_secret,
        stripe_api_base=standin.base,
    ).validate()


@pytest.fixture
def card_runtime(card_settings: Settings) -> Iterator[Runtime]:
    rt = bootstrap(card_settings)
    yield rt
    try:
        with transaction(rt.sessions) as session:
            violations = ledger.check(session)
        assert violations == [], "ledger invariants broken:\n" + "\n".join(map(str, violations))
    finally:
        rt.close()


@pytest.fixture
def card_client(card_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(card_runtime), raise_server_exceptions=False) as test_client:
        yield test_client


# --- helpers ----------------------------------------------------------------------------------


def start_topup(
    client: TestClient, user: factories.TestUser, amount: str = FIVE, key: str | None = None
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/topups",
        json={"amount_minor": amount, "currency": "USD"},
        headers={**user.auth, "Idempotency-Key": key or f"topup-{time.monotonic_ns()}"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def session_of(topup: dict[str, Any]) -> str:
    url = topup["checkout_url"]
    assert isinstance(url, str)
    return url.rsplit("/", 1)[1]


def deliver(
    client: TestClient,
    standin: StripeStandIn,
    event: dict[str, Any],
    *,
    secret: str | None = None,
    timestamp: int | None = None,
) -> tuple[int, dict[str, Any]]:
    payload, headers = standin.signed(event, secret=secret, timestamp=timestamp)
    response = client.post(WEBHOOK, content=payload, headers=headers)
    return response.status_code, response.json()


def deliver_all(client: TestClient, standin: StripeStandIn) -> list[str]:
    """Deliver the stand-in's outbox in order; the outcomes."""
    outcomes = []
    while standin.outbox:
        status, body = deliver(client, standin, standin.outbox.pop(0))
        assert status == 200, body
        outcomes.append(body["outcome"])
    return outcomes


def balance_of(runtime: Runtime, kind: AccountKind, owner: str) -> int:
    asset = Asset(runtime.settings.currency, runtime.settings.asset_scale)
    with transaction(runtime.sessions) as session:
        return ledger.account(session, kind, owner, asset, runtime.clock()).balance_minor


def reader_balance(runtime: Runtime, user: factories.TestUser) -> int:
    return balance_of(runtime, AccountKind.READER, f"user:{user.id}")


def topup_state(client: TestClient, user: factories.TestUser, topup_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/topups/{topup_id}", headers=user.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def paid_topup(
    client: TestClient, standin: StripeStandIn, user: factories.TestUser, amount: str = FIVE
) -> dict[str, Any]:
    topup = start_topup(client, user, amount)
    standin.pay(session_of(topup))
    assert deliver_all(client, standin) == ["credited", "already_credited"]
    return topup


def pay_site(
    client: TestClient, runtime: Runtime, user: factories.TestUser, amount_minor: int
) -> tuple[int, dict[str, Any]]:
    owner = create_user(runtime)
    payee = create_payee(runtime, owner.id)
    response = client.post(
        "/api/v1/payments",
        json={
            "payment_pointer": f"{runtime.settings.issuer}/p/{payee.name}",
            "origin": ORIGIN,
            "amount_minor": str(amount_minor),
            "currency": "USD",
            "order_ref": f"order-{time.monotonic_ns()}",
        },
        headers={**user.auth, "Idempotency-Key": f"pay-{time.monotonic_ns()}"},
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def count(runtime: Runtime, model: type[Any], **where: object) -> int:
    with transaction(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model).filter_by(**where)) or 0)


# --- without Stripe settings --------------------------------------------------------------------


def test_without_stripe_settings_the_card_option_is_absent(
    runtime: Runtime, client: TestClient
) -> None:
    reader = create_user(runtime)
    options = client.get("/api/v1/topups/options", headers=reader.auth)
    assert options.json() == {"card": None, "account_frozen": False}
    created = client.post(
        "/api/v1/topups",
        json={"amount_minor": FIVE, "currency": "USD"},
        headers={**reader.auth, "Idempotency-Key": "topup-0001"},
    )
    assert (created.status_code, created.json()["error"]["code"]) == (
        404,
        "card_topups_unavailable",
    )
    hook = client.post(WEBHOOK, content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
    assert (hook.status_code, hook.json()["error"]["code"]) == (404, "card_topups_unavailable")
    # Vouchers and balances as before.
    assert client.get("/api/v1/balance", headers=reader.auth).json()["balance_minor"] == "0"


# --- creating the Checkout Session -------------------------------------------------------------


def test_options_name_the_presets_and_limits(
    card_runtime: Runtime, card_client: TestClient
) -> None:
    reader = create_user(card_runtime)
    options = card_client.get("/api/v1/topups/options", headers=reader.auth).json()
    assert options == {
        "card": {
            "provider": "stripe",
            "currency": "USD",
            "scale": 9,
            "presets": [str(5 * UNIT), str(10 * UNIT), str(20 * UNIT)],
            "min_amount_minor": str(UNIT),
            "max_amount_minor": str(500 * UNIT),
        },
        "account_frozen": False,
    }


def test_a_topup_is_credited_only_when_stripe_says_it_was_paid(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    assert topup["state"] == "pending" and topup["credited_at"] is None
    assert topup["amount_minor"] == FIVE and topup["checkout_url"].startswith(standin.base)

    (call,) = standin.calls("POST", "/v1/checkout/sessions")
    with transaction(card_runtime.sessions) as session:
        row = session.get(Topup, topup["id"])
        assert row is not None
        public_id, session_id = row.public_id, row.checkout_session_id
    assert session_id == session_of(topup)
    assert call.idempotency_key == f"trickle-checkout-{public_id}"
    assert call.params["mode"] == "payment"
    (item,) = call.params["line_items"]
    assert item["price_data"]["unit_amount"] == "500"  # 5.00 USD in cents, exactly
    assert item["price_data"]["currency"] == "usd"
    assert call.params["metadata"] == {"trickle_topup": public_id}
    assert call.params["payment_intent_data"]["metadata"] == {"trickle_topup": public_id}
    assert call.params["success_url"].startswith("https://trickle.test/topups/return?")
    assert reader_balance(card_runtime, reader) == 0  # nothing before Stripe's word

    (completed, succeeded) = standin.pay(session_id)
    status, body = deliver(card_client, standin, completed)
    assert (status, body) == (200, {"received": True, "outcome": "credited"})
    assert reader_balance(card_runtime, reader) == 5 * UNIT
    assert topup_state(card_client, reader, topup["id"])["state"] == "credited"
    # The crediting transfer names the event that proved the payment.
    with transaction(card_runtime.sessions) as session:
        (transfer,) = session.scalars(select(Transfer).where(Transfer.kind == "topup")).all()
        assert transfer.reference == completed["id"]
        assert transfer.idempotency_key == f"stripe:{public_id}"
    # The other event type says the same: nothing moves.
    assert deliver(card_client, standin, succeeded)[1]["outcome"] == "already_credited"
    assert reader_balance(card_runtime, reader) == 5 * UNIT
    listed = card_client.get("/api/v1/topups", headers=reader.auth).json()["topups"]
    assert [t["id"] for t in listed] == [topup["id"]] and listed[0]["checkout_url"] is None


def test_a_retried_creation_gets_the_same_session(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    """Stripe creates the session but its answer is lost: the request fails with
    stripe_unavailable; the client's retry with the same Idempotency-Key asks Stripe again with
    the same Stripe key, and gets the same session."""
    reader = create_user(card_runtime)
    standin.fail_after_create = 1
    headers = {**reader.auth, "Idempotency-Key": "topup-retry-0001"}
    body = {"amount_minor": FIVE, "currency": "USD"}
    first = card_client.post("/api/v1/topups", json=body, headers=headers)
    assert (first.status_code, first.json()["error"]["code"]) == (502, "stripe_unavailable")
    again = card_client.post("/api/v1/topups", json=body, headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    third = card_client.post("/api/v1/topups", json=body, headers=headers)
    assert third.json() == again.json()

    calls = standin.calls("POST", "/v1/checkout/sessions")
    assert len(calls) == 2  # the third answer came from the service's own record
    assert calls[0].idempotency_key == calls[1].idempotency_key
    assert calls[0].params == calls[1].params
    assert list(standin.sessions) == [session_of(again.json())]
    assert count(card_runtime, Topup) == 1
    # Another key is another top-up, with another session.
    other = start_topup(card_client, reader, key="topup-retry-0002")
    assert other["id"] != again.json()["id"] and len(standin.sessions) == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount_minor": str(UNIT // 2), "currency": "USD"}, 422, "topup_amount_out_of_range"),
        ({"amount_minor": str(501 * UNIT), "currency": "USD"}, 422, "topup_amount_out_of_range"),
        ({"amount_minor": str(5 * UNIT + 1), "currency": "USD"}, 422, "amount_not_chargeable"),
        (
            {"amount_minor": str(5 * UNIT + CENTS // 2), "currency": "USD"},
            422,
            "amount_not_chargeable",
        ),
        ({"amount_minor": "0", "currency": "USD"}, 422, "invalid_amount"),
        ({"amount_minor": FIVE, "currency": "EUR"}, 422, "currency_mismatch"),
        ({"amount_minor": 500, "currency": "USD"}, 422, "validation_failed"),
    ],
)
def test_bad_topups_get_typed_errors_and_never_reach_stripe(
    card_runtime: Runtime,
    card_client: TestClient,
    standin: StripeStandIn,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    reader = create_user(card_runtime)
    response = card_client.post(
        "/api/v1/topups", json=body, headers={**reader.auth, "Idempotency-Key": "topup-bad-01"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert standin.requests == [] and count(card_runtime, Topup) == 0


def test_a_reader_sees_only_their_own_topups(
    card_runtime: Runtime, card_client: TestClient
) -> None:
    alice, bob = create_user(card_runtime), create_user(card_runtime)
    topup = start_topup(card_client, alice)
    response = card_client.get(f"/api/v1/topups/{topup['id']}", headers=bob.auth)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "topup_not_found")
    huge = card_client.get(f"/api/v1/topups/{2**64}", headers=alice.auth)
    assert huge.status_code == 404
    assert card_client.get("/api/v1/topups", headers=bob.auth).json() == {"topups": []}


# --- the webhook ---------------------------------------------------------------------------------


def test_a_webhook_delivered_twice_credits_once(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    completed, _ = standin.pay(session_of(topup))
    assert deliver(card_client, standin, completed)[1]["outcome"] == "credited"
    assert deliver(card_client, standin, completed) == (
        200,
        {"received": True, "outcome": "duplicate"},
    )
    assert reader_balance(card_runtime, reader) == 5 * UNIT
    assert count(card_runtime, StripeEvent, id=completed["id"]) == 1


def test_events_out_of_order_are_harmless(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    """payment_intent.succeeded before checkout.session.completed credits once; a refund that
    arrives before either first credits (the charge proves the payment), then takes it back;
    the success events arriving last change nothing."""
    reader = create_user(card_runtime)
    first = start_topup(card_client, reader)
    completed, succeeded = standin.pay(session_of(first))
    assert deliver(card_client, standin, succeeded)[1]["outcome"] == "credited"
    assert deliver(card_client, standin, completed)[1]["outcome"] == "already_credited"
    assert reader_balance(card_runtime, reader) == 5 * UNIT

    second = start_topup(card_client, reader)
    completed, succeeded = standin.pay(session_of(second))
    refunded = standin.refund_event(session_of(second), 500)
    assert deliver(card_client, standin, refunded)[1]["outcome"] == "refunded"
    assert deliver(card_client, standin, completed)[1]["outcome"] == "already_credited"
    assert deliver(card_client, standin, succeeded)[1]["outcome"] == "already_credited"
    assert reader_balance(card_runtime, reader) == 5 * UNIT  # the first top-up's
    state = topup_state(card_client, reader, second["id"])
    assert (state["state"], state["refunded_minor"]) == ("refunded", FIVE)


def test_a_late_partial_refund_event_books_nothing_twice(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    """Refund events carry the charge's running total: a late event with a smaller total, or a
    redelivered one, takes nothing more back."""
    reader = create_user(card_runtime)
    topup = paid_topup(card_client, standin, reader)
    two_dollars = standin.refund_event(session_of(topup), 200)
    all_of_it = standin.refund_event(session_of(topup), 500)
    assert deliver(card_client, standin, all_of_it)[1]["outcome"] == "refunded"
    assert deliver(card_client, standin, two_dollars)[1]["outcome"] == "no_change"
    assert reader_balance(card_runtime, reader) == 0
    assert balance_of(card_runtime, AccountKind.FUNDING, "stripe") == 0


def test_a_bad_signature_is_refused_and_changes_nothing(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    completed, _ = standin.pay(session_of(topup))
    status, body = deliver(card_client, standin, completed, secret="whsec_" + "0" * 32)
    assert (status, body["error"]["code"]) == (401, "stripe_signature_invalid")
    payload, headers = standin.signed(completed)
    tampered = payload.replace(b'"amount_total": 500', b'"amount_total": 900')
    assert tampered != payload
    response = card_client.post(WEBHOOK, content=tampered, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (
        401,
        "stripe_signature_invalid",
    )
    missing = card_client.post(
        WEBHOOK, content=payload, headers={"Content-Type": "application/json"}
    )
    assert missing.json()["error"]["code"] == "stripe_signature_invalid"
    garbage = card_client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": "nonsense"})
    assert garbage.json()["error"]["code"] == "stripe_signature_invalid"
    assert reader_balance(card_runtime, reader) == 0 and count(card_runtime, StripeEvent) == 0
    assert deliver(card_client, standin, completed)[1]["outcome"] == "credited"  # the real one


def test_a_signature_older_than_the_tolerance_is_refused(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    completed, _ = standin.pay(session_of(topup))
    status, body = deliver(card_client, standin, completed, timestamp=int(time.time()) - 330)
    assert (status, body["error"]["code"]) == (401, "stripe_signature_invalid")
    assert reader_balance(card_runtime, reader) == 0
    status, body = deliver(card_client, standin, completed, timestamp=int(time.time()) - 240)
    assert (status, body["outcome"]) == (200, "credited")  # within the 300 s


def test_events_about_unknown_sessions_are_acknowledged_and_ignored(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    """Not Trickle's session (no metadata), or a top-up this service does not have: 2xx, so that
    Stripe stops retrying what no retry could make known; nothing moves."""
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    completed, _ = standin.pay(session_of(topup))
    foreign = dict(completed["data"]["object"], metadata={}, id="cs_test_foreign")
    other_deployment = dict(completed["data"]["object"], metadata={"trickle_topup": "tp_nope"})
    for obj in (foreign, other_deployment):
        event = standin.event("checkout.session.completed", obj)
        assert deliver(card_client, standin, event) == (
            200,
            {"received": True, "outcome": "ignored"},
        )
    unknown_kind = standin.event("customer.created", {"id": "cus_test_1", "object": "customer"})
    assert deliver(card_client, standin, unknown_kind)[1]["outcome"] == "ignored"
    assert reader_balance(card_runtime, reader) == 0
    assert topup_state(card_client, reader, topup["id"])["state"] == "pending"


def test_an_amount_that_is_not_the_topups_is_refused(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    completed, _ = standin.pay(session_of(topup))
    completed["data"]["object"]["amount_total"] = 50
    status, body = deliver(card_client, standin, completed)
    assert (status, body["error"]["code"]) == (422, "stripe_event_mismatch")
    assert reader_balance(card_runtime, reader) == 0 and count(card_runtime, StripeEvent) == 0


def test_an_expired_session_fails_the_topup(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    assert (
        deliver(card_client, standin, standin.expire(session_of(topup)))[1]["outcome"] == "failed"
    )
    state = topup_state(card_client, reader, topup["id"])
    assert (state["state"], state["failure_reason"], state["checkout_url"]) == (
        "failed",
        "expired",
        None,
    )


def test_a_webhook_that_is_not_json_or_not_an_event_is_refused(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    for payload, code in [
        (b"\xff\xfe not utf-8", "malformed_json"),
        (b"{not json", "malformed_json"),
        (b'{"id": "evt_1", "type": "checkout.session.completed"}', "stripe_event_invalid"),
        (b"[]", "stripe_event_invalid"),
        (b"null", "stripe_event_invalid"),
        (b'"evt_1"', "stripe_event_invalid"),
        (b'{"id": "evt_1", "type": "x", "data": {"object": []}}', "stripe_event_invalid"),
    ]:
        from tests.service.stripe_standin import sign

        headers = {"Stripe-Signature": sign(payload, standin.webhook_secret)}
        response = card_client.post(WEBHOOK, content=payload, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), payload
    big = card_client.post(WEBHOOK, content=b" " * (300 * 1024), headers={"Stripe-Signature": "x"})
    assert (big.status_code, big.json()["error"]["code"]) == (413, "body_too_large")


# --- refunds, disputes, freezes ---------------------------------------------------------------


def _cli(
    card_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> int:
    for name, value in {
        "TRICKLE_ENV": "test",
        "TRICKLE_KEY_ENCRYPTION_KEY": card_settings.key_encryption_key,
        "TRICKLE_PUBLIC_URL": card_settings.public_url,
        "TRICKLE_STRIPE_SECRET_KEY": card_settings.stripe_secret_key,
        "TRICKLE_STRIPE_WEBHOOK_SECRET": card_settings.stripe_webhook_secret,
        "TRICKLE_STRIPE_API_BASE": card_settings.stripe_api_base,
    }.items():
        monkeypatch.setenv(name, value)
    common = ["--database-url", card_settings.database_url, "--data-dir", str(tmp_path)]
    return main([*args, *common])


def test_a_refund_after_partial_spending_books_the_spent_part_as_a_loss(
    card_runtime: Runtime,
    card_client: TestClient,
    card_settings: Settings,
    standin: StripeStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reader = create_user(card_runtime)
    topup = paid_topup(card_client, standin, reader)
    status, _ = pay_site(card_client, card_runtime, reader, 3 * UNIT)
    assert status == 201
    assert reader_balance(card_runtime, reader) == 2 * UNIT

    assert _cli(card_settings, tmp_path, monkeypatch, "topups", "refund", str(topup["id"])) == 0
    out = capsys.readouterr().out
    assert "taken back from reader" in out and "2.00 USD" in out and "3.00 USD" in out
    (call,) = standin.calls("POST", "/v1/refunds")
    assert call.params["amount"] == "500" and call.idempotency_key is not None
    assert call.idempotency_key.startswith("trickle-refund-tp_")

    assert reader_balance(card_runtime, reader) == 0
    assert balance_of(card_runtime, AccountKind.OPERATOR_LOSSES, "stripe") == -3 * UNIT
    assert balance_of(card_runtime, AccountKind.FUNDING, "stripe") == 0
    state = topup_state(card_client, reader, topup["id"])
    assert (state["state"], state["refunded_minor"]) == ("refunded", FIVE)

    # Stripe's own charge.refunded for this refund arrives later: already booked.
    assert deliver_all(card_client, standin) == ["no_change"]
    assert reader_balance(card_runtime, reader) == 0
    assert _cli(card_settings, tmp_path, monkeypatch, "topups", "list", "--state", "refunded") == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[-1] == "1 top-up(s)" and "5.00 USD" in listed[1] and "refunded" in listed[1]

    # The reader spent money that went back to their card: frozen until the operator decides.
    fund_reader(card_runtime, reader.id, UNIT)  # e.g. a voucher
    status, body = pay_site(card_client, card_runtime, reader, UNIT // 2)
    assert (status, body["error"]["code"]) == (409, "account_frozen")
    again = card_client.post(
        "/api/v1/topups",
        json={"amount_minor": FIVE, "currency": "USD"},
        headers={**reader.auth, "Idempotency-Key": "topup-frozen-1"},
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "account_frozen")
    options = card_client.get("/api/v1/topups/options", headers=reader.auth).json()
    assert options["account_frozen"] is True
    # A second refund of the same top-up is refused: nothing is left.
    assert _cli(card_settings, tmp_path, monkeypatch, "topups", "refund", str(topup["id"])) == 2
    assert "topup_not_refundable" in capsys.readouterr().err

    assert _cli(card_settings, tmp_path, monkeypatch, "topups", "frozen") == 0
    assert f"{reader.id:>6}" in capsys.readouterr().out
    args = ("topups", "unfreeze", str(reader.id), "--note", "paid back by bank transfer")
    assert _cli(card_settings, tmp_path, monkeypatch, *args) == 0
    status, _ = pay_site(card_client, card_runtime, reader, UNIT // 2)
    assert status == 201


def test_a_refund_of_unspent_money_does_not_freeze(
    card_runtime: Runtime,
    card_client: TestClient,
    card_settings: Settings,
    standin: StripeStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = create_user(card_runtime)
    topup = paid_topup(card_client, standin, reader)
    assert _cli(card_settings, tmp_path, monkeypatch, "topups", "refund", str(topup["id"])) == 0
    assert reader_balance(card_runtime, reader) == 0
    assert balance_of(card_runtime, AccountKind.OPERATOR_LOSSES, "stripe") == 0
    fund_reader(card_runtime, reader.id, UNIT)
    assert pay_site(card_client, card_runtime, reader, UNIT // 2)[0] == 201


def test_a_dispute_takes_the_money_back_freezes_and_a_won_dispute_restores_it(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    reader = create_user(card_runtime)
    topup = paid_topup(card_client, standin, reader)
    assert pay_site(card_client, card_runtime, reader, 2 * UNIT)[0] == 201

    created = standin.dispute(session_of(topup))
    assert deliver(card_client, standin, created)[1]["outcome"] == "disputed"
    assert deliver(card_client, standin, created)[1]["outcome"] == "duplicate"
    assert reader_balance(card_runtime, reader) == 0
    assert balance_of(card_runtime, AccountKind.OPERATOR_LOSSES, "stripe") == -2 * UNIT
    state = topup_state(card_client, reader, topup["id"])
    assert (state["state"], state["disputed_minor"]) == ("disputed", FIVE)
    fund_reader(card_runtime, reader.id, UNIT)
    status, body = pay_site(card_client, card_runtime, reader, UNIT // 2)
    assert (status, body["error"]["code"]) == (409, "account_frozen")

    won = standin.close_dispute(session_of(topup), "won")
    assert deliver(card_client, standin, won)[1]["outcome"] == "dispute_won"
    assert deliver(card_client, standin, won)[1]["outcome"] == "duplicate"
    assert reader_balance(card_runtime, reader) == 3 * UNIT + UNIT  # the 3.00 left, the 1.00
    assert balance_of(card_runtime, AccountKind.OPERATOR_LOSSES, "stripe") == 0
    assert topup_state(card_client, reader, topup["id"])["state"] == "credited"
    assert pay_site(card_client, card_runtime, reader, UNIT // 2)[0] == 201


def test_a_lost_dispute_keeps_the_freeze_until_the_operator_lifts_it(
    card_runtime: Runtime,
    card_client: TestClient,
    card_settings: Settings,
    standin: StripeStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = create_user(card_runtime)
    topup = paid_topup(card_client, standin, reader)
    assert pay_site(card_client, card_runtime, reader, 4 * UNIT)[0] == 201
    # A second credited top-up: the dispute takes from the whole unspent balance.
    paid_topup(card_client, standin, reader, str(2 * UNIT))
    assert deliver(card_client, standin, standin.dispute(session_of(topup)))[1]["outcome"] == (
        "disputed"
    )
    assert reader_balance(card_runtime, reader) == 0  # 3.00 taken from the balance
    assert balance_of(card_runtime, AccountKind.OPERATOR_LOSSES, "stripe") == -2 * UNIT
    lost = standin.close_dispute(session_of(topup), "lost")
    assert deliver(card_client, standin, lost)[1]["outcome"] == "dispute_lost"
    assert topup_state(card_client, reader, topup["id"])["state"] == "disputed"
    fund_reader(card_runtime, reader.id, UNIT)
    assert pay_site(card_client, card_runtime, reader, UNIT // 2)[1]["error"]["code"] == (
        "account_frozen"
    )
    args = ("topups", "unfreeze", str(reader.id), "--note", "lost; debt written off")
    assert _cli(card_settings, tmp_path, monkeypatch, *args) == 0
    assert pay_site(card_client, card_runtime, reader, UNIT // 2)[0] == 201
    assert balance_of(card_runtime, AccountKind.OPERATOR_LOSSES, "stripe") == -2 * UNIT


def test_a_dispute_before_the_success_event_credits_then_takes_back(
    card_runtime: Runtime, card_client: TestClient, standin: StripeStandIn
) -> None:
    """A dispute names only its PaymentIntent, which the top-up learns from the success
    events: one that overtook them makes the service ask Stripe whose PaymentIntent it is (no
    transaction open), then credit and take back."""
    reader = create_user(card_runtime)
    topup = start_topup(card_client, reader)
    completed, succeeded = standin.pay(session_of(topup))
    dispute = standin.dispute(session_of(topup))
    assert deliver(card_client, standin, dispute)[1]["outcome"] == "disputed"
    assert (
        len(standin.calls("GET", f"/v1/payment_intents/{succeeded['data']['object']['id']}")) == 1
    )
    assert deliver(card_client, standin, completed)[1]["outcome"] == "already_credited"
    assert deliver(card_client, standin, succeeded)[1]["outcome"] == "already_credited"
    assert reader_balance(card_runtime, reader) == 0
    assert balance_of(card_runtime, AccountKind.FUNDING, "stripe") == 0
    assert topup_state(card_client, reader, topup["id"])["state"] == "disputed"
    # A dispute about a payment that is not Trickle's: looked up, then ignored.
    foreign = standin.event(
        "charge.dispute.created", dict(dispute["data"]["object"], payment_intent="pi_test_other")
    )
    standin.payment_intents["pi_test_other"] = {
        "id": "pi_test_other",
        "object": "payment_intent",
        "metadata": {},
    }
    assert deliver(card_client, standin, foreign)[1]["outcome"] == "ignored"


def test_a_dispute_freezes_the_readers_open_streams_at_once(
    card_runtime: Runtime, standin: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that applies the dispute re-reads the reader before it answers Stripe: their
    open stream there goes to account_frozen at once (other processes follow at their next
    settings refresh, which this test pushes out of reach)."""
    slow_refresh = dataclasses.replace(
        EngineLimits.from_settings(card_runtime.settings), settings_refresh_s=3600.0
    )
    monkeypatch.setattr(EngineLimits, "from_settings", classmethod(lambda _cls, _s: slow_refresh))
    reader = create_user(card_runtime)
    create_payee(card_runtime, create_user(card_runtime).id, "alice")
    with TestClient(create_app(card_runtime), raise_server_exceptions=False) as client:
        topup = paid_topup(client, standin, reader)
        with client.websocket_connect("/api/v1/stream") as ws:
            ws.send_text(json.dumps({"type": "hello", "v": 1, "token": reader.token}))
            assert ws.receive_json()["type"] == "welcome"
            pointer = f"{card_runtime.settings.issuer}/p/alice"
            ws.send_text(
                json.dumps({"type": "start", "ref": "r1", "origin": ORIGIN, "pointer": pointer})
            )
            started = ws.receive_json()
            sid = started["sid"]
            assert ws.receive_json() == {"type": "state", "sid": sid, "state": "active"}
            assert deliver(client, standin, standin.dispute(session_of(topup)))[1]["outcome"] == (
                "disputed"
            )
            seen = [ws.receive_json()]
            while seen[-1]["type"] != "state" and len(seen) < 5:  # a receipt may come first
                seen.append(ws.receive_json())
            assert seen[-1] == {
                "type": "state",
                "sid": sid,
                "state": "account_frozen",
                "reason": "account_frozen",
            }, seen
