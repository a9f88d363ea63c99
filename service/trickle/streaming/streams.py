"""The process's readers and streams: which state each stream is in and why, the transitions
between states, and the accrual settled at each of them."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from trickle.payees import PayeeInfo
from trickle.readers import ReaderPolicy
from trickle.settings import Settings
from trickle.streaming import protocol
from trickle.streaming.accrual import HOUR_MS, Accrual
from trickle.streaming.connection import Connection
from trickle.streaming.protocol import EndReason, Refusal, State

ACTIVE = (
    State.ACTIVE
)  # a module global: the hot paths compare with it (``State.ACTIVE`` costs more)


class Timetable(Protocol):
    """What the transitions ask of the schedule (``schedule.Schedule``)."""

    def start(self, stream: Stream, now_ms: int) -> None:
        """The stream became active: its first increment falls due an interval from now."""

    def final(self, stream: Stream, now_ms: int) -> None:
        """Charge what the stream accrued (settled up to now) as an increment, off schedule."""


class Presence(Protocol):
    """What the transitions tell the other nodes (``cluster.Cluster``, on PostgreSQL)."""

    def share_changed(self, reader: Reader) -> None:
        """The reader's active streams on this node changed in number."""

    def ended(self, stream: Stream) -> None:
        """The stream ended for good (stopped, or its login session ended)."""


@dataclasses.dataclass(eq=False)
class Reader:
    user_id: int
    account_id: int
    policy: ReaderPolicy
    connections: set[Connection] = dataclasses.field(default_factory=set)
    streams: set[Stream] = dataclasses.field(default_factory=set)
    blocked: Refusal | None = None  # the last refusal of the group commit, until funds return
    balance_minor: int = 0
    spent_minor: int = 0
    month: str = ""
    active_count: int = 0  # streams in state ``active``; kept by set_state and end
    # The reader's active streams on other nodes (PostgreSQL: ``cluster``), node -> count, and
    # their sum: a stream's share of the rate is 1 / (active_count + remote_active).
    remote: dict[int, int] = dataclasses.field(default_factory=dict)
    remote_active: int = 0


@dataclasses.dataclass(eq=False)
class Stream:
    sid: str
    reader: Reader
    connection: Connection | None
    origin: str
    payee: PayeeInfo
    binding: str | None
    client_active: bool
    state: State = State.INACTIVE
    seq: int = 0
    total_minor: int = 0
    accrual: Accrual = dataclasses.field(default_factory=Accrual)
    last_ms: int = 0
    next_due_ms: int = 0
    generation: int = 0
    in_flight: bool = False
    owed_due_ms: int | None = None  # a due time that came while in_flight: served on delivery
    latest: str | None = None  # the latest committed receipt message, encoded
    final_owed: bool = False  # a final increment waits for the one in flight (Schedule.final)
    orphaned_until_ms: int | None = None
    end_reason: EndReason | None = None  # set when the stream ends
    epoch: int = 0  # its claim in the database (``nodes.claim``): PostgreSQL only


