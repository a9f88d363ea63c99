"""The WebSocket transport of ``trickle serve``: uvicorn's websockets (sans-I/O) protocol, with
one change: a message over the size limit closes with the stream protocol's
``message_too_large`` (4413), not the transport's own 1009.

The transport has to refuse an over-large frame itself, from its header, before reading it (or
a client could make the server buffer any amount); so the engine cannot see such a frame, and
without this the spec's one code for "too large" would depend on how large.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode
from websockets.server import ServerProtocol

from trickle.streaming import protocol

MESSAGE_TOO_LARGE = protocol.CloseCode.MESSAGE_TOO_LARGE


class _StreamServerProtocol(ServerProtocol):
    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if code == CloseCode.MESSAGE_TOO_BIG:
            code = MESSAGE_TOO_LARGE
        super().fail(code, reason)


class StreamTransport(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol (``ws=`` of uvicorn's config)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _StreamServerProtocol(
            extensions=self.conn.available_extensions,
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )
