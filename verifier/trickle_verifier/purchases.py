"""One-time purchases (docs/receipts.md §4 "Selling an item", docs/payments.md): a visitor's page
sends one one-time receipt for one order; the site verifies it, checks that it pays this order
at the site's own price, and records the purchase for the visitor session. Framework-neutral
(``trickle_verifier.asgi`` has the Starlette route).

Invariant: a receipt (its ``sid``) buys at most once: one purchase, for one visitor session and
one order. The same receipt sent again by the same session for the same order answers the
recorded purchase (a retry after a lost answer); from anyone else it is ``already_used``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._stores import SQLiteDatabase, check_prefix, create_tables
from .errors import ReceiptError
from .receipts import Receipt
from .site import (
    DEFAULT_TABLE_PREFIX,
    SITE_ERRORS,
    SiteReceipts,
    _Answer,
    _answer_json_post,
    _asset_mismatch,
    _check_session_id,
    error_document,
)

if TYPE_CHECKING:
    import os

    from sqlalchemy.engine import Engine

__all__ = [
    "DEFAULT_PURCHASE_MAX_BODY_BYTES",
    "PURCHASE_ERRORS",
    "MemoryPurchaseStore",
    "Purchase",
    "PurchaseRefused",
    "PurchaseResult",
    "PurchaseStore",
    "Purchases",
    "SQLAlchemyPurchaseStore",
    "SQLitePurchaseStore",
]

DEFAULT_PURCHASE_MAX_BODY_BYTES = 16 * 1024  # one token of at most 4096 bytes, an order ref, JSON
ORDER_REF_RE = re.compile(r"[\x20-\x7e]{1,128}")
RECEIPT_REFUSED_STATUS = 422
"""The HTTP status of a receipt the verifier refused (its code is the verifier's)."""

#: Codes a purchase reports besides the verifier's (which answer 422), with their HTTP status.
PURCHASE_ERRORS: Mapping[str, tuple[int, str]] = {
    "not_one_time": (422, "the receipt is not a one-time payment (otp is not true)"),
    "order_mismatch": (422, "the receipt pays for another order (ord is not the order_ref)"),
    "unknown_order": (404, "the site sells nothing under this order_ref"),
    "wrong_asset": SITE_ERRORS["wrong_asset"],
    "amount_too_low": (422, "the receipt pays less than the order's price"),
    "already_used": (409, "the receipt was already used for a purchase"),
    "method_not_allowed": (405, "purchases are made with POST"),
    "unsupported_media_type": SITE_ERRORS["unsupported_media_type"],
    "unauthenticated": SITE_ERRORS["unauthenticated"],
    "body_too_large": (413, f"the body is over {DEFAULT_PURCHASE_MAX_BODY_BYTES} bytes"),
    "malformed_json": SITE_ERRORS["malformed_json"],
    "validation_failed": (
        422,
        'expected an object with exactly "receipt" (a string) and "order_ref" '
        "(1-128 printable ASCII characters)",
    ),
    "internal_error": (500, "the purchase helper failed; the site's log has the details"),
}

Catalogue = Mapping[str, int] | Callable[[str], "int | None"]
"""The site's prices: order_ref -> price in minor units (a mapping, or a function returning
None for an unknown order)."""


class PurchaseRefused(Exception):
    """Raised by ``Purchases.purchase`` when a receipt buys nothing: ``code`` is the verifier's
    (``bad_signature``, ``expired``, ``binding_mismatch``, ...) or one of ``PURCHASE_ERRORS``
    (``not_one_time``, ``order_mismatch``, ``unknown_order``, ``wrong_asset``,
    ``amount_too_low``, ``already_used``)."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        self.message = message or PURCHASE_ERRORS.get(code, (0, code))[1]
        super().__init__(f"{code}: {self.message}")

    @property
    def status(self) -> int:
        """The HTTP status the purchase endpoint answers with."""
        return PURCHASE_ERRORS.get(self.code, (RECEIPT_REFUSED_STATUS, ""))[0]

    def to_document(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True, slots=True)
class Purchase:
    """A recorded purchase: the receipt ``sid`` that paid, for one visitor session and order."""

    sid: str
    session_id: str
    order_ref: str
    jti: str
    pay: str
    amount_minor: int
    currency: str
    scale: int
    purchased_ms: int


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    """The outcome of an accepted receipt. ``replayed``: the same session had already bought
    the order with this very receipt (nothing new was recorded)."""

    purchase: Purchase
    replayed: bool

    def to_json(self) -> dict[str, Any]:
        """The purchase endpoint's 200 answer (the wire shape the page bridge resolves with)."""
        purchase = self.purchase
        return {
            "code": "ok",
            "order_ref": purchase.order_ref,
            "amount_minor": str(purchase.amount_minor),
            "currency": purchase.currency,
            "scale": purchase.scale,
        }


class PurchaseStore(Protocol):
    """Keeps one purchase per receipt ``sid``."""

    def record(self, purchase: Purchase) -> tuple[Purchase, bool]:
        """Atomically: store ``purchase`` unless a purchase with its ``sid`` exists. Return
        the stored purchase and whether it was stored now (False: an earlier one is kept)."""
        ...

    def find(self, sid: str) -> Purchase | None:
        """The purchase a receipt ``sid`` made, if any."""
        ...

    def purchases(self, session_id: str, order_ref: str | None = None) -> list[Purchase]:
        """The session's purchases (of ``order_ref`` only, if given), oldest first."""
        ...


def _same_buyer(purchase: Purchase, session_id: str, order_ref: str) -> bool:
    return purchase.session_id == session_id and purchase.order_ref == order_ref


class Purchases:
    """Sells items for one-time receipts: ``purchase`` verifies a receipt with the site's
    verifier (issuer, the site's origin, its payees, the session's binding), requires a
    one-time payment for this order of at least the catalogue's price in the site's asset, and
    records it so that the receipt buys at most once.

    ``site``: the ``SiteReceipts`` whose verifier, binding values, asset and clock are used.
    ``store``: where purchases are kept. ``prices``: the site's own catalogue, order_ref ->
    price in minor units of ``site.currency`` at ``site.scale``; the price never comes from
    the client.
    """

    __slots__ = ("_prices", "site", "store")

    def __init__(self, site: SiteReceipts, store: PurchaseStore, prices: Catalogue) -> None:
        if not isinstance(site, SiteReceipts):
            raise TypeError(f"site must be a SiteReceipts, got {type(site).__name__}")
        self.site = site
        self.store = store
        self._prices = prices

    def price_of(self, order_ref: str) -> int | None:
        """The catalogue's price of ``order_ref`` in minor units, or None if it sells no such
        order. A price that is not an int >= 1 is the site's bug: ``ValueError``."""
        if isinstance(self._prices, Mapping):
            price = self._prices.get(order_ref)
        else:
            price = self._prices(order_ref)
        if price is not None and (type(price) is not int or price < 1):
            raise ValueError(f"the price of {order_ref!r} must be an int >= 1, got {price!r}")
        return price

    def purchase(
        self,
        session_id: str,
        token: object,
        order_ref: str,
        *,
        binding: str | None = None,
        now: float | None = None,
    ) -> PurchaseResult:
        """Buy ``order_ref`` for ``session_id`` with the one-time receipt ``token``, or raise
        ``PurchaseRefused``. ``binding``: the value the receipt must carry (default: the
        session's, when the site has a ``binding_key``). The checks, in order: the verifier's
        rules 1-18; ``not_one_time``; ``order_mismatch``; ``unknown_order``; ``wrong_asset``;
        ``amount_too_low``; ``already_used`` (the receipt bought something for another session
        or order: a spent receipt is refused as such before its binding is compared);
        ``binding_mismatch`` (rule 19)."""
        _check_session_id(session_id)
        now_s = self.site.now() if now is None else now
        try:
            receipt = self.site.verifier.verify(token, now=now_s)  # type: ignore[arg-type]
        except ReceiptError as exc:
            raise PurchaseRefused(exc.code, exc.message) from exc
        price = self._check_order(receipt, order_ref)
        if receipt.amount_minor < price:
            raise PurchaseRefused(
                "amount_too_low",
                f"the order costs {price} minor units, the receipt pays {receipt.amount_minor}",
            )
        earlier = self.store.find(receipt.sid)
        if earlier is not None and not _same_buyer(earlier, session_id, order_ref):
            raise PurchaseRefused("already_used")
        expected = self.site.expected_binding(session_id, binding)
        if expected is not None and receipt.binding != expected:
            raise PurchaseRefused(
                "binding_mismatch", "the receipt does not carry this visitor session's binding"
            )
        stored, created = self.store.record(
            Purchase(
                sid=receipt.sid,
                session_id=session_id,
                order_ref=order_ref,
                jti=receipt.jti,
                pay=receipt.pay,
                amount_minor=receipt.amount_minor,
                currency=receipt.currency,
                scale=receipt.scale,
                purchased_ms=int(now_s * 1000),
            )
        )
        if not created and not _same_buyer(stored, session_id, order_ref):
            raise PurchaseRefused("already_used")  # a racing request used it first
        return PurchaseResult(stored, replayed=not created)

    def _check_order(self, receipt: Receipt, order_ref: str) -> int:
        """The order's price, once the receipt is a one-time payment for it in the asset."""
        if not receipt.one_time:
            raise PurchaseRefused("not_one_time")
        if receipt.order_ref != order_ref:
            raise PurchaseRefused("order_mismatch")
        price = self.price_of(order_ref) if isinstance(order_ref, str) else None
        if price is None:
            raise PurchaseRefused("unknown_order")
        wrong_asset = _asset_mismatch(receipt, self.site.currency, self.site.scale)
        if wrong_asset is not None:
            raise PurchaseRefused("wrong_asset", wrong_asset)
        return price

    def has_purchased(self, session_id: str, order_ref: str) -> bool:
        """Whether the session has bought ``order_ref``: the server's test before sending what
        was sold."""
        _check_session_id(session_id)
        return bool(self.store.purchases(session_id, order_ref))

    def purchases_of(self, session_id: str) -> list[Purchase]:
        """Everything the session bought, oldest first."""
        return self.store.purchases(_check_session_id(session_id))

    def handle_purchase(
        self,
        session_id: str | None,
        body: bytes,
        *,
        content_type: str | None,
        method: str = "POST",
        binding: str | None = None,
        max_body_bytes: int = DEFAULT_PURCHASE_MAX_BODY_BYTES,
    ) -> tuple[int, dict[str, Any]]:
        """The whole purchase endpoint for any framework: ``POST {"receipt", "order_ref"}``
        in; an HTTP status and a JSON document out: ``PurchaseResult.to_json()`` (200) or
        ``{"error": {"code", "message"}}``."""

        def answer(session_id: str, document: object) -> _Answer:
            if (
                not isinstance(document, dict)
                or document.keys() != {"receipt", "order_ref"}
                or not isinstance(document["receipt"], str)
                or not isinstance(document["order_ref"], str)
                or not ORDER_REF_RE.fullmatch(document["order_ref"])
            ):
                return error_document("validation_failed", errors=PURCHASE_ERRORS)
            try:
                result = self.purchase(
                    session_id, document["receipt"], document["order_ref"], binding=binding
                )
            except PurchaseRefused as exc:
                return exc.status, exc.to_document()
            return 200, result.to_json()

        # A failure of the store or the catalogue goes to the operator's log, not the client.
        return _answer_json_post(
            method,
            content_type,
            session_id,
            body,
            answer,
            max_body_bytes=max_body_bytes,
            failure="recording a purchase failed",
            errors=PURCHASE_ERRORS,
        )


class MemoryPurchaseStore:
    """A thread-safe in-process store (tests, single-process sites; lost on restart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_sid: dict[str, Purchase] = {}

    def record(self, purchase: Purchase) -> tuple[Purchase, bool]:
        with self._lock:
            stored = self._by_sid.setdefault(purchase.sid, purchase)
            return stored, stored is purchase

    def find(self, sid: str) -> Purchase | None:
        with self._lock:
            return self._by_sid.get(sid)

    def purchases(self, session_id: str, order_ref: str | None = None) -> list[Purchase]:
        with self._lock:
            return [
                p
                for p in self._by_sid.values()  # insertion order: oldest first
                if p.session_id == session_id and (order_ref is None or p.order_ref == order_ref)
            ]


_COLUMN_NAMES = (
    "sid",
    "session_id",
    "order_ref",
    "jti",
    "pay",
    "amount_minor",
    "currency",
    "scale",
    "purchased_ms",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)


def _from_row(row: Any) -> Purchase:
    sid, session_id, order_ref, jti, pay, amount, currency, scale, at_ms = row
    return Purchase(
        str(sid),
        str(session_id),
        str(order_ref),
        str(jti),
        str(pay),
        int(amount),
        str(currency),
        int(scale),
        int(at_ms),
    )


def _as_row(purchase: Purchase) -> tuple[Any, ...]:
    return (
        purchase.sid,
        purchase.session_id,
        purchase.order_ref,
        purchase.jti,
        purchase.pay,
        purchase.amount_minor,
        purchase.currency,
        purchase.scale,
        purchase.purchased_ms,
    )


class SQLitePurchaseStore:
    """A store in an SQLite file (stdlib ``sqlite3``; it may be the ``SQLiteSiteStore``'s
    file), atomic across threads and processes: the ``sid`` is the primary key and a purchase
    is inserted and read back in one ``BEGIN IMMEDIATE`` transaction. Table
    ``<prefix>_purchases``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        timeout_s: float = 30.0,
    ) -> None:
        table = f"{check_prefix(table_prefix)}_purchases"  # a checked identifier
        self._insert_sql = (
            f"INSERT INTO {table} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            " ON CONFLICT (sid) DO NOTHING"
        )
        self._find_sql = f"SELECT {_COLUMNS} FROM {table} WHERE sid = ?"  # noqa: S608
        self._list_sql = f"SELECT {_COLUMNS} FROM {table} WHERE session_id = ?"  # noqa: S608
        self._database = SQLiteDatabase(
            path,
            timeout_s=timeout_s,
            schema=(
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
            ),
        )

    def record(self, purchase: Purchase) -> tuple[Purchase, bool]:
        with self._database.transaction() as cursor:
            created = cursor.execute(self._insert_sql, _as_row(purchase)).rowcount == 1
            row = cursor.execute(self._find_sql, (purchase.sid,)).fetchone()
        return _from_row(row), created

    def find(self, sid: str) -> Purchase | None:
        row = self._database.fetchone(self._find_sql, (sid,))
        return None if row is None else _from_row(row)

    def purchases(self, session_id: str, order_ref: str | None = None) -> list[Purchase]:
        sql, parameters = self._list_sql, [session_id]
        if order_ref is not None:
            sql, parameters = f"{sql} AND order_ref = ?", [session_id, order_ref]
        rows = self._database.fetchall(f"{sql} ORDER BY purchased_ms, sid", parameters)
        return [_from_row(row) for row in rows]

    def close(self) -> None:
        """Close the database connection."""
        self._database.close()


