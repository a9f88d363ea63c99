"""This process among the other service nodes on one PostgreSQL (``trickle.nodes``): its node id
and liveness lock, the presence it publishes (connections, active streams) and hears from the
others, and the releases and ends of its streams, written once their last increment landed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg

from trickle import nodes
from trickle.db import transaction
from trickle.runtime import Runtime
from trickle.streaming.streams import Reader, Stream, StreamStates

log = logging.getLogger("trickle.streaming")
HEARTBEAT_S = 1.0
LISTEN_S = 0.2  # how long the listener waits for a notice before it looks whether to stop
PRUNE_EVERY_S = 60.0
LANDING_WAIT_S = 10.0  # a release waits at most this for the stream's increment in flight


class Cluster:
    """The node's side of ``trickle.nodes``. A listener thread holds the node's connection: its
    advisory lock (the node is alive while it is held), ``LISTEN`` for the other nodes' presence,
    and the heartbeat. Writes go through one thread of their own, in order (a reader's active
    count published later is never overwritten by an earlier one)."""

    def __init__(
        self,
        runtime: Runtime,
        states: StreamStates,
        clock_ms: Callable[[], int],
        *,
        grace_s: float,
        on_lost: Callable[[], None],
    ) -> None:
        self._runtime = runtime
        self._states = states
        self._clock_ms = clock_ms
        self._grace_s = grace_s
        self._on_lost = on_lost  # the node's connection broke: its sockets must go elsewhere
        url = runtime.engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self.node = 0
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="trickle-presence")
        self._dirty: dict[int, Reader] = {}
        self._opened: list[nodes.PositionRow] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._registered = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Register the node (blocks until its lock is held) and listen to the others."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._listen, name="trickle-nodes", daemon=True)
        self._thread.start()
        if not self._registered.wait(timeout_s):
            raise RuntimeError(f"could not register this node in the database in {timeout_s} s")

    async def release_all(self) -> None:
        """The graceful stop, once the last increments are committed: every stream of this node
        may be resumed on another one from now."""
        await self._write(nodes.release_all, self.node)

    async def stop(self) -> None:
        """Leave: the presence rows go (the other nodes hear it), the lock with the connection."""
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        try:
            await self._write(nodes.leave_all, self.node)
        except Exception:  # the lock goes with the connection anyway
            log.exception("could not remove this node's presence")
        self._stopping.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)
        self._writes.shutdown(wait=True)

    # --- the listener thread ---------------------------------------------------------------

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=10) as db:
                    self.node = nodes.register(db)
                    db.execute(f"LISTEN {nodes.CHANNEL}")
                    self._registered.set()
                    self._serve(db)
            except psycopg.Error:
                if self._stopping.is_set():
                    return
                log.exception("lost the node's database connection; registering again")
                if self._registered.is_set() and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._on_lost)
                time.sleep(1.0)

    def _serve(self, db: psycopg.Connection[Any]) -> None:
        pruned = beat = time.monotonic()
        loop = self._loop
        assert loop is not None
        while not self._stopping.is_set():
            for notice in db.notifies(timeout=LISTEN_S):
                loop.call_soon_threadsafe(self._heard, notice.payload)
            if time.monotonic() - beat >= HEARTBEAT_S:
                beat = time.monotonic()
                nodes.heartbeat(db, self.node)
            if time.monotonic() - pruned > PRUNE_EVERY_S:
                pruned = time.monotonic()
                nodes.prune(db, max(600.0, 2 * self._grace_s))

    def _heard(self, payload: str) -> None:
        try:
            node, user_id, active = nodes.parse_notice(payload)
        except ValueError:
            log.warning("an unreadable notice on %s", nodes.CHANNEL)
            return
        if node == self.node:
            return
        now = self._clock_ms()
        if user_id is None:  # that node stopped
            for reader in list(self._states.readers.values()):
                if node in reader.remote:
                    remote = {k: v for k, v in reader.remote.items() if k != node}
                    self._states.set_remote(reader, remote, now)
            return
        known = self._states.readers.get(user_id)
        if known is not None:
            remote = dict(known.remote)
            if active:
                remote[node] = active
            else:
                remote.pop(node, None)
            self._states.set_remote(known, remote, now)

    # --- presence (``streams.Presence``) ---------------------------------------------------

    def share_changed(self, reader: Reader) -> None:
        if not self._dirty and self._loop is not None:
            self._loop.call_soon(self._publish)
        self._dirty[reader.user_id] = reader

    def _publish(self) -> None:
        actives = [(user_id, reader.active_count) for user_id, reader in self._dirty.items()]
        self._dirty.clear()
        self._submit(nodes.publish, self.node, actives)

    def started(self, stream: Stream) -> None:
        """A new stream: its position (``seq`` 0) is written soon, with others started meanwhile."""
        if not self._opened and self._loop is not None:
            self._loop.call_soon(self._open)
        self._opened.append(
            nodes.PositionRow(
                stream.sid,
                stream.reader.user_id,
                stream.epoch,
                stream.origin,
                stream.payee.pointer,
                stream.binding,
                0,
                0,
                0,
                0,
                0,
                "",
                "",
            )
        )

    def _open(self) -> None:
        rows, self._opened = self._opened, []
        self._submit(nodes.open_streams, self.node, rows)

    def ended(self, stream: Stream) -> None:
        self._after_landing([stream], nodes.end)

    def released(self, streams: Iterable[Stream]) -> None:
        """The streams' connection dropped: resumable on any node, once their increment in
        flight (if any) has landed, so a claim elsewhere reads the position it wrote."""
        self._after_landing(list(streams), nodes.release)

    def release_claim(self, sid: str, epoch: int) -> None:
        """A stream claimed here that did not resume after all: resumable again at once."""
        self._submit(nodes.release, self.node, [(sid, epoch)])

    def left(self, user_id: int) -> None:
        """A connection of the reader that ``admit`` counted is gone."""
        self._submit(nodes.leave, user_id, self.node)

    def admit(self, session: Any, user_id: int, max_connections: int) -> dict[int, int]:
        """In the hello's transaction (``nodes.admit``)."""
        return nodes.admit(session, user_id, self.node, max_connections)

    def claim(
        self, session: Any, sid: str, user_id: int, *, held_here: bool
    ) -> nodes.Position | None:
        """In a resume's transaction (``nodes.claim``)."""
        return nodes.claim(session, sid, user_id, self.node, self._grace_s, held_here=held_here)

    def remote_actives(self, session: Any, user_ids: list[int]) -> dict[int, dict[int, int]]:
        return nodes.remote_actives(session, self.node, user_ids)

    def set_remote(self, reader: Reader, remote: dict[int, int], now: int) -> None:
        self._states.set_remote(reader, remote, now)

    # --- writes ----------------------------------------------------------------------------

    def _after_landing(
        self, streams: list[Stream], write: Callable[[Any, int, list[tuple[str, int]]], None]
    ) -> None:
        if not streams:
            return
        if not any(stream.in_flight for stream in streams):
            self._submit(write, self.node, [(s.sid, s.epoch) for s in streams])
            return
        task = asyncio.ensure_future(self._when_landed(streams, write))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _when_landed(
        self, streams: list[Stream], write: Callable[[Any, int, list[tuple[str, int]]], None]
    ) -> None:
        deadline = time.monotonic() + LANDING_WAIT_S
        while any(stream.in_flight for stream in streams) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self._write(write, self.node, [(s.sid, s.epoch) for s in streams])

    def _submit(self, write: Callable[..., None], *args: Any) -> Future[None]:
        future = self._writes.submit(self._run, write, *args)
        future.add_done_callback(_log_failure)
        return future

    async def _write(self, write: Callable[..., None], *args: Any) -> None:
        await asyncio.wrap_future(self._submit(write, *args))

    def _run(self, write: Callable[..., None], *args: Any) -> None:
        with transaction(self._runtime.sessions) as session:
            write(session, *args)


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a write of this node's presence failed", exc_info=future.exception())
