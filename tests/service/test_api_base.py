"""The request plumbing every JSON endpoint shares (``trickle.api.base``): what a body may be,
and the typed errors for what it may not, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.factories import create_payee, create_user
from trickle import api
from trickle.jsontext import MAX_DEPTH
from trickle.runtime import Runtime

JSON = {"content-type": "application/json"}
BODY_ENDPOINTS = sorted(
    (endpoint.method, endpoint.path.replace("{name}", "someone"))
    for router in api.routers()
    for endpoint in router.endpoints
    if endpoint.body is not None
)


def _error(response: object) -> tuple[int, str]:
    status = response.status_code  # type: ignore[attr-defined]
    return status, response.json()["error"]["code"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("method", "path"), BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p in BODY_ENDPOINTS]
)
def test_json_nested_past_the_limit_is_malformed_on_every_endpoint(
    client: TestClient, method: str, path: str
) -> None:
    # Issue 11 item 6: 1000 levels were a 500 everywhere, unauthenticated sign-in included.
    for depth in (MAX_DEPTH + 1, 1000, 20_000):
        body = "[" * depth + "]" * depth
        response = client.request(method, path, content=body, headers=JSON)
        assert _error(response) == (400, "malformed_json"), (depth, response.text)
        assert set(response.json()) == {"error"}
        assert "nested deeper than 32" in response.json()["error"]["message"]


def test_json_within_the_limit_reaches_the_schema(client: TestClient) -> None:
    inner = MAX_DEPTH - 1  # the object around it is a level too
    body = '{"email": ' + "[" * inner + "]" * inner + ', "password": "x"}'
    response = client.post("/api/v1/sessions", content=body, headers=JSON)
    assert _error(response) == (422, "validation_failed")


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "ann@example.com", "password": NaN}',
        '{"email": "ann@example.com", "password": "long enough \\ud800 lone surrogate"}',
        '{"email": "ann@example.com", "password": "long enough", "\\udc00": 1}',
    ],
)
def test_json_that_is_not_text_is_malformed(client: TestClient, body: str) -> None:
    # A lone surrogate cannot be encoded: hashing the password failed with a 500.
    response = client.post("/api/v1/accounts", content=body, headers=JSON)
    assert _error(response) == (400, "malformed_json")


def test_a_nul_character_is_the_same_4xx_on_both_databases(
    runtime: Runtime, client: TestClient
) -> None:
    # Issue 11 item 7: every one of these was a 500 on PostgreSQL ("cannot contain NUL").
    reader = create_user(runtime)
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "shop")
    pointer = f"{runtime.settings.issuer}/p/shop"
    payment = {
        "payment_pointer": pointer,
        "origin": "https://shop\x00.example",
        "amount_minor": "5",
        "currency": "USD",
        "order_ref": "o-1",
    }
    key = {"Idempotency-Key": "nul-key-0001"}
    answers = {
        "sign-in email": client.post(
            "/api/v1/sessions", json={"email": "ann\x00@example.com", "password": "x" * 10}
        ),
        "sign-up email": client.post(
            "/api/v1/accounts", json={"email": "ann@exa\x00mple.com", "password": "x" * 10}
        ),
        "payee pointer path": client.get("/p/%00"),
        "payee in a path": client.post(
            "/api/v1/payees/%00/sites", json={"origin": "https://a.example"}, headers=creator.auth
        ),
        "a claim's payee": client.post(
            "/api/v1/claims", json={"payee": "sh\x00p"}, headers={**creator.auth, **key}
        ),
        "a payment's origin": client.post(
            "/api/v1/payments", json=payment, headers={**reader.auth, **key}
        ),
        "a payment's pointer": client.post(
            "/api/v1/payments",
            json={**payment, "origin": "https://shop.example", "payment_pointer": pointer + "\x00"},
            headers={**reader.auth, **key},
        ),
        "a display name": client.post(
            "/api/v1/payees",
            json={"name": "nul-name", "display_name": "a\x00b"},
            headers=creator.auth,
        ),
    }
    wrong = {
        what: (response.status_code, response.text)
        for what, response in answers.items()
        if response.status_code != 404 and _error(response) != (422, "validation_failed")
    }
    assert wrong == {}
    assert answers["payee pointer path"].status_code == 422
    assert answers["payee pointer path"].headers["access-control-allow-origin"] == "*"
    assert answers["a payment's pointer"].status_code == 404  # no payee has that pointer
