"""The clock of the streams: when each active stream's next increment falls due, and the tick
that turns due streams' accrued whole units into increments for the next group commit."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
from collections.abc import Callable

from trickle import ledger, money
from trickle.settings import Settings
from trickle.streaming.streams import ACTIVE, Stream

log = logging.getLogger("trickle.streaming")
MonotonicMs = Callable[[], int]
CATCH_UP_INTERVALS = 10  # a stream further behind its schedule than this starts a new one


@dataclasses.dataclass(frozen=True, slots=True)
class Increment:
    """A stream's accrued whole units, cut for the next group commit: the charge, and the
    ``seq`` its receipt will have."""

    stream: Stream
    charge: ledger.Charge
    seq: int


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Schedule:
    """The due times of the active streams (a heap; an entry whose stream changed state since is
    skipped) and the increments cut from them, waiting for the next group commit. Due streams
    are collected at most once per ``window_ms``, so one group carries a window's increments."""

    def __init__(
        self,
        settings: Settings,
        clock_ms: MonotonicMs,
        *,
        interval_ms: int,
        window_ms: int,
        on_pending: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._clock_ms = clock_ms
        self._interval_ms = interval_ms
        # The reader's rate allowance holds this long at their top rate (``ledger.plan``'s rate
        # cap, docs/ledger.md#the-rate-cap). Enough for one node's legitimate flow: its
        # increments pay at most the rate over time, but each pays the interval before its cut
        # (the first up to a late interval, catch-ups more) while the allowance refills by the
        # commits' wall clock, which lags a cut by the group's wait and commit: two intervals
        # and 2 s cover a first increment, one late interval and a slow commit.
        self._rate_burst_ms = 2 * interval_ms + 2000
        self._window_ms = window_ms
        self._on_pending = on_pending  # increments are waiting: start the group commit
        self._heap: list[tuple[int, int, int, Stream]] = []  # (due ms, tie, generation, stream)
        self._tie = itertools.count()
        self._pending: list[Increment] = []
        self._wake: asyncio.Future[None] | None = None  # the tick loop's sleep, while it sleeps
        self._next_tick_ms = 0
        self._last_tick_ms = -(10**12)

    # --- due times -------------------------------------------------------------------------

    def start(self, stream: Stream, now_ms: int) -> None:
        """The stream's next increment falls due an interval from now: it became active, or
        its increment was not paid (tried again on its next turn, not at once)."""
        stream.next_due_ms = now_ms + self._interval_ms
        self._push(stream)

    def _push(self, stream: Stream) -> None:
        heapq.heappush(self._heap, (stream.next_due_ms, next(self._tie), stream.generation, stream))
        wake = self._wake
        if wake is not None and not wake.done() and stream.next_due_ms < self._next_tick_ms:
            wake.set_result(None)  # due before the tick loop planned to wake up

    # --- the tick --------------------------------------------------------------------------

    async def run(self) -> None:
        """The tick loop: tick when something falls due (at most once per window)."""
        loop = asyncio.get_running_loop()
        window = self._window_ms
        while True:
            now = self._clock_ms()
            if now >= self._last_tick_ms + window:
                try:
                    self.tick(now)
                except Exception:  # a bug must not stop every stream of the process
                    log.exception("tick failed")
                self._last_tick_ms = now
            next_due = self._heap[0][0] if self._heap else now + 1000
            self._next_tick_ms = max(next_due, self._last_tick_ms + window)
            self._wake = wake = loop.create_future()
            timer = loop.call_later(max(0, self._next_tick_ms - now) / 1000, _resolve, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None

    def tick(self, now: int) -> None:
        """Turn every stream due at ``now`` into an increment (public for tests with a fake
        clock)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, generation, stream = heapq.heappop(heap)
            if generation != stream.generation or stream.state is not ACTIVE:
                continue
            self.due(stream, due, now)
        if self._pending:
            self._on_pending()

    def due(self, stream: Stream, due: int, now: int) -> None:
        """The stream's increment due at ``due``: cut now, or after the one in flight lands."""
        if stream.in_flight:  # the previous increment is still committing: this one follows
            stream.owed_due_ms = due  # it as soon as it lands (delivery), not a turn later
            return
        reader = stream.reader
        interval = self._interval_ms
        # Keep the stream's schedule: one that fell behind (a slow moment) catches up, one
        # receipt per group commit, for the time accrued by then. Far behind (a stall), it
        # starts a new schedule instead of a burst.
        next_due = due + interval
        if next_due <= now - CATCH_UP_INTERVALS * interval:
            next_due = now + interval
        stream.next_due_ms = next_due
        self._push(stream)
        rate = reader.policy.site_rate(stream.origin) or 0
        stream.accrual.add(rate, now - stream.last_ms, reader.active_count + reader.remote_active)
        stream.last_ms = now
        self._cut(stream)

    def final(self, stream: Stream, now_ms: int) -> None:
        """Charge what the stream accrued (settled up to ``now_ms``) as an increment now, off its
        schedule: when it ends or the server stops. Only a fraction of a unit stays uncharged.
        If an increment is in flight, this one is cut when that one lands (delivery)."""
        if stream.in_flight:
            stream.final_owed = True
            return
        stream.final_owed = False
        self._cut(stream)
        if self._pending:
            self._on_pending()

    def _cut(self, stream: Stream) -> None:
        """The stream's accrued whole units become an increment of the next group (if any)."""
        reader = stream.reader
        amount = stream.accrual.take()
        if amount <= 0:
            return
        settings = self._settings
        seq = stream.seq + 1
        charge = ledger.Charge(
            user_id=reader.user_id,
            reader_account_id=reader.account_id,
            payee_account_id=stream.payee.account_id,
            fee_account_id=stream.payee.fee_account_id,
            currency=settings.currency,
            amount_minor=amount,
            fee_minor=money.fee_of(amount, settings.fee_bps),
            key=f"{stream.sid}.{seq}",
            origin=stream.origin,
            budget_minor=reader.policy.monthly_budget_minor,
            month=reader.month,
            rate_per_hour_minor=reader.policy.top_rate(),
            rate_burst_ms=self._rate_burst_ms,
        )
        stream.in_flight = True
        self._pending.append(Increment(stream, charge, seq))

    # --- what waits for the group commit ---------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[Increment]:
        """Every increment cut so far (the next group), in order."""
        group, self._pending = self._pending, []
        return group
