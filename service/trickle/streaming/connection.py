"""One client socket's side of the engine: its queue of outgoing messages and the writer task
that drains it, its close, and the outbox that gathers a group commit's messages into one frame."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from trickle.streaming import protocol

if TYPE_CHECKING:  # the streams hold their connection; a connection lists its streams
    from trickle.streaming.streams import Reader, Stream

SendText = Callable[[str], Awaitable[None]]
CloseSocket = Callable[[int, str], Awaitable[None]]  # (code, reason)
BATCH_MAX = 64  # messages per ``batch`` envelope
BALANCE_EVERY_MS = 1000  # a connection's unasked-for ``balance`` messages: at most one a second


class Outbox:
    """While a group commit is delivered, what it produces for a connection that reads ``batch``
    envelopes (its streams' receipts, ``state``, ``stopped``, ``balance``) waits here, and then
    leaves in as few frames as possible: one frame, one write, one wake-up of the client."""

    def __init__(self) -> None:
        self._held: dict[Connection, list[str]] | None = None  # while gathering

    @contextlib.contextmanager
    def gathering(self) -> Iterator[None]:
        self._held = {}
        try:
            yield
        finally:
            held, self._held = self._held, None
            for connection, texts in held.items():
                connection.send_batch(texts)
                connection.close_if_ended()

    def hold(self, connection: Connection, text: str) -> bool:
        """Keep the message for the connection's frame, if the outbox is gathering."""
        held = self._held
        if held is None:
            return False
        texts = held.get(connection)
        if texts is None:
            held[connection] = [text]
        else:
            texts.append(text)
        return True

    def holds(self, connection: Connection) -> bool:
        return self._held is not None and connection in self._held


class Connection:
    """One client socket's state. Outgoing messages go through a queue and a writer task, so a
    slow client only ever blocks itself; after the last message the writer sends the close."""

    def __init__(
        self,
        send_text: SendText,
        close_socket: CloseSocket | None,
        *,
        outbox: Outbox,
        max_queued_messages: int,
    ) -> None:
        self._send_text = send_text
        self._close_socket = close_socket
        self._outbox = outbox
        self._max_queued = max_queued_messages
        self.reader: Reader | None = None
        self.session_id: int | None = None  # the login session of the hello's token
        self.session_expires_at: dt.datetime | None = None
        self.streams: dict[str, Stream] = {}
        self.ending: set[str] = set()  # sids of ended streams whose ``stopped`` is not sent yet
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
        """Send one message, already encoded as JSON (during a group's delivery, a batch reader's
        waits in the outbox for the group's others)."""
        if self.closed:
            return
        if self.batch and self._outbox.hold(self, text):
            return
        self._enqueue(text)

    def send_batch(self, texts: list[str]) -> None:
        """Several encoded messages in as few frames as possible (``batch`` envelopes of at most
        ``BATCH_MAX``), in order."""
        for start in range(0, len(texts), BATCH_MAX):
            if self.closed:
                return
            chunk = texts[start : start + BATCH_MAX]
            self._enqueue(chunk[0] if len(chunk) == 1 else protocol.batch_text(chunk))

    def balance_turn(self, now_ms: int) -> bool:
        """Whether an unasked-for ``balance`` message may go out now; if so, the turn is taken."""
        if now_ms - self._last_balance_ms < BALANCE_EVERY_MS:
            return False
        self._last_balance_ms = now_ms
        return True

    def _enqueue(self, text: str) -> None:
        if self._queue.qsize() >= self._max_queued:
            self.close(protocol.CloseCode.TOO_SLOW, "the client does not read its messages")
            return
        self._queue.put_nowait(text)

    def close(self, code: int, reason: str) -> None:
        """Close after the messages queued so far (they are written first, then the close)."""
        if self.closed:
            return
        self.closed, self.close_code, self.close_reason = True, int(code), reason
        self._queue.put_nowait(None)

    def close_when_ended(self, code: int, reason: str) -> None:
        """Close once every ended stream of this connection has its last receipt and its
        ``stopped`` out (an increment in flight lands first)."""
        if self.ending:
            self.closing = (int(code), reason)
        else:
            self.close(code, reason)

    def close_if_ended(self) -> None:
        """Close, if waiting to, once the ended streams' last messages are all queued (a batch
        reader's may still wait in the outbox: then the outbox closes it, after them)."""
        if self.closing is None or self.ending or self._outbox.holds(self):
            return
        self.close(*self.closing)

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
