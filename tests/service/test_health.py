"""/healthz (the process answers) and /readyz (database, signing key, migrations, not stopping),
on SQLite and PostgreSQL, each failure made real: an unreachable database, a database one
migration behind, a key ring whose reloads stopped, a process that is draining."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from trickle import health, migrate
from trickle.runtime import Runtime


def test_healthz_answers_while_the_process_is_up(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_every_check(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "signing_key": "ok", "stopping": "ok"},
    }


def test_readyz_is_not_ready_when_the_database_is_unreachable(
    client: TestClient, runtime: Runtime, tmp_path: object
) -> None:
    reachable = runtime.engine
    runtime.engine = create_engine("sqlite:////nonexistent-folder-i14/trickle.db")
    try:
        response = client.get("/readyz")
    finally:
        runtime.engine.dispose()
        runtime.engine = reachable
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert "database: unreachable: OperationalError" in error["message"]
    assert client.get("/readyz").status_code == 200  # and back once it answers


def test_readyz_is_not_ready_when_the_database_is_a_migration_behind(
    client: TestClient, runtime: Runtime, settings: object
) -> None:
    url = runtime.engine.url.render_as_string(hide_password=False)
    head = migrate.head_revision()
    migrate.downgrade(url, "-1")
    try:
        response = client.get("/readyz")
    finally:
        migrate.upgrade(url)
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "migrations: database at " in message
    assert f"code at {head}" in message
    assert client.get("/readyz").status_code == 200


def test_readyz_stays_ready_on_a_database_a_newer_release_migrated(
    client: TestClient, runtime: Runtime
) -> None:
    """A rolling upgrade: another node's newer code migrated the database past this code's head
    (an additive migration); this node keeps serving until its own upgrade."""
    with runtime.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    try:
        response = client.get("/readyz")
    finally:
        with runtime.engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :head"),
                {"head": migrate.head_revision()},
            )
    assert response.status_code == 200, response.text
    assert health.migrations_check("9999_from_the_future", "0011").ok
    assert not health.migrations_check(None, "0011").ok


def test_readyz_is_not_ready_when_key_reloads_stopped(client: TestClient, runtime: Runtime) -> None:
    loaded_at = runtime.key_ring.current.loaded_at
    runtime.clock = lambda: loaded_at + dt.timedelta(seconds=2 * 30 + 31)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "signing_key: key ring last loaded 91 s ago" in response.json()["error"]["message"]


def test_readyz_is_not_ready_while_the_process_drains(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    engine.states.draining = True
    try:
        response = client.get("/readyz")
    finally:
        engine.states.draining = False
    assert response.status_code == 503
    assert "stopping: draining" in response.json()["error"]["message"]
