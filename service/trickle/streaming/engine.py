"""The streaming engine of one service process: connections, streams, accrual, group commit.

Everything here runs on the event loop except database work, which runs in a single committer
thread (commits) and the default thread pool (look-ups). A stream accrues only while it is
*active*: its connection is up, the client reports the page visible and focused, the reader has
not paused, the site is not turned off and the reader's funds and budget are not exhausted. Every
``interval`` an active stream's accrued whole units become a ``Posting``; postings of all streams
are committed together; only then are receipts signed and sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine

from trickle import money, sessions, spending
from trickle.db import make_engine, transaction
from trickle.errors import TrickleError
from trickle.origins import normalize_origin
from trickle.payees import PayeeInfo, payee_by_pointer
from trickle.readers import (
    FundingSource,
    ReaderBalance,
    ReaderPolicy,
    bulk_refresh,
    funds,
    reader_policy,
)
from trickle.receipts import ReceiptClaims, ReceiptSigner, new_stream_id
from trickle.runtime import Runtime
from trickle.streaming import committer, protocol
from trickle.streaming.accrual import HOUR_MS, Accrual

log = logging.getLogger("trickle.streaming")
T = TypeVar("T")
MonotonicMs = Callable[[], int]
CloseSocket = Callable[[int, str], Awaitable[None]]  # (code, reason)

ACTIVE = "active"
_Batch = list[tuple["Stream", committer.Posting, int, int]]  # (stream, posting, seq, due ms)
BLOCKING_REASONS = ("insufficient_funds", "budget_exhausted")
BATCH_MAX = 64  # messages per ``batch`` envelope
CATCH_UP_INTERVALS = 10  # a stream further behind its schedule than this starts a new one


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclasses.dataclass(frozen=True)
class EngineLimits:
    interval_ms: int = 2000
    max_message_bytes: int = 4096
    max_streams_per_connection: int = 64
    max_connections_per_reader: int = 8
    hello_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    resume_grace_s: float = 30.0
    max_queued_messages: int = 1000
    max_invalid_messages: int = 20
    settings_refresh_s: float = 2.0
    funds_probe_s: float = 5.0
    payee_cache_s: float = 10.0
    group_lock_wait_s: float = 2.0  # see StreamEngine._group_engine
    # Due streams are collected at most once per window: one group commit then carries every
    # increment of the window (a group has a fixed cost of ~0.5-1 ms; with thousands of streams
    # whose due times spread over the second, a group per millisecond would spend most of a core
    # on it; 20 ms against 10 ms: p99 290 -> 190 ms in the 5,000-stream benchmark). Adds at
    # most this much to a receipt's latency; an idle engine ticks on time.
    commit_window_ms: int = 20
    # How often the login sessions behind the open sockets are checked (one query for all of
    # them): a revoked or expired session's sockets close within this (plus a commit in flight).
    session_check_s: float = 0.5
    drain_timeout_s: float = 10.0  # graceful stop: the most it waits for commits and writers


class Connection:
    """One client socket's state. Outgoing messages go through a queue and a writer task, so a
    slow client only ever blocks itself; after the last message the writer sends the close."""

    def __init__(
        self,
        engine: StreamEngine,
        send_text: Callable[[str], Awaitable[None]],
        close_socket: CloseSocket | None = None,
    ) -> None:
        self.engine = engine
        self._send_text = send_text
        self._close_socket = close_socket
        self.reader: Reader | None = None
        self.session_id: int | None = None  # the login session of the hello's token
        self.session_expires_at: dt.datetime | None = None
        self.streams: dict[str, Stream] = {}
        self.ending: set[Stream] = set()  # ended streams whose ``stopped`` is not sent yet
        self.refs: set[str] = set()
        self.invalid_messages = 0
        self.batch = False  # the client said it reads ``batch`` envelopes (hello)
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.closing: tuple[int, str] | None = None  # close once ``ending`` is empty
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._last_balance_ms = 0
        self.writer = asyncio.create_task(self._write())

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(protocol.dumps(message))

    def send_text(self, text: str) -> None:
        """Send one message, already encoded as JSON."""
        if self.closed:
            return
        outbox = self.engine._outbox
        if outbox is not None and self.batch:
            outbox.setdefault(self, []).append(text)  # sent with the group's others
            return
        self._enqueue(text)

    def send_batch(self, texts: list[str]) -> None:
        """Several encoded messages in as few frames as possible (``batch`` envelopes of at most
        ``BATCH_MAX``), in order: one frame, one write, one wake-up of the client."""
        for start in range(0, len(texts), BATCH_MAX):
            if self.closed:
                return
            chunk = texts[start : start + BATCH_MAX]
            if len(chunk) == 1:
                self._enqueue(chunk[0])
            else:
                self._enqueue('{"type":"batch","messages":[' + ",".join(chunk) + "]}")

    def _enqueue(self, text: str) -> None:
        if self._queue.qsize() >= self.engine.limits.max_queued_messages:
            self.close(protocol.CLOSE_CODES["too_slow"], "the client does not read its messages")
            return
        self._queue.put_nowait(text)

    def close(self, code: int, reason: str) -> None:
        """Close after the messages queued so far (they are written first, then the close)."""
        if self.closed:
            return
        self.closed, self.close_code, self.close_reason = True, code, reason
        self._queue.put_nowait(None)

    def close_when_ended(self, code: int, reason: str) -> None:
        """Close once every ended stream of this connection has its last receipt and its
        ``stopped`` out (an increment in flight lands first)."""
        if self.ending:
            self.closing = (code, reason)
        else:
            self.close(code, reason)

    def abandon(self) -> None:
        """The socket is gone: end the writer now (a disconnect by the client never ``close``s,
        and the handler waits for the writer)."""
        self.closed = True
        self._queue.put_nowait(None)

    async def _write(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                break
            try:
                await self._send_text(text)
            except Exception:  # noqa: BLE001 - any send failure means the socket is gone
                self.closed = True
                return
        if self.close_code is not None and self._close_socket is not None:
            # here, not in the socket handler: when the writer is done, the close is sent too
            # (a graceful stop waits for exactly that)
            with contextlib.suppress(Exception):  # the peer may be gone already
                await self._close_socket(self.close_code, self.close_reason[:120])


@dataclasses.dataclass(eq=False)
class Reader:
    user_id: int
    account_id: int
    policy: ReaderPolicy
    connections: set[Connection] = dataclasses.field(default_factory=set)
    streams: set[Stream] = dataclasses.field(default_factory=set)
    blocked: str | None = None  # "insufficient_funds" | "budget_exhausted"
    balance_minor: int = 0
    spent_minor: int = 0
    month: str = ""
    active_count: int = 0  # streams in state ACTIVE; kept by StreamEngine._set_state and _end


@dataclasses.dataclass(eq=False)
class Stream:
    sid: str
    reader: Reader
    connection: Connection | None
    origin: str
    payee: PayeeInfo
    binding: str | None
    client_active: bool
    state: str = "inactive"
    seq: int = 0
    total_minor: int = 0
    accrual: Accrual = dataclasses.field(default_factory=Accrual)
    last_ms: int = 0
    next_due_ms: int = 0
    generation: int = 0
    in_flight: bool = False
    owed_due_ms: int | None = None  # a due time that came while in_flight: served on delivery
    latest: str | None = None  # the latest committed receipt message, encoded
    final_owed: bool = False  # a final increment waits for the one in flight (see _final)
    orphaned_until_ms: int | None = None
    end_reason: str | None = None  # set when the stream ends


class StreamEngine:
    def __init__(
        self,
        runtime: Runtime,
        limits: EngineLimits | None = None,
        clock_ms: MonotonicMs = monotonic_ms,
        funding: FundingSource | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.funding: FundingSource = funding or ReaderBalance(runtime.settings)
        self.limits = limits or EngineLimits()
        self.clock_ms = clock_ms
        self.readers: dict[int, Reader] = {}
        self.streams: dict[str, Stream] = {}
        self.connections: set[Connection] = set()
        self._heap: list[tuple[int, int, int, Stream]] = []
        self._tie = itertools.count()
        self._pending: list[tuple[Stream, committer.Posting, int, int]] = []
        self._commit_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._payees: dict[str, tuple[int, PayeeInfo]] = {}  # pointer -> (expiry ms, payee)
        self._payee_lookups: dict[str, asyncio.Future[PayeeInfo | None]] = {}
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="trickle-commit")
        self._groups: Engine | None = None  # see _group_engine
        self._lookups = ThreadPoolExecutor(4, thread_name_prefix="trickle-lookup")
        self._wake: asyncio.Future[None] | None = None  # the tick loop's sleep, while it sleeps
        self._next_tick_ms = 0
        self._last_tick_ms = -(10**12)
        # While a group is delivered: the messages for connections that read batches.
        self._outbox: dict[Connection, list[str]] | None = None
        self.latencies_ms: list[int] = []  # due -> sent, for the benchmark and tests
        self.record_latencies = False
        self.draining = False  # a graceful stop has begun (see drain)
        self._drain: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._tick_loop()),
            asyncio.create_task(self._maintenance_loop()),
            asyncio.create_task(self._session_loop()),
        ]

    async def stop(self) -> None:
        await self.drain()
        await self.flush()
        self._committer.shutdown(wait=True)
        self._lookups.shutdown(wait=True)
        if self._groups is not None:
            self._groups.dispose()

    async def drain(self) -> None:
        """The graceful stop, before the server closes any socket: accrual stops; every stream on
        a connection gets a final increment for what it accrued since its last one (after the
        one in flight, if any); those commit, their receipts are written to the sockets, and then
        every socket closes with ``server_shutdown`` (1001). Streams are not ended (a client
        resumes or starts anew elsewhere). Bounded by ``drain_timeout_s``; safe to call again."""
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_once())
        await asyncio.shield(self._drain)

    async def _drain_once(self) -> None:
        self.draining = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        now = self.clock_ms()
        for reader in list(self.readers.values()):
            self._settle_reader(reader, now)
            for stream in list(reader.streams):
                if stream.connection is not None:
                    self._set_state(stream, "disconnected", now, notify=False)
                    if not stream.connection.closed:  # its receipt can still reach the client
                        self._final(stream, now)
        deadline = time.monotonic() + self.limits.drain_timeout_s
        try:
            await asyncio.wait_for(self.flush(), self.limits.drain_timeout_s)
        except TimeoutError:
            log.error("graceful stop: commits still running after %ss", self.limits.drain_timeout_s)
        for connection in list(self.connections):
            connection.close(protocol.CLOSE_CODES["server_shutdown"], "server shutting down")
        writers = {connection.writer for connection in self.connections}
        if writers:
            _, late = await asyncio.wait(writers, timeout=max(0.1, deadline - time.monotonic()))
            if late:
                log.warning("graceful stop: %d clients did not take their messages", len(late))

    async def flush(self) -> None:
        """Wait until every increment produced so far is committed and its receipt queued."""
        while self._commit_task is not None and not self._commit_task.done():
            await self._commit_task

    async def _db(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._lookups, function, *args)

    # --- connections ------------------------------------------------------------------------

    def open(
        self, send_text: Callable[[str], Awaitable[None]], close_socket: CloseSocket | None = None
    ) -> Connection:
        connection = Connection(self, send_text, close_socket)
        self.connections.add(connection)
        return connection

    async def authenticate(self, connection: Connection, hello: protocol.Hello) -> None:
        if hello.v != protocol.PROTOCOL_VERSION:
            raise protocol.ProtocolViolation(
                "unsupported_version", f"this server speaks version {protocol.PROTOCOL_VERSION}"
            )
        try:
            login, user_id, account_id, policy, balance, spent, month = await self._db(
                self._load_reader, hello.token
            )
        except TrickleError:
            raise protocol.ProtocolViolation(
                "unauthenticated", "unknown or expired token"
            ) from None
        if self.draining:
            raise protocol.ProtocolViolation("server_shutdown", "server shutting down")
        reader = self.readers.get(user_id)
        if reader is None:
            reader = Reader(user_id, account_id, policy)
            self.readers[user_id] = reader
        reader.balance_minor, reader.spent_minor, reader.month = balance, spent, month
        if len(reader.connections) >= self.limits.max_connections_per_reader:
            raise protocol.ProtocolViolation(
                "too_many_connections",
                f"at most {self.limits.max_connections_per_reader} connections per reader",
            )
        reader.connections.add(connection)
        connection.reader = reader
        connection.session_id, connection.session_expires_at = login
        connection.batch = hello.batch
        connection.send(
            {
                "type": "welcome",
                "v": protocol.PROTOCOL_VERSION,
                "interval_ms": self.limits.interval_ms,
                "limits": {
                    "max_message_bytes": self.limits.max_message_bytes,
                    "max_streams": self.limits.max_streams_per_connection,
                    "resume_grace_s": self.limits.resume_grace_s,
                },
                **self._funds_fields(reader),
            }
        )

    def _load_reader(
        self, token: str
    ) -> tuple[tuple[int, dt.datetime], int, int, ReaderPolicy, int, int, str]:
        now = self.runtime.clock()
        with transaction(self.runtime.sessions) as session:
            user, login = sessions.authenticate(session, token, now)
            account_id = self.funding.account_for(session, user.id, now)
            policy = reader_policy(session, user.id, self.settings)
            month = spending.month_of(now)
            balance, spent = funds(session, self.funding, user.id, account_id, month)
        return (login.id, login.expires_at), user.id, account_id, policy, balance, spent, month

    def disconnect(self, connection: Connection) -> None:
        """The socket closed: its streams stop accruing and wait ``resume_grace_s`` for a resume."""
        connection.abandon()
        self.connections.discard(connection)
        reader = connection.reader
        if reader is None:
            return
        reader.connections.discard(connection)
        now = self.clock_ms()
        grace_ms = int(self.limits.resume_grace_s * 1000)
        self._settle_reader(reader, now)
        for stream in list(connection.streams.values()):
            stream.connection = None
            stream.orphaned_until_ms = now + grace_ms
            self._set_state(stream, "disconnected", now, notify=False)
        connection.streams.clear()
        self._forget_if_idle(reader)

    # --- messages -------------------------------------------------------------------------

    async def handle(self, connection: Connection, message: protocol.ClientMessage) -> None:
        reader = connection.reader
        assert reader is not None
        if connection.closing is not None:
            return  # its session ended: the close (4440) follows once its last receipts are out
        now = self.clock_ms()
        if isinstance(message, protocol.Start):
            await self._start(connection, reader, message, now)
        elif isinstance(message, protocol.Attention):
            stream = self._stream_of(connection, message.sid)
            if stream is not None:
                stream.client_active = message.active
                self._refresh_stream(stream, now)
        elif isinstance(message, protocol.Stop):
            stream = self._stream_of(connection, message.sid)
            if stream is not None:
                self._end(stream, now, "stopped", final=True)
        elif isinstance(message, protocol.Resume):
            self._resume(connection, reader, message, now)
        elif isinstance(message, protocol.Ping):
            connection.send({"type": "pong", "data": message.data})
        elif isinstance(message, protocol.BalanceQuery):
            connection.send({"type": "balance", **self._funds_fields(reader)})
        else:  # a second hello
            raise protocol.InvalidMessage("already authenticated")

    async def _start(
        self, connection: Connection, reader: Reader, message: protocol.Start, now: int
    ) -> None:
        if len(connection.streams) >= self.limits.max_streams_per_connection:
            self._error(
                connection,
                "too_many_streams",
                f"at most {self.limits.max_streams_per_connection} streams per connection",
                ref=message.ref,
            )
            return
        if message.ref in connection.refs:
            self._error(connection, "duplicate_ref", "this ref is in use", ref=message.ref)
            return
        try:
            origin = normalize_origin(message.origin)
        except TrickleError:
            self._error(
                connection, "invalid_origin", "origin must be scheme://host[:port]", ref=message.ref
            )
            return
        connection.refs.add(message.ref)
        payee = await self._payee(message.pointer)
        if payee is None:
            connection.refs.discard(message.ref)
            self._error(
                connection, "payee_not_found", "no payee has this payment pointer", ref=message.ref
            )
            return
        if connection.closed:
            return
        now = self.clock_ms()
        stream = Stream(
            new_stream_id(),
            reader,
            connection,
            origin,
            payee,
            message.binding,
            client_active=message.active,
            last_ms=now,
        )
        self.streams[stream.sid] = stream
        connection.streams[stream.sid] = stream
        reader.streams.add(stream)
        connection.send(
            {
                "type": "started",
                "ref": message.ref,
                "sid": stream.sid,
                "origin": origin,
                "pointer": payee.pointer,
            }
        )
        self._refresh_stream(stream, now, force_notify=True)

    async def _payee(self, pointer: str) -> PayeeInfo | None:
        """The payee of a payment pointer: from the database, then cached for ``payee_cache_s``
        (a popular site's readers start thousands of streams to the same pointer); concurrent
        look-ups of one pointer share one query. Unknown pointers are not cached."""
        cached = self._payees.get(pointer)
        if cached is not None and cached[0] > self.clock_ms():
            return cached[1]
        lookup = self._payee_lookups.get(pointer)
        if lookup is None:
            lookup = asyncio.ensure_future(self._db(self._find_payee, pointer))
            self._payee_lookups[pointer] = lookup
            lookup.add_done_callback(lambda _: self._payee_lookups.pop(pointer, None))
        payee = await asyncio.shield(lookup)
        if payee is not None:
            if len(self._payees) >= 10_000:
                self._payees.clear()
            expiry = self.clock_ms() + int(self.limits.payee_cache_s * 1000)
            self._payees[pointer] = (expiry, payee)
        return payee

    def _find_payee(self, pointer: str) -> PayeeInfo | None:
        now = self.runtime.clock()
        with transaction(self.runtime.sessions) as session:
            return payee_by_pointer(session, pointer, self.settings, now)

    def _resume(
        self, connection: Connection, reader: Reader, message: protocol.Resume, now: int
    ) -> None:
        stream = self.streams.get(message.sid)
        expiry = stream.orphaned_until_ms if stream is not None else None
        if stream is not None and expiry is not None and expiry <= now:
            self._end(stream, now, "disconnected")  # its grace ended; the sweep has not run yet
            stream = None
        if stream is None or stream.reader is not reader or stream.connection is not None:
            self._error(
                connection, "unknown_stream", "no resumable stream with this sid", sid=message.sid
            )
            return
        if len(connection.streams) >= self.limits.max_streams_per_connection:
            self._error(connection, "too_many_streams", "the connection is full", sid=message.sid)
            return
        stream.connection = connection
        stream.orphaned_until_ms = None
        stream.client_active = message.active
        connection.streams[stream.sid] = stream
        connection.send(
            {
                "type": "resumed",
                "sid": stream.sid,
                "seq": stream.seq,
                "tot": str(stream.total_minor),
            }
        )
        if stream.latest is not None:  # the same message, marked as sent before
            connection.send_text(stream.latest[:-1] + ',"resent":true}')
        self._refresh_stream(stream, now, force_notify=True)

    def _stream_of(self, connection: Connection, sid: str) -> Stream | None:
        stream = connection.streams.get(sid)
        if stream is None:
            self._error(
                connection, "unknown_stream", "no stream with this sid on this connection", sid=sid
            )
        return stream

    def _error(
        self,
        connection: Connection,
        code: str,
        message: str,
        *,
        ref: str | None = None,
        sid: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if ref is not None:
            body["ref"] = ref
        if sid is not None:
            body["sid"] = sid
        connection.send(body)

    # --- state and accrual ---------------------------------------------------------------

    def _desired_state(self, stream: Stream) -> str:
        reader = stream.reader
        if stream.connection is None or self.draining:
            return "disconnected"
        if reader.policy.paused:
            return "paused"
        if reader.policy.site_rate(stream.origin) is None:
            return "site_disabled"
        if reader.blocked is not None:
            return reader.blocked
        return ACTIVE if stream.client_active else "inactive"

    def _refresh_stream(self, stream: Stream, now: int, force_notify: bool = False) -> None:
        desired = self._desired_state(stream)
        if desired != stream.state:
            self._settle_reader(stream.reader, now)
            self._set_state(stream, desired, now)
        elif force_notify:
            self._notify_state(stream)

    def _set_state(self, stream: Stream, state: str, now: int, notify: bool = True) -> None:
        stream.reader.active_count += (state == ACTIVE) - (stream.state == ACTIVE)
        stream.state = state
        stream.generation += 1
        stream.last_ms = now
        stream.owed_due_ms = None
        if state == ACTIVE:
            stream.next_due_ms = now + self.limits.interval_ms
            self._schedule(stream)
        if notify:
            self._notify_state(stream)

    def _notify_state(self, stream: Stream) -> None:
        if stream.connection is not None and stream.state != "disconnected":
            message: dict[str, Any] = {"type": "state", "sid": stream.sid, "state": stream.state}
            if stream.state != ACTIVE:
                message["reason"] = stream.state
            stream.connection.send(message)

    def _settle_reader(self, reader: Reader, now: int) -> None:
        """Accrue every active stream of the reader up to ``now`` at the current shares."""
        share = reader.active_count
        for stream in reader.streams:
            if stream.state == ACTIVE:
                rate = reader.policy.site_rate(stream.origin) or 0
                stream.accrual.add(rate, now - stream.last_ms, share)
            stream.last_ms = now

    def _end(self, stream: Stream, now: int, reason: str, *, final: bool = False) -> None:
        """End the stream for good. ``final``: charge what it accrued since its last increment
        (whole units) as one more increment, whose receipt precedes ``stopped``."""
        reader = stream.reader
        self._settle_reader(reader, now)
        stream.generation += 1
        reader.active_count -= stream.state == ACTIVE
        stream.state = "stopped"
        stream.end_reason = reason
        reader.streams.discard(stream)
        self.streams.pop(stream.sid, None)
        connection = stream.connection
        if connection is not None:
            connection.streams.pop(stream.sid, None)
            if final and not connection.closed:
                self._final(stream, now)
        if stream.in_flight:  # _deliver sends it, after the last receipt
            if connection is not None:
                connection.ending.add(stream)
        else:
            self._send_stopped(stream)
        self._forget_if_idle(reader)

    def _send_stopped(self, stream: Stream) -> None:
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
        connection.ending.discard(stream)
        self._close_if_ended(connection)

    def _close_if_ended(self, connection: Connection) -> None:
        """Close a connection waiting for its ended streams' last messages, once they are all
        queued (while a group is delivered, a batch reader's wait in the outbox: not yet)."""
        if connection.closing is None or connection.ending:
            return
        if self._outbox is not None and connection in self._outbox:
            return  # _deliver closes it after the outbox
        connection.close(*connection.closing)

    def _forget_if_idle(self, reader: Reader) -> None:
        if not reader.connections and not reader.streams:
            self.readers.pop(reader.user_id, None)

    # --- the clock: due streams become postings ------------------------------------------

    def _schedule(self, stream: Stream) -> None:
        heapq.heappush(self._heap, (stream.next_due_ms, next(self._tie), stream.generation, stream))
        wake = self._wake
        if wake is not None and not wake.done() and stream.next_due_ms < self._next_tick_ms:
            wake.set_result(None)  # due before the tick loop planned to wake up

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        window = self.limits.commit_window_ms
        while True:
            now = self.clock_ms()
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
        """Turn every stream due at ``now`` into a posting (public for tests with a fake clock)."""
        while self._heap and self._heap[0][0] <= now:
            due, _, generation, stream = heapq.heappop(self._heap)
            if generation != stream.generation or stream.state != ACTIVE:
                continue
            self._due(stream, due, now)
        if self._pending and (self._commit_task is None or self._commit_task.done()):
            self._commit_task = asyncio.create_task(self._commit_loop())

    def _due(self, stream: Stream, due: int, now: int) -> None:
        if stream.in_flight:  # the previous increment is still committing: this one follows
            stream.owed_due_ms = due  # it as soon as it lands (_deliver), not a turn later
            return
        reader = stream.reader
        interval = self.limits.interval_ms
        # Keep the stream's schedule: one that fell behind (a slow moment) catches up, one
        # receipt per group commit, for the time accrued by then. Far behind (a stall), it
        # starts a new schedule instead of a burst.
        next_due = due + interval
        if next_due <= now - CATCH_UP_INTERVALS * interval:
            next_due = now + interval
        stream.next_due_ms = next_due
        self._schedule(stream)
        rate = reader.policy.site_rate(stream.origin) or 0
        stream.accrual.add(rate, now - stream.last_ms, reader.active_count)
        stream.last_ms = now
        self._cut(stream, due)

    def _final(self, stream: Stream, now: int) -> None:
        """Charge what the stream accrued (settled up to ``now``) as an increment now, off its
        schedule: when it ends or the server stops. Only a fraction of a unit stays uncharged.
        If an increment is in flight, this one is cut when that one lands (``_deliver``)."""
        if stream.in_flight:
            stream.final_owed = True
            return
        stream.final_owed = False
        self._cut(stream, now)
        if self._pending and (self._commit_task is None or self._commit_task.done()):
            self._commit_task = asyncio.create_task(self._commit_loop())

    def _cut(self, stream: Stream, due: int) -> None:
        """The stream's accrued whole units become a posting of the next group (if any)."""
        reader = stream.reader
        amount = stream.accrual.take()
        if amount <= 0:
            return
        fee = money.fee_of(amount, self.settings.fee_bps)
        seq = stream.seq + 1
        posting = committer.Posting(
            user_id=reader.user_id,
            reader_account_id=reader.account_id,
            payee_account_id=stream.payee.account_id,
            fee_account_id=stream.payee.fee_account_id,
            currency=self.settings.currency,
            amount_minor=amount,
            fee_minor=fee,
            key=f"{stream.sid}.{seq}",
            origin=stream.origin,
            budget_minor=reader.policy.monthly_budget_minor,
            month=reader.month,
        )
        stream.in_flight = True
        self._pending.append((stream, posting, seq, due))

    async def _commit_loop(self) -> None:
        """Commit pending increments in groups until none are left, two deep: while the
        committer thread finishes one group (SQLite's rows and fsync, PostgreSQL's COMMIT), the
        loop signs and sends the group before it. Each group is posted on the loop (``stage``),
        finished in the thread, and only then are its receipts signed and sent.

        Why not the whole group in a thread: the database driver and ``crypto_sign`` release the
        GIL at every row and every signature, and each time the busy event loop kept it for up to
        a switch interval: the same work ran 40 % slower there (bench/README.md). ``finish`` is
        one or two such releases for all of its work. A stream's ``total_minor`` cannot change
        while its increment is ``in_flight`` (from ``_due`` until ``_deliver``)."""
        loop = asyncio.get_running_loop()
        landed: tuple[_Batch, committer.CommitResult, dt.datetime] | None = None
        while self._pending or landed is not None:
            finishing = None
            if self._pending:
                batch, self._pending = self._pending, []
                now = self.runtime.clock()
                postings = [posting for _, posting, _, _ in batch]
                try:
                    finish = committer.stage(
                        self._group_engine(), self.runtime.sessions, postings, now
                    )
                except Exception:  # nothing of the batch is committed: no receipt goes out
                    log.exception("group commit failed; %d increments not paid", len(batch))
                    self._unpaid(batch)
                else:
                    finishing = (batch, now, loop.run_in_executor(self._committer, finish))
            if landed is not None:  # meanwhile, the group before
                batch, result, now = landed
                landed = None
                self._deliver(batch, result, self._sign_committed(batch, now))
            if finishing is not None:
                batch, now, future = finishing
                try:
                    result = await future
                except Exception:  # rolled back: nothing of the batch moved
                    log.exception("group commit failed; %d increments not paid", len(batch))
                    self._unpaid(batch)
                else:
                    landed = (batch, result, now)
            await asyncio.sleep(0)

    def _group_engine(self) -> Engine:
        """The group commit's own connection pool, without the service pool's ping before each
        checkout: a round trip on PostgreSQL, and here on the event loop, every group (measured
        at 5,000 streams: p99 230-290 ms with it, 155-170 ms without). A connection that died
        fails its group (nothing paid; the increments are cut again next turn) and is replaced.
        A group waits at most ``group_lock_wait_s`` for another writer's lock: it blocks the
        event loop meanwhile, so it fails (and is cut again next turn) rather than wait long."""
        if self._groups is None:
            url = self.runtime.engine.url.render_as_string(hide_password=False)
            wait = self.limits.group_lock_wait_s
            self._groups = make_engine(url, lock_wait_s=wait, pool_pre_ping=False)
        return self._groups

    def _unpaid(self, batch: list[tuple[Stream, committer.Posting, int, int]]) -> None:
        now = self.clock_ms()
        for stream, _, _, _ in batch:
            stream.in_flight = False
            if stream.final_owed:
                self._final(stream, now)
            if stream.end_reason is not None and not stream.in_flight:
                self._send_stopped(stream)
            if stream.owed_due_ms is not None:  # retry on the next turn, not at once
                stream.owed_due_ms = None
                stream.next_due_ms = now + self.limits.interval_ms
                self._schedule(stream)

    def _sign_committed(
        self, batch: list[tuple[Stream, committer.Posting, int, int]], now: dt.datetime
    ) -> list[str | None]:
        """Never raises: the money moved. A receipt that could not be signed is ``None`` (logged;
        the stream's next receipt, cumulative, covers its increment: see ``_deliver``)."""
        try:
            return self._sign(batch, now)
        except Exception:
            log.exception("signing a committed batch failed; its next receipts will cover it")
            return [None] * len(batch)

    def _sign(
        self, batch: list[tuple[Stream, committer.Posting, int, int]], now: dt.datetime
    ) -> list[str | None]:
        issued_at = int(now.timestamp())
        expires_at = issued_at + self.settings.receipt_ttl_s
        signer = ReceiptSigner(self.runtime.key_ring.current.active)
        issuer = self.settings.issuer
        tokens: list[str | None] = []
        for stream, posting, seq, _ in batch:
            if posting.refused is not None:
                tokens.append(None)
                continue
            claims = ReceiptClaims(
                iss=issuer,
                aud=stream.origin,
                pay=stream.payee.pointer,
                sid=stream.sid,
                seq=seq,
                amount_minor=posting.amount_minor,
                total_minor=stream.total_minor + posting.amount_minor,
                currency=self.settings.currency,
                scale=self.settings.asset_scale,
                issued_at=issued_at,
                expires_at=expires_at,
                binding=stream.binding,
            )
            tokens.append(signer.sign(claims))
        return tokens

    def _deliver(
        self,
        batch: list[tuple[Stream, committer.Posting, int, int]],
        result: committer.CommitResult,
        tokens: list[str | None],
    ) -> None:
        """Send the group's receipts (and what follows from them), each connection's together."""
        self._outbox = {}
        try:
            self._deliver_group(batch, result, tokens)
        finally:
            outbox, self._outbox = self._outbox, None
            for connection, messages in outbox.items():
                connection.send_batch(messages)
                self._close_if_ended(connection)

    def _deliver_group(
        self,
        batch: list[tuple[Stream, committer.Posting, int, int]],
        result: committer.CommitResult,
        tokens: list[str | None],
    ) -> None:
        touched: set[Reader] = set()
        sent_ms = self.clock_ms()
        for (stream, posting, seq, due), token in zip(batch, tokens, strict=True):
            stream.in_flight = False
            reader = stream.reader
            touched.add(reader)
            if posting.refused is not None:
                self._block(reader, posting.refused)
                stream.final_owed = False  # the reader's funds or budget ran out: nothing more
                if stream.end_reason is not None:
                    self._send_stopped(stream)
                continue
            stream.seq = seq
            stream.total_minor += posting.amount_minor
            # token None: committed but not signed (logged); the next receipt's tot covers it
            if token is not None:
                # sid and receipt are base64url, the numbers digits: nothing to escape
                stream.latest = (
                    f'{{"type":"receipt","sid":"{stream.sid}","seq":{seq},'
                    f'"amt":"{posting.amount_minor}","tot":"{stream.total_minor}",'
                    f'"receipt":"{token}"}}'
                )
                if stream.connection is not None:
                    stream.connection.send_text(stream.latest)
                    if self.record_latencies:
                        self.latencies_ms.append(sent_ms - due)
            if stream.final_owed:
                self._final(stream, sent_ms)  # joins the next group at once
            if stream.end_reason is not None and not stream.in_flight:
                self._send_stopped(stream)
        for reader in touched:
            reader.balance_minor = result.balances.get(reader.account_id, reader.balance_minor)
            reader.spent_minor = result.spent.get(
                (reader.user_id, reader.month), reader.spent_minor
            )
            self._send_funds(reader, sent_ms)
        for stream, _, _, _ in batch:
            owed, stream.owed_due_ms = stream.owed_due_ms, None
            if owed is not None and stream.state == ACTIVE and not stream.in_flight:
                self._due(stream, owed, sent_ms)  # joins the next group at once

    def _block(self, reader: Reader, reason: str) -> None:
        if reader.blocked == reason:
            return
        reader.blocked = reason
        now = self.clock_ms()
        for stream in list(reader.streams):
            self._refresh_stream(stream, now)
            stream.accrual.clear()  # unpaid time while blocked is not charged later

    def _funds_fields(self, reader: Reader) -> dict[str, Any]:
        return {
            "balance_minor": str(reader.balance_minor),
            "month_spent_minor": str(reader.spent_minor),
            "month_budget_minor": str(reader.policy.monthly_budget_minor),
            "currency": self.settings.currency,
            "scale": self.settings.asset_scale,
        }

    def _send_funds(self, reader: Reader, now_ms: int, force: bool = False) -> None:
        text = None
        for connection in reader.connections:
            if force or now_ms - connection._last_balance_ms >= 1000:
                connection._last_balance_ms = now_ms
                text = text or protocol.dumps({"type": "balance", **self._funds_fields(reader)})
                connection.send_text(text)

    # --- maintenance: settings, funds probes, orphans -------------------------------------

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.settings_refresh_s)
            try:
                await self.refresh_readers()
            except Exception:  # keep streaming on the settings we have; say why in the log
                log.exception("reader refresh failed")
            self.expire_orphans(self.clock_ms())

    async def refresh_readers(self, user_ids: list[int] | None = None) -> None:
        """Re-read settings (pause, rates, overrides, budget) and, for blocked readers, funds."""
        targets = [r for r in self.readers.values() if user_ids is None or r.user_id in user_ids]
        if not targets:
            return
        fresh = await self._db(self._load_policies, [(r.user_id, r.account_id) for r in targets])
        now = self.clock_ms()
        for reader in targets:
            policy, balance, spent, month = fresh[reader.user_id]
            self._settle_reader(reader, now)
            reader.policy, reader.month = policy, month
            reader.balance_minor, reader.spent_minor = balance, spent
            room = min(balance, policy.monthly_budget_minor - spent)
            if reader.blocked is not None and room >= self._one_interval_minor(reader):
                reader.blocked = None
            for stream in list(reader.streams):
                self._refresh_stream(stream, now)

    def _one_interval_minor(self, reader: Reader) -> int:
        """The most one increment of the reader can cost: an interval at their highest rate.
        A remainder below it stays blocked, instead of flapping active -> refused every refresh."""
        rates = [reader.policy.site_rate(s.origin) or 0 for s in reader.streams]
        top = max(rates, default=reader.policy.rate_per_hour_minor)
        return max(1, -(-top * self.limits.interval_ms // HOUR_MS))

    def _load_policies(
        self, readers: list[tuple[int, int]]
    ) -> dict[int, tuple[ReaderPolicy, int, int, str]]:
        now = self.runtime.clock()
        month = spending.month_of(now)
        with transaction(self.runtime.sessions) as session:
            fresh = bulk_refresh(session, self.funding, readers, self.settings, month)
        return {user_id: (*values, month) for user_id, values in fresh.items()}

    def expire_orphans(self, now: int) -> None:
        for stream in list(self.streams.values()):
            if stream.orphaned_until_ms is not None and stream.orphaned_until_ms <= now:
                self._end(stream, now, "disconnected")

    # --- login sessions: a revoked or expired one ends its sockets --------------------------

    async def _session_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.session_check_s)
            try:
                await self.check_sessions()
            except Exception:  # keep streaming; the next check tries again
                log.exception("session check failed")

    async def check_sessions(self) -> None:
        """End every connection whose login session has expired (known here) or was revoked:
        log out or log out everywhere, through any process on this database, so one query for
        all of this process's sockets. See ``_end_session``."""
        now = self.runtime.clock()
        watched: dict[Connection, int] = {}  # connection -> its session, still to be asked
        ended: list[Connection] = []
        for connection in self.connections:
            login, expires_at = connection.session_id, connection.session_expires_at
            if login is None or expires_at is None or connection.closing or connection.closed:
                continue
            if expires_at <= now:
                ended.append(connection)  # no need to ask the database
            else:
                watched[connection] = login
        if watched:
            live = await self._db(self._live_sessions, sorted(set(watched.values())))
            ended += [c for c, login in watched.items() if login not in live]
        for connection in ended:
            if not connection.closed and connection.closing is None:  # (it may have meanwhile)
                self._end_session(connection)

    def _live_sessions(self, session_ids: list[int]) -> set[int]:
        with transaction(self.runtime.sessions) as session:
            return sessions.live_ids(session, session_ids, self.runtime.clock())

    def _end_session(self, connection: Connection) -> None:
        """The connection's login session ended: its streams end at once (``stopped``, reason
        ``session_ended``) and what they accrued since their last increment is not charged; an
        increment already in flight lands and its receipt goes out; then the socket closes
        with ``session_ended``."""
        now = self.clock_ms()
        for stream in list(connection.streams.values()):
            self._end(stream, now, "session_ended")
        connection.close_when_ended(
            protocol.CLOSE_CODES["session_ended"], "the login session was revoked or expired"
        )
