"""Counting money from receipts (docs/receipts.md §4): credit only the increase of ``tot`` over
the highest ``tot`` already seen for the stream's ``sid``, atomically, in memory or in a database.

Invariant: for every ``sid``, the sum of what ``credit`` returned equals the highest ``tot`` seen,
whatever the order, duplication or concurrency of the receipts.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from ._stores import MAX_ATTEMPTS, SQLiteDatabase, create_tables
from .receipts import Receipt

if TYPE_CHECKING:
    import os

    from sqlalchemy.engine import Engine

__all__ = [
    "DEFAULT_TABLE_NAME",
    "CreditStore",
    "CreditTracker",
    "MemoryCreditStore",
    "SQLAlchemyCreditStore",
    "SQLiteCreditStore",
]

DEFAULT_TABLE_NAME = "trickle_stream_credits"
_TABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class CreditStore(Protocol):
    """Keeps the highest ``tot`` seen per ``sid``."""

    def raise_total(self, sid: str, aud: str, pay: str, total_minor: int) -> int:
        """Atomically raise the stored total of ``sid`` to ``total_minor`` if that is higher,
        and return the increase (0 when ``total_minor`` is not higher)."""
        ...


class CreditTracker:
    """Turns verified receipts into credited amounts, once per increase of ``tot``."""

    __slots__ = ("_store",)

    def __init__(self, store: CreditStore) -> None:
        self._store = store

    def credit(self, receipt: Receipt) -> int:
        """Return the minor units to credit for this receipt: the increase of its ``tot`` over
        the highest ``tot`` seen for its ``sid``; 0 for a replay or an older receipt."""
        if not isinstance(receipt, Receipt):
            raise TypeError(f"expected a verified Receipt, got {type(receipt).__name__}")
        return self._store.raise_total(receipt.sid, receipt.aud, receipt.pay, receipt.total_minor)


def _check_table_name(table_name: str) -> str:
    if not _TABLE_NAME_RE.fullmatch(table_name):
        raise ValueError(
            f"expected a table name matching [A-Za-z_][A-Za-z0-9_]*, got {table_name!r}"
        )
    return table_name


def _check_total(total_minor: int) -> int:
    if type(total_minor) is not int or not 0 <= total_minor < 2**63:
        raise ValueError(f"expected total_minor as an int in 0..2^63-1, got {total_minor!r}")
    return total_minor


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryCreditStore:
    """A thread-safe in-process store (for tests and single-process sites; lost on restart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}

    def raise_total(self, sid: str, aud: str, pay: str, total_minor: int) -> int:
        _check_total(total_minor)
        with self._lock:
            previous = self._totals.get(sid, 0)
            if total_minor <= previous:
                return 0
            self._totals[sid] = total_minor
            return total_minor - previous

    def total_for(self, sid: str) -> int:
        """The highest ``tot`` seen for ``sid`` (0 if none)."""
        with self._lock:
            return self._totals.get(sid, 0)


