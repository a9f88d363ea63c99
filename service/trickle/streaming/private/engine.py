"""The private streams of one service process: anonymous sockets (no login), their streams, and
the client's ``spend``s handed to the group commit (``commits``). The server accrues nothing:
the client pays each increment with tokens, paced by its own attention rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from trickle.errors import TrickleError
from trickle.origins import normalize_origin
from trickle.receipts import new_stream_id
from trickle.runtime import Runtime
from trickle.streaming.connection import CloseSocket, Connection, Outbox, SendText
from trickle.streaming.engine import EngineLimits
from trickle.streaming.payees import PayeeCache
from trickle.streaming.private import protocol
from trickle.streaming.private.checks import TokenChecker
from trickle.streaming.private.commits import SpendCommits, SpendRequest
from trickle.streaming.private.commits import stopped_message as stopped
from trickle.streaming.private.protocol import ErrorCode
from trickle.streaming.private.streams import Link, PrivateStream
from trickle.streaming.protocol import CloseCode

log = logging.getLogger("trickle.streaming")


class PrivateStreams:
    """The process's private-stream coordinator (``app.py`` makes it, next to the engine of the
    identified streams, whose limits and payee cache it shares)."""

    def __init__(
        self,
        runtime: Runtime,
        limits: EngineLimits,
        payees: PayeeCache,
    ) -> None:
        self.runtime = runtime
        self.limits = limits
        self.payees = payees
        self.links: set[Link] = set()
        self.outbox = Outbox()
        self.checker = TokenChecker(runtime.settings.stream_token_check_processes)
        self.commits = SpendCommits(
            runtime, self.outbox, self.checker, window_ms=limits.commit_window_ms
        )
        self.draining = False
        self._drain: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.checker.start()

    async def stop(self) -> None:
        await self.drain()
        await self.commits.flush()
        self.commits.close()
        self.checker.close()

    async def drain(self) -> None:
        """The graceful stop: no new spend is taken; those taken commit and are answered; then
        every socket closes with ``server_shutdown`` (1001). Bounded; safe to call again."""
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_once())
        await asyncio.shield(self._drain)

    async def _drain_once(self) -> None:
        self.draining = True
        timeout_s = self.limits.drain_timeout_s
        deadline = time.monotonic() + timeout_s
        try:
            await asyncio.wait_for(self.commits.flush(), timeout_s)
        except TimeoutError:
            log.error("graceful stop: private commits still running after %ss", timeout_s)
        for link in list(self.links):
            link.connection.close(CloseCode.SERVER_SHUTDOWN, "server shutting down")
        writers = {link.connection.writer for link in self.links}
        if writers:
            with contextlib.suppress(Exception):
                await asyncio.wait(writers, timeout=max(0.1, deadline - time.monotonic()))

    # --- connections ------------------------------------------------------------------------

    def open(self, send_text: SendText, close_socket: CloseSocket | None = None) -> Link:
        connection = Connection(
            send_text,
            close_socket,
            outbox=self.outbox,
            max_queued_messages=self.limits.max_queued_messages,
        )
        link = Link(connection)
        self.links.add(link)
        return link

    def welcome(self, link: Link, hello: protocol.Hello) -> None:
        if hello.v != protocol.PROTOCOL_VERSION:
            raise protocol.ProtocolViolation(
                CloseCode.UNSUPPORTED_VERSION,
                f"this server speaks version {protocol.PROTOCOL_VERSION}",
            )
        if self.draining:
            raise protocol.ProtocolViolation(CloseCode.SERVER_SHUTDOWN, "server shutting down")
        limits = self.limits
        link.connection.batch = hello.batch
        link.connection.send(
            {
                "type": "welcome",
                "v": protocol.PROTOCOL_VERSION,
                "private": True,
                "limits": {
                    "max_message_bytes": limits.max_message_bytes,
                    "max_streams": limits.max_streams_per_connection,
                    "max_tokens_per_spend": protocol.MAX_TOKENS_PER_SPEND,
                },
            }
        )

    def disconnect(self, link: Link) -> None:
        """The socket closed: its streams end. Spends already taken still commit (their tokens
        are spent and the payee paid); their answers have no one to go to."""
        link.connection.abandon()
        self.links.discard(link)
        link.streams.clear()

    # --- messages ---------------------------------------------------------------------------

    async def handle(self, link: Link, message: protocol.ClientMessage) -> None:
        if isinstance(message, protocol.Spend):
            await self._spend(link, message)
        elif isinstance(message, protocol.Start):
            await self._start(link, message)
        elif isinstance(message, protocol.Stop):
            stream = self._stream_of(link, message.stream)
            if stream is not None:
                del link.streams[stream.stream]
                stream.stopped = True
                if stream.pending == 0:
                    link.connection.send(stopped(stream))
        elif isinstance(message, protocol.Ping):
            link.connection.send({"type": "pong", "data": message.data})
        else:  # a second hello
            raise protocol.StreamInvalid("hello was said already", None)

    async def _start(self, link: Link, message: protocol.Start) -> None:
        name = message.stream
        if len(link.streams) >= self.limits.max_streams_per_connection:
            most = self.limits.max_streams_per_connection
            self._error(link, ErrorCode.TOO_MANY_STREAMS, f"at most {most} streams", name)
            return
        if name in link.used:
            self._error(link, ErrorCode.DUPLICATE_STREAM, "this stream id was used", name)
            return
        try:
            origin = normalize_origin(message.origin)
        except TrickleError:
            self._error(link, ErrorCode.INVALID_ORIGIN, "origin must be scheme://host[:port]", name)
            return
        link.used.add(name)
        payee = await self.payees.get(message.pointer)
        if payee is None:
            link.used.discard(name)
            self._error(link, ErrorCode.PAYEE_NOT_FOUND, "no payee has this payment pointer", name)
            return
        if link.connection.closed:
            return
        stream = PrivateStream(name, new_stream_id(), link, origin, payee, message.binding)
        link.streams[name] = stream
        link.connection.send(
            {
                "type": "started",
                "stream": name,
                "sid": stream.sid,
                "origin": origin,
                "pointer": payee.pointer,
            }
        )

    async def _spend(self, link: Link, message: protocol.Spend) -> None:
        stream = self._stream_of(link, message.stream)
        if stream is None:
            return
        if self.draining:
            self._error(link, ErrorCode.SPEND_FAILED, "server shutting down", stream.stream)
            return
        request = SpendRequest(stream, message.tokens)  # parsed and checked in ``checks``
        stream.pending += 1
        link.spend_taken()
        self.commits.add(request)
        await link.room.wait()  # backpressure: the socket is not read past the pending limit

    def _stream_of(self, link: Link, name: str) -> PrivateStream | None:
        stream = link.streams.get(name)
        if stream is None:
            self._error(link, ErrorCode.UNKNOWN_STREAM, "no stream with this id", name)
        return stream

    def _error(self, link: Link, code: ErrorCode, message: str, stream: str) -> None:
        link.connection.send(protocol.error_message(code, message, stream=stream))
