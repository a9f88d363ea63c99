"""The in-process stores: thread-safe, for tests and single-process sites, forgotten on restart."""

from __future__ import annotations

import threading

from ..purchases import Purchase
from ..receipts import Receipt
from ._tables import check_total

__all__ = ["MemoryCreditStore", "MemoryPurchaseStore", "MemorySiteStore"]


def _raise_total(totals: dict[str, int], sid: str, total_minor: int) -> int:
    """The credit rule (docs/receipts.md §4) on ``totals``, sid -> highest ``tot``: raise the
    total of ``sid`` to ``total_minor`` if that is higher; return the increase. The caller
    holds the store's lock."""
    previous = totals.get(sid, 0)
    if total_minor <= previous:
        return 0
    totals[sid] = total_minor
    return total_minor - previous


class MemoryCreditStore:
    """A thread-safe in-process store (for tests and single-process sites; lost on restart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}

    def raise_total(self, sid: str, aud: str, pay: str, total_minor: int) -> int:
        check_total(total_minor)
        with self._lock:
            return _raise_total(self._totals, sid, total_minor)

    def total_for(self, sid: str) -> int:
        """The highest ``tot`` seen for ``sid`` (0 if none)."""
        with self._lock:
            return self._totals.get(sid, 0)


class MemorySiteStore:
    """A thread-safe in-process store (tests, single-process sites; lost on restart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}  # sid -> the visitor session it was first credited to
        self._totals: dict[str, int] = {}  # sid -> highest tot
        self._credits: dict[str, list[tuple[int, int]]] = {}  # session -> [(at_ms, minor)]

    def credit(self, session_id: str, receipt: Receipt, at_ms: int) -> int | None:
        with self._lock:
            if self._owners.setdefault(receipt.sid, session_id) != session_id:
                return None
            increase = _raise_total(self._totals, receipt.sid, receipt.total_minor)
            if increase:
                self._credits.setdefault(session_id, []).append((at_ms, increase))
            return increase

    def paid(self, session_id: str, since_ms: int | None = None) -> int:
        with self._lock:
            credits = self._credits.get(session_id, [])
            return sum(minor for at_ms, minor in credits if since_ms is None or at_ms >= since_ms)


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
