"""``GET /openapi.json``: an OpenAPI 3.1 document generated from the ``ApiRouter`` declarations
(paths, bodies, responses, auth, idempotency keys), plus the few public routes listed by hand."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import trickle
from trickle import accounts, api, cards, money
from trickle.api import tokens, topups
from trickle.api.base import (
    MAX_BODY_BYTES,
    SETTINGS_LIMIT_KEY,
    ApiRouter,
    Endpoint,
    SettingsLimit,
)
from trickle.errors import (
    BodyTooLarge,
    CsrfFailed,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    MalformedJSON,
    TrickleError,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from trickle.requests import IDEMPOTENCY_KEY_PATTERN, SAFE_METHODS, SESSION_COOKIE, runtime_of
from trickle.settings import Settings

REF = "#/components/schemas/{model}"
_PATH_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_CONVERTOR_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number"},
}

DESCRIPTION = f"""\
The Trickle service's JSON API. Sign-in gives a bearer token (`Authorization: Bearer <token>`,
for the extension) or an HttpOnly `{SESSION_COOKIE}` cookie (for the dashboard; every change
made by cookie needs the `X-CSRF-Token` header). Money is a decimal string of integer minor
units, with its `currency` and asset `scale`; never a JSON number. Money-moving requests need an
`Idempotency-Key` header. Every error is `{{"error": {{"code", "message"}}}}`; the codes are listed
in docs/errors.md. The stream socket (`/api/v1/stream`, a WebSocket) is described in the docs,
not here. Bodies are at most {MAX_BODY_BYTES} bytes."""

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error. Switch on `code` (stable, snake_case); `message` is for "
    "people and may change.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                "message": {"type": "string"},
            },
        }
    },
}

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "a session token"},
    "cookieAuth": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "the dashboard's session cookie; changes also need X-CSRF-Token",
    },
}

_ERROR_JSON = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}

# Routes outside the ApiRouters, described by hand (a test checks the app has no others).
PUBLIC_OPERATIONS: dict[str, dict[str, Any]] = {
    "/.well-known/jwks.json": {
        "get": {
            "operationId": "jwks",
            "summary": "The public keys that verify receipts (a JWK Set, RFC 7517).",
            "tags": ["receipts"],
            "security": [],
            "responses": {
                "200": {
                    "description": "the JWK Set: every key a live receipt may be signed with",
                    "content": {
                        "application/jwk-set+json": {
                            "schema": {
                                "type": "object",
                                "required": ["keys"],
                                "properties": {"keys": {"type": "array", "items": {}}},
                            }
                        }
                    },
                }
            },
        }
    },
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "Liveness: the process answers.",
            "tags": ["service"],
            "security": [],
            "responses": {
                "200": {
                    "description": "the process is up",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"const": "ok"}},
                            }
                        }
                    },
                }
            },
        }
    },
    "/readyz": {
        "get": {
            "operationId": "ready",
            "summary": "Readiness: the database answers, a signing key is loaded, the migrations "
            "are current, the process is not stopping.",
            "tags": ["service"],
            "security": [],
            "responses": {
                "200": {
                    "description": "ready for traffic",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "checks"],
                                "properties": {
                                    "status": {"const": "ready"},
                                    "checks": {
                                        "type": "object",
                                        "additionalProperties": {"const": "ok"},
                                    },
                                },
                            }
                        }
                    },
                },
                "503": {
                    "description": "not_ready: the message names the checks that failed",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics, for Authorization: Bearer <TRICKLE_METRICS_TOKEN> "
            "(without that setting: not_found).",
            "tags": ["service"],
            "security": [],
            "responses": {
                "200": {
                    "description": "the Prometheus text format (docs/deploy.md lists the metrics)",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": {
                    "description": "unauthenticated: no or a wrong bearer token",
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="Error")}}
                    },
                },
                "404": {
                    "description": "not_found: no TRICKLE_METRICS_TOKEN is set",
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="Error")}}
                    },
                },
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "tags": ["service"],
            "security": [],
            "responses": {
                "200": {
                    "description": "the OpenAPI 3.1 document of the API",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
    **topups.PUBLIC_OPERATIONS,
    **tokens.PUBLIC_OPERATIONS,
}


def openapi_path(path: str) -> str:
    """A Starlette path (``/p/{name:str}``) as an OpenAPI path (``/p/{name}``)."""
    return _PATH_PARAMETER.sub(lambda m: "{" + m.group(1) + "}", path)


def document(routers: Sequence[ApiRouter], settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the endpoints of ``routers`` and the public routes. With
    ``settings`` (the served document), the limits that depend on them are declared too: the
    currency, the caps on a reader's rate and budget."""
    endpoints = [endpoint for router in routers for endpoint in router.endpoints]
    refs, schemas = _component_schemas(endpoints)
    _declare_settings_limits(schemas, settings)
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for endpoint in endpoints:
        operation = _operation(endpoint, refs, operation_ids)
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = operation
    for path, operations in PUBLIC_OPERATIONS.items():
        paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Trickle", "version": trickle.__version__, "description": DESCRIPTION},
        "tags": [{"name": tag} for tag in dict.fromkeys(router.tag for router in routers)],
        "paths": paths,
        "components": {
            "schemas": {**schemas, "Error": ERROR_SCHEMA},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document(api.routers(), runtime_of(request).settings))


