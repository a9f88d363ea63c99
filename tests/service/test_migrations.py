from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import LargeBinary, String, column, insert, inspect, select, table, text

from trickle import migrate
from trickle.db import make_engine
from trickle.models import Base, SigningKey, UTCDateTime


def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    url = empty_database_url
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        migrate.downgrade(url, "base")
        assert migrate.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_existing_keys_sign_from_their_creation_after_the_key_activation_migration(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0008")
    engine = make_engine(url)
    created = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    keys_at_0008 = table(
        "signing_keys",
        column("kid", String),
        column("public_key", LargeBinary),
        column("sealed_private_key", LargeBinary),
        column("created_at", UTCDateTime()),
    )
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(keys_at_0008).values(
                    kid="k-old",
                    public_key=b"\x01" * 32,
                    sealed_private_key=b"\x02" * 72,
                    created_at=created,
                )
            )
        migrate.upgrade(url)
        with engine.connect() as connection:
            row = connection.execute(select(SigningKey.activates_at)).one()
        assert row.activates_at == created
        migrate.downgrade(url, "0008")
        assert "activates_at" not in {
            c["name"] for c in inspect(engine).get_columns("signing_keys")
        }
        migrate.upgrade(url)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


# --- several processes migrating one fresh database at once ---------------------------------

# Each child imports everything first, then waits for the same instant, so the upgrades really
# start together (`trickle serve` migrates, then makes the first key, exactly like this).
_FIRST_START = """
import sys, time
from trickle.runtime import bootstrap
from trickle.settings import load_settings
start_at = float(sys.argv[1])
while time.time() < start_at:
    time.sleep(0.001)
bootstrap(load_settings()).close()
"""
STARTS = 6


def test_concurrent_first_starts_make_one_schema_and_one_key(
    empty_database_url: str, tmp_path: Path, kek_b64: str
) -> None:
    url = empty_database_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
    env.update(
        TRICKLE_ENV="test",
        TRICKLE_DATABASE_URL=url,
        TRICKLE_DATA_DIR=str(tmp_path / "data"),
        TRICKLE_KEY_ENCRYPTION_KEY=kek_b64,
    )
    start_at = time.time() + 4.0  # time enough for every child to import on a loaded machine
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _FIRST_START, repr(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(STARTS)
    ]
    outputs = [child.communicate(timeout=120)[0].decode(errors="replace") for child in children]
    failed = [out for child, out in zip(children, outputs, strict=True) if child.returncode != 0]
    assert failed == [], failed[0][-3000:] if failed else ""

    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
            assert connection.execute(text("SELECT count(*) FROM signing_keys")).scalar() == 1
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
