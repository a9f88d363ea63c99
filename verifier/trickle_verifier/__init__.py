"""Verify Trickle web-monetization receipts offline (docs/receipts.md) and credit each stream's
money once; ``SiteReceipts`` credits receipts forwarded by a site's pages to visitor sessions,
and ``Purchases`` sells items for one-time receipts.
Only PyNaCl is required; the SQLAlchemy stores import SQLAlchemy when built, and
``trickle_verifier.asgi`` (Starlette) is imported only if you import it."""

from __future__ import annotations

from ._jws import MAX_JSON_DEPTH
from .credits import CreditStore, CreditTracker
from .errors import (
    RECEIPT_ERRORS,
    BadSignature,
    BindingMismatch,
    Expired,
    InvalidAmount,
    InvalidClaim,
    InvalidJWKS,
    InvalidKey,
    InvalidKid,
    JWKSFetchFailed,
    JWKSTooLarge,
    KeySetError,
    MalformedHeader,
    MalformedJWS,
    MalformedPayload,
    MissingClaim,
    NotYetValid,
    ReceiptError,
    TokenTooLarge,
    TotalBelowAmount,
    UnknownKid,
    UnsupportedAlgorithm,
    WrongAudience,
    WrongIssuer,
    WrongPayee,
    WrongType,
    error_for_code,
)
from .keys import KeySet, PublicKey
from .purchases import (
    PURCHASE_ERRORS,
    Purchase,
    PurchaseRefused,
    PurchaseResult,
    Purchases,
    PurchaseStore,
)
from .receipts import Receipt
from .site import SITE_ERRORS, ForwardResult, ReceiptResult, SiteReceipts, SiteStore
from .stores import (
    MemoryCreditStore,
    MemoryPurchaseStore,
    MemorySiteStore,
    SQLAlchemyCreditStore,
    SQLAlchemyPurchaseStore,
    SQLAlchemySiteStore,
    SQLiteCreditStore,
    SQLitePurchaseStore,
    SQLiteSiteStore,
)
from .verifier import MAX_TOKEN_BYTES, RECEIPT_TYPE, Verifier

__version__ = "0.1.0"

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_BYTES",
    "PURCHASE_ERRORS",
    "RECEIPT_ERRORS",
    "RECEIPT_TYPE",
    "SITE_ERRORS",
    "BadSignature",
    "BindingMismatch",
    "CreditStore",
    "CreditTracker",
    "Expired",
    "ForwardResult",
    "InvalidAmount",
    "InvalidClaim",
    "InvalidJWKS",
    "InvalidKey",
    "InvalidKid",
    "JWKSFetchFailed",
    "JWKSTooLarge",
    "KeySet",
    "KeySetError",
    "MalformedHeader",
    "MalformedJWS",
    "MalformedPayload",
    "MemoryCreditStore",
    "MemoryPurchaseStore",
    "MemorySiteStore",
    "MissingClaim",
    "NotYetValid",
    "PublicKey",
    "Purchase",
    "PurchaseRefused",
    "PurchaseResult",
    "PurchaseStore",
    "Purchases",
    "Receipt",
    "ReceiptError",
    "ReceiptResult",
    "SQLAlchemyCreditStore",
    "SQLAlchemyPurchaseStore",
    "SQLAlchemySiteStore",
    "SQLiteCreditStore",
    "SQLitePurchaseStore",
    "SQLiteSiteStore",
    "SiteReceipts",
    "SiteStore",
    "TokenTooLarge",
    "TotalBelowAmount",
    "UnknownKid",
    "UnsupportedAlgorithm",
    "Verifier",
    "WrongAudience",
    "WrongIssuer",
    "WrongPayee",
    "WrongType",
    "__version__",
    "error_for_code",
]
