"""Fixed-window rate limits shared by every service process, counted in ``rate_limit_hits``.

A limited action *reserves* an attempt before it runs: one atomic upsert per bucket, committed in
its own short transaction, so the count survives the request's rollback (a failed login raises
and rolls back) and concurrent attempts cannot overshoot the limit. An attempt that turns out
not to count (a successful login) is *refunded* in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from trickle.db import transaction
from trickle.errors import RateLimited

# One statement on both SQLite (3.35+) and PostgreSQL; atomic under concurrency on both.
_HIT = text(
    "INSERT INTO rate_limit_hits (bucket, window_start, count) VALUES (:bucket, :window_start, 1) "
    "ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_limit_hits.count + 1 "
    "RETURNING count"
)
_REFUND = text(
    "UPDATE rate_limit_hits SET count = count - 1 "
    "WHERE bucket = :bucket AND window_start = :window_start AND count > 0"
)
_PRUNE = text("DELETE FROM rate_limit_hits WHERE window_start < :before")


@dataclasses.dataclass(frozen=True, slots=True)
class Limit:
    """At most ``max_attempts`` per bucket in each window of ``window_s`` seconds."""

    max_attempts: int
    window_s: int

    def window_start(self, now: dt.datetime) -> int:
        epoch_s = int(now.timestamp())
        return epoch_s - epoch_s % self.window_s

    def retry_after_s(self, now: dt.datetime) -> int:
        return self.window_start(now) + self.window_s - int(now.timestamp())


@dataclasses.dataclass(frozen=True, slots=True)
class Reservation:
    """Attempts counted in ``window_start`` for ``buckets``; refund them if they do not count."""

    buckets: tuple[str, ...]
    window_start: int


def hit(session: Session, bucket: str, window_start: int) -> int:
    """Count one attempt in the bucket's window; returns the window's count including it."""
    count = session.execute(_HIT, {"bucket": bucket, "window_start": window_start}).scalar_one()
    return int(count)


def reserve(
    sessions: sessionmaker[Session],
    buckets: Sequence[str],
    limit: Limit,
    now: dt.datetime,
    *,
    error: type[RateLimited] = RateLimited,
) -> Reservation:
    """Count an attempt in every bucket, in a transaction of its own that commits at once.

    ``error`` (a ``RateLimited``; nothing counted) when any bucket already used its window's
    attempts. Call it before the caller's transaction has touched the database: on SQLite that
    transaction holds the write lock from its first statement on.
    """
    window_start = limit.window_start(now)
    with transaction(sessions) as session:
        counts = [hit(session, bucket, window_start) for bucket in buckets]
        if any(count > limit.max_attempts for count in counts):
            # Raising rolls these hits back: attempts past the limit are refused, not counted.
            raise error(
                f"too many attempts: at most {limit.max_attempts} every {limit.window_s} s; "
                f"try again in {limit.retry_after_s(now)} s"
            )
        if 1 in counts:  # a bucket opened a new window: drop windows that have ended
            session.execute(_PRUNE, {"before": window_start - limit.window_s})
    return Reservation(tuple(buckets), window_start)


def refund(session: Session, reservation: Reservation) -> None:
    """Take back a reserved attempt (in the caller's transaction: it counts if that rolls back)."""
    for bucket in reservation.buckets:
        session.execute(_REFUND, {"bucket": bucket, "window_start": reservation.window_start})
