"""The issuer's Ed25519 public keys: typed keys, and key sets loaded from a JWK Set document,
a file or a URL (fetched with a timeout and a size limit, cached, refreshed sparingly)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from nacl.signing import VerifyKey

from ._jws import DecodeError, b64url_decode, b64url_encode, describe, parse_json_object
from .errors import InvalidJWKS, InvalidKey, JWKSFetchFailed, JWKSTooLarge, KeySetError

__all__ = ["DEFAULT_MAX_JWKS_BYTES", "KeySet", "PublicKey"]

logger = logging.getLogger("trickle_verifier")

KID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_MAX_JWKS_BYTES = 64 * 1024
_READ_CHUNK_BYTES = 8192


class PublicKey:
    """One Ed25519 public key of the issuer, named by its ``kid``. Never prints its bytes."""

    __slots__ = ("_raw", "_verify_key", "kid")

    def __init__(self, kid: str, raw: bytes) -> None:
        if not isinstance(kid, str) or not KID_RE.fullmatch(kid):
            raise InvalidKey(
                f"expected a kid matching ^[A-Za-z0-9_-]{{1,64}}$, got {describe(kid)}"
            )
        if not isinstance(raw, bytes) or len(raw) != 32:
            got = f"{len(raw)} bytes" if isinstance(raw, bytes) else type(raw).__name__
            raise InvalidKey(f"expected a 32-byte Ed25519 public key for kid {kid!r}, got {got}")
        self.kid: str = kid
        self._raw = raw
        self._verify_key = VerifyKey(raw)

    @property
    def raw(self) -> bytes:
        """The 32 raw public key bytes (the JWK ``x`` member, decoded)."""
        return self._raw

    @property
    def verify_key(self) -> VerifyKey:
        """The PyNaCl key, built once."""
        return self._verify_key

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """Build a key from one OKP/Ed25519 JWK; raise ``InvalidJWKS`` if it is not one."""
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise InvalidJWKS(
                f"expected kty 'OKP' and crv 'Ed25519', got kty {describe(jwk.get('kty'))} "
                f"and crv {describe(jwk.get('crv'))}"
            )
        if "d" in jwk:
            raise InvalidJWKS("expected a public JWK, got private key material ('d')")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not KID_RE.fullmatch(kid):
            raise InvalidJWKS(
                f"expected a kid matching ^[A-Za-z0-9_-]{{1,64}}$, got {describe(kid)}"
            )
        x = jwk.get("x")
        if not isinstance(x, str):
            raise InvalidJWKS(
                f"expected 'x' to be a base64url string for kid {kid!r}, got {describe(x)}"
            )
        try:
            raw = b64url_decode(x)
        except DecodeError as exc:
            raise InvalidJWKS(f"bad 'x' for kid {kid!r}: {exc}") from None
        if len(raw) != 32:
            raise InvalidJWKS(f"expected 'x' to hold 32 bytes for kid {kid!r}, got {len(raw)}")
        return cls(kid, raw)

    def to_jwk(self) -> dict[str, str]:
        """The public JWK for this key (``alg`` EdDSA, ``use`` sig)."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url_encode(self._raw),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def __repr__(self) -> str:
        return f"PublicKey(kid={self.kid!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.kid == other.kid and self._raw == other._raw

    def __hash__(self) -> int:
        return hash((self.kid, self._raw))


def _is_usable_signing_jwk(jwk: Mapping[str, Any]) -> bool:
    """True for an Ed25519 signing key; other keys in a shared set are skipped, not errors."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return False
    if "alg" in jwk and jwk["alg"] != "EdDSA":
        return False
    return not ("use" in jwk and jwk["use"] != "sig")


def _keys_from_document(doc: Mapping[str, Any] | str | bytes) -> dict[str, PublicKey]:
    if isinstance(doc, (str, bytes)):
        # surrogatepass: a lone surrogate in the text reaches the strict UTF-8 decoder, which
        # refuses it as the JS KeySet does, instead of escaping as a UnicodeEncodeError.
        data = doc.encode("utf-8", "surrogatepass") if isinstance(doc, str) else doc
        try:
            parsed: Mapping[str, Any] = parse_json_object(data)
        except DecodeError as exc:
            raise InvalidJWKS(f"expected a JWK Set JSON object: {exc}") from None
    elif isinstance(doc, Mapping):
        parsed = doc
    else:
        raise InvalidJWKS(f"expected a mapping, str or bytes, got {type(doc).__name__}")
    entries = parsed.get("keys")
    if not isinstance(entries, list):
        raise InvalidJWKS(f"expected a 'keys' array, got {describe(entries)}")
    keys: dict[str, PublicKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise InvalidJWKS(f"expected every key to be a JSON object, got {describe(entry)}")
        if not _is_usable_signing_jwk(entry):
            continue
        key = PublicKey.from_jwk(entry)
        if key.kid in keys:
            raise InvalidJWKS(f"expected unique kids, got {key.kid!r} twice")
        keys[key.kid] = key
    if not keys:
        raise InvalidJWKS("expected at least one OKP/Ed25519 signing key, got none")
    return keys


class _RemoteSource:
    """Where a remote key set comes from, and how often it may be fetched again."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        refresh_interval_s: float,
        max_bytes: int,
        monotonic: Callable[[], float],
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("https", "http"):
            raise JWKSFetchFailed(f"expected an https:// or http:// JWKS URL, got {describe(url)}")
        self.url = url
        self.timeout_s = timeout_s
        self.refresh_interval_s = refresh_interval_s
        self.max_bytes = max_bytes
        self.monotonic = monotonic
        self.lock = threading.Lock()
        self.last_fetch_at = float("-inf")
        self.fetch_count = 0

    def fetch(self) -> dict[str, PublicKey]:
        """Fetch and parse the set; records the attempt so refreshes stay rate limited."""
        self.last_fetch_at = self.monotonic()
        self.fetch_count += 1
        return _keys_from_document(self._download())

    def _download(self) -> bytes:
        # The scheme was checked to be http(s) in __init__: no file: or custom schemes.
        request = urllib.request.Request(  # noqa: S310
            self.url, headers={"Accept": "application/json", "User-Agent": "trickle-verifier"}
        )
        deadline = time.monotonic() + self.timeout_s
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                status = response.status
                if status != 200:
                    raise JWKSFetchFailed(f"expected HTTP 200 from {self.url}, got {status}")
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise JWKSTooLarge(
                        f"expected at most {self.max_bytes} bytes from {self.url}, "
                        f"got a Content-Length of {declared}"
                    )
                chunks: list[bytes] = []
                size = 0
                while True:
                    # The socket timeout bounds each read; the deadline bounds a slow drip.
                    if time.monotonic() > deadline:
                        raise JWKSFetchFailed(
                            f"expected {self.url} within {self.timeout_s} s, it took longer"
                        )
                    chunk = response.read(_READ_CHUNK_BYTES)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise JWKSTooLarge(
                            f"expected at most {self.max_bytes} bytes from {self.url}, got more"
                        )
                    chunks.append(chunk)
        except KeySetError:
            raise
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad responses
            raise JWKSFetchFailed(f"could not fetch {self.url}: {exc}") from None
        return b"".join(chunks)


