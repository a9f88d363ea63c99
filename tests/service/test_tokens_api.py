"""The token endpoints over HTTP (docs/tokens.md §Protocol): the published keys, issuance with
its idempotency, budget and refusals, refunds, and anonymous one-time payments whose receipts the
unchanged verifier accepts; on SQLite and PostgreSQL. The ``runtime`` fixture checks every
ledger invariant (the token float's included) after each test."""

from __future__ import annotations

import dataclasses
import secrets
import threading
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests import factories
from tests.factories import create_payee, create_user, fund_reader
from trickle import freezes, ledger, private_payments, spending, tokens, voprf
from trickle.db import transaction
from trickle.errors import TokenSpent
from trickle.freezes import FreezeReason
from trickle.keys import b64url
from trickle.ledger import AccountKind, Asset
from trickle.models import PrivatePayment, ReaderSettings, SpentToken, TokenIssuance, Transfer
from trickle.runtime import Runtime
from trickle_verifier import KeySet, Verifier

VALUE = 1_000_000
ORIGIN = "https://shop.example"


@dataclasses.dataclass(frozen=True)
class Wallet:
    """The extension's side: blinds, checks the proof against the published key, unblinds."""

    client: TestClient
    user: factories.TestUser

    def published(self) -> dict[str, Any]:
        keys = self.client.get("/.well-known/trickle-token-keys").json()["keys"]
        return min(keys, key=lambda k: k["epoch"])  # the one issuing now (the next is later)

    def request(self, count: int, key: str, epoch: int | None = None) -> tuple[Any, list[Any]]:
        inputs = [secrets.token_bytes(32) for _ in range(count)]
        blinded = [voprf.blind(data) for data in inputs]
        body = {
            "currency": "USD",
            "epoch": epoch or self.published()["epoch"],
            "blinded": [b64url(b.blinded_element) for b in blinded],
        }
        response = self.client.post(
            "/api/v1/tokens", json=body, headers={**self.user.auth, "Idempotency-Key": key}
        )
        return response, blinded

    def buy(self, count: int, key: str | None = None) -> list[dict[str, Any]]:
        response, blinded = self.request(count, key or f"buy-{secrets.token_hex(6)}")
        assert response.status_code == 201, response.json()
        return self.finish(response.json(), blinded)

    def finish(self, body: dict[str, Any], blinded: list[Any]) -> list[dict[str, Any]]:
        published = self.published()
        public_key = voprf.PublicKey.from_bytes(tokens.b64url_decode(published["public_key"], 32))
        outputs = voprf.finalize_batch(
            public_key,
            blinded,
            [tokens.b64url_decode(e, 32) for e in body["evaluated"]],
            tokens.b64url_decode(body["proof"], 64),
        )
        return [
            {"epoch": body["epoch"], "input": b64url(b.input), "output": b64url(output)}
            for b, output in zip(blinded, outputs, strict=True)
        ]


@pytest.fixture
def reader(runtime: Runtime) -> factories.TestUser:
    user = create_user(runtime)
    fund_reader(runtime, user.id, 100 * VALUE)
    return user


@pytest.fixture
def wallet(client: TestClient, reader: factories.TestUser) -> Wallet:
    return Wallet(client, reader)


def wire(token: tokens.Token) -> dict[str, Any]:
    return {"epoch": token.epoch, "input": b64url(token.input), "output": b64url(token.output)}


def balance(runtime: Runtime, kind: AccountKind, owner: str) -> int:
    with transaction(runtime.sessions) as session:
        asset = Asset("USD", 9)
        return ledger.account(session, kind, owner, asset, runtime.clock()).balance_minor


def month_spent(runtime: Runtime, user_id: int) -> int:
    with transaction(runtime.sessions) as session:
        return spending.spent(session, user_id, spending.month_of(runtime.clock()))


# --- the key document ---------------------------------------------------------------------------


def test_the_key_document_publishes_this_epoch_and_the_next_for_everyone(
    runtime: Runtime, client: TestClient
) -> None:
    response = client.get("/.well-known/trickle-token-keys")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.headers["access-control-allow-origin"] == "*"
    keys = response.json()["keys"]
    ring = runtime.token_keys.current
    assert [k["epoch"] for k in keys] == sorted(ring.keys, reverse=True)
    for key in keys:
        assert key["public_key"] == b64url(ring.keys[key["epoch"]].public_key.to_bytes())
        assert (key["currency"], key["scale"], key["value_minor"]) == ("USD", 9, str(VALUE))
        assert key["issue_until"] < key["spend_until"]
    # the same document for a signed-in reader: nothing in it depends on who asks
    user = create_user(runtime)
    assert client.get("/.well-known/trickle-token-keys", headers=user.auth).json() == {"keys": keys}


