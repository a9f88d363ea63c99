"""Stores of every kind for the credit, site and purchase tests: in memory, in an SQLite file, and
through SQLAlchemy on SQLite and on PostgreSQL, several of them sharing one database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

STORE_KINDS = ["memory", "sqlite", "sqlalchemy-sqlite", "sqlalchemy-postgres"]


def store_fixture(
    memory: Callable[[], Any],
    sqlite: Callable[[Path], Any],
    sqlalchemy_store: Callable[..., Any],
    *,
    file: str = "site",
    table_option: str = "table_prefix",
    drop: Callable[[Any], None] = lambda store: store.drop_tables(),
) -> Any:
    """A ``make_store`` fixture, run once per kind of store: a factory of stores all sharing one
    database (so several trackers or sites can race on it), closed or dropped afterwards.
    ``file`` names the SQLite files; on PostgreSQL the stores get a table name or prefix
    (``table_option``) no parallel run shares, and ``drop`` removes their tables."""

    @pytest.fixture(params=STORE_KINDS, name="make_store")
    def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
        kind: str = request.param
        cleanups: list[Callable[[], None]] = []
        if kind == "memory":
            shared = memory()

            def make() -> Any:
                return shared

        elif kind == "sqlite":

            def make() -> Any:
                store = sqlite(tmp_path / f"{file}.sqlite3")
                cleanups.append(store.close)
                return store

        elif kind == "sqlalchemy-sqlite":
            engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / f'{file}-sa.sqlite3'}")
            cleanups.append(engine.dispose)

            def make() -> Any:
                return sqlalchemy_store(engine)

        else:
            postgres_engine = request.getfixturevalue("postgres_engine")
            table = request.getfixturevalue("unique_table_name").replace("stream_credits", file)
            stores: list[Any] = []

            def make() -> Any:
                store = sqlalchemy_store(postgres_engine, **{table_option: table})
                stores.append(store)
                return store

            cleanups.append(lambda: drop(stores[0]) if stores else None)
        yield make
        for cleanup in reversed(cleanups):
            cleanup()

    return make_store
