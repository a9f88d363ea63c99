"""Readiness: whether this process should get traffic (``GET /readyz``): the database answers,
a signing key is loaded and fresh, the database's migrations are this code's, and it is not
stopping. Liveness (``/healthz``) is only "the process answers" and needs nothing here."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from trickle import migrate
from trickle.keys import KeyRing
from trickle.settings import Settings

CheckName = Literal["database", "signing_key", "migrations", "stopping"]
# A check that takes longer than this failed (an unreachable PostgreSQL can hang a connect).
CHECK_TIMEOUT_S = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    name: CheckName
    ok: bool
    detail: str  # "ok", or what is wrong, for the operator (never a secret)


def database_checks(engine: Engine) -> list[Check]:
    """The database answers, and its migration revision is the code's head. Blocking: run it in
    a thread, bounded by ``CHECK_TIMEOUT_S``."""
    head = migrate.head_revision()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = migrate.current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:  # not ready, and say which failure
        detail = f"unreachable: {type(exc).__name__}"
        return [Check("database", False, detail), Check("migrations", False, "unknown")]
    return [Check("database", True, "ok"), migrations_check(current, head)]


def migrations_check(current: str | None, head: str | None) -> Check:
    """Ready at the code's head. Behind it (or empty) is not ready: this code needs what the
    missing migrations make (``trickle db upgrade``). A revision this code does not know is a
    newer release's, met during a rolling upgrade: migrations add before the code that uses
    them and remove only a release later (docs/deploy.md), so this node still serves."""
    if current == head:
        return Check("migrations", True, "ok")
    if current is not None and current not in migrate.known_revisions():
        return Check("migrations", True, f"database at {current}, newer than this code")
    return Check("migrations", False, f"database at {current or 'base'}, code at {head}")


def key_check(ring: KeyRing, settings: Settings, now: dt.datetime) -> Check:
    """A key is loaded, and the ring was reloaded lately: a process whose reloads keep failing
    would miss a rotation and sign with a retired key."""
    stale_after = dt.timedelta(seconds=2 * settings.key_reload_interval_s + 30)
    age = now - ring.loaded_at
    if age > stale_after:
        return Check(
            "signing_key",
            False,
            f"key ring last loaded {int(age.total_seconds())} s ago (reloads failing)",
        )
    return Check("signing_key", True, "ok")


def stopping_check(*, started: bool, draining: bool) -> Check:
    if not started:
        return Check("stopping", False, "the streaming engine has not started")
    return Check("stopping", not draining, "draining: stopping" if draining else "ok")


def not_ready_message(checks: list[Check]) -> str:
    return "not ready: " + "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
