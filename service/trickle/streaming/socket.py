"""The WebSocket endpoint (``/api/v1/stream``): thin: frames in, engine calls, frames out. Its
reading loop and its close (``receive``, ``serve``, ``finish``) serve the private stream's
endpoint too (``streaming/private/socket.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect

from trickle import metrics
from trickle.streaming import protocol
from trickle.streaming.connection import Connection
from trickle.streaming.engine import StreamEngine
from trickle.streaming.protocol import CloseCode

log = logging.getLogger("trickle.streaming")
H = TypeVar("H")


async def receive(websocket: WebSocket) -> str | bytes:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")


async def first_hello(
    websocket: WebSocket,
    parse: Callable[[str | bytes, int], object],
    hello_type: type[H],
    limits: SocketLimits,
) -> H:
    """The first frame, which must be a valid ``hello`` (of ``hello_type``, by ``parse`` of the
    socket's protocol) within the hello timeout; otherwise the socket closes (``hello_timeout``,
    ``unauthenticated``)."""
    try:
        first = await asyncio.wait_for(receive(websocket), limits.hello_timeout_s)
    except TimeoutError:
        raise protocol.ProtocolViolation(CloseCode.HELLO_TIMEOUT, "send hello first") from None
    try:
        hello = parse(first, limits.max_message_bytes)
    except protocol.InvalidMessage:
        raise protocol.ProtocolViolation(CloseCode.UNAUTHENTICATED, "a valid hello first") from None
    if not isinstance(hello, hello_type):
        raise protocol.ProtocolViolation(
            CloseCode.UNAUTHENTICATED, "the first message must be hello"
        )
    return hello


async def stream_socket(websocket: WebSocket) -> None:
    engine: StreamEngine = websocket.app.state.engine
    limits = engine.limits
    await websocket.accept()
    connection = engine.open(websocket.send_text, websocket.close)
    try:
        hello = await first_hello(websocket, protocol.parse, protocol.Hello, limits)
        await engine.authenticate(connection, hello)
        await _serve(websocket, engine, connection)
    except protocol.ProtocolViolation as exc:
        connection.close(exc.close_code, str(exc))
    except WebSocketDisconnect:
        connection.closed = True
    finally:
        engine.disconnect(connection)
        await finish(websocket, connection)


async def _serve(websocket: WebSocket, engine: StreamEngine, connection: Connection) -> None:
    limits = engine.limits

    async def handle(text: str | bytes) -> None:
        await engine.handle(connection, protocol.parse(text, limits.max_message_bytes))

    await serve(websocket, connection, handle, _error, limits)


def _error(exc: protocol.InvalidMessage) -> dict[str, Any]:
    return protocol.error_message(exc.code, str(exc), ref=exc.ref, sid=exc.sid)


class SocketLimits(Protocol):
    """What ``first_hello`` and ``serve`` read of an engine's limits."""

    @property
    def hello_timeout_s(self) -> float: ...
    @property
    def max_message_bytes(self) -> int: ...
    @property
    def idle_timeout_s(self) -> float: ...
    @property
    def max_invalid_messages(self) -> int: ...


async def serve(
    websocket: WebSocket,
    connection: Connection,
    handle: Callable[[str | bytes], Awaitable[None]],
    error: Callable[[protocol.InvalidMessage], dict[str, Any]],
    limits: SocketLimits,
) -> None:
    """Read frames and ``handle`` each, in order, until the connection closes: an invalid
    message gets its ``error`` reply (too many in a row close the socket), nothing received
    for the idle timeout closes it. While it waits for a frame (never while it handles one),
    the end of the connection's writer (the engine closed it) ends it.

    One timer per frame and no task of its own: the private stream reads a frame per receipt."""
    task = asyncio.current_task()
    assert task is not None
    waiting = False  # for a frame: the writer's end may cancel the wait

    def writer_ended(_: object) -> None:
        if waiting:
            task.cancel()

    connection.writer.add_done_callback(writer_ended)
    try:
        while not connection.closed and not connection.writer.done():
            waiting = True
            try:
                async with asyncio.timeout(limits.idle_timeout_s):
                    text = await receive(websocket)
            except TimeoutError:
                raise protocol.ProtocolViolation(
                    CloseCode.IDLE_TIMEOUT, "nothing received; send ping"
                ) from None
            except asyncio.CancelledError:
                if connection.writer.done() and task.uncancel() == 0:
                    return  # the writer ended: the engine closed this connection
                raise
            finally:
                waiting = False
            try:
                await handle(text)
                connection.invalid_messages = 0
            except protocol.InvalidMessage as exc:
                connection.invalid_messages += 1
                metrics.error("stream", exc.code)
                connection.send(error(exc))
                if connection.invalid_messages > limits.max_invalid_messages:
                    raise protocol.ProtocolViolation(
                        CloseCode.TOO_MANY_ERRORS, "too many invalid messages in a row"
                    ) from None
    finally:
        connection.writer.remove_done_callback(writer_ended)


async def finish(websocket: WebSocket, connection: Connection) -> None:
    """The writer writes what is queued, then the close; a client that does not take its
    messages within 5 s gets the close without them."""
    if connection.close_code is None:
        connection.close(1000, "")
    try:
        await asyncio.wait_for(connection.writer, 5)
    except TimeoutError:
        with contextlib.suppress(Exception):  # the peer may be gone already
            await websocket.close(connection.close_code or 1000, connection.close_reason[:120])
