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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ReceiptError
from .receipts import Receipt
from .site import (
    SITE_ERRORS,
    SiteReceipts,
    _Answer,
    _answer_json_post,
    _asset_mismatch,
    _check_session_id,
    error_document,
)

__all__ = [
    "DEFAULT_PURCHASE_MAX_BODY_BYTES",
    "PURCHASE_ERRORS",
    "Purchase",
    "PurchaseRefused",
    "PurchaseResult",
    "PurchaseStore",
    "Purchases",
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
    """Keeps one purchase per receipt ``sid`` (``trickle_verifier.stores`` has one per
    backend)."""

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
