"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``TRICKLE_TEST_POSTGRES_URL`` (default: the local server at 127.0.0.1:5432).
Each test session creates its own database on it and drops it at the end. When the server is
unreachable the PostgreSQL tests skip locally, and FAIL in CI (``CI`` set): CI must run them.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from tests.prerequisites import unavailable
from trickle import ledger, migrate
from trickle.app import create_app
from trickle.db import transaction
from trickle.runtime import Runtime, bootstrap
from trickle.settings import Settings

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "TRICKLE_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        unavailable("PostgreSQL", f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_URL


class PostgresDatabases:
    """Creates throw-away databases on the test server, and drops them at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self) -> str:
        name = f"trickle_test_{os.getpid()}_{secrets.token_hex(4)}"
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_databases(postgres_admin_url: str) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_admin_url)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_databases: PostgresDatabases) -> str:
    url = postgres_databases.create()
    migrate.upgrade(url)
    return url


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    """A fresh migrated PostgreSQL database of this test's own (the multi-node tests: several
    service processes on one PostgreSQL)."""
    url = postgres_databases.create()
    migrate.upgrade(url)
    return url


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = [t for t in inspect(connection).get_table_names() if t != "alembic_version"]
        if tables:
            quoted = ", ".join(f'"{t}"' for t in tables)
            connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'trickle.db'}"
        migrate.upgrade(url)
        yield url
        return
    url = request.getfixturevalue("migrated_postgres_url")
    _truncate_all(url)
    yield url
    _truncate_all(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables at all (for migration tests)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.create()


@pytest.fixture
def kek_b64() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, kek_b64: str) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="https://trickle.test",
        key_encryption_key=kek_b64,
    ).validate()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A bootstrapped service runtime. After the test, every ledger invariant must still hold."""
    rt = bootstrap(settings)
    yield rt
    try:
        with transaction(rt.sessions) as session:
            violations = ledger.check(session)
        assert violations == [], "ledger invariants broken:\n" + "\n".join(map(str, violations))
    finally:
        rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The app over the runtime, driven in-process (lifespan included)."""
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client
