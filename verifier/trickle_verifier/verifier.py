"""``Verifier``: checks a receipt token against the rules of docs/receipts.md §3, in their
order, and returns a ``Receipt`` or raises the ``ReceiptError`` that names the first broken rule."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from ._jws import (
    DecodeError,
    compact_shape_problem,
    decode_checked_ascii,
    describe,
    has_canonical_tail,
    json_type_name,
    parse_json_object,
)
from ._jws import decode_checked as _b64decode
from ._origins import normalize_origin
from .errors import (
    BadSignature,
    BindingMismatch,
    Expired,
    InvalidAmount,
    InvalidClaim,
    InvalidKid,
    MalformedHeader,
    MalformedJWS,
    MalformedPayload,
    MissingClaim,
    NotYetValid,
    TokenTooLarge,
    TotalBelowAmount,
    UnknownKid,
    UnsupportedAlgorithm,
    WrongAudience,
    WrongIssuer,
    WrongPayee,
    WrongType,
)
from .keys import KID_RE, KeySet
from .receipts import Receipt

__all__ = ["ALGORITHM", "MAX_TOKEN_BYTES", "RECEIPT_TYPE", "REQUIRED_CLAIMS", "Verifier"]

MAX_TOKEN_BYTES = 4096
ALGORITHM = "EdDSA"
RECEIPT_TYPE = "trickle-receipt+jwt"
REQUIRED_CLAIMS = frozenset(
    ("iss", "aud", "pay", "sid", "seq", "amt", "tot", "cur", "scale", "iat", "exp", "jti")
)
_REQUIRED_IN_ORDER = (
    "iss",
    "aud",
    "pay",
    "sid",
    "seq",
    "amt",
    "tot",
    "cur",
    "scale",
    "iat",
    "exp",
    "jti",
)

_SIGNATURE_B64_LENGTH = 86  # 64 bytes
_SIGNATURE_LAST_CHARS = frozenset("AQgw")  # the 4 bits past the 64th byte must be zero
_COMPACT_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CURRENCY_RE = re.compile(r"[A-Z0-9]{3,12}")
_BINDING_RE = re.compile(r"[\x20-\x7e]{1,256}")
_ORDER_REF_RE = re.compile(r"[\x20-\x7e]{1,128}")
_AMOUNT_RE = re.compile(r"0|[1-9][0-9]{0,18}")
_MAX_AMOUNT = 2**63 - 1
_MAX_SAFE_INTEGER = 2**53 - 1  # times and seq must survive a JavaScript verifier unchanged
_HEADER_CACHE_SIZE = 256


def _same_json_value(left: object, right: object) -> bool:
    """JSON equality as a JavaScript verifier's ``===`` sees it (1 == 1.0, true != 1)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    return left is None and right is None


