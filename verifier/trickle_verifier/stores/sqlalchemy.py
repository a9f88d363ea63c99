"""The SQLAlchemy stores: any database SQLAlchemy speaks (tested on SQLite and PostgreSQL). A
stream's total moves by compare-and-set (``UPDATE ... WHERE total_minor = <what was read>``, or
an ``INSERT`` on the primary key), retried when another writer came first, so no lock is held
across statements and the same code is atomic on every backend. SQLAlchemy is imported when a
store is built, never by ``import trickle_verifier``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
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
    from sqlalchemy import MetaData, Table
    from sqlalchemy.engine import Connection, Engine

__all__ = ["SQLAlchemyCreditStore", "SQLAlchemyPurchaseStore", "SQLAlchemySiteStore"]

MAX_ATTEMPTS = 100
"""How often a compare-and-set re-reads a row another writer changed first."""


class _SQLAlchemyStore(ABC):
    """What every SQLAlchemy store shares: its constructor, its engine, and its tables, created
    when the store is built if they are missing. The site and purchase stores name their tables
    ``<table_prefix>_...``."""

    def __init__(self, engine: Engine, *, table_prefix: str = DEFAULT_TABLE_PREFIX) -> None:
        self._open(engine, check_prefix(table_prefix))

    @abstractmethod
    def _define_tables(self, metadata: MetaData, name: str) -> None:
        """Define the store's tables in ``metadata``, named after ``name`` (a checked
        identifier)."""

    def _open(self, engine: Engine, name: str) -> None:
        import sqlalchemy as sa
        from sqlalchemy.exc import DBAPIError

        self._engine = engine
        self._metadata = metadata = sa.MetaData()
        self._define_tables(metadata, name)
        try:
            metadata.create_all(engine, checkfirst=True)
        except DBAPIError:
            # Another process created them at the same moment: losing that race is fine.
            inspector = sa.inspect(engine)
            if not all(inspector.has_table(table) for table in metadata.tables):
                raise

    def drop_tables(self) -> None:
        """Drop the store's tables (for tests and teardown)."""
        self._metadata.drop_all(self._engine, checkfirst=True)


def _raise_total(
    engine: Engine,
    streams: Table,
    sid: str,
    total_minor: int,
    *,
    columns: Mapping[str, Any],
    stamp: Mapping[str, Any],
    owner: str | None = None,
    on_increase: Callable[[Connection, int], None] | None = None,
) -> int | None:
    """The credit rule (docs/receipts.md §4) on ``streams``, a table with one row per stream
    (``sid``, ``total_minor``): raise the total of ``sid`` to ``total_minor`` if that is
    higher, writing ``stamp``; a new stream is inserted with ``columns`` too. ``owner``: the
    visitor session the stream must belong to (column ``session_id``). ``on_increase`` writes
    what goes with an increase, in the same transaction. Return the increase (0 if none), or
    None when the stream belongs to another session."""
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    read = [streams.c.total_minor] + ([] if owner is None else [streams.c.session_id])
    for _ in range(MAX_ATTEMPTS):
        with engine.begin() as connection:
            row = connection.execute(sa.select(*read).where(streams.c.sid == sid)).first()
            if row is not None:
                if owner is not None and str(row[1]) != owner:
                    return None
                previous = int(row[0])
                if total_minor <= previous:
                    return 0
                updated = connection.execute(
                    sa.update(streams)
                    .where(streams.c.sid == sid, streams.c.total_minor == previous)
                    .values(total_minor=total_minor, **stamp)
                )
                if updated.rowcount == 1:
                    if on_increase is not None:
                        on_increase(connection, total_minor - previous)
                    return total_minor - previous
                continue  # another writer raised it first: read again
        try:
            with engine.begin() as connection:
                connection.execute(
                    sa.insert(streams).values(sid=sid, total_minor=total_minor, **columns, **stamp)
                )
                if total_minor and on_increase is not None:
                    on_increase(connection, total_minor)
            return total_minor
        except IntegrityError:
            continue  # another writer inserted the stream first: read again
    raise RuntimeError(f"could not credit stream {sid!r} after {MAX_ATTEMPTS} attempts")


