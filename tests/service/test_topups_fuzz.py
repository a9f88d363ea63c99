"""The card top-up operations fuzzed from /openapi.json (schemathesis) with Stripe configured —
the stand-in answering — so the full path runs, Stripe call included: no request gets a 5xx (the
stand-in always answers, so not even ``stripe_unavailable``), and every answer matches the
document. test_api_fuzz.py fuzzes them without Stripe settings. SQLite only, as there."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.applications import Starlette

from tests.service.stripe_standin import StripeStandIn
from tests.service.test_api_fuzz import fresh_token
from trickle.app import create_app
from trickle.db import transaction
from trickle.models import User
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings

OPERATIONS = [
    ("GET", "/api/v1/topups/options"),
    ("POST", "/api/v1/topups"),
    ("GET", "/api/v1/topups"),
    ("GET", "/api/v1/topups/{topup_id}"),
    ("POST", "/api/v1/stripe/webhook"),
    ("GET", "/topups/return"),
]


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandIn]:
    running = StripeStandIn().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def card_fuzz_runtime(
    tmp_path_factory: pytest.TempPathFactory, standin: StripeStandIn
) -> Iterator[Runtime]:
    folder: Path = tmp_path_factory.mktemp("fuzz-cards")
    runtime = bootstrap(
        Settings(
            env="test",
            data_dir=folder / "data",
            database_url=f"sqlite:///{folder / 'trickle.db'}",
            public_url="https://trickle.test",
            key_encryption_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            stripe_secret_key=standin.secret_key,
            stripe_webhook_secret=standin.webhook_secret,
            stripe_api_base=standin.base,
        ).validate()
    )
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def card_fuzz_app(card_fuzz_runtime: Runtime) -> Iterator[Starlette]:
    app = create_app(card_fuzz_runtime)
    yield app
    shutdown_lifespans()


@pytest.fixture(scope="module")
def card_fuzz_user(card_fuzz_runtime: Runtime) -> int:
    with transaction(card_fuzz_runtime.sessions) as session:
        user = User(
            email="card-fuzz@example.test",
            password_hash="!unusable",
            created_at=card_fuzz_runtime.clock(),
        )
        session.add(user)
        session.flush()
        return user.id


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_card_topup_requests_never_get_a_server_error(
    card_fuzz_app: Starlette,
    card_fuzz_runtime: Runtime,
    card_fuzz_user: int,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = schemathesis.openapi.from_asgi("/openapi.json", card_fuzz_app)[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(case: schemathesis.Case) -> None:
        token = fresh_token(card_fuzz_runtime, card_fuzz_user)
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error, response_schema_conformance],
        )

    fuzz()
