"""The private stream's WebSocket endpoint (``/api/v1/private-stream``): thin: frames in, calls
of ``PrivateStreams``, frames out. It reads no header, cookie or query string: nothing of the
request but its frames (the reader's login has no business here)."""

from __future__ import annotations

from starlette.websockets import WebSocket, WebSocketDisconnect

from trickle.streaming.private import protocol
from trickle.streaming.private.engine import PrivateStreams
from trickle.streaming.socket import finish, first_hello, serve


async def private_stream_socket(websocket: WebSocket) -> None:
    streams: PrivateStreams = websocket.app.state.private_streams
    limits = streams.limits
    await websocket.accept()
    link = streams.open(websocket.send_text, websocket.close)
    connection = link.connection
    try:
        hello = await first_hello(websocket, protocol.parse, protocol.Hello, limits)
        streams.welcome(link, hello)

        async def handle(text: str | bytes) -> None:
            await streams.handle(link, protocol.parse(text, limits.max_message_bytes))

        await serve(websocket, connection, handle, protocol.invalid_error, limits)
    except protocol.ProtocolViolation as exc:
        connection.close(exc.close_code, str(exc))
    except WebSocketDisconnect:
        connection.closed = True
    finally:
        streams.disconnect(link)
        await finish(websocket, connection)
