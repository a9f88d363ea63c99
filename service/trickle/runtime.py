"""What a running service process holds: settings, database, key ring, the slots of site
checks. Built once at start."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from trickle import keys, metrics, migrate, siteverify, tokens
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.settings import Settings

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    kek: keys.KeyEncryptionKey
    key_ring: keys.KeyRingCache
    token_keys: tokens.TokenRingCache
    clock: Clock = utc_now
    site_checks: siteverify.CheckSlots = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.site_checks = siteverify.CheckSlots(
            self.settings.site_check_max_concurrent,
            self.settings.site_check_max_concurrent_per_user,
        )

    def reload_keys(self) -> None:
        with transaction(self.sessions) as session:
            ring = keys.load_key_ring(session, self.kek, self.settings, self.clock())
        self.key_ring.replace(ring)
        now = self.clock()
        if tokens.needs_keys(self.token_keys.current, now):  # a new month: make the next key
            self.token_keys.replace(load_token_keys(self.sessions, self.kek, self.settings, now))

    def close(self) -> None:
        metrics.unwatch_pool(self.engine, "service")
        self.engine.dispose()


def bootstrap(settings: Settings, *, clock: Clock = utc_now, migrate_db: bool = True) -> Runtime:
    """Open the database (migrating it to head), make sure a signing key exists, load keys."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url
    if migrate_db:
        migrate.upgrade(url)
    engine = make_engine(url)
    metrics.watch_pool(engine, "service")
    sessions = make_sessionmaker(engine)
    try:
        kek = keys.load_kek(settings)
        with transaction(sessions) as session:
            keys.ensure_active_key(session, kek, clock)
        with transaction(sessions) as session:
            ring = keys.load_key_ring(session, kek, settings, clock())
        token_ring = load_token_keys(sessions, kek, settings, clock())
    except BaseException:
        metrics.unwatch_pool(engine, "service")
        engine.dispose()
        raise
    return Runtime(
        settings,
        engine,
        sessions,
        kek,
        keys.KeyRingCache(ring),
        tokens.TokenRingCache(token_ring),
        clock,
    )


def load_token_keys(
    sessions: sessionmaker[Session],
    kek: keys.KeyEncryptionKey,
    settings: Settings,
    now: dt.datetime,
) -> tokens.TokenKeyRing:
    """Make this epoch's and the next epoch's token keys if missing, then load them all."""
    with transaction(sessions) as session:
        tokens.ensure_keys(session, kek, settings, now)
    with transaction(sessions) as session:
        return tokens.load_ring(session, kek, settings, now)