class SQLAlchemyCreditStore(_SQLAlchemyStore):
    """A store in any SQLAlchemy database (tested on SQLite and PostgreSQL). Each credit is a
    compare-and-set: read the total, then ``UPDATE ... WHERE total_minor = <what was read>``
    (or ``INSERT``), retried if another writer got there first, so no lock is held across
    statements and the same code is atomic on every backend. SQLAlchemy is imported lazily."""

    def __init__(self, engine: Engine, *, table_name: str = DEFAULT_TABLE_NAME) -> None:
        self._open(engine, check_table_name(table_name))

    def _define_tables(self, metadata: MetaData, name: str) -> None:
        import sqlalchemy as sa

        self._table = sa.Table(
            name,
            metadata,
            sa.Column("sid", sa.String(64), primary_key=True),
            sa.Column("aud", sa.Text, nullable=False),
            sa.Column("pay", sa.Text, nullable=False),
            sa.Column("total_minor", sa.BigInteger, nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.CheckConstraint("total_minor >= 0", name=f"ck_{name}_total"),
        )

    @property
    def table_name(self) -> str:
        """The name of the credits table."""
        return str(self._table.name)

    def raise_total(self, sid: str, aud: str, pay: str, total_minor: int) -> int:
        check_total(total_minor)
        increase = _raise_total(
            self._engine,
            self._table,
            sid,
            total_minor,
            columns={"aud": aud, "pay": pay},
            stamp={"updated_at": datetime.now(UTC)},
        )
        assert increase is not None  # no owner was asked for
        return increase

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
        self.drop_tables()


class SQLAlchemySiteStore(_SQLAlchemyStore):
    """A store in any SQLAlchemy database (tested on SQLite and PostgreSQL). Each credit is a
    compare-and-set on the stream's total, and its credit row is written in the same
    transaction, so no lock is held across statements. SQLAlchemy is imported lazily."""

    def _define_tables(self, metadata: MetaData, name: str) -> None:
        import sqlalchemy as sa

        self._streams = sa.Table(
            f"{name}_streams",
            metadata,
            sa.Column("sid", sa.String(64), primary_key=True),
            sa.Column("session_id", sa.String(128), nullable=False),
            sa.Column("aud", sa.Text, nullable=False),
            sa.Column("pay", sa.Text, nullable=False),
            sa.Column("total_minor", sa.BigInteger, nullable=False),
            sa.Column("updated_ms", sa.BigInteger, nullable=False),
            sa.CheckConstraint("total_minor >= 0", name=f"ck_{name}_streams_total"),
        )
        self._credits = sa.Table(
            f"{name}_credits",
            metadata,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
            sa.Column("session_id", sa.String(128), nullable=False),
            sa.Column("sid", sa.String(64), nullable=False),
            sa.Column("credited_minor", sa.BigInteger, nullable=False),
            sa.Column("credited_ms", sa.BigInteger, nullable=False),
            sa.CheckConstraint("credited_minor > 0", name=f"ck_{name}_credits_positive"),
            sa.Index(f"ix_{name}_credits_session", "session_id", "credited_ms"),
        )

    def credit(self, session_id: str, receipt: Receipt, at_ms: int) -> int | None:
        import sqlalchemy as sa

        def record(connection: Connection, credited_minor: int) -> None:
            connection.execute(
                sa.insert(self._credits).values(
                    session_id=session_id,
                    sid=receipt.sid,
                    credited_minor=credited_minor,
                    credited_ms=at_ms,
                )
            )

        return _raise_total(
            self._engine,
            self._streams,
            receipt.sid,
            receipt.total_minor,
            columns={"session_id": session_id, "aud": receipt.aud, "pay": receipt.pay},
            stamp={"updated_ms": at_ms},
            owner=session_id,
            on_increase=record,
        )

    def paid(self, session_id: str, since_ms: int | None = None) -> int:
        import sqlalchemy as sa

        credits = self._credits
        query = sa.select(sa.func.coalesce(sa.func.sum(credits.c.credited_minor), 0)).where(
            credits.c.session_id == session_id
        )
        if since_ms is not None:
            query = query.where(credits.c.credited_ms >= since_ms)
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())


class SQLAlchemyPurchaseStore(_SQLAlchemyStore):
    """A store in any SQLAlchemy database (tested on SQLite and PostgreSQL): the ``sid`` is
    the primary key, so of racing inserts one wins and the others read its row. SQLAlchemy is
    imported lazily. Table ``<prefix>_purchases``."""

    def _define_tables(self, metadata: MetaData, name: str) -> None:
        import sqlalchemy as sa

        self._table = sa.Table(
            f"{name}_purchases",
            metadata,
            sa.Column("sid", sa.String(64), primary_key=True),
            sa.Column("session_id", sa.String(128), nullable=False),
            sa.Column("order_ref", sa.String(128), nullable=False),
            sa.Column("jti", sa.String(64), nullable=False),
            sa.Column("pay", sa.Text, nullable=False),
            sa.Column("amount_minor", sa.BigInteger, nullable=False),
            sa.Column("currency", sa.String(12), nullable=False),
            sa.Column("scale", sa.Integer, nullable=False),
            sa.Column("purchased_ms", sa.BigInteger, nullable=False),
            sa.CheckConstraint("amount_minor > 0", name=f"ck_{name}_purchases_amount"),
            sa.Index(f"ix_{name}_purchases_session", "session_id", "order_ref"),
        )

    def _select(self) -> Any:
        import sqlalchemy as sa

        return sa.select(*(self._table.c[name] for name in PURCHASE_COLUMNS))

    def record(self, purchase: Purchase) -> tuple[Purchase, bool]:
        import sqlalchemy as sa
        from sqlalchemy.exc import IntegrityError

        values = dict(zip(PURCHASE_COLUMNS, purchase_row(purchase), strict=True))
        try:
            with self._engine.begin() as connection:
                connection.execute(sa.insert(self._table).values(**values))
        except IntegrityError:
            stored = self.find(purchase.sid)
            if stored is None:  # not a duplicate sid: some other constraint failed
                raise
            return stored, False
        return purchase, True

    def find(self, sid: str) -> Purchase | None:
        with self._engine.connect() as connection:
            row = connection.execute(self._select().where(self._table.c.sid == sid)).first()
        return None if row is None else purchase_of(row)

    def purchases(self, session_id: str, order_ref: str | None = None) -> list[Purchase]:
        table = self._table
        query = self._select().where(table.c.session_id == session_id)
        if order_ref is not None:
            query = query.where(table.c.order_ref == order_ref)
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(table.c.purchased_ms, table.c.sid)).all()
        return [purchase_of(row) for row in rows]
