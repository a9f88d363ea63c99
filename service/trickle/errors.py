"""The service's error tree: every error has a stable snake_case ``code`` and one HTTP status.

Every code is documented in docs/errors.md; a test keeps the two in step.
"""

from __future__ import annotations

from typing import ClassVar


class TrickleError(Exception):
    """Base of every error the service raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500


class ConfigError(TrickleError):
    """A setting is missing, malformed, or unsafe for the environment."""

    code = "config_error"


class KeyStoreError(TrickleError):
    """The signing-key store cannot give a key (no active key, or wrong key-encryption key)."""

    code = "key_store_error"


class NotFound(TrickleError):
    """The requested path or resource does not exist."""

    code = "not_found"
    status = 404


class MethodNotAllowed(TrickleError):
    """The path exists but not with this HTTP method."""

    code = "method_not_allowed"
    status = 405


def all_error_classes() -> list[type[TrickleError]]:
    """Every concrete error class, for the docs test and the HTTP error mapping."""
    seen: list[type[TrickleError]] = []
    stack: list[type[TrickleError]] = [TrickleError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


# --- requests -------------------------------------------------------------------------------


class MalformedJSON(TrickleError):
    """The body is not valid UTF-8 JSON, nests deeper than ``jsontext.MAX_DEPTH``, or holds what
    no text can (NaN, Infinity, a lone surrogate)."""

    code = "malformed_json"
    status = 400


class ValidationFailed(TrickleError):
    """The JSON is well-formed but does not match the endpoint's schema (types, unknown fields,
    formats, limits); or text with a NUL character, from anywhere (``db`` refuses it)."""

    code = "validation_failed"
    status = 422


class BodyTooLarge(TrickleError):
    """The body is larger than the endpoint accepts."""

    code = "body_too_large"
    status = 413


class UnsupportedMediaType(TrickleError):
    """The body is not ``application/json``."""

    code = "unsupported_media_type"
    status = 415


class Unauthenticated(TrickleError):
    """No session token, or one that is unknown, expired or revoked."""

    code = "unauthenticated"
    status = 401


class Forbidden(TrickleError):
    """Authenticated, but the resource belongs to someone else."""

    code = "forbidden"
    status = 403


class CsrfFailed(TrickleError):
    """A cookie-authenticated change without the matching CSRF token."""

    code = "csrf_failed"
    status = 403


class RateLimited(TrickleError):
    """Too many attempts in the current window (e.g. logins per account or per address)."""

    code = "rate_limited"
    status = 429


class TooManySignUps(RateLimited):
    """Too many sign-ups from one client address in the current window
    (``TRICKLE_SIGNUP_MAX_PER_ADDRESS`` every ``TRICKLE_SIGNUP_WINDOW_S``)."""

    code = "too_many_sign_ups"
    status = 429


class NotReady(TrickleError):
    """``/readyz``: this process should not get traffic now (the database is unreachable, no
    signing key is loaded, the database's migrations are not this code's, or it is stopping)."""

    code = "not_ready"
    status = 503


class IdempotencyKeyRequired(TrickleError):
    """A money-moving request without an ``Idempotency-Key`` header."""

    code = "idempotency_key_required"
    status = 400


class IdempotencyKeyReused(TrickleError):
    """The ``Idempotency-Key`` was used before with a different request."""

    code = "idempotency_key_reused"
    status = 422


# --- accounts -------------------------------------------------------------------------------


class EmailTaken(TrickleError):
    """Sign-up with an email that already has an account."""

    code = "email_taken"
    status = 409


class InvalidCredentials(TrickleError):
    """Wrong email or password (deliberately not saying which)."""

    code = "invalid_credentials"
    status = 401


# --- ledger -------------------------------------------------------------------------------


class InvalidAmount(TrickleError):
    """An amount that is not a positive integer of minor units below 2^63."""

    code = "invalid_amount"
    status = 422


class InsufficientFunds(TrickleError):
    """The debit would take the account below zero."""

    code = "insufficient_funds"
    status = 409


class CurrencyMismatch(TrickleError):
    """The accounts or the amount are in different assets."""

    code = "currency_mismatch"
    status = 422


class AmountOverflow(TrickleError):
    """A balance or a sum would pass 2^63-1 minor units (or an account that may go negative below
    -(2^63-1)), the most the ledger holds: nothing moved."""

    code = "amount_overflow"
    status = 409


class IdempotencyConflict(TrickleError):
    """A transfer with this idempotency key exists with a different amount or asset."""

    code = "idempotency_conflict"
    status = 409


class AccountNotFound(TrickleError):
    """No ledger account with that id."""

    code = "account_not_found"
    status = 404


# --- funding ------------------------------------------------------------------------------


class VoucherInvalid(TrickleError):
    """No voucher with that code."""

    code = "voucher_invalid"
    status = 404


class VoucherAlreadyRedeemed(TrickleError):
    """The voucher was redeemed before (by anyone)."""

    code = "voucher_already_redeemed"
    status = 409


# --- creators -----------------------------------------------------------------------------


class PayeeNameTaken(TrickleError):
    """A payee with that name exists."""

    code = "payee_name_taken"
    status = 409


class PayeeNotFound(TrickleError):
    """No payee with that name (or not one of yours)."""

    code = "payee_not_found"
    status = 404


class UnsafeUrl(TrickleError):
    """A URL the service refuses to fetch: not http(s), or resolving to a private address."""

    code = "unsafe_url"
    status = 422


class SiteVerificationFailed(TrickleError):
    """The origin did not serve the expected token at /.well-known/trickle.txt."""

    code = "site_verification_failed"
    status = 409


class TooManySiteChecks(TrickleError):
    """Too many site checks are running at once: for this user, or in this service process."""

    code = "too_many_site_checks"
    status = 429


class ClaimBelowMinimum(TrickleError):
    """The available earnings are below the minimum claim amount."""

    code = "claim_below_minimum"
    status = 409


class PayoutNotFound(TrickleError):
    """No payout with that id."""

    code = "payout_not_found"
    status = 404


class PayoutAlreadySettled(TrickleError):
    """The payout was already marked paid or failed."""

    code = "payout_already_settled"
    status = 409


# --- accounts (reader settings) -------------------------------------------------------------


class TooManySiteOverrides(TrickleError):
    """A reader already has the most per-site overrides allowed (200)."""

    code = "too_many_site_overrides"
    status = 409


# --- one-time payments --------------------------------------------------------------------


class BudgetExhausted(TrickleError):
    """The payment would take the reader past their monthly budget."""

    code = "budget_exhausted"
    status = 409


class SiteDisabled(TrickleError):
    """The reader turned this site off (a per-site override): it gets no payments."""

    code = "site_disabled"
    status = 409


# --- card top-ups (docs/funding.md) -------------------------------------------------------


class CardTopupsUnavailable(TrickleError):
    """This service has no card top-ups: no Stripe settings (``TRICKLE_STRIPE_SECRET_KEY``)."""

    code = "card_topups_unavailable"
    status = 404


class TopupNotFound(TrickleError):
    """No top-up with that id (or not one of yours)."""

    code = "topup_not_found"
    status = 404


class TopupAmountOutOfRange(TrickleError):
    """A card top-up below the operator's minimum or above its maximum."""

    code = "topup_amount_out_of_range"
    status = 422


