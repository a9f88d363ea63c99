"""Property-based fuzzing of the whole HTTP API from its own /openapi.json (schemathesis): whatever
a client sends, the service never answers with a 5xx, and its answers match the document.

SQLite only: the goal is the request plumbing and validation, which do not depend on the database.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.applications import Starlette

from trickle import api, sessions
from trickle.api.openapi import document
from trickle.app import create_app
from trickle.db import transaction
from trickle.models import User
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings


@pytest.fixture(scope="module")
def fuzz_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    runtime = bootstrap(
        Settings(
            env="test",
            data_dir=folder / "data",
            database_url=f"sqlite:///{folder / 'trickle.db'}",
            public_url="https://trickle.test",
            key_encryption_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        ).validate()
    )
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_runtime: Runtime) -> Iterator[Starlette]:
    app = create_app(fuzz_runtime)
    yield app
    shutdown_lifespans()  # schemathesis keeps the app's lifespan (the stream engine) running


@pytest.fixture(scope="module")
def fuzz_user_id(fuzz_runtime: Runtime) -> int:
    with transaction(fuzz_runtime.sessions) as session:
        user = User(
            email="fuzz@example.test", password_hash="!unusable", created_at=fuzz_runtime.clock()
        )
        session.add(user)
        session.flush()
        return user.id


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Starlette) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def fresh_token(runtime: Runtime, user_id: int) -> str:
    """A new session per case: a fuzzed 'log out everywhere' must not blind the cases after it."""
    with transaction(runtime.sessions) as session:
        return sessions.create(session, user_id, runtime.clock(), dt.timedelta(hours=1)).token


def _can_be_violated(operation: dict[str, Any]) -> bool:
    """Whether negative cases exist: a body, or a parameter more constrained than any string."""
    parameters = operation.get("parameters", [])
    return "requestBody" in operation or any(p["schema"] != {"type": "string"} for p in parameters)


def _cases() -> list[tuple[str, str, GenerationMode]]:
    # Parametrized from the document itself (it needs no database); the served copy is fuzzed.
    cases = []
    for path, item in document(api.routers())["paths"].items():
        for method, operation in item.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if _can_be_violated(operation):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return sorted(cases)


CASES = _cases()


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_no_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema,
    fuzz_runtime: Runtime,
    fuzz_user_id: int,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        token = fresh_token(fuzz_runtime, fuzz_user_id)
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error, response_schema_conformance],
        )

    fuzz()
