"""The private stream's connections and streams as the process holds them: no reader, only what
the client named (its stream ids) and what the answers need (the receipts' seq and tot)."""

from __future__ import annotations

import asyncio
import dataclasses

from trickle.payees import PayeeInfo
from trickle.streaming.connection import Connection

# Spends of one connection awaiting their answer: past this the socket is not read until one
# is answered (a client cannot queue unbounded work; a paced client never has more than a few).
MAX_PENDING_SPENDS = 64


@dataclasses.dataclass(eq=False)
class Link:
    """One private socket: its connection (the queue and writer) and its streams."""

    connection: Connection
    streams: dict[str, PrivateStream] = dataclasses.field(default_factory=dict)  # by client id
    used: set[str] = dataclasses.field(default_factory=set)  # stream ids started on it
    pending: int = 0  # spends awaiting their answer
    room: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.room.set()

    def spend_taken(self) -> None:
        self.pending += 1
        if self.pending >= MAX_PENDING_SPENDS:
            self.room.clear()

    def spend_answered(self) -> None:
        self.pending -= 1
        if self.pending < MAX_PENDING_SPENDS:
            self.room.set()


@dataclasses.dataclass(eq=False)
class PrivateStream:
    """One stream of a private socket: what its receipts state, and its answers still owed."""

    stream: str  # the client's id for it
    sid: str  # random: the receipts' ``sid``
    link: Link
    origin: str
    payee: PayeeInfo
    binding: str | None
    seq: int = 0
    total_minor: int = 0
    currency: str | None = None  # fixed by its first paid spend: a stream's receipts share one
    pending: int = 0  # spends awaiting their answer
    stopped: bool = False  # ``stop`` came; ``stopped`` goes out after the last answer