# --- issuance ----------------------------------------------------------------------------------


def test_issuance_debits_the_balance_counts_the_budget_and_verifies_client_side(
    runtime: Runtime, wallet: Wallet, reader: factories.TestUser
) -> None:
    response, blinded = wallet.request(3, "issue-one")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["count"], body["amount_minor"], body["value_minor"]) == (3, "3000000", "1000000")
    assert body["balance_minor"] == str(97 * VALUE)
    minted = wallet.finish(body, blinded)
    ring = runtime.token_keys.current
    for token in tokens.parse_tokens(minted, limit=3):
        ring.check(token, runtime.clock())
    assert month_spent(runtime, reader.id) == 3 * VALUE
    assert balance(runtime, AccountKind.TOKEN_FLOAT, "tokens") == 3 * VALUE


def test_a_retry_returns_the_same_evaluations_and_never_charges_twice(
    runtime: Runtime, wallet: Wallet, reader: factories.TestUser, client: TestClient
) -> None:
    first, blinded = wallet.request(2, "issue-retry")
    body = {
        "currency": "USD",
        "epoch": first.json()["epoch"],
        "blinded": [b64url(b.blinded_element) for b in blinded],
    }
    headers = {**reader.auth, "Idempotency-Key": "issue-retry"}
    again = client.post("/api/v1/tokens", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert balance(runtime, AccountKind.READER, f"user:{reader.id}") == 98 * VALUE
    other = client.post(
        "/api/v1/tokens", json={**body, "blinded": body["blinded"][:1]}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    with transaction(runtime.sessions) as session:
        assert len(session.scalars(select(TokenIssuance)).all()) == 1


def test_the_domain_replays_a_retry_whose_answer_was_lost(
    runtime: Runtime, reader: factories.TestUser
) -> None:
    """The request's stored answer and the issuance row commit together; the domain's own replay
    (the same Idempotency-Key and blinded elements) returns the same evaluations."""
    ring = runtime.token_keys.current
    epoch = tokens.epoch_of(runtime.clock())
    blinded = tuple(voprf.blind(secrets.token_bytes(32)).blinded_element for _ in range(2))
    request = tokens.IssueRequest(reader.id, "domain-retry", "USD", epoch, blinded)
    issued = []
    for _ in range(2):
        with transaction(runtime.sessions) as session:
            issued.append(
                tokens.issue(
                    session, request, ring, runtime.settings, runtime.clock(), batch_max=32
                )
            )
    assert issued[1].replayed and not issued[0].replayed
    assert (issued[1].evaluated, issued[1].proof) == (issued[0].evaluated, issued[0].proof)
    assert balance(runtime, AccountKind.READER, f"user:{reader.id}") == 98 * VALUE


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("poor", 409, "insufficient_funds"),
        ("budget", 409, "budget_exhausted"),
        ("frozen", 409, "account_frozen"),
        ("next_epoch", 409, "unknown_epoch"),
        ("identity", 409, "invalid_element"),
        ("too_many", 409, "too_many_tokens"),
        ("anonymous", 401, "unauthenticated"),
    ],
)
def test_issuance_refusals_move_nothing(
    runtime: Runtime,
    client: TestClient,
    reader: factories.TestUser,
    wallet: Wallet,
    setup: str,
    status: int,
    code: str,
) -> None:
    user, count, epoch = reader, 3, None
    if setup == "poor":
        user = create_user(runtime)
        fund_reader(runtime, user.id, 2 * VALUE)
    elif setup == "budget":
        with transaction(runtime.sessions) as session:
            session.add(
                ReaderSettings(
                    user_id=reader.id,
                    currency="USD",
                    rate_per_hour_minor=600_000_000,
                    monthly_budget_minor=2 * VALUE,
                    paused=False,
                )
            )
    elif setup == "frozen":
        with transaction(runtime.sessions) as session:
            freezes.freeze(
                session, reader.id, topup_id=None, reason=FreezeReason.DISPUTE, now=runtime.clock()
            )
    elif setup == "next_epoch":
        epoch = max(runtime.token_keys.current.keys)
    elif setup == "too_many":
        count = runtime.settings.token_batch_max + 1
    wallet = Wallet(client, user)
    before = balance(runtime, AccountKind.READER, f"user:{user.id}")
    epoch = epoch or wallet.published()["epoch"]
    if setup == "identity":
        body = {"currency": "USD", "epoch": epoch, "blinded": [b64url(voprf.GENERATOR), "A" * 43]}
        headers = {**user.auth, "Idempotency-Key": "refused-issue"}
        response = client.post("/api/v1/tokens", json=body, headers=headers)
    elif setup == "anonymous":
        body = {"currency": "USD", "epoch": epoch, "blinded": [b64url(voprf.GENERATOR)]}
        headers = {"Idempotency-Key": "anonymous-issue"}
        response = client.post("/api/v1/tokens", json=body, headers=headers)
    else:
        response, _ = wallet.request(count, "refused-issue", epoch)
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] == code
    if setup == "identity":
        assert "blinded element 1" in error["message"]
    assert balance(runtime, AccountKind.READER, f"user:{user.id}") == before
    assert month_spent(runtime, user.id) == 0
    assert balance(runtime, AccountKind.TOKEN_FLOAT, "tokens") == 0


