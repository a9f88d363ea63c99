"""Property-based testing of the whole HTTP API from its own served /openapi.json (schemathesis),
with every check schemathesis has: no 5xx; answers, status codes, content types and headers as
documented; data the schema allows is accepted and data it forbids is refused (so the schema
declares every format and limit the server enforces); 405 with ``Allow``; missing required
headers refused; auth enforced. The examples, coverage and fuzzing phases run per operation;
the stateful phase chains operations (create a payee, then use its name).

Deterministic and bounded: a fixed seed and a small example count, so it stays fast in CI.

Two things outside any schema are set up so the checks measure the API, not the sandbox: every
request carries a fresh session (a fuzzed "log out everywhere" must not blind the cases after
it), and site checks never reach the network (private addresses are allowed, which only
development does, and the fetch fails at once as an unreachable site would: no schema can say
which names resolve to private addresses, ``unsafe_url``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from requests.structures import CaseInsensitiveDict
from schemathesis.engine import Status, events, from_schema
from schemathesis.python.asgi import shutdown_lifespans
from starlette.applications import Starlette

from tests.conftest import PostgresDatabases
from trickle import api, migrate, sessions, siteverify
from trickle.api.openapi import document
from trickle.app import create_app
from trickle.db import transaction
from trickle.errors import SiteVerificationFailed
from trickle.models import User
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings

# A generated request of an operation.
Case = schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]

SEED = 20_251_011
MAX_EXAMPLES = 15
PER_OPERATION_PHASES = ["examples", "coverage", "fuzzing"]


@dataclasses.dataclass(frozen=True)
class Service:
    runtime: Runtime
    app: Starlette
    user_id: int


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'trickle.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        url = databases.create()
        migrate.upgrade(url)
    runtime = bootstrap(
        Settings(
            env="test",
            data_dir=folder / "data",
            database_url=url,
            public_url="https://trickle.test",
            key_encryption_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            allow_private_site_urls=True,
        ).validate()
    )
    with transaction(runtime.sessions) as session:
        user = User(
            email="fuzz@example.test", password_hash="!unusable", created_at=runtime.clock()
        )
        session.add(user)
        session.flush()
        user_id = user.id
    yield Service(runtime, create_app(runtime), user_id)
    shutdown_lifespans()  # schemathesis keeps the app's lifespan (the stream engine) running
    runtime.close()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(origin: str, *, allow_private: bool) -> bytes:
        raise SiteVerificationFailed(f"{origin} did not answer (no network in this test)")

    monkeypatch.setattr(siteverify, "fetch_token_file", unreachable)


def _schema(service: Service, phases: list[str]) -> schemathesis.BaseSchema:
    config = schemathesis.Config(seed=SEED)
    config.projects.override.checks.update(included_check_names=["all"])
    config.projects.override.generation.update(max_examples=MAX_EXAMPLES)
    config.projects.override.phases.update(phases=phases)
    schema = schemathesis.openapi.from_asgi("/openapi.json", service.app, config=config)

    @schema.auth()
    class FreshSession:
        """A new session per case; the operations without auth ignore it."""

        def get(self, case: Case, context: schemathesis.AuthContext) -> str:
            with transaction(service.runtime.sessions) as session:
                now = service.runtime.clock()
                issued = sessions.create(session, service.user_id, now, dt.timedelta(hours=1))
                return issued.token

        def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
            headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
            headers["Authorization"] = f"Bearer {data}"
            case.headers = headers

    return schema


def _failures(schema: schemathesis.BaseSchema) -> list[str]:
    found: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            for case_id, checks in event.recorder.checks.items():
                case = event.recorder.cases[case_id].value
                for check in checks:
                    if check.failure_info is not None:
                        failure = str(check.failure_info.failure).splitlines()[0]
                        found.append(
                            f"{case.method} {case.formatted_path}: {check.name}: "
                            f"{failure}; body {case.body!r}; headers {case.headers!r}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"schemathesis could not run: {event!r}")
    return found


def _operations() -> list[tuple[str, str]]:
    # From the document itself (it needs no database); the served copy is what gets tested.
    paths: dict[str, dict[str, Any]] = document(api.routers())["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


OPERATIONS = _operations()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@pytest.mark.usefixtures("no_network")
def test_every_operation_passes_every_check(service: Service, method: str, path: str) -> None:
    schema = _schema(service, PER_OPERATION_PHASES).include(method=method, path=path)
    failures = _failures(schema)
    assert not failures, "\n".join(failures)


@pytest.mark.usefixtures("no_network")
def test_sequences_of_operations_pass_every_check(service: Service) -> None:
    failures = _failures(_schema(service, ["stateful"]))
    assert not failures, "\n".join(failures)
