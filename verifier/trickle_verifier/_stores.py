"""Database plumbing shared by the credit, site and purchase stores: an SQLite connection whose
writes run in ``BEGIN IMMEDIATE`` transactions, table-prefix checks, and SQLAlchemy table
creation that tolerates a racing process. SQLAlchemy is imported only when it is used."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import os

    from sqlalchemy import MetaData, Table
    from sqlalchemy.engine import Engine

MAX_ATTEMPTS = 100
"""How often a compare-and-set store re-reads a row another writer changed first."""

_TABLE_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a safe table-name prefix (it is interpolated into SQL), else
    ``ValueError``."""
    if not _TABLE_PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"expected a table prefix matching [A-Za-z_][A-Za-z0-9_]*, got {prefix!r}")
    return prefix


class SQLiteDatabase:
    """One stdlib ``sqlite3`` connection shared by a store's threads (behind a lock), atomic
    across processes too: every write runs in a ``BEGIN IMMEDIATE`` transaction, which takes
    the database's write lock first."""

    def __init__(
        self, path: str | os.PathLike[str], *, timeout_s: float, schema: Iterable[str]
    ) -> None:
        self._lock = threading.Lock()
        # Autocommit mode: transactions are opened explicitly by ``transaction``.
        self._connection = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            for statement in schema:
                self._connection.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """A cursor inside ``BEGIN IMMEDIATE``: committed when the block ends, rolled back when
        it raises."""
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def fetchone(self, sql: str, parameters: Sequence[Any]) -> Any:
        """The first row of a read, or None."""
        with self._lock:
            return self._connection.execute(sql, parameters).fetchone()

    def fetchall(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Every row of a read."""
        with self._lock:
            return self._connection.execute(sql, parameters).fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection.close()


def create_tables(engine: Engine, metadata: MetaData, tables: Iterable[Table]) -> None:
    """Create the tables of ``metadata`` that are missing. Two processes creating them at once:
    losing the race is fine once ``tables`` all exist."""
    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError

    try:
        metadata.create_all(engine, checkfirst=True)
    except DBAPIError:
        inspector = sa.inspect(engine)
        if not all(inspector.has_table(table.name) for table in tables):
            raise