class StreamStates:
    """Every reader and stream of the process. A stream accrues only while it is *active*: its
    connection is up, the client reports the page visible and focused, the reader has not
    paused, the site is not turned off and the reader's funds and budget are not exhausted."""

    def __init__(self, settings: Settings, timetable: Timetable, interval_ms: int) -> None:
        self._settings = settings
        self._timetable = timetable
        self._interval_ms = interval_ms
        self.readers: dict[int, Reader] = {}
        self.streams: dict[str, Stream] = {}
        self.draining = False  # a graceful stop has begun: nothing accrues any more
        self.presence: Presence | None = None  # the other nodes, on PostgreSQL

    def reader(self, user_id: int, account_id: int, policy: ReaderPolicy) -> Reader:
        """The reader's state, made on their first connection."""
        reader = self.readers.get(user_id)
        if reader is None:
            reader = Reader(user_id, account_id, policy)
            self.readers[user_id] = reader
        return reader

    def add(self, stream: Stream) -> None:
        assert stream.connection is not None
        self.streams[stream.sid] = stream
        stream.connection.streams[stream.sid] = stream
        stream.reader.streams.add(stream)

    # --- states ----------------------------------------------------------------------------

    def desired(self, stream: Stream) -> State:
        reader = stream.reader
        if stream.connection is None or self.draining:
            return State.DISCONNECTED
        if reader.policy.frozen:
            return State.ACCOUNT_FROZEN
        if reader.policy.paused:
            return State.PAUSED
        if reader.policy.site_rate(stream.origin) is None:
            return State.SITE_DISABLED
        if reader.blocked is not None:
            return reader.blocked
        return ACTIVE if stream.client_active else State.INACTIVE

    def refresh(self, stream: Stream, now: int, force_notify: bool = False) -> None:
        desired = self.desired(stream)
        if desired != stream.state:
            self.settle(stream.reader, now)
            self.set_state(stream, desired, now)
        elif force_notify:
            self.notify(stream)

    def set_state(self, stream: Stream, state: State, now: int, notify: bool = True) -> None:
        change = (state is ACTIVE) - (stream.state is ACTIVE)
        if change:
            stream.reader.active_count += change
            if self.presence is not None:
                self.presence.share_changed(stream.reader)
        stream.state = state
        stream.generation += 1
        stream.last_ms = now
        stream.owed_due_ms = None
        if state is ACTIVE:
            self._timetable.start(stream, now)
        if notify:
            self.notify(stream)

    def notify(self, stream: Stream) -> None:
        if stream.connection is not None and stream.state != State.DISCONNECTED:
            message: dict[str, Any] = {"type": "state", "sid": stream.sid, "state": stream.state}
            if stream.state is not ACTIVE:
                message["reason"] = stream.state
            stream.connection.send(message)

    def settle(self, reader: Reader, now: int) -> None:
        """Accrue every active stream of the reader up to ``now`` at the current shares."""
        share = reader.active_count + reader.remote_active
        for stream in reader.streams:
            if stream.state is ACTIVE:
                rate = reader.policy.site_rate(stream.origin) or 0
                stream.accrual.add(rate, now - stream.last_ms, share)
            stream.last_ms = now

    # --- the end of a stream ---------------------------------------------------------------

    def end(self, stream: Stream, now: int, reason: EndReason, *, final: bool = False) -> None:
        """End the stream for good. ``final``: charge what it accrued since its last increment
        (whole units) as one more increment, whose receipt precedes ``stopped``."""
        reader = stream.reader
        self.settle(reader, now)
        stream.generation += 1
        if stream.state is ACTIVE:
            reader.active_count -= 1
            if self.presence is not None:
                self.presence.share_changed(reader)
        stream.state = State.STOPPED
        stream.end_reason = reason
        if self.presence is not None and reason is not EndReason.DISCONNECTED:
            self.presence.ended(stream)
        reader.streams.discard(stream)
        self.streams.pop(stream.sid, None)
        connection = stream.connection
        if connection is not None:
            connection.streams.pop(stream.sid, None)
            if final and not connection.closed:
                self._timetable.final(stream, now)
        if stream.in_flight:  # its delivery sends ``stopped``, after the last receipt
            if connection is not None:
                connection.ending.add(stream.sid)
        else:
            self.send_stopped(stream)
        self.forget_if_idle(reader)

    def send_stopped(self, stream: Stream) -> None:
        connection = stream.connection
        if connection is None:
            return
        connection.send(
            {
                "type": "stopped",
                "sid": stream.sid,
                "reason": stream.end_reason,
                "seq": stream.seq,
                "tot": str(stream.total_minor),
            }
        )
        connection.ending.discard(stream.sid)
        connection.close_if_ended()

    def set_remote(self, reader: Reader, remote: dict[int, int], now: int) -> None:
        """The reader's active streams on the other nodes changed: the shares change from now."""
        if remote == reader.remote:
            return
        self.settle(reader, now)
        reader.remote = remote
        reader.remote_active = sum(remote.values())

    def forget_if_idle(self, reader: Reader) -> None:
        if not reader.connections and not reader.streams:
            self.readers.pop(reader.user_id, None)

    # --- funds -----------------------------------------------------------------------------

    def block(self, reader: Reader, reason: Refusal, now: int) -> None:
        """The group commit refused an increment of the reader: every stream of theirs waits."""
        if reader.blocked == reason:
            return
        reader.blocked = reason
        for stream in list(reader.streams):
            self.refresh(stream, now)
            stream.accrual.clear()  # unpaid time while blocked is not charged later

    def update(
        self,
        reader: Reader,
        now: int,
        *,
        policy: ReaderPolicy,
        balance_minor: int,
        spent_minor: int,
        month: str,
    ) -> None:
        """Fresh settings (pause, rates, overrides, budget) and funds of the reader: a blocked
        reader with room again for an increment goes on."""
        self.settle(reader, now)
        reader.policy, reader.month = policy, month
        reader.balance_minor, reader.spent_minor = balance_minor, spent_minor
        room = min(balance_minor, policy.monthly_budget_minor - spent_minor)
        if reader.blocked is not None and room >= self._one_interval_minor(reader):
            reader.blocked = None
        for stream in list(reader.streams):
            self.refresh(stream, now)

    def _one_interval_minor(self, reader: Reader) -> int:
        """The most one increment of the reader can cost: an interval at their highest rate.
        A remainder below it stays blocked, instead of flapping active -> refused every refresh."""
        rates = [reader.policy.site_rate(s.origin) or 0 for s in reader.streams]
        top = max(rates, default=reader.policy.rate_per_hour_minor)
        return max(1, -(-top * self._interval_ms // HOUR_MS))

    def funds(self, reader: Reader) -> dict[str, Any]:
        """The funds fields of ``welcome`` and ``balance``."""
        return {
            "balance_minor": str(reader.balance_minor),
            "month_spent_minor": str(reader.spent_minor),
            "month_budget_minor": str(reader.policy.monthly_budget_minor),
            "currency": self._settings.currency,
            "scale": self._settings.asset_scale,
        }

    def send_funds(self, reader: Reader, now_ms: int) -> None:
        """A ``balance`` to each connection of the reader whose turn it is (encoded once)."""
        text = None
        for connection in reader.connections:
            if connection.balance_turn(now_ms):
                text = text or protocol.dumps({"type": "balance", **self.funds(reader)})
                connection.send_text(text)
