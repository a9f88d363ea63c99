"""The card top-up operations through test_api_fuzz.py's checks (every check schemathesis has)
with Stripe configured — the stand-in answering — so that the whole path runs, the call to
Stripe included; test_api_fuzz.py runs them without Stripe settings. SQLite only: the point is
the request handling, which the database does not change."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis.python.asgi import shutdown_lifespans

from tests.service.stripe_standin import StripeStandIn
from tests.service.test_api_fuzz import PER_OPERATION_PHASES, Case, Service, _failures, _schema
from trickle.api import topups
from trickle.app import create_app
from trickle.db import transaction
from trickle.models import User
from trickle.runtime import bootstrap
from trickle.settings import Settings

OPERATIONS = sorted(
    [(e.method, e.path.replace(":int", "")) for e in topups.router.endpoints]
    + [(m.upper(), path) for path, item in topups.PUBLIC_OPERATIONS.items() for m in item]
)


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandIn]:
    running = StripeStandIn().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def card_service(
    tmp_path_factory: pytest.TempPathFactory, standin: StripeStandIn
) -> Iterator[Service]:
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
    with transaction(runtime.sessions) as session:
        user = User(
            email="card-fuzz@example.test", password_hash="!unusable", created_at=runtime.clock()
        )
        session.add(user)
        session.flush()
        user_id = user.id
    yield Service(runtime, create_app(runtime), user_id)
    shutdown_lifespans()
    runtime.close()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_card_topup_operations_pass_every_check_with_stripe(
    card_service: Service, standin: StripeStandIn, method: str, path: str
) -> None:
    schema = _schema(card_service, PER_OPERATION_PHASES)

    @schema.hook("filter_failure")
    def not_a_reused_key(
        _ctx: schemathesis.HookContext,
        _failure: object,
        _case: Case,
        response: schemathesis.Response,
    ) -> bool:
        # A top-up that succeeds stores its Idempotency-Key; schemathesis may send that key
        # again with another body, which is (rightly) idempotency_key_reused, not a fault.
        if response.status_code != 422:
            return True
        error = response.json().get("error", {})
        return bool(error.get("code") != "idempotency_key_reused")

    failures = _failures(schema.include(method=method, path=path))
    assert not failures, "\n".join(failures)
    if (method, path) == ("POST", "/api/v1/topups"):  # valid amounts reached Stripe (stand-in)
        assert standin.calls("POST", "/v1/checkout/sessions")