class SQLiteCreditStore:
    """A store in an SQLite file (stdlib ``sqlite3``), atomic across threads and processes:
    each credit runs in a ``BEGIN IMMEDIATE`` transaction, which takes the write lock first."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_name: str = DEFAULT_TABLE_NAME,
        timeout_s: float = 30.0,
    ) -> None:
        table = _check_table_name(table_name)  # a checked identifier: safe to interpolate
        self._select_sql = f"SELECT total_minor FROM {table} WHERE sid = ?"  # noqa: S608
        self._insert_sql = (
            f"INSERT INTO {table} (sid, aud, pay, total_minor, updated_at)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?)"
        )
        self._update_sql = f"UPDATE {table} SET total_minor = ?, updated_at = ? WHERE sid = ?"  # noqa: S608
        self._database = SQLiteDatabase(
            path,
            timeout_s=timeout_s,
            schema=(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                " sid TEXT PRIMARY KEY NOT NULL,"
                " aud TEXT NOT NULL,"
                " pay TEXT NOT NULL,"
                " total_minor BIGINT NOT NULL CHECK (total_minor >= 0),"
                " updated_at TIMESTAMP NOT NULL)",
            ),
        )

    def raise_total(self, sid: str, aud: str, pay: str, total_minor: int) -> int:
        _check_total(total_minor)
        updated_at = _utc_now().isoformat(sep=" ")
        with self._database.transaction() as cursor:
            row = cursor.execute(self._select_sql, (sid,)).fetchone()
            if row is None:
                cursor.execute(self._insert_sql, (sid, aud, pay, total_minor, updated_at))
                increase = total_minor
            elif total_minor > int(row[0]):
                cursor.execute(self._update_sql, (total_minor, updated_at, sid))
                increase = total_minor - int(row[0])
            else:
                increase = 0
        return increase

    def total_for(self, sid: str) -> int:
        """The highest ``tot`` seen for ``sid`` (0 if none)."""
        row = self._database.fetchone(self._select_sql, (sid,))
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close the database connection."""
        self._database.close()


class SQLAlchemyCreditStore:
    """A store in any SQLAlchemy database (tested on SQLite and PostgreSQL). Each credit is a
    compare-and-set: read the total, then ``UPDATE ... WHERE total_minor = <what was read>``
    (or ``INSERT``), retried if another writer got there first, so no lock is held across
    statements and the same code is atomic on every backend. SQLAlchemy is imported lazily."""

    def __init__(self, engine: Engine, *, table_name: str = DEFAULT_TABLE_NAME) -> None:
        import sqlalchemy as sa

        self._engine = engine
        metadata = sa.MetaData()
        self._table = table = sa.Table(
            _check_table_name(table_name),
            metadata,
            sa.Column("sid", sa.String(64), primary_key=True),
            sa.Column("aud", sa.Text, nullable=False),
            sa.Column("pay", sa.Text, nullable=False),
            sa.Column("total_minor", sa.BigInteger, nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.CheckConstraint("total_minor >= 0", name=f"ck_{table_name}_total"),
        )
        create_tables(engine, metadata, (table,))

    @property
    def table_name(self) -> str:
        """The name of the credits table."""
        return str(self._table.name)

    def raise_total(self, sid: str, aud: str, pay: str, total_minor: int) -> int:
        import sqlalchemy as sa
        from sqlalchemy.exc import IntegrityError

        _check_total(total_minor)
        table = self._table
        for _ in range(MAX_ATTEMPTS):
            with self._engine.begin() as connection:
                previous = connection.execute(
                    sa.select(table.c.total_minor).where(table.c.sid == sid)
                ).scalar_one_or_none()
                if previous is not None:
                    previous = int(previous)
                    if total_minor <= previous:
                        return 0
                    updated = connection.execute(
                        sa.update(table)
                        .where(table.c.sid == sid, table.c.total_minor == previous)
                        .values(total_minor=total_minor, updated_at=_utc_now())
                    )
                    if updated.rowcount == 1:
                        return total_minor - previous
                    continue  # another writer raised it first: read again
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        sa.insert(table).values(
                            sid=sid,
                            aud=aud,
                            pay=pay,
                            total_minor=total_minor,
                            updated_at=_utc_now(),
                        )
                    )
                return total_minor
            except IntegrityError:
                continue  # another writer inserted the stream first: read again
        raise RuntimeError(f"could not credit stream {sid!r} after {MAX_ATTEMPTS} attempts")

    def total_for(self, sid: str) -> int:
        """The highest ``tot`` seen for ``sid`` (0 if none)."""
        import sqlalchemy as sa

        with self._engine.connect() as connection:
            value = connection.execute(
                sa.select(self._table.c.total_minor).where(self._table.c.sid == sid)
            ).scalar_one_or_none()
        return 0 if value is None else int(value)

    def drop_table(self) -> None:
        """Drop the credits table (for tests and teardown)."""
        self._table.drop(self._engine, checkfirst=True)
