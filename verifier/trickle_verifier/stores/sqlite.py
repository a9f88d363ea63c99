"""The SQLite stores (stdlib ``sqlite3``): one file, atomic across threads and processes, since
every write runs in a ``BEGIN IMMEDIATE`` transaction, which takes the database's write lock
first. The credit, site and purchase stores may share one file."""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..credits import DEFAULT_TABLE_NAME
from ..purchases import Purchase
from ..receipts import Receipt
from ..site import DEFAULT_TABLE_PREFIX
from ._tables import (
    PURCHASE_COLUMNS,
    check_prefix,
    check_table_name,
    check_total,
    purchase_of,
    purchase_row,
)

if TYPE_CHECKING:
    import os

__all__ = ["SQLiteCreditStore", "SQLitePurchaseStore", "SQLiteSiteStore"]


class _SQLiteStore(ABC):
    """What every SQLite store shares: its constructor, and one connection, used by the store's
    threads in turn, opened in autocommit mode (``_transaction`` begins the transactions) with
    the store's tables created if missing. The site and purchase stores name their tables
    ``<table_prefix>_...``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        timeout_s: float = 30.0,
    ) -> None:
        self._open(path, self._tables(check_prefix(table_prefix)), timeout_s)

    @abstractmethod
    def _tables(self, name: str) -> Sequence[str]:
        """Prepare the store's statements on its tables, named after ``name`` (a checked
        identifier: safe to interpolate), and return the statements creating them."""

    def _open(self, path: str | os.PathLike[str], schema: Sequence[str], timeout_s: float) -> None:
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            for statement in schema:
                self._connection.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
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

    def _fetchone(self, sql: str, parameters: Sequence[Any]) -> Any:
        with self._lock:
            return self._connection.execute(sql, parameters).fetchone()

    def _fetchall(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self._connection.execute(sql, parameters).fetchall()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._connection.close()


class _Streams:
    """The credit rule (docs/receipts.md §4) on a table with one row per stream: ``sid`` (the
    key), the ``columns`` written once when the stream is first seen, ``total_minor`` (the
    highest ``tot``) and the time column ``stamp``. ``owned``: the stream belongs to the visitor
    session in its ``session_id`` column."""

    def __init__(
        self, table: str, columns: Sequence[str], *, stamp: str, owned: bool = False
    ) -> None:
        inserted = ", ".join(("sid", *columns, "total_minor", stamp))
        placeholders = ", ".join("?" * (len(columns) + 3))
        read = "total_minor, session_id" if owned else "total_minor"
        self.select_sql = f"SELECT {read} FROM {table} WHERE sid = ?"  # noqa: S608
        self._insert_sql = f"INSERT INTO {table} ({inserted}) VALUES ({placeholders})"  # noqa: S608
        self._update_sql = f"UPDATE {table} SET total_minor = ?, {stamp} = ? WHERE sid = ?"  # noqa: S608
        self._owned = owned

    def raise_total(
        self,
        cursor: sqlite3.Cursor,
        sid: str,
        total_minor: int,
        *,
        columns: Sequence[Any],
        stamp: Any,
        owner: str | None = None,
    ) -> int | None:
        """Inside the caller's transaction: raise the total of ``sid`` to ``total_minor`` if
        that is higher, writing ``stamp``; a new stream is inserted with ``columns``. Return
        the increase (0 if none), or None when the stream belongs to another session than
        ``owner``."""
        row = cursor.execute(self.select_sql, (sid,)).fetchone()
        if row is None:
            cursor.execute(self._insert_sql, (sid, *columns, total_minor, stamp))
            return total_minor
        if self._owned and row[1] != owner:
            return None
        previous = int(row[0])
        if total_minor <= previous:
            return 0
        cursor.execute(self._update_sql, (total_minor, stamp, sid))
        return total_minor - previous


class SQLiteCreditStore(_SQLiteStore):
    """A store in an SQLite file (stdlib ``sqlite3``), atomic across threads and processes:
    each credit runs in a ``BEGIN IMMEDIATE`` transaction, which takes the write lock first."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_name: str = DEFAULT_TABLE_NAME,
        timeout_s: float = 30.0,
    ) -> None:
        self._open(path, self._tables(check_table_name(table_name)), timeout_s)

    def _tables(self, name: str) -> Sequence[str]:
        self._streams = _Streams(name, ("aud", "pay"), stamp="updated_at")
        return (
            f"CREATE TABLE IF NOT EXISTS {name} ("
            " sid TEXT PRIMARY KEY NOT NULL,"
            " aud TEXT NOT NULL,"
            " pay TEXT NOT NULL,"
            " total_minor BIGINT NOT NULL CHECK (total_minor >= 0),"
            " updated_at TIMESTAMP NOT NULL)",
        )

    def raise_total(self, sid: str, aud: str, pay: str, total_minor: int) -> int:
        check_total(total_minor)
        updated_at = datetime.now(UTC).isoformat(sep=" ")
        with self._transaction() as cursor:
            increase = self._streams.raise_total(
                cursor, sid, total_minor, columns=(aud, pay), stamp=updated_at
            )
        assert increase is not None  # the table has no owner column
        return increase

    def total_for(self, sid: str) -> int:
        """The highest ``tot`` seen for ``sid`` (0 if none)."""
        row = self._fetchone(self._streams.select_sql, (sid,))
        return 0 if row is None else int(row[0])


