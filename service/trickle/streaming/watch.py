"""The login sessions behind the open sockets: when one is revoked or expires, its connections'
streams end and the sockets close with ``session_ended``."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from trickle import sessions
from trickle.db import transaction
from trickle.runtime import Runtime
from trickle.streaming.connection import Connection
from trickle.streaming.protocol import CloseCode, EndReason
from trickle.streaming.streams import StreamStates

log = logging.getLogger("trickle.streaming")


class SessionWatch:
    """Checks the login sessions of all of the process's open sockets every ``check_s`` (one
    query for all of them): a revoked or expired one's sockets close within that (plus a
    commit in flight)."""

    def __init__(
        self,
        runtime: Runtime,
        states: StreamStates,
        connections: set[Connection],
        lookups: ThreadPoolExecutor,
        clock_ms: Callable[[], int],
        *,
        check_s: float,
    ) -> None:
        self._runtime = runtime
        self._states = states
        self._connections = connections
        self._lookups = lookups
        self._clock_ms = clock_ms
        self._check_s = check_s

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._check_s)
            try:
                await self.check()
            except Exception:  # keep streaming; the next check tries again
                log.exception("session check failed")

    async def check(self, now: dt.datetime | None = None) -> None:
        """End every connection whose login session has expired (known here) or was revoked:
        log out or log out everywhere, through any process on this database. See ``end``.
        ``now``: the time to check against (tests); by default the runtime's clock."""
        at = now or self._runtime.clock()
        watched: dict[Connection, int] = {}  # connection -> its session, still to be asked
        ended: list[Connection] = []
        for connection in self._connections:
            login, expires_at = connection.session_id, connection.session_expires_at
            if login is None or expires_at is None or connection.closing or connection.closed:
                continue
            if expires_at <= at:
                ended.append(connection)  # no need to ask the database
            else:
                watched[connection] = login
        if watched:
            loop = asyncio.get_running_loop()
            asked = sorted(set(watched.values()))
            live = await loop.run_in_executor(self._lookups, self._live, asked, now)
            ended += [c for c, login in watched.items() if login not in live]
        for connection in ended:
            if not connection.closed and connection.closing is None:  # (it may have meanwhile)
                self.end(connection)

    def _live(self, session_ids: list[int], now: dt.datetime | None) -> set[int]:
        with transaction(self._runtime.sessions) as session:
            return sessions.live_ids(session, session_ids, now or self._runtime.clock())

    def end(self, connection: Connection) -> None:
        """The connection's login session ended: its streams end at once (``stopped``, reason
        ``session_ended``) and what they accrued since their last increment is not charged; an
        increment already in flight lands and its receipt goes out; then the socket closes
        with ``session_ended``."""
        now = self._clock_ms()
        for stream in list(connection.streams.values()):
            self._states.end(stream, now, EndReason.SESSION_ENDED)
        connection.close_when_ended(
            CloseCode.SESSION_ENDED, "the login session was revoked or expired"
        )
