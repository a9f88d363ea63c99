"""Accounts: sign-up and log-in with argon2id passwords, logout, a reader's settings (rate,
monthly budget, pause) and per-site overrides. One person may be a reader and a creator.

Functions take the caller's session and clock reading and never commit; the one exception is
log-in, which counts attempts (``trickle.ratelimit``) in short transactions of its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import unicodedata
from typing import TypeVar

import nacl.exceptions
import nacl.pwhash
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from trickle import money, origins, ratelimit, sessions
from trickle.db import transaction
from trickle.errors import (
    EmailTaken,
    InvalidCredentials,
    NotFound,
    TooManySignUps,
    TooManySiteOverrides,
    ValidationFailed,
)
from trickle.models import ReaderSettings, SiteOverride, User
from trickle.settings import Settings

PASSWORD_MIN_CHARS = 10
PASSWORD_MAX_CHARS = 200
EMAIL_MAX_CHARS = 254
MAX_RATE_PER_HOUR_MAJOR = 100  # 100 currency units an hour: far above any sane reading rate
MAX_MONTHLY_BUDGET_MAJOR = 100_000
MAX_SITE_OVERRIDES = 200  # what the Web Monetization extension allows too

# An address as the service takes it (any case, spaces around it: it stores it trimmed and
# lowercase), also declared in /openapi.json. With at most EMAIL_MAX_CHARS, the domain cannot
# pass DNS's 253 characters.
_EMAIL_SPACE = " \t\r\n"
EMAIL_PATTERN = (
    r"^[ \t\r\n]*[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9]"
    r"[ \t\r\n]*$"
)
_EMAIL = re.compile(EMAIL_PATTERN)


# --- passwords ------------------------------------------------------------------------------


def _password_bytes(password: str) -> bytes:
    # NFKC, as NIST SP 800-63B advises: the same password typed on another keyboard still matches.
    return unicodedata.normalize("NFKC", password).encode()


def hash_password(password: str) -> str:
    """An argon2id hash (libsodium's "interactive" cost: ~0.1 s, 64 MiB) in PHC string form.
    The length rule counts the characters as typed (as the API's schema and the dashboard do),
    not after NFKC, which may join or split them."""
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise ValidationFailed(
            f"password: must be {PASSWORD_MIN_CHARS}..{PASSWORD_MAX_CHARS} characters, "
            f"got {len(password)}"
        )
    hashed = nacl.pwhash.argon2id.str(
        _password_bytes(password),
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    )
    return hashed.decode("ascii")


@functools.cache
def _decoy_hash() -> bytes:
    # Verified against when the email is unknown, so a miss costs as long as a wrong password.
    return hash_password("decoy password, never anyone's").encode("ascii")


def _password_matches(password_hash: str | None, password: str) -> bool:
    usable = password_hash is not None and password_hash.startswith("$argon2id$")
    target = password_hash.encode("ascii") if password_hash and usable else _decoy_hash()
    try:
        nacl.pwhash.verify(target, _password_bytes(password))
    except nacl.exceptions.InvalidkeyError:
        return False
    return usable


# --- emails --------------------------------------------------------------------------------


def normalize_email(text: str) -> str:
    """``" Ann@Example.COM "`` -> ``ann@example.com``; anything ``EMAIL_PATTERN`` does not match
    is ``ValidationFailed`` (internationalized domains must be sent in punycode)."""
    email = text.strip(_EMAIL_SPACE).lower()
    if len(email) > EMAIL_MAX_CHARS or not _EMAIL.fullmatch(text):
        raise ValidationFailed(f"email: not an email address: {text[:60]!r}")
    return email


# --- sign-up, log-in, log-out ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SignedIn:
    """A user and the session just opened for them (its token is shown once, never stored)."""

    user: User
    session: sessions.IssuedSession

    def __repr__(self) -> str:
        return f"SignedIn(user_id={self.user.id}, session={self.session!r})"


def sign_up(
    session: Session, *, email: str, password: str, now: dt.datetime, settings: Settings
) -> SignedIn:
    """A new account with the default reader settings, and a first session for it.

    ``EmailTaken`` when the address has an account, also when two sign-ups race: the unique
    index decides, and its violation is turned into ``EmailTaken``.
    """
    email = normalize_email(email)
    password_hash = hash_password(password)  # before any query: no lock is held for its 0.1 s
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(f"{email} already has an account; log in instead")
    user = User(email=email, password_hash=password_hash, created_at=now)
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        raise EmailTaken(f"{email} already has an account; log in instead") from None
    session.add(
        ReaderSettings(
            user_id=user.id,
            currency=settings.currency,
            rate_per_hour_minor=settings.default_rate_per_hour_minor,
            monthly_budget_minor=settings.default_monthly_budget_minor,
            paused=False,
        )
    )
    issued = sessions.create(session, user.id, now, dt.timedelta(seconds=settings.session_ttl_s))
    return SignedIn(user, issued)


def count_sign_up(
    factory: sessionmaker[Session], *, client_ip: str, now: dt.datetime, settings: Settings
) -> None:
    """Count a sign-up attempt from the client's address, in a short transaction of its own that
    commits at once (so an attempt that fails later still counts): past
    ``signup_max_per_address`` in ``signup_window_s`` it is ``TooManySignUps``. Call it before the
    request's transaction has touched the database (the sign-up's own), as ``log_in`` does."""
    limit = ratelimit.Limit(settings.signup_max_per_address, settings.signup_window_s)
    bucket = f"signup:ip:{client_ip[:100]}"
    ratelimit.reserve(factory, [bucket], limit, now, error=TooManySignUps)


def login_buckets(email: str, client_ip: str) -> list[str]:
    return [f"login:email:{email}", f"login:ip:{client_ip}"]


def log_in(
    session: Session,
    factory: sessionmaker[Session],
    *,
    email: str,
    password: str,
    client_ip: str,
    now: dt.datetime,
    settings: Settings,
) -> SignedIn:
    """A new session for the account, or ``InvalidCredentials`` (not saying which part was wrong).

    Call it before ``session`` has touched the database. ``factory`` opens two short transactions
    of their own: one counts the attempt against the account and the client address and commits
    at once, so a failure counts although the caller's transaction rolls back (past
    ``login_max_attempts`` in ``login_window_s`` it is ``RateLimited``, even with the right
    password); one reads the password hash, so no lock is held while argon2 runs (on SQLite a
    write transaction locks the whole database). A successful attempt is refunded in ``session``.
    """
    email = email.strip().lower()
    if len(email) > EMAIL_MAX_CHARS:  # no account has one; keeps the bucket name bounded
        raise InvalidCredentials("wrong email or password")
    limit = ratelimit.Limit(settings.login_max_attempts, settings.login_window_s)
    reservation = ratelimit.reserve(factory, login_buckets(email, client_ip[:100]), limit, now)
    with transaction(factory) as lookup:
        found = lookup.execute(
            select(User.id, User.password_hash).where(User.email == email)
        ).first()
    # Verify even when the email is unknown (against a decoy): a miss takes as long as a hit.
    matches = _password_matches(found.password_hash if found else None, password)
    user = session.get(User, found.id) if found is not None and matches else None
    if user is None:
        raise InvalidCredentials("wrong email or password")
    ratelimit.refund(session, reservation)
    issued = sessions.create(session, user.id, now, dt.timedelta(seconds=settings.session_ttl_s))
    return SignedIn(user, issued)


def log_out(session: Session, session_id: int, now: dt.datetime) -> int:
    """Revoke one session (the caller's own). Returns how many were revoked (1)."""
    sessions.revoke(session, session_id, now)
    return 1


def log_out_everywhere(session: Session, user_id: int, now: dt.datetime) -> int:
    """Revoke every live session of the user, the current one included; returns how many."""
    return sessions.revoke_all(session, user_id, now)


# --- reader settings ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ReaderPreferences:
    currency: str
    rate_per_hour_minor: int
    monthly_budget_minor: int
    paused: bool


@dataclasses.dataclass(frozen=True, slots=True)
class PreferencesChange:
    """What to change; ``None`` keeps the current value."""

    rate_per_hour_minor: int | None = None
    monthly_budget_minor: int | None = None
    paused: bool | None = None


def _major_unit(settings: Settings) -> int:
    return int(10**settings.asset_scale)


def max_rate_per_hour_minor(settings: Settings) -> int:
    return min(MAX_RATE_PER_HOUR_MAJOR * _major_unit(settings), money.MAX_AMOUNT)


def max_monthly_budget_minor(settings: Settings) -> int:
    return min(MAX_MONTHLY_BUDGET_MAJOR * _major_unit(settings), money.MAX_AMOUNT)


def _check_range(field: str, value: int, maximum: int) -> int:
    if not 0 <= value <= maximum:
        raise ValidationFailed(f"{field}: must be 0..{maximum} minor units, got {value}")
    return value


def _preferences(row: ReaderSettings) -> ReaderPreferences:
    return ReaderPreferences(
        row.currency, row.rate_per_hour_minor, row.monthly_budget_minor, row.paused
    )


def reader_preferences(session: Session, user_id: int, settings: Settings) -> ReaderPreferences:
    """The reader's settings; the defaults for an account that never stored any."""
    row = session.get(ReaderSettings, user_id)
    if row is None:
        return ReaderPreferences(
            settings.currency,
            settings.default_rate_per_hour_minor,
            settings.default_monthly_budget_minor,
            False,
        )
    return _preferences(row)


def update_preferences(
    session: Session, user_id: int, change: PreferencesChange, settings: Settings
) -> ReaderPreferences:
    """Apply a change (rate and budget within sane bounds) and return the new settings."""
    if change.rate_per_hour_minor is not None:
        _check_range(
            "rate_per_hour_minor", change.rate_per_hour_minor, max_rate_per_hour_minor(settings)
        )
    if change.monthly_budget_minor is not None:
        _check_range(
            "monthly_budget_minor", change.monthly_budget_minor, max_monthly_budget_minor(settings)
        )
    row = session.get(ReaderSettings, user_id, with_for_update=True)
    if row is None:
        row = _insert_or_get(
            session,
            ReaderSettings(
                user_id=user_id,
                currency=settings.currency,
                rate_per_hour_minor=settings.default_rate_per_hour_minor,
                monthly_budget_minor=settings.default_monthly_budget_minor,
                paused=False,
            ),
            user_id,
        )
    if change.rate_per_hour_minor is not None:
        row.rate_per_hour_minor = change.rate_per_hour_minor
    if change.monthly_budget_minor is not None:
        row.monthly_budget_minor = change.monthly_budget_minor
    if change.paused is not None:
        row.paused = change.paused
    session.flush()
    return _preferences(row)


_Row = TypeVar("_Row", ReaderSettings, SiteOverride)


def _insert_or_get(session: Session, row: _Row, key: object) -> _Row:
    """Insert a new row, or, when a racer inserted the same key first, lock and return theirs."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = session.get(type(row), key, with_for_update=True)
        if existing is None:
            raise
        return existing
    return row


# --- per-site overrides ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SiteRule:
    origin: str
    rate_per_hour_minor: int | None  # None: the reader's own rate
    disabled: bool


def _rule(row: SiteOverride) -> SiteRule:
    return SiteRule(row.origin, row.rate_per_hour_minor, row.disabled)


def site_overrides(session: Session, user_id: int) -> list[SiteRule]:
    rows = session.scalars(
        select(SiteOverride).where(SiteOverride.user_id == user_id).order_by(SiteOverride.origin)
    )
    return [_rule(row) for row in rows]


def set_site_override(
    session: Session,
    user_id: int,
    *,
    origin: str,
    rate_per_hour_minor: int | None,
    disabled: bool,
    settings: Settings,
) -> SiteRule:
    """Create or replace the reader's rule for one site: another rate, or off."""
    origin = origins.normalize_origin(origin)
    if rate_per_hour_minor is None and not disabled:
        raise ValidationFailed(
            "an override needs rate_per_hour_minor or disabled: true "
            "(to go back to the default rate, delete the override)"
        )
    if rate_per_hour_minor is not None:
        _check_range("rate_per_hour_minor", rate_per_hour_minor, max_rate_per_hour_minor(settings))
    row = session.get(SiteOverride, (user_id, origin), with_for_update=True)
    if row is None:
        count = session.scalar(
            select(func.count()).select_from(SiteOverride).where(SiteOverride.user_id == user_id)
        )
        if (count or 0) >= MAX_SITE_OVERRIDES:
            raise TooManySiteOverrides(
                f"at most {MAX_SITE_OVERRIDES} site overrides; delete one first"
            )
        row = _insert_or_get(
            session, SiteOverride(user_id=user_id, origin=origin), (user_id, origin)
        )
    row.rate_per_hour_minor = rate_per_hour_minor
    row.disabled = disabled
    session.flush()
    return _rule(row)


def delete_site_override(session: Session, user_id: int, origin: str) -> str:
    """Remove the reader's rule for a site (the default rate applies again); returns the origin."""
    origin = origins.normalize_origin(origin)
    result = session.execute(
        delete(SiteOverride).where(SiteOverride.user_id == user_id, SiteOverride.origin == origin)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no site override for {origin}")
    return origin