class Verifier:
    """Verifies Trickle receipts for one site.

    ``issuer`` is the origin of the service the site trusts, ``audience`` the site's own
    origin: both are normalised as the service normalises origins (``https://Blog.Example:443/``
    is ``https://blog.example``), and anything that is not an http(s) origin is a ``ValueError``
    (docs/receipts.md §3.1). ``payees`` are the payment pointer URLs it accepts and ``keys`` the
    issuer's key set. The algorithm is pinned to EdDSA; ``leeway_s`` allows for clock skew;
    ``clock`` returns the current time in seconds.
    """

    __slots__ = ("_audience", "_clock", "_headers", "_issuer", "_keys", "_leeway_s", "_payees")

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        payees: Iterable[str],
        keys: KeySet,
        leeway_s: float = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        payee_set = frozenset(payees)
        if isinstance(payees, str):
            raise TypeError("payees must be a collection of payment pointer URLs, not one str")
        if not isinstance(issuer, str) or not issuer:
            raise TypeError(f"issuer must be a non-empty str, got {issuer!r}")
        if not isinstance(audience, str) or not audience:
            raise TypeError(f"audience must be a non-empty str, got {audience!r}")
        if not payee_set or not all(isinstance(payee, str) and payee for payee in payee_set):
            raise TypeError("payees must hold at least one non-empty str")
        if not isinstance(keys, KeySet):
            raise TypeError(f"keys must be a KeySet, got {type(keys).__name__}")
        if leeway_s < 0:
            raise ValueError(f"leeway_s must be >= 0, got {leeway_s}")
        self._issuer = normalize_origin("issuer", issuer)
        self._audience = normalize_origin("audience", audience)
        self._payees = payee_set
        self._keys = keys
        self._leeway_s = leeway_s
        self._clock = clock
        # header segment -> (kid, typ is right): rules 3-5 depend on the segment alone, and a
        # service signs every receipt with the same few headers.
        self._headers: dict[str, tuple[str, bool]] = {}

    def verify(
        self, token: str, *, binding: str | None = None, now: float | None = None
    ) -> Receipt:
        """Return the verified ``Receipt`` or raise the ``ReceiptError`` of the first rule
        broken. ``binding``: the value the site gave the page, if it expects one (rule 19).
        ``now``: seconds since the epoch to verify at (default: the clock)."""
        kid, claims = self._authenticate(token)
        return self._accept(token, kid, claims, binding, now)

    def _authenticate(self, token: str) -> tuple[str, dict[str, Any]]:
        """Rules 1-9: the token's structure, header and signature; the parsed payload."""
        # Rule 1: a string of at most 4096 bytes.
        if not isinstance(token, str):
            raise MalformedJWS(f"expected the token as a str, got {type(token).__name__}")
        is_ascii = token.isascii()
        if len(token) > MAX_TOKEN_BYTES or (
            not is_ascii and len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES
        ):
            raise TokenTooLarge(f"expected at most {MAX_TOKEN_BYTES} bytes, got a longer token")

        # Rule 2: three non-empty canonical base64url parts; a 64-byte signature.
        parts = token.split(".")
        if (
            len(parts) != 3
            or not is_ascii
            or (token_bytes := token.encode("ascii")).translate(None, _COMPACT_ALPHABET)
            or not (parts[0] and parts[1] and parts[2])
        ):
            raise MalformedJWS(compact_shape_problem(token))
        header_b64, payload_b64, signature_b64 = parts
        cached = self._headers.get(header_b64)
        if not (cached is not None or has_canonical_tail(header_b64)) or not has_canonical_tail(
            payload_b64
        ):
            raise MalformedJWS(
                "expected canonical base64url (length not 1 mod 4, zero trailing bits), got a "
                "header or payload that is not"
            )
        if (
            len(signature_b64) != _SIGNATURE_B64_LENGTH
            or signature_b64[-1] not in _SIGNATURE_LAST_CHARS
        ):
            raise MalformedJWS(_signature_problem(signature_b64))

        # Rules 3-5: the header.
        if cached is None:
            cached = self._check_header(header_b64)
        kid, type_ok = cached

        # Rule 6: a known key.
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKid(f"expected a kid of the key set {list(self._keys.kids)}, got {kid!r}")

        # Rule 7: the signature, before anything in the payload is believed.
        signed_length = len(header_b64) + 1 + len(payload_b64)
        signing_input = token_bytes[:signed_length]
        try:
            crypto_sign_open(
                decode_checked_ascii(token_bytes[signed_length + 1 :]) + signing_input, key.raw
            )
        except BadSignatureError:
            raise BadSignature(
                f"expected a valid Ed25519 signature by kid {kid!r}, it is not"
            ) from None

        # Rule 8: the type.
        if not type_ok:
            header = parse_json_object(_b64decode(header_b64))
            raise WrongType(f"expected typ {RECEIPT_TYPE!r}, got {describe(header.get('typ'))}")

        # Rule 9: the payload.
        try:
            claims = parse_json_object(
                decode_checked_ascii(token_bytes[len(header_b64) + 1 : signed_length])
            )
        except DecodeError as exc:
            raise MalformedPayload(str(exc)) from None

        return kid, claims

    def _accept(
        self,
        token: str,
        kid: str,
        claims: dict[str, Any],
        binding: str | None,
        now: float | None,
    ) -> Receipt:
        """Rules 10-19 on authenticated claims."""
        # Rule 10: required claims.
        if not claims.keys() >= REQUIRED_CLAIMS:
            missing = [name for name in _REQUIRED_IN_ORDER if name not in claims]
            raise MissingClaim(f"expected the claims {', '.join(missing)}, they are absent")

        # Rule 11: types and shapes.
        if self._check_claim_shapes(claims):
            reparsed = _reparse_with_negative_zero(token)
            if reparsed is not None:
                self._check_claim_shapes(reparsed)

        # Rules 12-14: for us.
        if claims["iss"] != self._issuer:
            raise WrongIssuer(f"expected iss {self._issuer!r}, got {describe(claims['iss'])}")
        if claims["aud"] != self._audience:
            raise WrongAudience(f"expected aud {self._audience!r}, got {describe(claims['aud'])}")
        if claims["pay"] not in self._payees:
            raise WrongPayee(
                f"expected pay in {sorted(self._payees)}, got {describe(claims['pay'])}"
            )

        # Rules 15-16: time.
        if now is None:
            now = self._clock()
        expires_at: int = claims["exp"]
        issued_at: int = claims["iat"]
        if now > expires_at + self._leeway_s:
            raise Expired(
                f"expected now <= exp + leeway ({expires_at} + {self._leeway_s}), got now {now}"
            )
        if issued_at > now + self._leeway_s:
            raise NotYetValid(
                f"expected iat <= now + leeway ({now} + {self._leeway_s}), got iat {issued_at}"
            )

        # Rules 17-18: amounts.
        amount = claims["amt"]
        total = claims["tot"]
        if (
            type(amount) is not str
            or type(total) is not str
            or not _AMOUNT_RE.fullmatch(amount)
            or not _AMOUNT_RE.fullmatch(total)
            or len(amount) == 19  # only 19-digit values can reach 2^63
            or len(total) == 19
        ):
            _parse_amount("amt", amount)  # raises with the precise reason, if there is one
            _parse_amount("tot", total)
        amount_minor = int(amount)
        total_minor = int(total)
        if total_minor < amount_minor:
            raise TotalBelowAmount(f"expected tot >= amt ({amount_minor}), got tot {total_minor}")

        # Rule 19: the site's binding.
        bound = claims.get("bnd")
        if binding is not None and bound != binding:
            if bound is None:
                raise BindingMismatch("expected a bnd claim, the receipt has none")
            raise BindingMismatch(f"expected bnd {describe(binding)}, got {describe(bound)}")

        return Receipt(  # positional: this is the hot path
            claims["iss"],
            claims["aud"],
            claims["pay"],
            claims["sid"],
            claims["seq"],
            amount_minor,
            total_minor,
            claims["cur"],
            claims["scale"],
            issued_at,
            expires_at,
            claims["jti"],
            bound,
            claims.get("otp", False),
            claims.get("ord"),
            kid,
            token,
        )

    def _check_header(self, header_b64: str) -> tuple[str, bool]:
        """Rules 3-5 on a header segment already known to be canonical base64url."""
        try:
            header = parse_json_object(_b64decode(header_b64))
        except DecodeError as exc:
            raise MalformedHeader(str(exc)) from None
        if "crit" in header:
            raise MalformedHeader("expected no 'crit' member, got one")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise UnsupportedAlgorithm(f"expected alg {ALGORITHM!r}, got {describe(alg)}")
        kid = header.get("kid")
        if type(kid) is not str or not KID_RE.fullmatch(kid):
            raise InvalidKid(
                f"expected a kid matching ^[A-Za-z0-9_-]{{1,64}}$, got {describe(kid)}"
            )
        result = (kid, header.get("typ") == RECEIPT_TYPE)
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            self._headers.clear()  # bounded: forged headers cannot grow it
        self._headers[header_b64] = result
        return result

    @staticmethod
    def _check_claim_shapes(claims: dict[str, Any]) -> bool:
        """Rule 11: every claim but ``amt``/``tot`` has its §2 type and shape; ``exp > iat``.
        True when ``scale`` or ``iat`` is 0, which the payload may have written as ``-0``: the
        parser reads that as 0, so only a second look at the text can tell."""
        for name in ("iss", "aud", "pay"):
            if type(claims[name]) is not str:
                raise InvalidClaim(
                    f"expected {name} to be a string, got a JSON {json_type_name(claims[name])}"
                )
        for name in ("sid", "jti"):
            value = claims[name]
            if type(value) is not str or not _ID_RE.fullmatch(value):
                raise InvalidClaim(
                    f"expected {name} matching ^[A-Za-z0-9_-]{{1,64}}$, got {describe(value)}"
                )
        seq = claims["seq"]
        # type() is, not isinstance(): a JSON true is a Python bool, an int subclass.
        if type(seq) is not int or not 1 <= seq <= _MAX_SAFE_INTEGER:
            raise InvalidClaim(f"expected seq to be an integer in 1..2^53-1, got {describe(seq)}")
        currency = claims["cur"]
        if type(currency) is not str or not _CURRENCY_RE.fullmatch(currency):
            raise InvalidClaim(
                f"expected cur matching ^[A-Z0-9]{{3,12}}$, got {describe(currency)}"
            )
        scale = claims["scale"]
        if type(scale) is not int or not 0 <= scale <= 18:
            raise InvalidClaim(f"expected scale to be an integer in 0..18, got {describe(scale)}")
        for name in ("iat", "exp"):
            value = claims[name]
            if type(value) is not int or not 0 <= value <= _MAX_SAFE_INTEGER:
                raise InvalidClaim(
                    f"expected {name} to be an integer in 0..2^53-1 (seconds), "
                    f"got {describe(value)}"
                )
        if claims["exp"] <= claims["iat"]:
            raise InvalidClaim(f"expected exp > iat ({claims['iat']}), got exp {claims['exp']}")
        if "bnd" in claims:
            bound = claims["bnd"]
            if type(bound) is not str or not _BINDING_RE.fullmatch(bound):
                raise InvalidClaim(
                    f"expected bnd to be 1-256 printable ASCII chars, got {describe(bound)}"
                )
        if "ord" in claims:
            order_ref = claims["ord"]
            if type(order_ref) is not str or not _ORDER_REF_RE.fullmatch(order_ref):
                raise InvalidClaim(
                    f"expected ord to be 1-128 printable ASCII chars, got {describe(order_ref)}"
                )
        if "otp" in claims:
            one_time = claims["otp"]
            if type(one_time) is not bool:
                raise InvalidClaim(f"expected otp to be a boolean, got {describe(one_time)}")
            if one_time and (seq != 1 or not _same_json_value(claims["amt"], claims["tot"])):
                raise InvalidClaim(
                    f"expected a one-time receipt to have seq 1 and amt == tot, got seq {seq}, "
                    f"amt {describe(claims['amt'])}, tot {describe(claims['tot'])}"
                )
        return not (scale and claims["iat"])


