"""Schema migrations, run from the service (on start, or `trickle db ...`) through Alembic.

Several processes may migrate one database at the same moment (``trickle serve`` on a fresh
database, started twice): the migrations run one process at a time, under a database lock, and
the later ones find the schema at head and do nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from trickle.db import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock every migration takes (a constant of this application's own:
# "trickle migrations" in ASCII, trimmed to 63 bits).
MIGRATION_LOCK_ID = 0x747269636B6C65


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@contextlib.contextmanager
def _locked(database_url: str) -> Iterator[Config]:
    """An Alembic config that migrates over one connection holding the migration lock.

    PostgreSQL: a session advisory lock, taken and committed before Alembic begins its own
    transaction and released after it committed, so a waiting process reads the new version.
    SQLite: an exclusive ``flock`` on a lock file beside the database file, held for the whole
    run. The database's own write lock is not enough: Alembic runs SQLite's migrations without
    one enclosing transaction (no transactional DDL there), so two processes could both read the
    old version and both apply the same revision (seen: "duplicate column name").
    """
    engine = make_engine(database_url)
    try:
        with _sqlite_file_lock(engine), engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                _advisory(connection, "pg_advisory_lock")
            try:
                config = alembic_config(database_url)
                config.attributes["connection"] = connection
                yield config
            finally:
                if postgres:
                    connection.rollback()  # a failed migration must not keep the lock held
                    _advisory(connection, "pg_advisory_unlock")
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":  # not SQLite, or nothing another process sees
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
        yield


def _advisory(connection: Connection, function: str) -> None:
    connection.execute(text(f"SELECT {function}(:id)"), {"id": MIGRATION_LOCK_ID})
    connection.commit()


def upgrade(database_url: str, revision: str = "head") -> None:
    with _locked(database_url) as config:
        command.upgrade(config, revision)


def downgrade(database_url: str, revision: str) -> None:
    with _locked(database_url) as config:
        command.downgrade(config, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def known_revisions() -> frozenset[str]:
    """Every revision this code has (an unknown one in a database is a newer release's)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(revision.revision for revision in script.walk_revisions())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