# --- refunds -------------------------------------------------------------------------------------


def test_a_refund_gives_the_value_back_once_and_not_the_budget(
    runtime: Runtime, client: TestClient, wallet: Wallet, reader: factories.TestUser
) -> None:
    minted = wallet.buy(4)
    headers = {**reader.auth, "Idempotency-Key": "refund-1"}
    response = client.post("/api/v1/tokens/refund", json={"tokens": minted[:3]}, headers=headers)
    assert response.status_code == 201, response.json()
    assert response.json() == {
        "count": 3,
        "amount_minor": str(3 * VALUE),
        "balance_minor": str(99 * VALUE),
    }
    assert month_spent(runtime, reader.id) == 4 * VALUE  # no budget comes back
    again = client.post(
        "/api/v1/tokens/refund",
        json={"tokens": [minted[3], minted[1]]},
        headers={**reader.auth, "Idempotency-Key": "refund-2"},
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "token_spent"
    assert "token 1" in again.json()["error"]["message"]
    forged = {**minted[3], "output": b64url(secrets.token_bytes(64))}
    refused = client.post(
        "/api/v1/tokens/refund",
        json={"tokens": [minted[3], forged]},
        headers={**reader.auth, "Idempotency-Key": "refund-3"},
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "invalid_token"
    assert balance(runtime, AccountKind.READER, f"user:{reader.id}") == 99 * VALUE
    assert balance(runtime, AccountKind.TOKEN_FLOAT, "tokens") == VALUE


# --- private one-time payments ----------------------------------------------------------------


@pytest.fixture
def pointer(runtime: Runtime) -> str:
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "shopkeeper")
    return f"{runtime.settings.issuer}/p/shopkeeper"


def private_body(pointer: str, minted: list[dict[str, Any]], amount: int) -> dict[str, Any]:
    return {
        "payment_pointer": pointer,
        "origin": ORIGIN,
        "amount_minor": str(amount),
        "currency": "USD",
        "order_ref": "article-42",
        "tokens": minted,
    }


def pay_privately(
    client: TestClient, body: dict[str, Any], key: str, **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = client.post(
        "/api/v1/private/payments", json=body, headers={"Idempotency-Key": key, **headers}
    )
    return response.status_code, response.json(), dict(response.headers)


def test_a_private_payment_pays_the_payee_with_a_receipt_the_verifier_accepts(
    runtime: Runtime, client: TestClient, wallet: Wallet, pointer: str, reader: factories.TestUser
) -> None:
    minted = wallet.buy(3)
    reader_before = balance(runtime, AccountKind.READER, f"user:{reader.id}")
    body = private_body(pointer, minted, 2 * VALUE + 500_000)  # 2.5 tokens: three are shown
    status, paid, headers = pay_privately(client, body, "private-pay-1")
    assert status == 201, paid
    assert "idempotent-replayed" not in headers
    assert (paid["amount_minor"], paid["paid_minor"], paid["token_count"]) == (
        "2500000",
        "3000000",
        3,
    )
    verifier = Verifier(
        issuer=runtime.settings.issuer,
        audience=ORIGIN,
        payees=[pointer],
        keys=KeySet.from_jwks(client.get("/.well-known/jwks.json").json()),
    )
    receipt = verifier.verify(paid["receipt"])
    assert receipt.amount_minor == 2_500_000 and receipt.one_time
    assert receipt.order_ref == "article-42" and receipt.sid == paid["sid"]
    # the payee got all three tokens' value (the remainder too); the reader moved nothing now
    assert balance(runtime, AccountKind.PAYEE, "payee:1") == 3 * VALUE
    assert balance(runtime, AccountKind.READER, f"user:{reader.id}") == reader_before
    assert month_spent(runtime, reader.id) == 3 * VALUE  # counted at issuance only
    # a retry re-signs the same receipt and moves nothing
    status, again, headers = pay_privately(client, body, "private-pay-1")
    assert status == 201 and headers["idempotent-replayed"] == "true"
    assert again == paid
    # the same key with another body: refused, nothing moves
    status, refused, _ = pay_privately(client, {**body, "order_ref": "other"}, "private-pay-1")
    assert (status, refused["error"]["code"]) == (422, "idempotency_key_reused")
    # the same tokens under another key: spent
    status, refused, _ = pay_privately(client, body, "private-pay-2")
    assert (status, refused["error"]["code"]) == (409, "token_spent")
    assert "token 0" in refused["error"]["message"]
    with transaction(runtime.sessions) as session:
        (row,) = session.scalars(select(PrivatePayment)).all()
        assert not hasattr(row, "user_id")
        assert len(session.scalars(select(SpentToken)).all()) == 3


def test_a_private_payment_reads_no_session_and_no_cookie(
    runtime: Runtime, client: TestClient, wallet: Wallet, pointer: str
) -> None:
    minted = wallet.buy(1)
    status, paid, _ = pay_privately(
        client,
        private_body(pointer, minted, VALUE),
        "private-pay-ignored-auth",
        Authorization="Bearer not-a-session",
        Cookie="trickle_session=not-a-session",
    )
    assert status == 201, paid  # an invalid session would be refused if it were read


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ("too_few", 409, "too_few_tokens"),
        ("too_many", 409, "too_many_tokens"),
        ("forged", 409, "invalid_token"),
        ("repeated", 409, "invalid_token"),
        ("unknown_epoch", 409, "unknown_epoch"),
        ("unknown_payee", 404, "payee_not_found"),
        ("no_key", 400, "idempotency_key_required"),
    ],
)
def test_private_payment_refusals_move_nothing(
    runtime: Runtime,
    client: TestClient,
    wallet: Wallet,
    pointer: str,
    change: str,
    status: int,
    code: str,
) -> None:
    minted = wallet.buy(3)
    body = private_body(pointer, minted[:2], 2 * VALUE)
    if change == "too_few":
        body["amount_minor"] = str(2 * VALUE + 1)
    elif change == "too_many":
        body["amount_minor"] = str(VALUE)
    elif change == "forged":
        body["tokens"] = [minted[0], {**minted[1], "output": b64url(secrets.token_bytes(64))}]
    elif change == "repeated":
        body["tokens"] = [minted[0], minted[0]]
    elif change == "unknown_epoch":
        body["tokens"] = [minted[0], {**minted[1], "epoch": 202001}]
    elif change == "unknown_payee":
        body["payment_pointer"] = f"{runtime.settings.issuer}/p/nobody"
    headers = {} if change == "no_key" else {"Idempotency-Key": f"refused-{change}"}
    response = client.post("/api/v1/private/payments", json=body, headers=headers)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    if change in ("forged", "repeated", "unknown_epoch"):
        assert "token 1" in response.json()["error"]["message"]
    with transaction(runtime.sessions) as session:
        assert session.scalars(select(SpentToken)).all() == []
        assert session.scalars(select(PrivatePayment)).all() == []
        kinds = {t.kind for t in session.scalars(select(Transfer))}
        assert "token_spend" not in kinds
    # the tokens still pay
    status, paid, _ = pay_privately(
        client, private_body(pointer, minted[:2], 2 * VALUE), "then-pays"
    )
    assert status == 201, paid


