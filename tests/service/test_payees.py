"""Payees: creation, unique names (a racing duplicate too), the owner-only API and the public
payment-pointer document with its CORS header."""

from __future__ import annotations

import threading

import pytest
from starlette.testclient import TestClient

from tests.factories import create_payee, create_user
from trickle import payees
from trickle.db import transaction
from trickle.errors import PayeeNameTaken, PayeeNotFound
from trickle.models import LedgerAccount, SiteVerification
from trickle.runtime import Runtime


def test_a_creator_creates_a_payee_and_lists_it(runtime: Runtime, client: TestClient) -> None:
    creator = create_user(runtime)
    response = client.post(
        "/api/v1/payees",
        json={"name": "alice-blog", "display_name": "  Alice's   Blog "},
        headers=creator.auth,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "alice-blog"
    assert body["display_name"] == "Alice's Blog"
    assert body["payment_pointer"] == "https://trickle.test/p/alice-blog"
    assert (body["currency"], body["scale"], body["sites"]) == ("USD", 9, [])

    listed = client.get("/api/v1/payees", headers=creator.auth).json()
    assert [p["name"] for p in listed["payees"]] == ["alice-blog"]
    other = create_user(runtime)
    assert client.get("/api/v1/payees", headers=other.auth).json() == {"payees": []}


def test_a_new_payee_has_an_empty_earnings_account(runtime: Runtime) -> None:
    creator = create_user(runtime)
    with transaction(runtime.sessions) as session:
        payee = payees.create(
            session,
            user_id=creator.id,
            name="fresh",
            display_name=None,
            settings=runtime.settings,
            now=runtime.clock(),
        )
        account = session.query(LedgerAccount).filter_by(owner=f"payee:{payee.id}").one()
    assert (payee.display_name, account.kind, account.balance_minor) == ("fresh", "payee", 0)


def test_names_are_unique_across_creators(runtime: Runtime, client: TestClient) -> None:
    first, second = create_user(runtime), create_user(runtime)
    assert client.post("/api/v1/payees", json={"name": "taken"}, headers=first.auth).status_code
    for who in (first, second):
        response = client.post("/api/v1/payees", json={"name": "taken"}, headers=who.auth)
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "payee_name_taken"


def test_racing_creations_of_one_name_give_one_payee(runtime: Runtime) -> None:
    users = [create_user(runtime) for _ in range(8)]
    barrier = threading.Barrier(len(users))
    outcomes: list[str] = []

    def create(user_id: int) -> None:
        barrier.wait()
        try:
            with transaction(runtime.sessions) as session:
                payees.create(
                    session,
                    user_id=user_id,
                    name="contested",
                    display_name=None,
                    settings=runtime.settings,
                    now=runtime.clock(),
                )
            outcomes.append("created")
        except PayeeNameTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=create, args=(u.id,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["taken"] * 7


@pytest.mark.parametrize(
    "name", ["a", "-abc", "Abc", "a_b", "a b", "é-blog", "a" * 64, "blog/x", "", "a.b"]
)
def test_bad_names_are_refused(runtime: Runtime, client: TestClient, name: str) -> None:
    creator = create_user(runtime)
    response = client.post("/api/v1/payees", json={"name": name}, headers=creator.auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "ok-name", "display_name": "   "},
        {"name": "ok-name", "display_name": "bell\u0007"},
        {"name": "ok-name", "extra": 1},
        {"name": 12},
        {},
    ],
)
def test_bad_bodies_are_typed_errors(
    runtime: Runtime, client: TestClient, body: dict[str, object]
) -> None:
    creator = create_user(runtime)
    response = client.post("/api/v1/payees", json=body, headers=creator.auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


def test_creating_needs_a_signed_in_user(runtime: Runtime, client: TestClient) -> None:
    response = client.post("/api/v1/payees", json={"name": "anon"})
    assert response.status_code == 401


def test_the_payment_pointer_document_is_public_with_cors(
    runtime: Runtime, client: TestClient
) -> None:
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "pointer-demo")
    with transaction(runtime.sessions) as session:
        for origin, verified in [
            ("https://b.example", True),
            ("https://a.example", True),
            ("https://pending.example", False),
        ]:
            session.add(
                SiteVerification(
                    payee_id=payee.id,
                    origin=origin,
                    token="t",
                    created_at=runtime.clock(),
                    verified_at=runtime.clock() if verified else None,
                )
            )
    response = client.get("/p/pointer-demo", headers={"Origin": "https://a.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == {
        "name": "pointer-demo",
        "display_name": "Pointer-Demo",
        "payment_pointer": "https://trickle.test/p/pointer-demo",
        "asset": {"code": "USD", "scale": 9},
        "jwks_url": "https://trickle.test/.well-known/jwks.json",
        "verified_origins": ["https://a.example", "https://b.example"],
    }
    owner_view = client.get("/api/v1/payees", headers=creator.auth).json()["payees"][0]
    assert [(s["origin"], s["verified"]) for s in owner_view["sites"]] == [
        ("https://a.example", True),
        ("https://b.example", True),
        ("https://pending.example", False),
    ]


def test_an_unknown_pointer_is_a_404_a_page_can_read(runtime: Runtime, client: TestClient) -> None:
    response = client.get("/p/nobody-here")
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json()["error"]["code"] == "payee_not_found"


def test_another_creators_payee_is_not_found_for_you(runtime: Runtime) -> None:
    owner, stranger = create_user(runtime), create_user(runtime)
    create_payee(runtime, owner.id, "mine-only")
    with transaction(runtime.sessions) as session:
        assert payees.owned(session, owner.id, "mine-only").name == "mine-only"
        with pytest.raises(PayeeNotFound):
            payees.owned(session, stranger.id, "mine-only")
        with pytest.raises(PayeeNotFound):
            payees.owned(session, owner.id, "no-such-payee")


def test_a_pointer_with_a_trailing_newline_names_no_payee(runtime: Runtime) -> None:
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "alice")
    pointer = f"{runtime.settings.issuer}/p/alice"
    with transaction(runtime.sessions) as session:
        now = runtime.clock()
        assert payees.payee_by_pointer(session, pointer, runtime.settings, now) is not None
        # Python's "$" matches before a final newline: the pointer must match as a whole
        assert payees.payee_by_pointer(session, pointer + "\n", runtime.settings, now) is None
