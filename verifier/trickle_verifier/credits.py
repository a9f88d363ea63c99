"""Counting money from receipts (docs/receipts.md §4): credit only the increase of ``tot`` over
the highest ``tot`` already seen for the stream's ``sid``, atomically, in memory or in a database
(the stores are in ``trickle_verifier.stores``).

Invariant: for every ``sid``, the sum of what ``credit`` returned equals the highest ``tot`` seen,
whatever the order, duplication or concurrency of the receipts.
"""

from __future__ import annotations

from typing import Protocol

from .receipts import Receipt

__all__ = [
    "DEFAULT_TABLE_NAME",
    "CreditStore",
    "CreditTracker",
]

DEFAULT_TABLE_NAME = "trickle_stream_credits"


class CreditStore(Protocol):
    """Keeps the highest ``tot`` seen per ``sid`` (``trickle_verifier.stores`` has one per
    backend)."""

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
