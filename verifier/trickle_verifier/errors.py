"""Every error the verifier raises: one ``ReceiptError`` tree whose codes are the rules of
docs/receipts.md §3, and one ``KeySetError`` tree for loading the issuer's keys."""

from __future__ import annotations

__all__ = [
    "RECEIPT_ERRORS",
    "BadSignature",
    "BindingMismatch",
    "Expired",
    "InvalidAmount",
    "InvalidClaim",
    "InvalidJWKS",
    "InvalidKey",
    "InvalidKid",
    "JWKSFetchFailed",
    "JWKSTooLarge",
    "KeySetError",
    "MalformedHeader",
    "MalformedJWS",
    "MalformedPayload",
    "MissingClaim",
    "NotYetValid",
    "ReceiptError",
    "TokenTooLarge",
    "TotalBelowAmount",
    "UnknownKid",
    "UnsupportedAlgorithm",
    "WrongAudience",
    "WrongIssuer",
    "WrongPayee",
    "WrongType",
    "error_for_code",
]


class ReceiptError(Exception):
    """Base of every receipt verification failure; ``code`` names the broken rule of
    docs/receipts.md §3. Catch this class to reject a receipt for any reason."""

    code: str = "receipt_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class TokenTooLarge(ReceiptError):
    """Rule 1: the token is longer than 4096 bytes."""

    code = "token_too_large"


class MalformedJWS(ReceiptError):
    """Rules 1-2: the token is not a string, or not three non-empty canonical base64url parts
    separated by ``.``, or the signature does not decode to 64 bytes."""

    code = "malformed_jws"


class MalformedHeader(ReceiptError):
    """Rule 3: the protected header is not a UTF-8 JSON object without duplicate members, or
    it carries ``crit``."""

    code = "malformed_header"


class UnsupportedAlgorithm(ReceiptError):
    """Rule 4: header ``alg`` is missing or is not exactly ``"EdDSA"``."""

    code = "unsupported_algorithm"


class InvalidKid(ReceiptError):
    """Rule 5: header ``kid`` is missing, not a string, or not ``^[A-Za-z0-9_-]{1,64}$``."""

    code = "invalid_kid"


class UnknownKid(ReceiptError):
    """Rule 6: no key of the key set has the header's ``kid`` (even after a permitted refresh)."""

    code = "unknown_kid"


class BadSignature(ReceiptError):
    """Rule 7: the Ed25519 signature does not verify with the key named by ``kid``."""

    code = "bad_signature"


class WrongType(ReceiptError):
    """Rule 8: header ``typ`` is missing or not exactly ``"trickle-receipt+jwt"``."""

    code = "wrong_type"


class MalformedPayload(ReceiptError):
    """Rule 9: the payload is not a UTF-8 JSON object without duplicate members."""

    code = "malformed_payload"


class MissingClaim(ReceiptError):
    """Rule 10: a required claim is absent from the payload."""

    code = "missing_claim"


class InvalidClaim(ReceiptError):
    """Rule 11: a claim other than ``amt``/``tot`` has the wrong type or shape, ``exp <= iat``,
    or ``otp`` is true while ``seq != 1`` or ``amt != tot``."""

    code = "invalid_claim"


class WrongIssuer(ReceiptError):
    """Rule 12: ``iss`` is not the issuer the verifier trusts."""

    code = "wrong_issuer"


class WrongAudience(ReceiptError):
    """Rule 13: ``aud`` is not the site's own origin."""

    code = "wrong_audience"


class WrongPayee(ReceiptError):
    """Rule 14: ``pay`` is not one of the site's payees."""

    code = "wrong_payee"


class Expired(ReceiptError):
    """Rule 15: ``now > exp + leeway``."""

    code = "expired"


class NotYetValid(ReceiptError):
    """Rule 16: ``iat > now + leeway`` (issued in the future)."""

    code = "not_yet_valid"


class InvalidAmount(ReceiptError):
    """Rule 17: ``amt`` or ``tot`` is not a canonical decimal integer string below 2^63."""

    code = "invalid_amount"


class TotalBelowAmount(ReceiptError):
    """Rule 18: ``tot < amt``."""

    code = "total_below_amount"


class BindingMismatch(ReceiptError):
    """Rule 19: the site expects a binding value and ``bnd`` is absent or different."""

    code = "binding_mismatch"


RECEIPT_ERRORS: dict[str, type[ReceiptError]] = {
    cls.code: cls
    for cls in (
        TokenTooLarge,
        MalformedJWS,
        MalformedHeader,
        UnsupportedAlgorithm,
        InvalidKid,
        UnknownKid,
        BadSignature,
        WrongType,
        MalformedPayload,
        MissingClaim,
        InvalidClaim,
        WrongIssuer,
        WrongAudience,
        WrongPayee,
        Expired,
        NotYetValid,
        InvalidAmount,
        TotalBelowAmount,
        BindingMismatch,
    )
}
"""Every receipt error code of docs/receipts.md §3, in rule order, mapped to its class."""


def error_for_code(code: str) -> type[ReceiptError]:
    """Return the ``ReceiptError`` subclass for a stable error code; ``KeyError`` if unknown."""
    return RECEIPT_ERRORS[code]


class KeySetError(Exception):
    """Base of every failure to build or load a key set (never raised by ``verify``)."""

    code: str = "key_set_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidKey(KeySetError):
    """A public key is not 32 bytes, or its ``kid`` is not ``^[A-Za-z0-9_-]{1,64}$``."""

    code = "invalid_key"


class InvalidJWKS(KeySetError):
    """A JWK Set document is not a JSON object with a ``keys`` array, has duplicate members or
    ``kid``s, an Ed25519 key with a bad ``kid``/``x`` or private material, or no usable key."""

    code = "invalid_jwks"


class JWKSFetchFailed(KeySetError):
    """The JWK Set could not be read from its file or URL (network error, timeout, non-200
    status, unsupported URL scheme)."""

    code = "jwks_fetch_failed"


class JWKSTooLarge(KeySetError):
    """The fetched JWK Set is larger than the size limit (64 KiB by default)."""

    code = "jwks_too_large"
