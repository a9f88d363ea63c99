"""Database engines and sessions: one place that knows SQLite from PostgreSQL, and the one
check every statement's text parameters pass (no NUL character) on both."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from trickle.errors import ValidationFailed


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, lock_wait_s: float | None = None, **kwargs: Any) -> Engine:
    """An engine whose transactions are real ones on both databases.

    pysqlite starts transactions lazily (at the first write), so a read-then-write in SQLAlchemy's
    default SQLite setup is not atomic. Here every SQLite transaction is ``BEGIN IMMEDIATE``: it
    takes the write lock up front, so concurrent writers serialize instead of racing.

    ``lock_wait_s``: how long a statement may wait for another writer's lock before it fails
    (SQLite's busy timeout, 30 s when None; on PostgreSQL, when given, ``lock_timeout``,
    ``statement_timeout`` and the connect timeout; PostgreSQL's own defaults when None).
    """
    engine = _make_engine(url, lock_wait_s=lock_wait_s, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_nul_characters)
    return engine


def _make_engine(url: str, *, lock_wait_s: float | None, **kwargs: Any) -> Engine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        wait_s = 30.0 if lock_wait_s is None else lock_wait_s
        engine = create_engine(url, connect_args={"timeout": wait_s}, **kwargs)
        wait_ms = int(wait_s * 1000)
        event.listen(
            engine, "connect", lambda dbapi, record: _sqlite_on_connect(dbapi, record, wait_ms)
        )
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if lock_wait_s is not None:
        wait_ms = int(lock_wait_s * 1000)
        kwargs.setdefault(
            "connect_args",
            {
                "connect_timeout": max(1, round(lock_wait_s)),
                "options": f"-c lock_timeout={wait_ms} -c statement_timeout={wait_ms}",
            },
        )
    return create_engine(url, **kwargs)


def _refuse_nul_characters(
    _connection: Connection,
    _cursor: Any,
    _statement: str,
    parameters: Any,
    _context: Any,
    _executemany: bool,
) -> None:
    """PostgreSQL cannot store U+0000 in text and fails the statement (a 500); SQLite stores it.
    No text the service takes in has a use for it, so any statement with it in a text parameter
    is refused here, before the database sees it, as the same ``ValidationFailed`` on both
    databases: every path from the outside (an email, a payee name in a URL, a form field, a
    stream's pointer) reaches the database through this one check. The ledger's group statements
    (``DriverCursor``) bypass it: they only write values that were checked on their way in."""
    pending = [parameters]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise ValidationFailed("text may not contain the NUL character (U+0000)")
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any, busy_timeout_ms: int) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def serialize(session: Session, lock_id: int) -> None:
    """The rest of this transaction runs one at a time with every other transaction that called
    this with the same ``lock_id`` (a read-then-write that must not race, e.g. making a key).

    PostgreSQL: a transaction advisory lock, released at commit or rollback. SQLite: every
    transaction holds the database's write lock (``BEGIN IMMEDIATE``), but only from its first
    statement on: one is run here, so that the lock is held when this returns (a caller that
    reads the clock after it sees what a racer committed while it waited)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
    else:
        session.execute(text("SELECT 1"))


def insert_unless_present(
    session: Session, model: type[Any], values: dict[str, Any], keys: Sequence[str]
) -> None:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` in the session's database's dialect: a row
    created on first use, safe when two racers create it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=keys))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on any exception."""
    with factory() as session, session.begin():
        yield session


class DriverCursor:
    """The database driver's own cursor inside a SQLAlchemy connection's transaction: for the
    ledger's group statements only (``ledger.sqlite``, ``ledger.postgres``), where SQLAlchemy's
    per-statement work (~50-100 µs) would cost more than the statements themselves. Statements
    are written in the driver's own parameter style and passed through untouched (sqlite3: ``?``;
    psycopg: ``%s``, and ``%%`` for a literal ``%``). The transaction stays SQLAlchemy's: it began
    it (``BEGIN IMMEDIATE`` on SQLite) and commits or rolls it back."""

    def __init__(self, connection: Connection) -> None:
        driver = connection.connection.driver_connection
        assert driver is not None
        self._cursor = driver.cursor()
        self.integrity_error: type[Exception] = connection.dialect.loaded_dbapi.IntegrityError

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(statement, params)
        return list(self._cursor.fetchall()) if self._cursor.description else []

    @property
    def rowcount(self) -> int:
        """The rows the last ``execute`` changed."""
        return int(self._cursor.rowcount)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run once per row; the number of rows changed in all."""
        self._cursor.executemany(statement, rows)
        return int(self._cursor.rowcount)
