"""The streaming engine of one service process: it takes the clients' messages and coordinates
the connections, the streams' states, their schedule, the group commit and the session watch.

Everything runs on the event loop except database work: commits in one committer thread
(``delivery``), look-ups in a small thread pool. Every ``interval`` an active stream's accrued
whole units become an increment (``schedule``); increments of all streams are committed together;
only then are receipts signed and sent (``delivery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from trickle import metrics, nodes, sessions, spending
from trickle.db import transaction
from trickle.errors import TrickleError
from trickle.origins import normalize_origin
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
from trickle.settings import Settings
from trickle.streaming import protocol
from trickle.streaming.cluster import Cluster
from trickle.streaming.connection import CloseSocket, Connection, Outbox, SendText
from trickle.streaming.delivery import Delivery
from trickle.streaming.payees import PayeeCache
from trickle.streaming.protocol import CloseCode, EndReason, ErrorCode, State
from trickle.streaming.schedule import MonotonicMs, Schedule
from trickle.streaming.streams import Reader, Stream, StreamStates
from trickle.streaming.watch import SessionWatch

log = logging.getLogger("trickle.streaming")
T = TypeVar("T")


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclasses.dataclass(frozen=True)
class EngineLimits:
    # What a TRICKLE_STREAM_* setting sets (from_settings; the defaults are the settings').
    interval_ms: int
    max_message_bytes: int
    max_streams_per_connection: int
    max_connections_per_reader: int
    idle_timeout_s: float
    resume_grace_s: float
    # Fixed.
    hello_timeout_s: float = 10.0
    max_queued_messages: int = 1000
    max_invalid_messages: int = 20
    settings_refresh_s: float = 2.0
    payee_cache_s: float = 10.0
    group_lock_wait_s: float = 2.0  # see Delivery._group_engine
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
    # PostgreSQL: how long a resume waits for another node to let go of a stream whose socket
    # is closing right now (or whose node just died, until the database notices)
    claim_wait_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineLimits:
        return cls(
            interval_ms=settings.stream_interval_ms,
            max_message_bytes=settings.stream_max_message_bytes,
            max_streams_per_connection=settings.stream_max_streams_per_connection,
            max_connections_per_reader=settings.stream_max_connections_per_reader,
            idle_timeout_s=settings.stream_idle_timeout_s,
            resume_grace_s=settings.stream_resume_grace_s,
        )


class StreamEngine:
    """The process's one engine (``app.py`` makes it). Its parts take their limits when it is
    made; the socket reads its own (sizes, timeouts) from ``limits`` on every connection."""

    def __init__(
        self,
        runtime: Runtime,
        limits: EngineLimits | None = None,
        clock_ms: MonotonicMs = monotonic_ms,
        funding: FundingSource | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings = runtime.settings
        self.funding: FundingSource = funding or ReaderBalance(settings)
        self.limits = limits = limits or EngineLimits.from_settings(settings)
        self.clock_ms = clock_ms
        self.connections: set[Connection] = set()
        self.outbox = Outbox()
        self.schedule = Schedule(
            settings,
            clock_ms,
            interval_ms=limits.interval_ms,
            window_ms=limits.commit_window_ms,
            on_pending=self._commit_soon,
        )
        self.states = StreamStates(settings, self.schedule, limits.interval_ms)
        self.readers: dict[int, Reader] = self.states.readers
        self.streams: dict[str, Stream] = self.states.streams
        self.delivery = Delivery(
            runtime,
            self.states,
            self.schedule,
            self.outbox,
            clock_ms,
            group_lock_wait_s=limits.group_lock_wait_s,
        )
        self._lookups = ThreadPoolExecutor(4, thread_name_prefix="trickle-lookup")
        self.watch = SessionWatch(
            runtime,
            self.states,
            self.connections,
            self._lookups,
            clock_ms,
            check_s=limits.session_check_s,
        )
        self.payees = PayeeCache(runtime, self._lookups, clock_ms, limits.payee_cache_s)
        # Several nodes on one PostgreSQL (``cluster``); on SQLite this process is alone.
        self.cluster: Cluster | None = None
        if runtime.engine.dialect.name == "postgresql":
            self.cluster = Cluster(
                runtime, self.states, clock_ms, grace_s=limits.resume_grace_s, on_lost=self._lost
            )
            self.states.presence = self.cluster
            self.delivery.positions_node = lambda: self._node
        self._tasks: list[asyncio.Task[None]] = []
        self._drain: asyncio.Task[None] | None = None

    def active_stream_count(self) -> int:
        """Streams accruing now (state ``active``), for the metrics."""
        return sum(reader.active_count for reader in self.readers.values())

    def _commit_soon(self) -> None:
        self.delivery.commit_soon()

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def _node(self) -> int:
        assert self.cluster is not None
        return self.cluster.node

    def _lost(self) -> None:
        """The node's own database connection broke: other nodes may take its streams over now,
        so its sockets close (``server_shutdown``) and their clients resume wherever they land."""
        for connection in list(self.connections):
            connection.close(CloseCode.SERVER_SHUTDOWN, "this node lost its database connection")

    def start(self) -> None:
        if self.cluster is not None:
            self.cluster.start()
        self._tasks = [
            asyncio.create_task(self.schedule.run()),
            asyncio.create_task(self._maintenance_loop()),
            asyncio.create_task(self.watch.run()),
        ]

    async def stop(self) -> None:
        await self.drain()
        await self.flush()
        if self.cluster is not None:
            await self.cluster.stop()
        self.delivery.close()
        self._lookups.shutdown(wait=True)

    @property
    def draining(self) -> bool:
        """A graceful stop has begun (see ``drain``)."""
        return self.states.draining

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
        self.states.draining = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        now = self.clock_ms()
        for reader in list(self.readers.values()):
            self.states.settle(reader, now)
            for stream in list(reader.streams):
                if stream.connection is not None:
                    self.states.set_state(stream, State.DISCONNECTED, now, notify=False)
                    if not stream.connection.closed:  # its receipt can still reach the client
                        self.schedule.final(stream, now)
        timeout_s = self.limits.drain_timeout_s
        deadline = time.monotonic() + timeout_s
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            log.error("graceful stop: commits still running after %ss", timeout_s)
        if self.cluster is not None:  # before the sockets close: their clients resume elsewhere
            try:
                await asyncio.wait_for(self.cluster.release_all(), timeout_s)
            except Exception:  # a dead node's streams are resumable anyway (nodes.claim)
                log.exception("graceful stop: could not release this node's streams")
        for connection in list(self.connections):
            connection.close(CloseCode.SERVER_SHUTDOWN, "server shutting down")
        writers = {connection.writer for connection in self.connections}
        if writers:
            _, late = await asyncio.wait(writers, timeout=max(0.1, deadline - time.monotonic()))
            if late:
                log.warning("graceful stop: %d clients did not take their messages", len(late))

    async def flush(self) -> None:
        """Wait until every increment produced so far is committed and its receipt queued."""
        await self.delivery.flush()

    def tick(self, now: int) -> None:
        """Turn every stream due at ``now`` into an increment (public for tests with a fake
        clock)."""
        self.schedule.tick(now)

    async def check_sessions(self, now: dt.datetime | None = None) -> None:
        """Close the connections whose login session ended (``SessionWatch.check``)."""
        await self.watch.check(now)

    async def _db(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._lookups, function, *args)

    # --- connections ------------------------------------------------------------------------

    def open(self, send_text: SendText, close_socket: CloseSocket | None = None) -> Connection:
        connection = Connection(
            send_text,
            close_socket,
            outbox=self.outbox,
            max_queued_messages=self.limits.max_queued_messages,
        )
        self.connections.add(connection)
        return connection

    async def authenticate(self, connection: Connection, hello: protocol.Hello) -> None:
        limits = self.limits
        if hello.v != protocol.PROTOCOL_VERSION:
            raise protocol.ProtocolViolation(
                CloseCode.UNSUPPORTED_VERSION,
                f"this server speaks version {protocol.PROTOCOL_VERSION}",
            )
        try:
            login, user_id, account_id, policy, balance, spent, month, remote = await self._db(
                self._load_reader, hello.token
            )
        except TrickleError:
            raise protocol.ProtocolViolation(
                CloseCode.UNAUTHENTICATED, "unknown or expired token"
            ) from None
        except nodes.ConnectionCapReached as capped:
            raise protocol.ProtocolViolation(CloseCode.TOO_MANY_CONNECTIONS, str(capped)) from None
        admitted = self.cluster is not None  # counted in the database: uncount if refused here
        if self.draining:
            if admitted:
                self._left(user_id)
            raise protocol.ProtocolViolation(CloseCode.SERVER_SHUTDOWN, "server shutting down")
        reader = self.states.reader(user_id, account_id, policy)
        reader.balance_minor, reader.spent_minor, reader.month = balance, spent, month
        if remote is not None:
            self.states.set_remote(reader, remote, self.clock_ms())
        if len(reader.connections) >= limits.max_connections_per_reader:
            if admitted:
                self._left(user_id)
            raise protocol.ProtocolViolation(
                CloseCode.TOO_MANY_CONNECTIONS,
                f"at most {limits.max_connections_per_reader} connections per reader",
            )
        reader.connections.add(connection)
        connection.reader = reader
        connection.session_id, connection.session_expires_at = login
        connection.batch = hello.batch
        connection.send(
            {
                "type": "welcome",
                "v": protocol.PROTOCOL_VERSION,
                "interval_ms": limits.interval_ms,
                "limits": {
                    "max_message_bytes": limits.max_message_bytes,
                    "max_streams": limits.max_streams_per_connection,
                    "resume_grace_s": limits.resume_grace_s,
                },
                **self.states.funds(reader),
            }
        )

    def _load_reader(
        self, token: str
    ) -> tuple[
        tuple[int, dt.datetime], int, int, ReaderPolicy, int, int, str, dict[int, int] | None
    ]:
        now = self.runtime.clock()
        with transaction(self.runtime.sessions) as session:
            user, login = sessions.authenticate(session, token, now)
            account_id = self.funding.account_for(session, user.id, now)
            policy = reader_policy(session, user.id, self.settings)
            month = spending.month_of(now)
            balance, spent = funds(session, self.funding, user.id, account_id, month)
            remote = None
            if self.cluster is not None:  # the socket cap, on every node
                remote = self.cluster.admit(
                    session, user.id, self.limits.max_connections_per_reader
                )
        login_of = (login.id, login.expires_at)
        return login_of, user.id, account_id, policy, balance, spent, month, remote

    def _left(self, user_id: int) -> None:
        if self.cluster is not None:
            self.cluster.left(user_id)

    def disconnect(self, connection: Connection) -> None:
        """The socket closed: its streams stop accruing and wait ``resume_grace_s`` for a resume."""
        connection.abandon()
        self.connections.discard(connection)
        reader = connection.reader
        if reader is None:
            return
        reader.connections.discard(connection)
        self._left(reader.user_id)
        now = self.clock_ms()
        grace_ms = int(self.limits.resume_grace_s * 1000)
        self.states.settle(reader, now)
        for stream in list(connection.streams.values()):
            stream.connection = None
            stream.orphaned_until_ms = now + grace_ms
            self.states.set_state(stream, State.DISCONNECTED, now, notify=False)
        if self.cluster is not None and not self.draining:  # (a drain releases them all)
            self.cluster.released(connection.streams.values())
        connection.streams.clear()
        self.states.forget_if_idle(reader)

    # --- messages ---------------------------------------------------------------------------

    async def handle(self, connection: Connection, message: protocol.ClientMessage) -> None:
        reader = connection.reader
        assert reader is not None
        if connection.closing is not None:
            return  # its session ended: the close (4440) follows once its last receipts are out
        now = self.clock_ms()
        if isinstance(message, protocol.Start):
            await self._start(connection, reader, message)
        elif isinstance(message, protocol.Attention):
            stream = self._stream_of(connection, message.sid)
            if stream is not None:
                stream.client_active = message.active
                self.states.refresh(stream, now)
        elif isinstance(message, protocol.Stop):
            stream = self._stream_of(connection, message.sid)
            if stream is not None:
                self.states.end(stream, now, EndReason.STOPPED, final=True)
        elif isinstance(message, protocol.Resume):
            if self.cluster is None:
                self._resume(connection, reader, message, now)
            else:
                await self._resume_anywhere(connection, reader, message)
        elif isinstance(message, protocol.Ping):
            connection.send({"type": "pong", "data": message.data})
        elif isinstance(message, protocol.BalanceQuery):
            connection.send({"type": "balance", **self.states.funds(reader)})
        else:  # a second hello
            raise protocol.InvalidMessage("already authenticated")

    async def _start(self, connection: Connection, reader: Reader, message: protocol.Start) -> None:
        ref = message.ref
        if len(connection.streams) >= self.limits.max_streams_per_connection:
            most = self.limits.max_streams_per_connection
            self._error(
                connection,
                ErrorCode.TOO_MANY_STREAMS,
                f"at most {most} streams per connection",
                ref=ref,
            )
            return
        if ref in connection.refs:
            self._error(connection, ErrorCode.DUPLICATE_REF, "this ref is in use", ref=ref)
            return
        try:
            origin = normalize_origin(message.origin)
        except TrickleError:
            self._error(
                connection, ErrorCode.INVALID_ORIGIN, "origin must be scheme://host[:port]", ref=ref
            )
            return
        connection.refs.add(ref)
        payee = await self.payees.get(message.pointer)
        if payee is None:
            connection.refs.discard(ref)
            self._error(
                connection, ErrorCode.PAYEE_NOT_FOUND, "no payee has this payment pointer", ref=ref
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
        self.states.add(stream)
        if self.cluster is not None:
            self.cluster.started(stream)
        connection.send(
            {
                "type": "started",
                "ref": ref,
                "sid": stream.sid,
                "origin": origin,
                "pointer": payee.pointer,
            }
        )
        self.states.refresh(stream, now, force_notify=True)

    def _resume(
        self, connection: Connection, reader: Reader, message: protocol.Resume, now: int
    ) -> None:
        sid = message.sid
        stream = self.streams.get(sid)
        expiry = stream.orphaned_until_ms if stream is not None else None
        if stream is not None and expiry is not None and expiry <= now:
            self.states.end(stream, now, EndReason.DISCONNECTED)  # grace over; not swept yet
            stream = None
        if stream is None or stream.reader is not reader or stream.connection is not None:
            self._error(
                connection, ErrorCode.UNKNOWN_STREAM, "no resumable stream with this sid", sid=sid
            )
            return
        if len(connection.streams) >= self.limits.max_streams_per_connection:
            self._error(connection, ErrorCode.TOO_MANY_STREAMS, "the connection is full", sid=sid)
            return
        stream.connection = connection
        stream.orphaned_until_ms = None
        stream.client_active = message.active
        connection.streams[sid] = stream
        connection.send(
            {"type": "resumed", "sid": sid, "seq": stream.seq, "tot": str(stream.total_minor)}
        )
        if stream.latest is not None:  # the same message, marked as sent before
            connection.send_text(protocol.resent_text(stream.latest))
        self.states.refresh(stream, now, force_notify=True)

    async def _resume_anywhere(
        self, connection: Connection, reader: Reader, message: protocol.Resume
    ) -> None:
        """``resume`` on PostgreSQL: the stream may be held by this node or another one, or by
        one that died; the database says where it stands (``nodes.claim``) and the stream
        continues here with the same ``sid``, ``seq`` and ``tot``."""
        sid = message.sid
        if len(connection.streams) >= self.limits.max_streams_per_connection:
            self._error(connection, ErrorCode.TOO_MANY_STREAMS, "the connection is full", sid=sid)
            return
        local = self._local_orphan(reader, sid)
        if local is None and sid in self.streams:  # on a live connection here, or another's
            self._unknown(connection, sid)
            return
        position = None
        deadline = self.clock_ms() + int(self.limits.claim_wait_s * 1000)
        while True:
            try:
                position = await self._db(self._claim, sid, reader.user_id, local is not None)
                break
            except nodes.ClaimRefused as refused:
                if not refused.retry or self.clock_ms() >= deadline or connection.closed:
                    self._unknown(connection, sid)
                    return
                await asyncio.sleep(0.1)
        if position is None and local is None:
            self._unknown(connection, sid)
            return
        stream = local
        if stream is None:
            assert position is not None
            stream = await self._stream_from(position, reader, message)
        elif position is not None:
            self._catch_up(stream, position)
        if stream is None or connection.closed or self._taken(stream, sid):
            if position is not None and stream is not local and self.cluster is not None:
                self.cluster.release_claim(sid, position.epoch)  # taken for nothing: let go
            if not connection.closed:
                self._unknown(connection, sid)
            return
        self._attach(connection, stream, message, self.clock_ms())

    def _local_orphan(self, reader: Reader, sid: str) -> Stream | None:
        """This node's own dropped stream ``sid`` of the reader, within its grace period."""
        stream = self.streams.get(sid)
        if stream is None or stream.reader is not reader or stream.connection is not None:
            return None
        expiry = stream.orphaned_until_ms
        if expiry is not None and expiry <= self.clock_ms():
            self.states.end(stream, self.clock_ms(), EndReason.DISCONNECTED)
            return None
        return stream

    def _taken(self, stream: Stream, sid: str) -> bool:
        """Whether, while the claim was out, another resume here took the stream."""
        if stream.connection is not None:
            return True
        held = self.streams.get(sid)
        return held is not None and held is not stream

    def _claim(self, sid: str, user_id: int, held_here: bool) -> nodes.Position | None:
        assert self.cluster is not None
        with transaction(self.runtime.sessions) as session:
            return self.cluster.claim(session, sid, user_id, held_here=held_here)

    async def _stream_from(
        self, position: nodes.Position, reader: Reader, message: protocol.Resume
    ) -> Stream | None:
        """A stream another node held, as its position says, with its latest receipt re-signed
        (identical when the same key signs: the same claims and ``jti``, and Ed25519 is
        deterministic)."""
        payee = await self.payees.get(position.pointer)
        if payee is None:
            return None
        return Stream(
            position.sid,
            reader,
            None,
            position.origin,
            payee,
            position.binding,
            client_active=message.active,
            seq=position.seq,
            total_minor=position.total_minor,
            latest=self._latest_of(position),
            epoch=position.epoch,
        )

    def _catch_up(self, stream: Stream, position: nodes.Position) -> None:
        """This node's dropped stream, as the database has it now (another node may have paid
        it meanwhile: then its fraction of a unit here is stale, and dropped)."""
        stream.epoch = position.epoch
        if position.seq != stream.seq:
            stream.seq, stream.total_minor = position.seq, position.total_minor
            stream.latest = self._latest_of(position)
            stream.accrual.clear()

    def _latest_of(self, position: nodes.Position) -> str | None:
        if position.seq == 0:
            return None
        settings = self.settings
        claims = ReceiptClaims(
            iss=settings.issuer,
            aud=position.origin,
            pay=position.pointer,
            sid=position.sid,
            seq=position.seq,
            amount_minor=position.amount_minor,
            total_minor=position.total_minor,
            currency=settings.currency,
            scale=settings.asset_scale,
            issued_at=position.issued_at,
            expires_at=position.expires_at,
            binding=position.binding,
            jti=position.jti,
        )
        token = ReceiptSigner(self.runtime.key_ring.current.active).sign(claims)
        return protocol.receipt_text(
            position.sid, position.seq, position.amount_minor, position.total_minor, token
        )

    def _attach(
        self, connection: Connection, stream: Stream, message: protocol.Resume, now: int
    ) -> None:
        """The stream goes on here: ``resumed``, its latest receipt again, ``state``."""
        sid = stream.sid
        stream.connection = connection
        stream.orphaned_until_ms = None
        stream.client_active = message.active
        stream.last_ms = now
        connection.streams[sid] = stream
        if sid not in self.streams:
            self.states.add(stream)
        connection.send(
            {"type": "resumed", "sid": sid, "seq": stream.seq, "tot": str(stream.total_minor)}
        )
        if stream.latest is not None:  # the same message, marked as sent before
            connection.send_text(protocol.resent_text(stream.latest))
        self.states.refresh(stream, now, force_notify=True)

    def _unknown(self, connection: Connection, sid: str) -> None:
        self._error(
            connection, ErrorCode.UNKNOWN_STREAM, "no resumable stream with this sid", sid=sid
        )

    def _stream_of(self, connection: Connection, sid: str) -> Stream | None:
        stream = connection.streams.get(sid)
        if stream is None:
            self._error(
                connection,
                ErrorCode.UNKNOWN_STREAM,
                "no stream with this sid on this connection",
                sid=sid,
            )
        return stream

    def _error(
        self,
        connection: Connection,
        code: ErrorCode,
        message: str,
        *,
        ref: str | None = None,
        sid: str | None = None,
    ) -> None:
        metrics.error("stream", code)
        connection.send(protocol.error_message(code, message, ref=ref, sid=sid))

    # --- maintenance: settings and funds, orphans -------------------------------------------

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
        fresh, remote = await self._db(
            self._load_policies, [(r.user_id, r.account_id) for r in targets]
        )
        now = self.clock_ms()
        for reader in targets:
            policy, balance, spent, month = fresh[reader.user_id]
            if remote is not None:  # corrects a missed notice, and forgets dead nodes
                self.states.set_remote(reader, remote.get(reader.user_id, {}), now)
            self.states.update(
                reader, now, policy=policy, balance_minor=balance, spent_minor=spent, month=month
            )

    def _load_policies(
        self, readers: list[tuple[int, int]]
    ) -> tuple[dict[int, tuple[ReaderPolicy, int, int, str]], dict[int, dict[int, int]] | None]:
        now = self.runtime.clock()
        month = spending.month_of(now)
        remote = None
        with transaction(self.runtime.sessions) as session:
            fresh = bulk_refresh(session, self.funding, readers, self.settings, month)
            if self.cluster is not None:
                remote = self.cluster.remote_actives(session, [r for r, _ in readers])
        return {user_id: (*values, month) for user_id, values in fresh.items()}, remote

    def expire_orphans(self, now: int) -> None:
        for stream in list(self.streams.values()):
            if stream.orphaned_until_ms is not None and stream.orphaned_until_ms <= now:
                self.states.end(stream, now, EndReason.DISCONNECTED)
