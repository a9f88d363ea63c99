"""Verify Trickle web-monetization receipts offline (docs/receipts.md) and credit each stream's
money once; ``SiteReceipts`` credits receipts forwarded by a site's pages to visitor sessions.
Only PyNaCl is required; the SQLAlchemy stores import SQLAlchemy when built, and
``trickle_verifier.asgi`` (Starlette) is imported only if you import it."""

from __future__ import annotations

from .credits import (
    CreditStore,
    CreditTracker,
    MemoryCreditStore,
    SQLAlchemyCreditStore,
    SQLiteCreditStore,
)
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
from .receipts import Receipt
from .site import (
    SITE_ERRORS,
    ForwardResult,
    MemorySiteStore,
    ReceiptResult,
    SiteReceipts,
    SiteStore,
    SQLAlchemySiteStore,
    SQLiteSiteStore,
)
from .verifier import MAX_TOKEN_BYTES, RECEIPT_TYPE, Verifier

__version__ = "0.1.0"

__all__ = [
    "MAX_TOKEN_BYTES",
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
    "MemorySiteStore",
    "MissingClaim",
    "NotYetValid",
    "PublicKey",
    "Receipt",
    "ReceiptError",
    "ReceiptResult",
    "SQLAlchemyCreditStore",
    "SQLAlchemySiteStore",
    "SQLiteCreditStore",
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
