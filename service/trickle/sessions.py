"""Login sessions: random bearer tokens, stored only as SHA-256 hashes, with expiry and logout."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from trickle.errors import Unauthenticated
from trickle.models import AuthSession, User

TOKEN_PREFIX = "trk_"  # noqa: S105 - a prefix, not a secret


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new session. ``token`` (and ``csrf_token``) are shown to the client once, never stored."""

    id: int
    token: str
    csrf_token: str
    expires_at: dt.datetime

    def __repr__(self) -> str:
        return f"IssuedSession(id={self.id}, expires_at={self.expires_at.isoformat()})"


def create(session: Session, user_id: int, now: dt.datetime, ttl: dt.timedelta) -> IssuedSession:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(24)
    row = AuthSession(
        user_id=user_id,
        token_hash=token_hash(token),
        csrf_token_hash=token_hash(csrf_token),
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    return IssuedSession(row.id, token, csrf_token, row.expires_at)


def authenticate(session: Session, token: str, now: dt.datetime) -> tuple[User, AuthSession]:
    """The user behind a live token, or ``Unauthenticated`` (unknown, expired, revoked)."""
    row = session.scalars(
        select(AuthSession).where(AuthSession.token_hash == token_hash(token))
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise Unauthenticated("the session token is unknown, expired or revoked")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthenticated("the session's account no longer exists")
    return user, row


def live_ids(session: Session, session_ids: Sequence[int], now: dt.datetime) -> set[int]:
    """Which of these sessions are live: not revoked, not expired, not deleted. (The streaming
    engine asks this about its open sockets' sessions, several times a second.)"""
    live: set[int] = set()
    for start in range(0, len(session_ids), 500):  # well below every driver's parameter limit
        live.update(
            session.scalars(
                select(AuthSession.id).where(
                    AuthSession.id.in_(session_ids[start : start + 500]),
                    AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > now,
                )
            )
        )
    return live


def csrf_matches(row: AuthSession, csrf_token: str | None) -> bool:
    if not csrf_token or row.csrf_token_hash is None:
        return False
    return secrets.compare_digest(row.csrf_token_hash, token_hash(csrf_token))


def revoke(session: Session, session_id: int, now: dt.datetime) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all(session: Session, user_id: int, now: dt.datetime) -> int:
    """Log out everywhere: every live session of the user. Returns how many were revoked."""
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