class AmountNotChargeable(TrickleError):
    """The amount has no exact value in the card currency's minor unit (e.g. 5.001 USD)."""

    code = "amount_not_chargeable"
    status = 422


class AccountFrozen(TrickleError):
    """The reader's spending is frozen after a card payment was disputed, or refunded after some
    of it was spent; the operator lifts it (``trickle topups unfreeze``)."""

    code = "account_frozen"
    status = 409


class TopupNotRefundable(TrickleError):
    """The top-up was never credited, is disputed, or is refunded in full already."""

    code = "topup_not_refundable"
    status = 409


class StripeUnavailable(TrickleError):
    """Stripe did not answer, or refused the service's request (the log says why)."""

    code = "stripe_unavailable"
    status = 502


class StripeSignatureInvalid(TrickleError):
    """A webhook without a valid ``Stripe-Signature`` (wrong secret, altered body, or a timestamp
    outside the 300-second tolerance)."""

    code = "stripe_signature_invalid"
    status = 401


class StripeEventInvalid(TrickleError):
    """A signed webhook event that lacks a field the service needs, or has it of the wrong type."""

    code = "stripe_event_invalid"
    status = 400


class StripeEventMismatch(TrickleError):
    """A payment event whose amount or currency is not the top-up's."""

    code = "stripe_event_mismatch"
    status = 422


# --- private-payment tokens (docs/tokens.md) ------------------------------------------------


class TokenError(TrickleError):
    """Base of the token refusals; ``index`` is the position of the token (or blinded element)
    in the request that broke the rule, when one did. All are 409: what the request's schema
    can declare (lengths, the base64url alphabet) is ``validation_failed``; these depend on the
    service's keys, values and records."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class InvalidToken(TokenError):
    """A token that is malformed (not ``{epoch, input, output}`` with a 32-byte input and a
    64-byte output in base64url), repeated in one request, or whose output is not the token
    key's PRF of its input: forged, or made under another epoch's or another currency's key."""

    code = "invalid_token"
    status = 409


class TokenSpent(TokenError):
    """The token was spent or refunded before: a token pays once."""

    code = "token_spent"
    status = 409


class UnknownEpoch(TokenError):
    """No token key of this currency has that epoch, or (issuance) the epoch is not issuing now:
    refetch ``/.well-known/trickle-token-keys``."""

    code = "unknown_epoch"
    status = 409


class EpochExpired(TokenError):
    """The token's epoch is past its ``spend_until``: it no longer pays; refund it."""

    code = "epoch_expired"
    status = 409


class InvalidElement(TokenError):
    """(Issuance) a blinded element that is not the canonical encoding of a ristretto255 element
    other than the identity; the message names its position."""

    code = "invalid_element"
    status = 409


class TooManyTokens(TokenError):
    """More tokens than the request allows: more than a price needs, or past the batch limit."""

    code = "too_many_tokens"
    status = 409


class TooFewTokens(TokenError):
    """Fewer tokens than the price needs (``ceil(amount / value)``)."""

    code = "too_few_tokens"
    status = 409