def test_an_expired_epochs_tokens_no_longer_pay_but_refund(
    runtime: Runtime, client: TestClient, wallet: Wallet, pointer: str, reader: factories.TestUser
) -> None:
    minted = wallet.buy(1)
    ring = runtime.token_keys.current
    key = ring.keys[minted[0]["epoch"]]
    later = key.spend_until + (key.spend_until - key.issue_until)
    runtime.clock = lambda: later
    status, refused, _ = pay_privately(client, private_body(pointer, minted, VALUE), "late-payment")
    assert (status, refused["error"]["code"]) == (409, "epoch_expired")
    with transaction(runtime.sessions) as session:  # (the reader's test session has expired)
        refunded = tokens.refund(
            session,
            user_id=reader.id,
            idempotency_key="late-refund",
            tokens=tokens.parse_tokens(minted, limit=1),
            ring=ring,
            settings=runtime.settings,
            now=later,
        )
    assert (refunded.count, refunded.amount_minor) == (1, VALUE)


def test_a_service_that_evaluates_with_a_key_of_its_own_is_caught_by_the_client(
    runtime: Runtime, client: TestClient, wallet: Wallet
) -> None:
    """A dishonest service publishes one key and evaluates a targeted reader's tokens with
    another (to recognise them when spent): the client, checking the proof against the
    published key, refuses the batch."""
    published = wallet.published()
    ring = runtime.token_keys.current
    honest = ring.keys[published["epoch"]]
    tagging = dataclasses.replace(honest, secret_key=voprf.SecretKey.generate())
    runtime.token_keys.replace(dataclasses.replace(ring, keys={**ring.keys, honest.epoch: tagging}))
    response, blinded = wallet.request(2, "tagged-issue")
    assert response.status_code == 201  # the service answers; the client must not trust it
    with pytest.raises(voprf.VoprfError) as caught:
        wallet.finish(response.json(), blinded)
    assert caught.value.code == "invalid_proof"
    runtime.token_keys.replace(ring)