class KeySet:
    """The issuer's public keys by ``kid``. A set loaded with ``from_url`` refreshes itself
    when its cache is older than the refresh interval or a lookup meets an unknown ``kid``,
    but never more than once per interval, so forged kids cannot make it flood the issuer."""

    __slots__ = ("_keys", "_source")

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        by_kid: dict[str, PublicKey] = {}
        for key in keys:
            if not isinstance(key, PublicKey):
                raise InvalidKey(f"expected PublicKey objects, got {type(key).__name__}")
            if key.kid in by_kid:
                raise InvalidKey(f"expected unique kids, got {key.kid!r} twice")
            by_kid[key.kid] = key
        self._keys = by_kid
        self._source: _RemoteSource | None = None

    @classmethod
    def from_jwks(cls, doc: Mapping[str, Any] | str | bytes) -> KeySet:
        """Load a JWK Set (a parsed mapping, or its JSON text). Keys that are not OKP/Ed25519
        signing keys (other ``kty``/``crv``, ``alg`` other than EdDSA, ``use`` other than sig)
        are skipped; a malformed Ed25519 key or an empty result raises ``InvalidJWKS``."""
        return cls(_keys_from_document(doc).values())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeySet:
        """Load a JWK Set from a JSON file."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(DEFAULT_MAX_JWKS_BYTES + 1)
        except OSError as exc:
            raise JWKSFetchFailed(f"could not read JWKS file {os.fspath(path)!r}: {exc}") from None
        if len(data) > DEFAULT_MAX_JWKS_BYTES:
            raise JWKSTooLarge(
                f"expected at most {DEFAULT_MAX_JWKS_BYTES} bytes in {os.fspath(path)!r}, got more"
            )
        return cls.from_jwks(data)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_s: float = 5.0,
        refresh_interval_s: float = 300.0,
        max_bytes: int = DEFAULT_MAX_JWKS_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> KeySet:
        """Fetch a JWK Set now (raising ``KeySetError`` on failure) and keep it cached.
        Later fetches happen at most once per ``refresh_interval_s``; when one fails, the
        cached keys stay in use and the failure is logged."""
        source = _RemoteSource(
            url,
            timeout_s=timeout_s,
            refresh_interval_s=refresh_interval_s,
            max_bytes=max_bytes,
            monotonic=monotonic,
        )
        key_set = cls(source.fetch().values())
        key_set._source = source
        return key_set

    @property
    def fetch_count(self) -> int:
        """How many times a remote set was fetched (0 for a local set)."""
        return 0 if self._source is None else self._source.fetch_count

    def get(self, kid: str) -> PublicKey | None:
        """The key named ``kid``, or ``None``. May refresh a remote set (rate limited)."""
        source = self._source
        if source is None:
            return self._keys.get(kid)
        key = self._keys.get(kid)
        if source.monotonic() - source.last_fetch_at < source.refresh_interval_s:
            return key
        if key is None:
            with source.lock:  # wait: the key may be the new one another thread is fetching
                self._refresh_locked(source)
        elif source.lock.acquire(blocking=False):  # a known key need not wait for a refresh
            try:
                self._refresh_locked(source)
            finally:
                source.lock.release()
        return self._keys.get(kid)

    def _refresh_locked(self, source: _RemoteSource) -> None:
        if source.monotonic() - source.last_fetch_at < source.refresh_interval_s:
            return  # another thread refreshed while we waited
        try:
            self._keys = source.fetch()
        except KeySetError as exc:
            logger.warning("keeping the cached Trickle keys: JWKS refresh failed: %s", exc)

    def __contains__(self, kid: object) -> bool:
        return isinstance(kid, str) and kid in self._keys

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(list(self._keys.values()))

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def kids(self) -> tuple[str, ...]:
        """The kids currently in the set."""
        return tuple(self._keys)

    def to_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set document for these keys."""
        return {"keys": [key.to_jwk() for key in self._keys.values()]}

    def __repr__(self) -> str:
        origin = "" if self._source is None else f", url={self._source.url!r}"
        return f"KeySet(kids={list(self._keys)!r}{origin})"
