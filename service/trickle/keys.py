"""Receipt-signing keys: creation, rotation, publication as a JWK Set, and the key ring in memory.

Keys live in the database so that several service processes share them; each private seed is
sealed with the key-encryption key (KEK) from the settings, or, in development, with a KEK kept
in a 0600 file in the data folder. Private keys are never logged or printed.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret
import nacl.signing
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from trickle.errors import ConfigError, KeyStoreError
from trickle.models import SigningKey
from trickle.settings import Settings

KEK_FILE_NAME = "key-encryption.key"
KEY_STATES = ("active", "retiring", "expired")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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
    created_at: dt.datetime
    retired_at: dt.datetime | None
    published_until: dt.datetime | None
    state: str


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRing:
    """What a process needs: the key that signs now and the public keys to publish."""

    active: SigningKeyPair
    jwks: dict[str, Any]
    loaded_at: dt.datetime


def new_kid(now: dt.datetime) -> str:
    return f"k{now:%Y%m%d}-{secrets.token_hex(4)}"


def publication_window(settings: Settings) -> dt.timedelta:
    """How long a retired key stays published: every receipt it may have signed must expire.

    Other processes may sign with it until their next key reload, then receipts live for
    ``receipt_ttl_s``, and verifiers allow clock leeway (60 s by default).
    """
    return dt.timedelta(seconds=settings.key_reload_interval_s + settings.receipt_ttl_s + 60)


def create_key(session: Session, kek: KeyEncryptionKey, now: dt.datetime) -> str:
    seed = secrets.token_bytes(32)
    pair = SigningKeyPair(new_kid(now), seed)
    session.add(
        SigningKey(
            kid=pair.kid,
            public_key=pair.public_key,
            sealed_private_key=kek.seal(seed),
            created_at=now,
        )
    )
    session.flush()
    return pair.kid


def ensure_active_key(session: Session, kek: KeyEncryptionKey, now: dt.datetime) -> str:
    """The kid of the signing key, creating the first one on a new database."""
    active = _active_row(session)
    if active is not None:
        return active.kid
    return create_key(session, kek, now)


def rotate(session: Session, kek: KeyEncryptionKey, now: dt.datetime) -> str:
    """Retire the signing key(s) and create a new one that signs from now on."""
    session.execute(
        update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now)
    )
    return create_key(session, kek, now)


def list_keys(session: Session, settings: Settings, now: dt.datetime) -> list[KeyInfo]:
    window = publication_window(settings)
    rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at)).all()
    infos = []
    for row in rows:
        until = None if row.retired_at is None else row.retired_at + window
        if row.retired_at is None:
            state = "active"
        elif until is not None and until > now:
            state = "retiring"
        else:
            state = "expired"
        infos.append(KeyInfo(row.kid, row.created_at, row.retired_at, until, state))
    return infos


def load_key_ring(
    session: Session, kek: KeyEncryptionKey, settings: Settings, now: dt.datetime
) -> KeyRing:
    active = _active_row(session)
    if active is None:
        raise KeyStoreError("no active signing key: run `trickle keys rotate` or start the service")
    pair = SigningKeyPair(active.kid, kek.open(active.sealed_private_key))
    if pair.public_key != active.public_key:
        raise KeyStoreError(f"signing key {active.kid} does not match its stored public key")
    rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc())).all()
    published = [
        row
        for row in rows
        if row.retired_at is None or row.retired_at + publication_window(settings) > now
    ]
    jwks = {"keys": [public_jwk(row.kid, row.public_key) for row in published]}
    return KeyRing(active=pair, jwks=jwks, loaded_at=now)


def public_jwk(kid: str, public_key: bytes) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(public_key),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def _active_row(session: Session) -> SigningKey | None:
    return session.scalars(
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid.desc())
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
