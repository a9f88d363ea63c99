"""Where the credit, site and purchase helpers keep their data: one module per backend, each
with the three stores of that backend (``memory``, ``sqlite``, ``sqlalchemy``). The protocols
they implement are ``CreditStore``, ``SiteStore`` and ``PurchaseStore``. Importing this package
never imports SQLAlchemy: an SQLAlchemy store imports it when it is built."""

from __future__ import annotations

from .memory import MemoryCreditStore, MemoryPurchaseStore, MemorySiteStore
from .sqlalchemy import SQLAlchemyCreditStore, SQLAlchemyPurchaseStore, SQLAlchemySiteStore
from .sqlite import SQLiteCreditStore, SQLitePurchaseStore, SQLiteSiteStore

__all__ = [
    "MemoryCreditStore",
    "MemoryPurchaseStore",
    "MemorySiteStore",
    "SQLAlchemyCreditStore",
    "SQLAlchemyPurchaseStore",
    "SQLAlchemySiteStore",
    "SQLiteCreditStore",
    "SQLitePurchaseStore",
    "SQLiteSiteStore",
]