def _reparse_with_negative_zero(token: str) -> dict[str, Any] | None:
    """For rule 11 on a ``scale`` or ``iat`` of 0: the claims again with a ``-0`` literal as
    ``-0.0`` (not an integer of the profile; the first parse read it as 0), or None when the
    payload holds no ``-0`` at all."""
    payload = _b64decode(token.split(".")[1])
    if b"-0" not in payload:
        return None
    return parse_json_object(payload, negative_zero_as_float=True)


def _signature_problem(signature_b64: str) -> str:
    if not has_canonical_tail(signature_b64):
        return "expected canonical base64url, got a signature with trailing bits set"
    return f"expected a 64-byte signature, got {len(_b64decode(signature_b64))} bytes"


def _parse_amount(name: str, value: object) -> int:
    """Rule 17: a canonical decimal integer string below 2^63."""
    if type(value) is not str:
        raise InvalidAmount(
            f"expected {name} as a decimal string, got a JSON {json_type_name(value)}"
        )
    if not _AMOUNT_RE.fullmatch(value):
        raise InvalidAmount(
            f"expected {name} matching ^(0|[1-9][0-9]*)$ below 2^63, got {describe(value)}"
        )
    amount = int(value)
    if amount > _MAX_AMOUNT:
        raise InvalidAmount(f"expected {name} below 2^63, got {value}")
    return amount