class SQLAlchemyPurchaseStore:
    """A store in any SQLAlchemy database (tested on SQLite and PostgreSQL): the ``sid`` is
    the primary key, so of racing inserts one wins and the others read its row. SQLAlchemy is
    imported lazily. Table ``<prefix>_purchases``."""

    def __init__(self, engine: Engine, *, table_prefix: str = DEFAULT_TABLE_PREFIX) -> None:
        import sqlalchemy as sa

        prefix = check_prefix(table_prefix)
        self._engine = engine
        self._metadata = metadata = sa.MetaData()
        self._table = sa.Table(
            f"{prefix}_purchases",
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
            sa.CheckConstraint("amount_minor > 0", name=f"ck_{prefix}_purchases_amount"),
            sa.Index(f"ix_{prefix}_purchases_session", "session_id", "order_ref"),
        )
        create_tables(engine, metadata, (self._table,))

    def _select(self) -> Any:
        import sqlalchemy as sa

        table = self._table
        return sa.select(*(table.c[name] for name in _COLUMN_NAMES))

    def record(self, purchase: Purchase) -> tuple[Purchase, bool]:
        import sqlalchemy as sa
        from sqlalchemy.exc import IntegrityError

        values = dict(zip(_COLUMN_NAMES, _as_row(purchase), strict=True))
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
        return None if row is None else _from_row(row)

    def purchases(self, session_id: str, order_ref: str | None = None) -> list[Purchase]:
        table = self._table
        query = self._select().where(table.c.session_id == session_id)
        if order_ref is not None:
            query = query.where(table.c.order_ref == order_ref)
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(table.c.purchased_ms, table.c.sid)).all()
        return [_from_row(row) for row in rows]

    def drop_tables(self) -> None:
        """Drop the table (for tests and teardown)."""
        self._metadata.drop_all(self._engine, checkfirst=True)