def test_a_new_month_makes_the_following_key_on_reload(runtime: Runtime) -> None:
    ring = runtime.token_keys.current
    this = tokens.epoch_of(runtime.clock())
    start_of_next = tokens.epoch_bounds(this)[1]
    runtime.clock = lambda: start_of_next
    runtime.reload_keys()
    after = runtime.token_keys.current
    following = tokens.epoch_of(tokens.epoch_bounds(tokens.epoch_of(start_of_next))[1])
    assert set(after.keys) == {*ring.keys, following}
    assert after.keys[tokens.epoch_of(start_of_next)].issuing(start_of_next)
    assert after.keys[this].spendable(start_of_next)  # the old epoch's tokens still pay


def test_a_payment_with_tokens_of_two_epochs_pays_one_transfer_per_epoch(
    runtime: Runtime, client: TestClient, reader: factories.TestUser, pointer: str
) -> None:
    old = factories.buy_tokens(runtime, reader.id, 1)
    start_of_next = tokens.epoch_bounds(old[0].epoch)[1]
    runtime.clock = lambda: start_of_next
    runtime.reload_keys()  # the month turned: the key after next is made
    new = factories.buy_tokens(runtime, reader.id, 1)
    assert new[0].epoch != old[0].epoch
    body = private_body(pointer, [wire(t) for t in (old[0], new[0])], 2 * VALUE)
    status, paid, _ = pay_privately(client, body, "two-epochs-payment")
    assert status == 201, paid
    with transaction(runtime.sessions) as session:
        spent = session.scalars(select(Transfer).where(Transfer.kind == "token_spend")).all()
        assert sorted(t.amount_minor for t in spent) == [VALUE, VALUE]
        assert {t.reference for t in spent} == {paid["sid"]}
        epochs = {row.epoch for row in session.scalars(select(SpentToken))}
        assert epochs == {old[0].epoch, new[0].epoch}


def test_a_token_raced_by_refunds_and_payments_goes_one_way_once(
    runtime: Runtime, reader: factories.TestUser, pointer: str
) -> None:
    (token,) = factories.buy_tokens(runtime, reader.id, 1)
    ring = runtime.token_keys.current
    barrier = threading.Barrier(10)
    outcomes: list[str] = []

    def refund(n: int) -> None:
        barrier.wait()
        try:
            with transaction(runtime.sessions) as session:
                tokens.refund(
                    session,
                    user_id=reader.id,
                    idempotency_key=f"race-refund-{n}",
                    tokens=[token],
                    ring=ring,
                    settings=runtime.settings,
                    now=runtime.clock(),
                )
            outcomes.append("refunded")
        except TokenSpent:
            outcomes.append("spent")

    def pay(n: int) -> None:
        request = private_payments.PrivatePaymentRequest(
            idempotency_key=f"race-pay-{n}",
            request_hash=f"{n:064d}",
            payment_pointer=pointer,
            origin=ORIGIN,
            amount_minor=VALUE,
            currency="USD",
            order_ref="raced",
            tokens=(token,),
        )
        barrier.wait()
        try:
            with transaction(runtime.sessions) as session:
                private_payments.pay(session, request, ring, runtime.settings, runtime.clock())
            outcomes.append("paid")
        except TokenSpent:
            outcomes.append("spent")

    threads = [threading.Thread(target=refund if n % 2 else pay, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 10
    assert outcomes.count("spent") == 9, outcomes
    with transaction(runtime.sessions) as session:
        assert len(session.scalars(select(SpentToken)).all()) == 1
