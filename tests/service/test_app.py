from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from trickle.app import create_app
from trickle.runtime import Runtime


def test_jwks_publishes_the_active_key_as_an_okp_jwk(client: TestClient, runtime: Runtime) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert "max-age=300" in response.headers["cache-control"]
    assert response.headers["access-control-allow-origin"] == "*"
    (jwk,) = response.json()["keys"]
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": runtime.key_ring.current.active.kid,
        "alg": "EdDSA",
        "use": "sig",
    }
    assert "d" not in jwk  # never the private part


def test_unknown_path_is_a_typed_json_error(client: TestClient) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such path"}}


def test_wrong_method_is_a_typed_json_error(client: TestClient) -> None:
    response = client.post("/.well-known/jwks.json", content=b"{}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/.well-known/jwks.json", {"GET", "HEAD"}),
        ("PATCH", "/api/v1/payments", {"GET", "HEAD", "POST"}),
        ("PUT", "/api/v1/sessions", {"POST", "DELETE"}),
        ("OPTIONS", "/p/someone", {"GET", "HEAD"}),
        ("DELETE", "/dashboard/earnings", {"GET", "HEAD"}),
    ],
)
def test_a_405_says_which_methods_the_path_takes(
    client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    # Issue 11 item 13: the Allow header (RFC 9110) was dropped with the JSON error body.
    response = client.request(method, path)
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == allowed


def test_an_unexpected_exception_is_a_500_without_traceback(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(_request: Request) -> Response:
        raise RuntimeError("secret internal detail")

    app = create_app(runtime)
    app.router.routes.append(Route("/boom", boom))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert "secret internal detail" in caplog.text  # the operator still learns what happened
