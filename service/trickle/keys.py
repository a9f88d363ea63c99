"""Receipt-signing keys: creation, rotation, publication as a JWK Set, and the key ring in memory.

Keys live in the database so that several service processes share them; each private seed is
sealed with the key-encryption key (KEK) from the settings, or, in development, with a KEK kept
in a 0600 file in the data folder. Private keys are never logged or printed.

A key's life: ``next`` (published, not signing yet) → ``active`` (signs) → ``retiring`` (a newer
key signs; still published while receipts it signed may be alive) → ``expired`` (unpublished).
A rotated-in key is ``next`` for ``activation_delay``: every verifier that refetches the key set
as its ``Cache-Control`` allows then has the key before the first receipt it signs exists. Only
the very first key of a database signs at once: nobody can hold an older set.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import nacl.exceptions
import nacl.secret
import nacl.signing
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from trickle.db import serialize
from trickle.errors import ConfigError, KeyStoreError
from trickle.models import SigningKey
from trickle.settings import Settings

KEK_FILE_NAME = "key-encryption.key"
KeyState = Literal["next", "active", "retiring", "expired"]
KEY_STATES: tuple[KeyState, ...] = ("next", "active", "retiring", "expired")
# Making or retiring keys runs one transaction at a time (PostgreSQL advisory lock id: "trickle
# keys" in ASCII, trimmed to 63 bits), so racing first starts make one key and racing rotations
# one next key.
KEYS_LOCK_ID = 0x6B657973


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_bytes(data: bytes) -> bytes:
    """Base64url without padding (RFC 7515 §2), as ASCII bytes: the form a JWS and a JWK use."""
    # binascii directly: base64.urlsafe_b64encode's Python layers cost more than the encoding,
    # and every receipt encodes its payload and its signature
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def b64url(data: bytes) -> str:
    return b64url_bytes(data).decode("ascii")


class KeyEncryptionKey:
    """A 32-byte secret-box key that seals signing keys at rest. Never printed."""

    __slots__ = ("_box",)

    def __init__(self, key: bytes) -> None:
        if len(key) != nacl.secret.SecretBox.KEY_SIZE:
            raise ConfigError(
                f"the key-encryption key must be {nacl.secret.SecretBox.KEY_SIZE} bytes, "
                f"got {len(key)}"
            )
        self._box = nacl.secret.SecretBox(key)

    def __repr__(self) -> str:
        return "KeyEncryptionKey(<hidden>)"

    def seal(self, plaintext: bytes) -> bytes:
        return bytes(self._box.encrypt(plaintext))

    def open(self, sealed: bytes) -> bytes:
        try:
            return bytes(self._box.decrypt(sealed))
        except nacl.exceptions.CryptoError:
            raise KeyStoreError(
                "a signing key cannot be unsealed: the key-encryption key is not the one "
                "it was sealed with"
            ) from None


def load_kek(settings: Settings) -> KeyEncryptionKey:
    """The KEK from the settings; in development, from (or into) a 0600 file in the data folder."""
    if settings.key_encryption_key:
        try:
            raw = base64.b64decode(settings.key_encryption_key, validate=True)
        except ValueError:
            raise ConfigError("TRICKLE_KEY_ENCRYPTION_KEY must be base64 of 32 bytes") from None
        return KeyEncryptionKey(raw)
    if settings.env == "production":
        raise ConfigError("TRICKLE_KEY_ENCRYPTION_KEY is required in production")
    return KeyEncryptionKey(_read_or_create_secret_file(settings.data_dir / KEK_FILE_NAME))


def _read_or_create_secret_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{path} must be readable by its owner only (mode 0600), found {mode:04o}"
            ) from None
        raw = base64.b64decode(path.read_text().strip())
        return raw
    raw = secrets.token_bytes(nacl.secret.SecretBox.KEY_SIZE)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(raw).decode("ascii") + "\n")
    return raw


class SigningKeyPair:
    """An unsealed signing key in memory. Its repr shows the kid only."""

    __slots__ = ("kid", "public_key", "secret_key")

    def __init__(self, kid: str, seed: bytes) -> None:
        signing_key = nacl.signing.SigningKey(seed)
        self.kid = kid
        self.public_key = bytes(signing_key.verify_key)
        # libsodium's 64-byte secret key (seed || public key), what crypto_sign takes.
        self.secret_key = bytes(signing_key._signing_key)

    def __repr__(self) -> str:
        return f"SigningKeyPair(kid={self.kid!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    state: KeyState
    created_at: dt.datetime
    activates_at: dt.datetime  # signs from
    retired_at: dt.datetime | None  # signs until (None: no newer key yet)
    published_until: dt.datetime | None  # None: no newer key scheduled, it signs on


@dataclasses.dataclass(frozen=True, slots=True)
class Rotation:
    """What ``rotate`` did: ``created`` False when a next key was already waiting (that one)."""

    kid: str
    activates_at: dt.datetime
    created: bool


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRing:
    """What a process needs: the key that signs now and the public keys to publish."""

    active: SigningKeyPair
    jwks: dict[str, Any]
    loaded_at: dt.datetime
    active_since: dt.datetime | None = None  # when the active key began to sign (key age)


def new_kid(now: dt.datetime) -> str:
    return f"k{now:%Y%m%d}-{secrets.token_hex(4)}"


def publication_window(settings: Settings) -> dt.timedelta:
    """How long a retired key stays published: every receipt it may have signed must expire.

    Other processes may sign with it until their next key reload, then receipts live for
    ``receipt_ttl_s``, and verifiers allow clock leeway (60 s by default).
    """
    return dt.timedelta(seconds=settings.key_reload_interval_s + settings.receipt_ttl_s + 60)


def activation_delay(settings: Settings) -> dt.timedelta:
    """How long a rotated-in key is published before it signs.

    Every process publishes it from its next key reload (``key_reload_interval_s``); a verifier
    may keep the set it fetched just before that for the set's max-age (``jwks_max_age_s``);
    the leeway covers service hosts whose clocks disagree and verifiers that refetch a little
    late. Processes start signing with it at their first reload after it activates.
    """
    return dt.timedelta(
        seconds=settings.key_reload_interval_s
        + settings.jwks_max_age_s
        + settings.key_activation_leeway_s
    )


def jwks_cache_control(settings: Settings) -> str:
    """The key set's ``Cache-Control``: what ``activation_delay`` counts on, and nothing more
    (no ``stale-while-revalidate``: a cache could serve an old set past the max-age)."""
    return f"public, max-age={settings.jwks_max_age_s}"


def create_key(
    session: Session,
    kek: KeyEncryptionKey,
    now: dt.datetime,
    *,
    activates_at: dt.datetime,
    retired_at: dt.datetime | None = None,
) -> str:
    seed = secrets.token_bytes(32)
    pair = SigningKeyPair(new_kid(now), seed)
    session.add(
        SigningKey(
            kid=pair.kid,
            public_key=pair.public_key,
            sealed_private_key=kek.seal(seed),
            created_at=now,
            activates_at=activates_at,
            retired_at=retired_at,
        )
    )
    session.flush()
    return pair.kid


def ensure_active_key(
    session: Session, kek: KeyEncryptionKey, clock: Callable[[], dt.datetime]
) -> str:
    """The kid of the key that signs now; on a new database, a first key that signs at once.

    The time is read after the lock is held: a racing first start that committed its key while
    this one waited made a key that signs from its own (earlier) time, which is then found.
    Read before the lock, a later racer's time could be earlier than that key's and it would
    make a second "first" key."""
    serialize(session, KEYS_LOCK_ID)
    now = clock()
    signing = _signing_row(session, now)
    if signing is not None:
        return signing.kid
    waiting = _next_row(session, now)
    return create_key(
        session,
        kek,
        now,
        activates_at=now,
        retired_at=None if waiting is None else waiting.activates_at,
    )


def reseal(session: Session, old: KeyEncryptionKey, new: KeyEncryptionKey) -> int:
    """Seal every stored signing key with ``new`` instead of ``old`` (replacing a key-encryption
    key); returns how many. All or nothing: one key that ``old`` does not open
    (``KeyStoreError``), or whose seed does not match its public key, changes none."""
    serialize(session, KEYS_LOCK_ID)
    rows = session.scalars(select(SigningKey).order_by(SigningKey.kid)).all()
    for row in rows:
        seed = old.open(row.sealed_private_key)
        if SigningKeyPair(row.kid, seed).public_key != row.public_key:
            raise KeyStoreError(f"signing key {row.kid} does not match its stored public key")
        row.sealed_private_key = new.seal(seed)
    return len(rows)


def rotate(
    session: Session, kek: KeyEncryptionKey, settings: Settings, now: dt.datetime
) -> Rotation:
    """Publish a new key now; it signs from ``now + activation_delay``, when the key that signs
    now retires. If a next key is already waiting, nothing changes and that one is returned
    (so running ``trickle keys rotate`` twice makes one new key)."""
    serialize(session, KEYS_LOCK_ID)
    waiting = _next_row(session, now)
    if waiting is not None:
        return Rotation(waiting.kid, waiting.activates_at, created=False)
    activates_at = now + activation_delay(settings)
    session.execute(
        update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=activates_at)
    )
    kid = create_key(session, kek, now, activates_at=activates_at)
    return Rotation(kid, activates_at, created=True)


def _state(row: SigningKey, window: dt.timedelta, now: dt.datetime) -> KeyState:
    if row.activates_at > now:
        return "next"
    if row.retired_at is None or row.retired_at > now:
        return "active"
    return "retiring" if row.retired_at + window > now else "expired"


def list_keys(session: Session, settings: Settings, now: dt.datetime) -> list[KeyInfo]:
    window = publication_window(settings)
    rows = session.scalars(
        select(SigningKey).order_by(SigningKey.activates_at, SigningKey.created_at)
    ).all()
    return [
        KeyInfo(
            kid=row.kid,
            state=_state(row, window, now),
            created_at=row.created_at,
            activates_at=row.activates_at,
            retired_at=row.retired_at,
            published_until=None if row.retired_at is None else row.retired_at + window,
        )
        for row in rows
    ]


def load_key_ring(
    session: Session, kek: KeyEncryptionKey, settings: Settings, now: dt.datetime
) -> KeyRing:
    """The key that signs now and the published set: next, active and retiring keys."""
    active = _signing_row(session, now)
    if active is None:
        raise KeyStoreError("no active signing key: run `trickle keys rotate` or start the service")
    pair = SigningKeyPair(active.kid, kek.open(active.sealed_private_key))
    if pair.public_key != active.public_key:
        raise KeyStoreError(f"signing key {active.kid} does not match its stored public key")
    window = publication_window(settings)
    rows = session.scalars(
        select(SigningKey).order_by(SigningKey.activates_at.desc(), SigningKey.kid.desc())
    ).all()
    published = [row for row in rows if _state(row, window, now) != "expired"]
    jwks = {"keys": [public_jwk(row.kid, row.public_key) for row in published]}
    return KeyRing(active=pair, jwks=jwks, loaded_at=now, active_since=active.activates_at)


def public_jwk(kid: str, public_key: bytes) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(public_key),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def _signing_row(session: Session, now: dt.datetime) -> SigningKey | None:
    return session.scalars(
        select(SigningKey)
        .where(
            SigningKey.activates_at <= now,
            or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now),
        )
        .order_by(SigningKey.activates_at.desc(), SigningKey.kid.desc())
        .limit(1)
    ).first()


def _next_row(session: Session, now: dt.datetime) -> SigningKey | None:
    return session.scalars(
        select(SigningKey)
        .where(SigningKey.activates_at > now)
        .order_by(SigningKey.activates_at.desc(), SigningKey.kid.desc())
        .limit(1)
    ).first()


class KeyRingCache:
    """The process's key ring, reloaded every ``key_reload_interval_s`` so that a rotation made
    by another process (or ``trickle keys rotate``) reaches every signer."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    @property
    def current(self) -> KeyRing:
        return self._ring

    def replace(self, ring: KeyRing) -> None:
        self._ring = ring
