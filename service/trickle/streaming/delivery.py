"""The group commit and what follows it: increments committed together, and only then their
receipts signed and sent, each connection's together in one frame."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine

from trickle import ledger, metrics, nodes
from trickle.db import DriverCursor, make_engine
from trickle.receipts import ReceiptClaims, ReceiptSigner
from trickle.runtime import Runtime
from trickle.streaming import protocol
from trickle.streaming.connection import Outbox
from trickle.streaming.schedule import Increment, Schedule
from trickle.streaming.streams import ACTIVE, Reader, StreamStates

log = logging.getLogger("trickle.streaming")
MonotonicMs = Callable[[], int]
# A group's signer and receipt ids, chosen before its commit (PostgreSQL: stored with the
# streams' positions, so another node re-signs a stream's latest receipt identically).
_Signing = tuple[ReceiptSigner, list[str]] | None
_Landed = tuple[list[Increment], ledger.GroupResult, dt.datetime, _Signing]


class Delivery:
    """Commits what the schedule cut, in groups, and delivers each group: the streams' totals
    move, receipts go out, and what the outcome changes (a refused reader's streams block, an
    ended stream's ``stopped``, the readers' balances, the increments owed meanwhile)."""

    def __init__(
        self,
        runtime: Runtime,
        states: StreamStates,
        schedule: Schedule,
        outbox: Outbox,
        clock_ms: MonotonicMs,
        *,
        group_lock_wait_s: float,
    ) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self._states = states
        self._schedule = schedule
        self._outbox = outbox
        self._clock_ms = clock_ms
        self._group_lock_wait_s = group_lock_wait_s
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="trickle-commit")
        self._groups: Engine | None = None  # see _group_engine
        self._task: asyncio.Task[None] | None = None
        # PostgreSQL (``cluster``): the node that writes its streams' positions with each group
        self.positions_node: Callable[[], int] | None = None

    def commit_soon(self) -> None:
        """Start committing what the schedule cut, unless a commit loop is running (it takes
        everything cut until it ends)."""
        if self._task is None or self._task.done():
            # A context of its own: the loop commits every connection's increments, so it logs
            # under no one connection's id (it was started from whichever one came first).
            self._task = asyncio.create_task(self._commit_loop(), context=contextvars.Context())

    async def flush(self) -> None:
        """Wait until every increment cut so far is committed and its receipt queued."""
        while self._task is not None and not self._task.done():
            await self._task

    def close(self) -> None:
        """After the last flush: the committer thread and the group commit's pool."""
        self._committer.shutdown(wait=True)
        if self._groups is not None:
            metrics.unwatch_pool(self._groups, "commit")
            self._groups.dispose()

    async def _commit_loop(self) -> None:
        """Commit pending increments in groups until none are left, two deep: while the
        committer thread finishes one group (SQLite's rows and fsync, PostgreSQL's COMMIT), the
        loop signs and sends the group before it. Each group is posted on the loop
        (``ledger.stage_charges``), finished in the thread, and only then are its receipts signed
        and sent.

        Why not the whole group in a thread: the database driver and ``crypto_sign`` release the
        GIL at every row and every signature, and each time the busy event loop kept it for up to
        a switch interval: the same work ran 40 % slower there (bench/README.md). ``finish`` is
        one or two such releases for all of its work. A stream's ``total_minor`` cannot change
        while its increment is ``in_flight`` (from its cut until its delivery)."""
        loop = asyncio.get_running_loop()
        schedule = self._schedule
        landed: _Landed | None = None
        while schedule.pending or landed is not None:
            finishing = None
            if schedule.pending:
                group = schedule.take()
                now = self._runtime.clock()
                charges = [increment.charge for increment in group]
                staged_at = time.perf_counter()
                try:
                    signing, also = self._positions(group, now)
                    finish = ledger.stage_charges(
                        self._group_engine(), self._runtime.sessions, charges, now, also
                    )
                except Exception:  # nothing of the group is committed: no receipt goes out
                    log.exception("group commit failed; %d increments not paid", len(group))
                    metrics.error("ledger", "group_commit_failed")
                    self._unpaid(group)
                else:
                    future = loop.run_in_executor(self._committer, finish)
                    finishing = (group, now, staged_at, signing, future)
            if landed is not None:  # meanwhile, the group before
                group, result, now, signing = landed
                landed = None
                self._deliver(group, result, self._sign_committed(group, now, signing))
            if finishing is not None:
                group, now, staged_at, signing, future = finishing
                try:
                    result = await future
                except Exception:  # rolled back: nothing of the group moved
                    log.exception("group commit failed; %d increments not paid", len(group))
                    metrics.error("ledger", "group_commit_failed")
                    self._unpaid(group)
                else:
                    metrics.COMMIT_LATENCY.observe(time.perf_counter() - staged_at)
                    metrics.COMMIT_GROUP_SIZE.observe(len(group))
                    landed = (group, result, now, signing)
            await asyncio.sleep(0)

    def _group_engine(self) -> Engine:
        """The group commit's own connection pool, without the service pool's ping before each
        checkout: a round trip on PostgreSQL, and here on the event loop, every group (measured
        at 5,000 streams: p99 230-290 ms with it, 155-170 ms without). A connection that died
        fails its group (nothing paid; the increments are cut again next turn) and is replaced.
        A group waits at most ``group_lock_wait_s`` for another writer's lock: it blocks the
        event loop meanwhile, so it fails (and is cut again next turn) rather than wait long."""
        if self._groups is None:
            url = self._runtime.engine.url.render_as_string(hide_password=False)
            wait = self._group_lock_wait_s
            self._groups = make_engine(url, lock_wait_s=wait, pool_pre_ping=False)
            metrics.watch_pool(self._groups, "commit")
        return self._groups

    def _positions(
        self, group: list[Increment], now: dt.datetime
    ) -> tuple[_Signing, ledger.AlsoWrite | None]:
        """On PostgreSQL: the group's signer and receipt ids, and the write of its streams'
        positions (``nodes.write_positions``) for the group's transaction."""
        if self.positions_node is None:
            return None, None
        node = self.positions_node()
        signer = ReceiptSigner(self._runtime.key_ring.current.active)
        jtis = [signer.new_jti() for _ in group]
        issued_at = int(now.timestamp())
        expires_at = issued_at + self._settings.receipt_ttl_s
        rows = [
            (
                increment.charge,
                nodes.PositionRow(
                    stream.sid,
                    stream.reader.user_id,
                    stream.epoch,
                    stream.origin,
                    stream.payee.pointer,
                    stream.binding,
                    increment.seq,
                    stream.total_minor + increment.charge.amount_minor,
                    increment.charge.amount_minor,
                    issued_at,
                    expires_at,
                    signer.kid,
                    jti,
                ),
            )
            for increment, jti in zip(group, jtis, strict=True)
            for stream in (increment.stream,)
        ]

        def write(cursor: DriverCursor) -> None:  # posted one by one: only those posted
            posted = [row for charge, row in rows if charge.refused is None]
            nodes.write_positions(cursor, node, posted)

        statement, params = nodes.positions_statement(node, [row for _, row in rows])
        return (signer, jtis), ledger.AlsoWrite(statement, params, write)

    def _unpaid(self, group: list[Increment]) -> None:
        now = self._clock_ms()
        for increment in group:
            stream = increment.stream
            stream.in_flight = False
            if stream.final_owed:
                self._schedule.final(stream, now)
            if stream.end_reason is not None and not stream.in_flight:
                self._states.send_stopped(stream)
            if stream.owed_due_ms is not None:  # retry on the next turn, not at once
                stream.owed_due_ms = None
                self._schedule.start(stream, now)

    # --- signing ---------------------------------------------------------------------------

    def _sign_committed(
        self, group: list[Increment], now: dt.datetime, signing: _Signing = None
    ) -> list[str | None]:
        """Never raises: the money moved. A receipt that could not be signed is ``None`` (logged;
        the stream's next receipt, cumulative, covers its increment: see ``_deliver``)."""
        try:
            return self._sign(group, now, signing)
        except Exception:
            log.exception("signing a committed batch failed; its next receipts will cover it")
            return [None] * len(group)

    def _sign(
        self, group: list[Increment], now: dt.datetime, signing: _Signing = None
    ) -> list[str | None]:
        settings = self._settings
        issued_at = int(now.timestamp())
        expires_at = issued_at + settings.receipt_ttl_s
        if signing is None:
            signer, jtis = ReceiptSigner(self._runtime.key_ring.current.active), None
        else:
            signer, jtis = signing
        issuer = settings.issuer
        tokens: list[str | None] = []
        for index, increment in enumerate(group):
            stream, charge = increment.stream, increment.charge
            if charge.refused is not None:
                tokens.append(None)
                continue
            claims = ReceiptClaims(
                iss=issuer,
                aud=stream.origin,
                pay=stream.payee.pointer,
                sid=stream.sid,
                seq=increment.seq,
                amount_minor=charge.amount_minor,
                total_minor=stream.total_minor + charge.amount_minor,
                currency=settings.currency,
                scale=settings.asset_scale,
                issued_at=issued_at,
                expires_at=expires_at,
                binding=stream.binding,
                jti=None if jtis is None else jtis[index],
            )
            tokens.append(signer.sign(claims))
        return tokens

    # --- delivery --------------------------------------------------------------------------

    def _deliver(
        self, group: list[Increment], result: ledger.GroupResult, tokens: list[str | None]
    ) -> None:
        """Send the group's receipts (and what follows from them), each connection's together."""
        with self._outbox.gathering():
            sent_ms = self._clock_ms()
            touched = self._land(group, tokens, sent_ms)
            for reader in touched:
                reader.balance_minor = result.balances.get(reader.account_id, reader.balance_minor)
                reader.spent_minor = result.spent.get(
                    (reader.user_id, reader.month), reader.spent_minor
                )
                self._states.send_funds(reader, sent_ms)
            for increment in group:
                stream = increment.stream
                owed, stream.owed_due_ms = stream.owed_due_ms, None
                if owed is not None and stream.state is ACTIVE and not stream.in_flight:
                    self._schedule.due(stream, owed, sent_ms)  # joins the next group at once

    def _land(self, group: list[Increment], tokens: list[str | None], now: int) -> set[Reader]:
        """Each increment's outcome on its stream: the new total and its receipt, or (refused)
        the reader blocked, or (``over_rate``) nothing; then an owed final increment, or the
        ended stream's ``stopped``."""
        states, schedule = self._states, self._schedule
        touched: set[Reader] = set()
        sent, moved_minor = 0, 0
        for increment, token in zip(group, tokens, strict=True):
            stream, charge = increment.stream, increment.charge
            stream.in_flight = False
            reader = stream.reader
            touched.add(reader)
            if charge.refused is not None:
                metrics.REFUSALS.labels(reason=charge.refused).inc()
                if charge.refused != "over_rate":
                    states.block(reader, protocol.REFUSALS[charge.refused], now)
                    stream.final_owed = False  # the reader's funds or budget ran out: no more
                    if stream.end_reason is not None:
                        states.send_stopped(stream)
                    continue
                # over_rate: the reader's streams on every node pay past their rate; this
                # increment is dropped (never charged later), the stream goes on
            else:
                stream.seq = increment.seq
                stream.total_minor += charge.amount_minor
                moved_minor += charge.amount_minor
            # token None: refused, or committed but not signed (logged; the next receipt's tot
            # covers it)
            if token is not None:
                stream.latest = protocol.receipt_text(
                    stream.sid, stream.seq, charge.amount_minor, stream.total_minor, token
                )
                sent += 1
                if stream.connection is not None:
                    stream.connection.send_text(stream.latest)
            if stream.final_owed:
                schedule.final(stream, now)  # joins the next group at once
            if stream.end_reason is not None and not stream.in_flight:
                states.send_stopped(stream)
        metrics.receipts("stream", sent, moved_minor, self._settings.currency)
        return touched
