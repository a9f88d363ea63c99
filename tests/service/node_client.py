"""A reader's browser that stays: a stream client that reconnects when its socket drops and
resumes its streams, as the extension does. Used by the multi-node tests (behind nginx or not)
and ``bench/streams.py --nodes``.

It records every receipt it was sent per stream and checks the protocol's promises as they
arrive: ``seq`` runs without gaps across reconnects (a gap is allowed only when a ``resumed``
announced it, and the resent receipt then fills it), and ``tot`` is the sum of the ``amt``s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.service.stream_client import ORIGIN

PING_S = 15.0


@dataclasses.dataclass(eq=False)
class Tracked:
    """One stream as its client saw it."""

    ref: str
    pointer: str
    sid: str | None = None
    state: str = ""
    seq: int = 0
    total_minor: int = 0
    receipts: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)  # seq amt tot
    tokens: dict[int, str] = dataclasses.field(default_factory=dict)  # seq -> receipt
    resumes: int = 0
    resent: int = 0
    resent_identical: int = 0  # resent receipts byte for byte the one received before
    lost: bool = False  # a resume was refused: the stream could not go on
    stopped: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)


class StayingClient:
    """One reader connection that comes back: connect (to ``url``, or each time to the next of
    ``urls``), hello, start its streams once, and after every drop reconnect with a short backoff
    and ``resume`` them. ``received_at`` (monotonic s) of every receipt is kept for latencies."""

    def __init__(
        self,
        urls: list[str],
        token: str,
        starts: list[tuple[str, str]],
        *,
        active: bool = True,
        keep_tokens: bool = True,
    ) -> None:
        self.urls = urls
        self.token = token
        self.active = active
        self.keep_tokens = keep_tokens
        self.streams = {ref: Tracked(ref, pointer) for ref, pointer in starts}
        self.by_sid: dict[str, Tracked] = {}
        self.connections = 0
        self.closes: list[int] = []
        self.errors: list[dict[str, Any]] = []
        self.latencies_ms: list[float] = []
        self.record_latency = False
        self.interval_s = 0.0
        self.on_receipt: Callable[[Tracked, dict[str, Any]], None] | None = None
        self._anchor: dict[str, tuple[float, int]] = {}
        self._ws: ClientConnection | None = None
        self._stopping = False

    # --- running ---

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.05
        while not stop.is_set():
            url = self.urls[self.connections % len(self.urls)]
            self.connections += 1
            try:
                async with connect(
                    url,
                    proxy=None,
                    ping_interval=None,
                    open_timeout=30,
                    close_timeout=5,
                    max_queue=None,
                    compression=None,
                ) as ws:
                    self._ws = ws
                    await self._greet(ws)
                    backoff = 0.05
                    await self._serve(ws, stop)
                    if stop.is_set():
                        await self._stop_all(ws)
                        return
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd is not None else 1006)
            except (OSError, InvalidStatus, TimeoutError):
                self.closes.append(1006)
            finally:
                self._ws = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _greet(self, ws: ClientConnection) -> None:
        await ws.send(json.dumps({"type": "hello", "v": 1, "token": self.token, "batch": True}))
        for tracked in self.streams.values():
            if tracked.lost or tracked.stopped:
                continue
            if tracked.sid is None:
                message = {
                    "type": "start",
                    "ref": tracked.ref,
                    "origin": ORIGIN,
                    "pointer": tracked.pointer,
                    "active": self.active,
                }
            else:
                message = {"type": "resume", "sid": tracked.sid, "active": self.active}
            await ws.send(json.dumps(message))

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        reading = asyncio.ensure_future(self._read(ws))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not (reading.done() or stopping.done()):
                await asyncio.wait(
                    {reading, stopping}, timeout=PING_S, return_when=asyncio.FIRST_COMPLETED
                )
                if not (reading.done() or stopping.done()):
                    await ws.send('{"type":"ping"}')  # within the server's idle timeout
        finally:
            stopping.cancel()
        if reading.done():
            reading.result()  # raises ConnectionClosed for a dropped socket
        else:
            self._reading = reading

    async def _stop_all(self, ws: ClientConnection) -> None:
        """Stop every stream and read until each has its ``stopped`` (or the socket goes)."""
        with contextlib.suppress(ConnectionClosed):
            for tracked in self.streams.values():
                if tracked.sid is not None and not tracked.lost and not tracked.stopped:
                    await ws.send(json.dumps({"type": "stop", "sid": tracked.sid}))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not all(
                t.stopped or t.lost or t.sid is None for t in self.streams.values()
            ):
                await asyncio.sleep(0.02)
            await ws.close()
        reading = getattr(self, "_reading", None)
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reading

    async def _read(self, ws: ClientConnection) -> None:
        async for text in ws:
            message = json.loads(text)
            now_s = time.monotonic()
            if message["type"] == "batch":
                for item in message["messages"]:
                    self.on_message(item, now_s)
            else:
                self.on_message(message, now_s)

    # --- messages ---

    def on_message(self, message: dict[str, Any], now_s: float) -> None:
        kind = message["type"]
        if kind == "receipt":
            self._on_receipt(message, now_s)
        elif kind == "started":
            tracked = self.streams[message["ref"]]
            tracked.sid = message["sid"]
            self.by_sid[tracked.sid] = tracked
        elif kind == "resumed":
            tracked = self.by_sid[message["sid"]]
            tracked.resumes += 1
            seq, tot = message["seq"], int(message["tot"])
            if seq < tracked.seq or (seq == tracked.seq and tot != tracked.total_minor):
                tracked.problems.append(f"resumed at {seq}/{tot} after {tracked.seq}")
        elif kind == "state":
            tracked = self.by_sid[message["sid"]]
            tracked.state = message["state"]
            if tracked.state == "active":
                self._anchor[tracked.sid] = (now_s, tracked.seq)  # type: ignore[index]
        elif kind == "stopped":
            self.by_sid[message["sid"]].stopped = True
        elif kind == "error":
            self.errors.append(message)
            sid = message.get("sid")
            if sid in self.by_sid and message["code"] == "unknown_stream":
                self.by_sid[sid].lost = True

    def _on_receipt(self, message: dict[str, Any], now_s: float) -> None:
        tracked = self.by_sid[message["sid"]]
        seq, amt, tot = message["seq"], int(message["amt"]), int(message["tot"])
        if message.get("resent"):
            tracked.resent += 1
            if seq < tracked.seq:
                tracked.problems.append(f"resent {seq} after {tracked.seq}")
            elif seq == tracked.seq:
                if tot != tracked.total_minor:
                    tracked.problems.append(f"resent {seq} with tot {tot}")
                if seq in tracked.tokens:
                    if tracked.tokens[seq] == message["receipt"]:
                        tracked.resent_identical += 1
                    else:
                        tracked.problems.append(f"resent {seq} is not the receipt sent before")
                return
            # a receipt committed but never delivered before the drop: it fills the gap
        elif seq != tracked.seq + 1 or tot != tracked.total_minor + amt:
            tracked.problems.append(
                f"receipt {seq}/{tot} after {tracked.seq}/{tracked.total_minor}"
            )
        if seq > tracked.seq:
            tracked.seq, tracked.total_minor = seq, tot
        tracked.receipts.append((seq, amt, tot))
        if self.keep_tokens:
            tracked.tokens[seq] = message["receipt"]
        if self.record_latency and self.interval_s and not message.get("resent"):
            anchor = self._anchor.get(tracked.sid)  # type: ignore[arg-type]
            if anchor is not None:
                due_s = anchor[0] + (seq - anchor[1]) * self.interval_s
                self.latencies_ms.append((now_s - due_s) * 1000)
        if self.on_receipt is not None:
            self.on_receipt(tracked, message)

    # --- views ---

    def all_active(self) -> bool:
        return all(t.state == "active" for t in self.streams.values())

    def problems(self) -> list[str]:
        return [f"{t.ref}: {p}" for t in self.streams.values() for p in t.problems]
