"""The private stream's token checks: each spend's tokens parsed (``tokens.parse_tokens``) and
checked against their epoch's key (``TokenKeyRing.check``), in a process of their own, so that
the checks (~1.1 libsodium scalar multiplications a token, several times a receipt's
signature) and the parsing run beside the event loop instead of on it.

Not a thread: the check's every libsodium call releases the GIL, and each time the busy event
loop kept it for up to a switch interval (5 ms), as the identified streams' group commit
measured (docs/architecture.md). The worker is started with ``spawn`` (never a fork of a process
with threads); it gets the key ring with each group (a few keys), keeps nothing, and ends when
its parent does, even a killed one. ``processes=0`` checks on the caller's thread (tests, a
small service).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool

from trickle.errors import TokenError
from trickle.streaming.private.protocol import MAX_TOKENS_PER_SPEND, ErrorCode
from trickle.tokens import TokenKeyRing, parse_tokens

log = logging.getLogger("trickle.streaming")


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """Why a spend moved nothing: an error code, for people a message, the token's index."""

    code: str
    message: str
    index: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Paying:
    """A spend whose tokens all passed: what it pays (its key's currency, epoch and value) and
    its tokens' nullifiers (what the ledger records spent)."""

    currency: str
    epoch: int
    amount_minor: int
    nullifiers: tuple[bytes, ...]


def check_spend(keys: TokenKeyRing, raw: object, now: dt.datetime) -> Paying | Refusal:
    """One spend's tokens as they came (JSON: ``tokens.parse_tokens``'s rules): each must be its
    epoch key's, spendable at ``now``, all of one epoch."""
    try:
        tokens = parse_tokens(raw, limit=MAX_TOKENS_PER_SPEND)
    except TokenError as exc:
        return Refusal(exc.code, str(exc), exc.index)
    first = None
    for index, token in enumerate(tokens):
        try:
            key = keys.check(token, now, index=index)
        except TokenError as exc:
            return Refusal(exc.code, str(exc), index)
        if first is None:
            first = key
        elif key.epoch != first.epoch:
            return Refusal(
                ErrorCode.INVALID_MESSAGE, "every token of one spend must be of one epoch", index
            )
    if first is None:
        return Refusal(ErrorCode.INVALID_MESSAGE, "a spend shows at least one token")
    return Paying(
        first.currency,
        first.epoch,
        first.value_minor * len(tokens),
        tuple(token.nullifier for token in tokens),
    )


def check_spends(
    keys: TokenKeyRing, spends: Sequence[object], now: dt.datetime
) -> list[Paying | Refusal]:
    """``check_spend`` for each spend of a group (what the worker process runs)."""
    return [check_spend(keys, raw, now) for raw in spends]


def _follow_parent(parent_pid: int) -> None:
    """In the worker: end when the service process is gone (a worker whose parent was killed
    would otherwise wait on its queue for ever), and not before: a Ctrl+C reaches the whole
    process group, and the service's graceful stop still needs its checks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="trickle-follow-parent", daemon=True).start()


class TokenChecker:
    """Checks groups of spends in a worker process (``processes=1``) or on the caller's thread
    (``processes=0``)."""

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker now (it takes ~1 s to import), not at the first spend."""
        if self._processes:
            self._pool_now().submit(int)

    async def check(
        self, keys: TokenKeyRing, spends: list[object], now: dt.datetime
    ) -> list[Paying | Refusal]:
        if not self._processes or not spends:
            return check_spends(keys, spends, now)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool_now(), check_spends, keys, spends, now)
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one
            log.error("the token check process died; starting another")
            self._pool = None
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _pool_now(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_follow_parent,
                initargs=(os.getpid(),),
            )
        return self._pool
