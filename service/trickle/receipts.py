"""Receipt signing: claims to a compact JWS (EdDSA over Ed25519), as docs/receipts.md specifies."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import re
import secrets

from nacl.bindings import crypto_sign

from trickle.keys import SigningKeyPair, b64url, b64url_bytes
from trickle.money import MAX_AMOUNT

RECEIPT_TYPE = "trickle-receipt+jwt"
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ORDER_REF_PATTERN = re.compile(r"^[\x20-\x7e]{1,128}$")  # the ``ord`` claim: printable ASCII


def new_stream_id() -> str:
    """128 random bits: fresh for every page view, never derived from the reader."""
    return b64url(secrets.token_bytes(16))


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptClaims:
    """What one receipt states. Amounts are integers of minor units; never floats."""

    iss: str
    aud: str
    pay: str
    sid: str
    seq: int
    amount_minor: int
    total_minor: int
    currency: str
    scale: int
    issued_at: int
    expires_at: int
    binding: str | None = None
    one_time: bool = False
    order_ref: str | None = None  # ``ord``: the site's order reference (one-time payments)
    jti: str | None = None  # None: the signer makes one; a stored one re-signs identically

    def __post_init__(self) -> None:
        if not 0 <= self.amount_minor <= self.total_minor <= MAX_AMOUNT:
            raise ValueError(
                f"need 0 <= amount <= total < 2^63, got {self.amount_minor} and {self.total_minor}"
            )
        if not _TOKEN_CHARS.fullmatch(self.sid):
            raise ValueError(f"stream id must match {_TOKEN_CHARS.pattern}, got {self.sid!r}")
        if self.seq < 1 or self.expires_at <= self.issued_at:
            raise ValueError("seq must be >= 1 and expires_at after issued_at")
        if self.one_time and (self.seq != 1 or self.amount_minor != self.total_minor):
            raise ValueError("a one-time receipt has seq 1 and amount == total")
        if self.order_ref is not None and not ORDER_REF_PATTERN.fullmatch(self.order_ref):
            raise ValueError(f"order_ref must be 1-128 printable ASCII, got {self.order_ref!r}")
        if self.jti is not None and not _TOKEN_CHARS.fullmatch(self.jti):
            raise ValueError(f"jti must match {_TOKEN_CHARS.pattern}, got {self.jti!r}")


@functools.lru_cache(maxsize=65_536)
def _stream_prefix(iss: str, aud: str, pay: str, sid: str) -> str:
    """The claims that stay the same for every receipt of a stream, JSON-encoded once."""
    return f'{{"iss":{_json(iss)},"aud":{_json(aud)},"pay":{_json(pay)},"sid":{_json(sid)},'


@functools.lru_cache(maxsize=4096)
def _json(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


class ReceiptSigner:
    """Signs receipts with one key, fast: the header is encoded once per key, a stream's constant
    claims once per stream, and only the changing fields per receipt."""

    __slots__ = ("_header_b64", "_jti_counter", "_jti_prefix", "_secret_key", "kid")

    def __init__(self, key: SigningKeyPair) -> None:
        self.kid = key.kid
        self._secret_key = key.secret_key
        header = {"alg": "EdDSA", "kid": key.kid, "typ": RECEIPT_TYPE}
        self._header_b64 = b64url_bytes(json.dumps(header, separators=(",", ":")).encode()) + b"."
        # jti: a random per-signer prefix and a counter: unique without a syscall per receipt.
        self._jti_prefix = b64url(secrets.token_bytes(9))
        self._jti_counter = itertools.count(1)

    def new_jti(self) -> str:
        """A receipt id of this signer's, chosen before signing (to be stored with the claims)."""
        return f"{self._jti_prefix}{next(self._jti_counter):x}"

    def sign(self, claims: ReceiptClaims) -> str:
        jti = claims.jti or f"{self._jti_prefix}{next(self._jti_counter):x}"
        payload = (
            f"{_stream_prefix(claims.iss, claims.aud, claims.pay, claims.sid)}"
            f'"seq":{claims.seq:d},"amt":"{claims.amount_minor:d}","tot":"{claims.total_minor:d}",'
            f'"cur":{_json(claims.currency)},"scale":{claims.scale:d},'
            f'"iat":{claims.issued_at:d},"exp":{claims.expires_at:d},'
            f'"jti":"{jti}"'
        )
        if claims.binding is not None:
            payload += f',"bnd":{_json(claims.binding)}'
        if claims.one_time:
            payload += ',"otp":true'
        if claims.order_ref is not None:
            payload += f',"ord":{_json(claims.order_ref)}'
        signing_input = self._header_b64 + b64url_bytes((payload + "}").encode())
        signature = crypto_sign(signing_input, self._secret_key)[:64]
        return (signing_input + b"." + b64url_bytes(signature)).decode("ascii")
