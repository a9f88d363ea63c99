"""The payees that payment pointers name, as the streaming sockets look them up: cached for a
while and shared by concurrent look-ups (a popular site's readers start thousands of streams to
one pointer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from trickle.db import transaction
from trickle.payees import PayeeInfo, payee_by_pointer
from trickle.runtime import Runtime

MAX_CACHED = 10_000


class PayeeCache:
    """The payee of a payment pointer: from the database (in ``lookups``, a thread pool), then
    cached for ``cache_s``; concurrent look-ups of one pointer share one query. Unknown
    pointers are not cached."""

    def __init__(
        self, runtime: Runtime, lookups: Executor, clock_ms: Callable[[], int], cache_s: float
    ) -> None:
        self._runtime = runtime
        self._lookups = lookups
        self._clock_ms = clock_ms
        self._cache_ms = int(cache_s * 1000)
        self._cached: dict[str, tuple[int, PayeeInfo]] = {}  # pointer -> (expiry ms, payee)
        self._running: dict[str, asyncio.Future[PayeeInfo | None]] = {}

    async def get(self, pointer: str) -> PayeeInfo | None:
        cached = self._cached.get(pointer)
        if cached is not None and cached[0] > self._clock_ms():
            return cached[1]
        lookup = self._running.get(pointer)
        if lookup is None:
            loop = asyncio.get_running_loop()
            lookup = asyncio.ensure_future(loop.run_in_executor(self._lookups, self._find, pointer))
            self._running[pointer] = lookup
            lookup.add_done_callback(lambda _: self._running.pop(pointer, None))
        payee = await asyncio.shield(lookup)
        if payee is not None:
            if len(self._cached) >= MAX_CACHED:
                self._cached.clear()
            self._cached[pointer] = (self._clock_ms() + self._cache_ms, payee)
        return payee

    def _find(self, pointer: str) -> PayeeInfo | None:
        runtime = self._runtime
        with transaction(runtime.sessions) as session:
            return payee_by_pointer(session, pointer, runtime.settings, runtime.clock())
