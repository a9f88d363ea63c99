"""Verify Trickle web-monetization receipts offline (docs/receipts.md) and credit each stream's
money once. Only PyNaCl is required; ``SQLAlchemyCreditStore`` imports SQLAlchemy when built."""

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
from .verifier import MAX_TOKEN_BYTES, RECEIPT_TYPE, Verifier

__version__ = "0.1.0"

__all__ = [
    "MAX_TOKEN_BYTES",
    "RECEIPT_ERRORS",
    "RECEIPT_TYPE",
    "BadSignature",
    "BindingMismatch",
    "CreditStore",
    "CreditTracker",
    "Expired",
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
    "MissingClaim",
    "NotYetValid",
    "PublicKey",
    "Receipt",
    "ReceiptError",
    "SQLAlchemyCreditStore",
    "SQLiteCreditStore",
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