def _settings_limits(settings: Settings) -> dict[SettingsLimit, dict[str, Any]]:
    rate = accounts.max_rate_per_hour_minor(settings)
    budget = accounts.max_monthly_budget_minor(settings)
    limits: dict[SettingsLimit, dict[str, Any]] = {
        "max_rate_per_hour_minor": {"pattern": money.decimal_pattern(rate)},
        "max_monthly_budget_minor": {"pattern": money.decimal_pattern(budget)},
        "currency": {"enum": [settings.currency]},
    }
    card = cards.config_of(settings)
    if card is not None:  # without Stripe settings every top-up is card_topups_unavailable
        limits["card_topup_amount_minor"] = {"pattern": card.amount_pattern()}
    return limits


def _declare_settings_limits(schemas: dict[str, Any], settings: Settings | None) -> None:
    """Replace each field's settings-limit mark with the limit (without settings: drop it)."""
    limits = _settings_limits(settings) if settings is not None else {}
    pending: list[Any] = list(schemas.values())
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            name = node.pop(SETTINGS_LIMIT_KEY, None)
            if name in limits:
                node.update(limits[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


_RefKey = tuple[type[Any], JsonSchemaMode]


def _component_schemas(
    endpoints: Sequence[Endpoint],
) -> tuple[dict[_RefKey, dict[str, Any]], dict[str, Any]]:
    """One JSON Schema per model, named once; a model used both ways gets -Input/-Output."""
    keys: dict[_RefKey, None] = {}
    for endpoint in endpoints:
        if endpoint.body is not None:
            keys[(endpoint.body, "validation")] = None
        if endpoint.response is not None:
            keys[(endpoint.response, "serialization")] = None
    refs, top = models_json_schema(list(keys), ref_template=REF)
    by_key: dict[_RefKey, dict[str, Any]] = {key: schema for key, schema in refs.items()}
    return by_key, dict(top.get("$defs", {}))


def _error_response(codes: Sequence[type[TrickleError]]) -> dict[str, Any]:
    names = ", ".join(f"`{code.code}`" for code in codes)
    return {
        "description": f"error: {names}",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


def _operation(
    endpoint: Endpoint, refs: dict[_RefKey, dict[str, Any]], operation_ids: set[str]
) -> dict[str, Any]:
    operation_id = endpoint.handler.__name__
    if operation_id in operation_ids:
        operation_id = f"{endpoint.tag}_{operation_id}"
    operation_ids.add(operation_id)
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}] if endpoint.auth else [],
    }
    parameters = _parameters(endpoint)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(endpoint.body, "validation")]}},
        }
    success: dict[str, Any] = {"description": endpoint.summary or "success"}
    if endpoint.response is not None:
        schema = refs[(endpoint.response, "serialization")]
        success["content"] = {"application/json": {"schema": schema}}
    responses: dict[str, Any] = {str(endpoint.status): success}
    for status, codes in sorted(_possible_errors(endpoint).items()):
        responses[str(status)] = _error_response(codes)
    responses["default"] = {
        "description": "any other error in docs/errors.md (e.g. the rule this endpoint checks)",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }
    operation["responses"] = responses
    return operation


def _possible_errors(endpoint: Endpoint) -> dict[int, list[type[TrickleError]]]:
    """The errors the plumbing in ``api.base`` may raise for this kind of endpoint."""
    errors: list[type[TrickleError]] = []
    if endpoint.body is not None:
        errors += [MalformedJSON, BodyTooLarge, UnsupportedMediaType, ValidationFailed]
    if endpoint.auth:
        errors.append(Unauthenticated)
        if endpoint.method not in SAFE_METHODS:
            errors.append(CsrfFailed)
    if endpoint.idempotent:
        errors += [IdempotencyKeyRequired, IdempotencyKeyReused]
    by_status: dict[int, list[type[TrickleError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return by_status


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": match.group(1),
            "in": "path",
            "required": True,
            "schema": _path_parameter_schema(endpoint, match.group(1), match.group(2)),
        }
        for match in _PATH_PARAMETER.finditer(endpoint.path)
    ]
    if endpoint.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "the client's id for this money movement: a retry with the same "
                "key and body replays the first response (`Idempotent-Replayed: true`)",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN.pattern},
            }
        )
    if endpoint.auth and endpoint.method not in SAFE_METHODS:
        parameters.append(
            {
                "name": "X-CSRF-Token",
                "in": "header",
                "required": False,
                "description": "with cookie auth: the csrf_token from log-in (bearer: not needed)",
                "schema": {"type": "string"},
            }
        )
    return parameters


def _path_parameter_schema(endpoint: Endpoint, name: str, convertor: str | None) -> dict[str, Any]:
    declared = endpoint.path_types.get(name)
    if declared is not None:
        schema: dict[str, Any] = TypeAdapter(declared).json_schema()
        return schema
    return _CONVERTOR_TYPES.get(convertor or "", {"type": "string"})
