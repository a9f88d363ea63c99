"""/openapi.json: generated from the routers, listing exactly the app's HTTP routes, and a valid
OpenAPI 3.1 document (checked against the OpenAPI schema, then loaded by schemathesis)."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from schemathesis.core.result import Ok
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.conftest import REPO
from trickle import accounts, api, money, payees
from trickle.api.base import ApiRouter, Context, Empty
from trickle.api.openapi import PUBLIC_OPERATIONS, document, openapi_path
from trickle.origins import ORIGIN_PATTERN
from trickle.requests import IDEMPOTENCY_KEY_PATTERN
from trickle.settings import Settings
from trickle.text import TEXT_PATTERN

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document(api.routers())


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/")
    schema: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def test_served_document_lists_exactly_the_apps_http_routes(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    served = response.json()
    in_app = {
        (method, openapi_path(route.path))
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert set(operations(served)) == in_app, (
        "a route outside the ApiRouters needs an entry in trickle.api.openapi.PUBLIC_OPERATIONS"
    )


def test_api_paths_are_exactly_the_router_endpoints(doc: dict[str, Any]) -> None:
    declared = {
        (endpoint.method, openapi_path(endpoint.path))
        for router in api.routers()
        for endpoint in router.endpoints
    }
    api_operations = {key for key in operations(doc) if key[1] not in PUBLIC_OPERATIONS}
    assert api_operations == declared


def test_the_document_is_valid_openapi_3_1_and_schemathesis_loads_it(doc: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    results = list(schema.get_all_operations())
    loaded = {(r.ok().method.upper(), r.ok().path) for r in results if isinstance(r, Ok)}
    assert len(loaded) == len(results)  # none failed to load
    assert loaded == set(operations(doc))

    broken = copy.deepcopy(doc)
    broken["paths"]["/healthz"]["get"]["responses"] = "nothing"
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def test_every_reference_resolves_and_bodies_refuse_unknown_fields(doc: dict[str, Any]) -> None:
    for (method, path), operation in operations(doc).items():
        body = operation.get("requestBody")
        if body is not None:
            schema = resolve(doc, body["content"]["application/json"]["schema"]["$ref"])
            assert schema["additionalProperties"] is False, (method, path)
        for status, response in operation["responses"].items():
            for content in response.get("content", {}).values():
                ref = content["schema"].get("$ref")
                if ref is not None:
                    resolve(doc, ref)
            if status not in ("200", "201", "204"):
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (method, path, status)


def test_auth_is_declared_per_endpoint(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "a session token",
    }
    for router in api.routers():
        for endpoint in router.endpoints:
            operation = ops[(endpoint.method, openapi_path(endpoint.path))]
            if endpoint.auth:
                assert operation["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
                assert "401" in operation["responses"]
            else:
                assert operation["security"] == []
    assert ops[("POST", "/api/v1/accounts")]["security"] == []
    assert "201" in ops[("POST", "/api/v1/accounts")]["responses"]


def test_idempotent_endpoints_require_the_idempotency_key_header(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    idempotent = [e for router in api.routers() for e in router.endpoints if e.idempotent]
    assert idempotent, "the funding router has at least one idempotent endpoint"
    for endpoint in idempotent:
        parameters = ops[(endpoint.method, openapi_path(endpoint.path))]["parameters"]
        (header,) = [p for p in parameters if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header" and header["required"] is True
        assert "422" in ops[(endpoint.method, openapi_path(endpoint.path))]["responses"]
    plain = ops[("PUT", "/api/v1/me/settings")]
    assert all(p["name"] != "Idempotency-Key" for p in plain.get("parameters", []))


def test_money_is_a_decimal_string_in_the_schemas(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["SettingsOut"]["properties"]["rate_per_hour_minor"] == {
        "pattern": money.decimal_pattern(money.MAX_AMOUNT),
        "title": "Rate Per Hour Minor",
        "type": "string",
    }
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if field.endswith("_minor"):
                variants = prop.get("anyOf", [prop])
                assert all(v["type"] in ("string", "null") for v in variants), (name, field)


def test_path_parameters_are_declared() -> None:
    router = ApiRouter(tag="demo")

    @router.get("/api/v1/things/{thing_id:int}/{name}")
    def get_thing(_ctx: Context, _body: None) -> Empty:
        """A thing."""
        return Empty()

    paths = document([router])["paths"]
    operation = paths["/api/v1/things/{thing_id}/{name}"]["get"]
    assert operation["parameters"] == [
        {
            "name": "thing_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        },
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    ]
    assert operation["summary"] == "A thing."
    schemathesis.openapi.from_dict(document([router])).validate()


def test_every_endpoint_is_documented_in_api_md() -> None:
    text = (REPO / "docs/api.md").read_text()
    documented = set(re.findall(r"^#+ `([A-Z]+ /[^`]*)`", text, flags=re.MULTILINE))
    documented |= set(re.findall(r"^- `([A-Z]+ /[^`]*)`", text, flags=re.MULTILINE))
    in_code = {
        f"{endpoint.method} {openapi_path(endpoint.path)}"
        for router in api.routers()
        for endpoint in router.endpoints
    } | {
        f"{method.upper()} {path}"
        for path, item in PUBLIC_OPERATIONS.items()
        for method in item
        if method in METHODS
    }
    assert documented == in_code


# --- formats and limits (issue 11, item 13): declared exactly as the server checks them -------


def _property(doc: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    prop: dict[str, Any] = doc["components"]["schemas"][model]["properties"][field]
    variants: list[dict[str, Any]] = [
        v for v in prop.get("anyOf", [prop]) if v.get("type") != "null"
    ]
    assert len(variants) == 1, (model, field)
    return variants[0]


@pytest.mark.parametrize(
    ("model", "field", "pattern"),
    [
        ("PaymentIn", "origin", ORIGIN_PATTERN),
        ("SiteIn", "origin", ORIGIN_PATTERN),
        ("SiteOverrideIn", "origin", ORIGIN_PATTERN),
        ("SiteOverrideDeleteIn", "origin", ORIGIN_PATTERN),
        ("SignUpIn", "email", accounts.EMAIL_PATTERN),
        ("LogInIn", "email", accounts.EMAIL_PATTERN),
        ("PayeeIn", "name", payees.NAME_PATTERN.pattern),
        ("ClaimIn", "payee", payees.NAME_PATTERN.pattern),
        ("PayeeIn", "display_name", TEXT_PATTERN),
        ("PaymentIn", "description", TEXT_PATTERN),
        ("PaymentIn", "amount_minor", money.decimal_pattern(money.MAX_AMOUNT, positive=True)),
        ("ClaimIn", "amount_minor", money.decimal_pattern(money.MAX_AMOUNT, positive=True)),
    ],
)
def test_the_formats_the_server_checks_are_declared(
    doc: dict[str, Any], model: str, field: str, pattern: str
) -> None:
    assert _property(doc, model, field)["pattern"] == pattern


def test_path_and_header_formats_are_declared(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    for key in [("GET", "/p/{name}"), ("POST", "/api/v1/payees/{name}/sites")]:
        (name,) = [p for p in ops[key]["parameters"] if p["name"] == "name"]
        assert name["schema"]["pattern"] == payees.NAME_PATTERN.pattern
    (header,) = [
        p for p in ops[("POST", "/api/v1/payments")]["parameters"] if p["name"] == "Idempotency-Key"
    ]
    assert header["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN.pattern


def test_the_served_document_declares_the_limits_of_the_settings(client: TestClient) -> None:
    served = client.get("/openapi.json").json()
    settings: Settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    rate = money.decimal_pattern(accounts.max_rate_per_hour_minor(settings))
    budget = money.decimal_pattern(accounts.max_monthly_budget_minor(settings))
    assert _property(served, "SettingsIn", "rate_per_hour_minor")["pattern"] == rate
    assert _property(served, "SiteOverrideIn", "rate_per_hour_minor")["pattern"] == rate
    assert _property(served, "SettingsIn", "monthly_budget_minor")["pattern"] == budget
    assert _property(served, "PaymentIn", "currency")["enum"] == [settings.currency]
    assert "x-trickle-settings-limit" not in client.get("/openapi.json").text


def _patterns(node: Any) -> list[str]:
    found: list[str] = []
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if isinstance(item.get("pattern"), str):
                found.append(item["pattern"])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def test_every_pattern_reads_the_same_in_json_schema_and_python(client: TestClient) -> None:
    # A pattern JSON Schema's validators cannot compile is silently not checked by fuzzers.
    for pattern in set(_patterns(client.get("/openapi.json").json())):
        re.compile(pattern)
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        assert "(?P<" not in pattern and "(?=" not in pattern and "(?!" not in pattern
