"""``trickle_verifier.asgi``: the Starlette receipt endpoint over HTTP, with signed receipts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient

from tests.verifier.signing import make_site, receipt
from trickle_verifier import MemorySiteStore, SiteReceipts, Verifier
from trickle_verifier.asgi import receipts_route


@pytest.fixture
def site(make_verifier: Callable[..., Verifier]) -> SiteReceipts:
    return make_site(make_verifier, MemorySiteStore())


def visitor_of(request: Request) -> str | None:
    return request.cookies.get("visitor")


async def async_visitor_of(request: Request) -> str | None:
    return request.cookies.get("visitor")


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, site: SiteReceipts) -> Iterator[TestClient]:
    reader = visitor_of if request.param == "sync" else async_visitor_of
    app = Starlette(
        routes=[receipts_route("/trickle/receipts", site, session_id=reader, max_body_bytes=20_000)]
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def token(generator: ModuleType, sid: str, tot: int, bnd: str | None) -> str:
    return receipt(generator, sid, 1, tot, bnd=bnd)


def test_forwarded_receipts_credit_the_cookie_session(
    client: TestClient, site: SiteReceipts, generator: ModuleType
) -> None:
    mine = token(generator, "A1", 700, site.binding_for("v-1"))
    theirs = token(generator, "A2", 900, site.binding_for("v-2"))
    client.cookies.set("visitor", "v-1")
    response = client.post("/trickle/receipts", json={"receipts": [mine, theirs, mine, "x.y.z"]})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert [r["code"] for r in body["results"]] == ["ok", "binding_mismatch", "ok", "malformed_jws"]
    assert body["results"][0] == {"code": "ok", "credited": "700"}
    assert body["results"][2] == {"code": "ok", "credited": "0"}
    assert body["paid"] == {"total": "700", "currency": "USD", "scale": 9}
    assert site.has_paid("v-1", 700) and not site.has_paid("v-2", 1)


@pytest.mark.parametrize(
    ("method", "headers", "content", "cookie", "status", "code"),
    [
        ("GET", {}, b"", "v-1", 405, "method_not_allowed"),
        ("POST", {"content-type": "text/plain"}, b'{"receipts":[]}', "v-1", 415, None),
        ("POST", {"content-type": "application/json"}, b'{"receipts":[]}', None, 401, None),
        ("POST", {"content-type": "application/json"}, b"{" * 20_001, "v-1", 413, None),
        ("POST", {"content-type": "application/json"}, b"{nope", "v-1", 400, None),
        ("POST", {"content-type": "application/json"}, b'{"receipts":{}}', "v-1", 422, None),
    ],
)
def test_refusals_are_typed_json(
    client: TestClient,
    method: str,
    headers: dict[str, str],
    content: bytes,
    cookie: str | None,
    status: int,
    code: str | None,
) -> None:
    if cookie is not None:
        client.cookies.set("visitor", cookie)
    response = client.request(method, "/trickle/receipts", headers=headers, content=content)
    assert response.status_code == status
    error: dict[str, Any] = response.json()["error"]
    expected = {
        405: "method_not_allowed",
        415: "unsupported_media_type",
        401: "unauthenticated",
        413: "body_too_large",
        400: "malformed_json",
        422: "validation_failed",
    }[status]
    assert error["code"] == (code or expected) and error["message"]


def test_streamed_body_over_the_limit(client: TestClient) -> None:
    client.cookies.set("visitor", "v-1")

    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b" " * 1000

    response = client.post(
        "/trickle/receipts", headers={"content-type": "application/json"}, content=chunks()
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_empty_batch_reports_paid(
    client: TestClient, site: SiteReceipts, generator: ModuleType
) -> None:
    client.cookies.set("visitor", "v-9")
    site.forward("v-9", [token(generator, "E1", 33, site.binding_for("v-9"))])
    response = client.post(
        "/trickle/receipts",
        content=json.dumps({"receipts": []}).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.json() == {
        "results": [],
        "paid": {"total": "33", "currency": "USD", "scale": 9},
    }