class SQLiteSiteStore(_SQLiteStore):
    """A store in an SQLite file (stdlib ``sqlite3``), atomic across threads and processes
    (``BEGIN IMMEDIATE``). Tables ``<prefix>_streams`` and ``<prefix>_credits``."""

    def _tables(self, name: str) -> Sequence[str]:
        streams, credits = f"{name}_streams", f"{name}_credits"
        self._streams = _Streams(
            streams, ("session_id", "aud", "pay"), stamp="updated_ms", owned=True
        )
        self._credit_sql = (
            f"INSERT INTO {credits} (session_id, sid, credited_minor, credited_ms)"  # noqa: S608
            " VALUES (?, ?, ?, ?)"
        )
        self._paid_sql = (
            f"SELECT COALESCE(SUM(credited_minor), 0) FROM {credits}"  # noqa: S608
            " WHERE session_id = ? AND credited_ms >= ?"
        )
        return (
            f"CREATE TABLE IF NOT EXISTS {streams} ("
            " sid TEXT PRIMARY KEY NOT NULL,"
            " session_id TEXT NOT NULL,"
            " aud TEXT NOT NULL,"
            " pay TEXT NOT NULL,"
            " total_minor BIGINT NOT NULL CHECK (total_minor >= 0),"
            " updated_ms BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {credits} ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " session_id TEXT NOT NULL,"
            " sid TEXT NOT NULL,"
            " credited_minor BIGINT NOT NULL CHECK (credited_minor > 0),"
            " credited_ms BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS ix_{credits}_session"
            f" ON {credits} (session_id, credited_ms)",
        )

    def credit(self, session_id: str, receipt: Receipt, at_ms: int) -> int | None:
        sid = receipt.sid
        with self._transaction() as cursor:
            increase = self._streams.raise_total(
                cursor,
                sid,
                receipt.total_minor,
                columns=(session_id, receipt.aud, receipt.pay),
                stamp=at_ms,
                owner=session_id,
            )
            if increase:
                cursor.execute(self._credit_sql, (session_id, sid, increase, at_ms))
        return increase

    def paid(self, session_id: str, since_ms: int | None = None) -> int:
        since = -(2**62) if since_ms is None else since_ms
        return int(self._fetchone(self._paid_sql, (session_id, since))[0])


class SQLitePurchaseStore(_SQLiteStore):
    """A store in an SQLite file (stdlib ``sqlite3``; it may be the ``SQLiteSiteStore``'s
    file), atomic across threads and processes: the ``sid`` is the primary key and a purchase
    is inserted and read back in one ``BEGIN IMMEDIATE`` transaction. Table
    ``<prefix>_purchases``."""

    def _tables(self, name: str) -> Sequence[str]:
        table = f"{name}_purchases"
        columns = ", ".join(PURCHASE_COLUMNS)
        placeholders = ", ".join("?" * len(PURCHASE_COLUMNS))
        self._insert_sql = (
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
            " ON CONFLICT (sid) DO NOTHING"
        )
        self._find_sql = f"SELECT {columns} FROM {table} WHERE sid = ?"  # noqa: S608
        self._list_sql = f"SELECT {columns} FROM {table} WHERE session_id = ?"  # noqa: S608
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " sid TEXT PRIMARY KEY NOT NULL,"
            " session_id TEXT NOT NULL,"
            " order_ref TEXT NOT NULL,"
            " jti TEXT NOT NULL,"
            " pay TEXT NOT NULL,"
            " amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),"
            " currency TEXT NOT NULL,"
            " scale INTEGER NOT NULL,"
            " purchased_ms BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS ix_{table}_session ON {table} (session_id, order_ref)",
        )

    def record(self, purchase: Purchase) -> tuple[Purchase, bool]:
        with self._transaction() as cursor:
            created = cursor.execute(self._insert_sql, purchase_row(purchase)).rowcount == 1
            row = cursor.execute(self._find_sql, (purchase.sid,)).fetchone()
        return purchase_of(row), created

    def find(self, sid: str) -> Purchase | None:
        row = self._fetchone(self._find_sql, (sid,))
        return None if row is None else purchase_of(row)

    def purchases(self, session_id: str, order_ref: str | None = None) -> list[Purchase]:
        sql, parameters = self._list_sql, [session_id]
        if order_ref is not None:
            sql, parameters = f"{sql} AND order_ref = ?", [session_id, order_ref]
        rows = self._fetchall(f"{sql} ORDER BY purchased_ms, sid", parameters)
        return [purchase_of(row) for row in rows]
