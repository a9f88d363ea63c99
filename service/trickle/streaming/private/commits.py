"""The private stream's group commit: every spend that arrived in a commit window is checked and
posted in ONE transaction (``ledger.tokens.SpendGroups``), and only after its COMMIT are
the receipts signed and sent, each connection's together in one frame.

Like the identified streams' group commit (``streaming/delivery.py``) it runs two deep: while
the committer thread checks and commits one group, the event loop signs and sends the group
before. Every spend gets exactly one answer, a ``receipt`` or an ``error``, and a stream's
answers go out in the order its spends came: a spend refused before the commit (a malformed
token) still waits its turn in the group.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine

from trickle import money
from trickle.db import make_engine, make_sessionmaker
from trickle.ledger.tokens import SpendGroups, TokenSpend
from trickle.receipts import ReceiptClaims, ReceiptSigner
from trickle.runtime import Runtime
from trickle.streaming import protocol as stream_protocol
from trickle.streaming.connection import Outbox
from trickle.streaming.private import protocol
from trickle.streaming.private.checks import Paying, Refusal, TokenChecker
from trickle.streaming.private.protocol import ErrorCode
from trickle.streaming.private.streams import PrivateStream

log = logging.getLogger("trickle.streaming")
GROUP_LOCK_WAIT_S = 2.0  # as the identified streams' group commit (EngineLimits.group_lock_wait_s)


@dataclasses.dataclass(eq=False, slots=True)
class SpendRequest:
    """One ``spend`` on its way: its tokens, then its outcome (written by the commit)."""

    stream: PrivateStream
    tokens: object  # as the ``spend`` showed them (JSON): ``checks`` parses and checks them
    refusal: Refusal | None = None  # set: nothing of it moves; its answer is an ``error``
    checking: asyncio.Future[list[Paying | Refusal]] | None = None  # its tokens' check, under way
    check_index: int = 0  # its place in that check's results
    amount_minor: int = 0  # what its tokens are worth (after the check)
    spend: TokenSpend | None = None  # what it posts (after the check passed)
    paid: bool = False  # committed: its answer is a ``receipt``


_Group = tuple[list[SpendRequest], "asyncio.Task[None]"]


class SpendCommits:
    """Takes spends (``add``) and commits them in groups, at most one group per commit window;
    then answers each spend on its connection. A spend's tokens are checked beside the loop
    (``checks.TokenChecker``: CPU work, before any transaction); then its group is posted
    (``ledger.tokens.SpendGroups``: on SQLite its nullifiers and balances on the loop, its
    transfer rows' one statement and the COMMIT in the committer thread, where they hold no
    GIL; on PostgreSQL all of its two statements there); then its answers go out on the loop.
    Under load the stages overlap: a spend's tokens are checked as soon as it arrives, while the
    groups before it commit and are answered; a group is answered after the one before.

    Why SQLite's per-row statements on the loop and not in a thread: a thread's every statement
    releases the GIL, and each time the busy loop kept it for up to a switch interval (5 ms), as
    the identified streams' group commit measured (docs/architecture.md)."""

    def __init__(
        self,
        runtime: Runtime,
        outbox: Outbox,
        checker: TokenChecker,
        *,
        window_ms: int,
    ) -> None:
        self._runtime = runtime
        self._checker = checker
        self._settings = runtime.settings
        self._outbox = outbox
        self.window_s = window_ms / 1000  # at most one group per window
        self._pending: list[SpendRequest] = []
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="trickle-private-commit")
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()  # a spend was added (wakes the commit loop)
        self._unchecked: list[SpendRequest] = []  # added in this turn of the loop
        self._last_start = 0.0
        self._engine: Engine | None = None  # see _groups
        self._spend_groups: SpendGroups | None = None

    def add(self, request: SpendRequest) -> None:
        """Take a spend: its tokens' check starts at once (with the others that arrived in this
        turn of the loop), so that its group finds it checked, or nearly, when its window
        closes."""
        self._pending.append(request)
        if request.refusal is None:
            self._unchecked.append(request)
            if len(self._unchecked) == 1:
                asyncio.get_running_loop().call_soon(self._send_checks)
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_loop())

    async def flush(self) -> None:
        """Wait until every spend taken so far is committed and answered."""
        while self._task is not None and not self._task.done():
            await self._task

    def close(self) -> None:
        """After the last flush."""
        self._committer.shutdown(wait=True)
        if self._engine is not None:
            self._engine.dispose()

    async def _commit_loop(self) -> None:
        """Groups in order, two deep: a new group starts once the window since the last one has
        passed and at most one other is under way, so that its tokens are checked while the one
        before commits and is answered; the oldest group is answered as soon as it is done
        (only after its own COMMIT; groups in order)."""
        under_way: collections.deque[_Group] = collections.deque()
        while self._pending or under_way:
            wait_s = self._last_start + self.window_s - time.monotonic()
            may_start = bool(self._pending) and len(under_way) < 2
            if may_start and wait_s <= 0:
                group, self._pending = self._pending, []
                self._last_start = time.monotonic()
                before = under_way[-1][1] if under_way else None
                under_way.append((group, asyncio.create_task(self._through(group, before))))
            elif under_way and under_way[0][1].done():
                await self._land(under_way.popleft())
            elif not under_way:
                await asyncio.sleep(wait_s)
            else:  # the oldest group, the window, or (none pending) a first spend
                waiting: set[asyncio.Future[Any]] = {under_way[0][1]}
                woken = None
                if not self._pending:
                    self._arrived.clear()
                    woken = asyncio.ensure_future(self._arrived.wait())
                    waiting.add(woken)
                await asyncio.wait(
                    waiting, timeout=wait_s if may_start else None, return_when="FIRST_COMPLETED"
                )
                if woken is not None:
                    woken.cancel()

    def _send_checks(self) -> None:
        """The spends added in this turn of the loop: their tokens to the checker, together."""
        batch, self._unchecked = self._unchecked, []
        if not batch:
            return
        keys = self._runtime.token_keys.current
        now = self._runtime.clock()
        checking = asyncio.ensure_future(
            self._checker.check(keys, [request.tokens for request in batch], now)
        )
        for index, request in enumerate(batch):
            request.checking, request.check_index = checking, index

    async def _through(self, group: list[SpendRequest], before: asyncio.Task[None] | None) -> None:
        """One group: its tokens' checks awaited (``TokenChecker``: beside the loop, begun as
        each spend arrived), then, once the group before has committed (its lock is free),
        posted and committed (``_stage``: the committer thread commits)."""
        now = self._runtime.clock()
        unchecked = [request for request in group if request.refusal is None]
        if any(request.checking is None for request in unchecked):
            self._send_checks()  # their turn's batch was not sent yet (it is sent now, once)
        checks = {request.checking for request in unchecked if request.checking is not None}
        if checks:
            await asyncio.wait(checks)
        for request in unchecked:
            assert request.checking is not None
            result = request.checking.result()[request.check_index]  # raises if the check did
            if isinstance(result, Paying):
                request.amount_minor = result.amount_minor
                request.spend = self._spend(request, result)
            else:
                request.refusal = result
        if before is not None:
            await asyncio.wait([before])  # its outcome is _land's business
        finish = self._stage(group, now)
        await asyncio.get_running_loop().run_in_executor(self._committer, finish)

    async def _land(self, under_way: _Group) -> None:
        group, task = under_way
        try:
            await task
        except Exception:  # rolled back (or never begun): nothing of the group moved
            log.exception("private group commit failed; %d spends not paid", len(group))
            failed = Refusal(ErrorCode.SPEND_FAILED, "not committed; nothing moved")
            for request in group:
                if not request.paid:
                    request.refusal = request.refusal or failed
        self._answer(group)

    # --- the group transaction -----------------------------------------------------------------

    def _stage(self, group: list[SpendRequest], now: dt.datetime) -> Callable[[], None]:
        """Stage the group's checked spends (``ledger.tokens.SpendGroups``: what can run here,
        on the event loop) and return ``finish``, its COMMIT, for the committer thread; the
        spends' outcomes are set once it returned. Nothing is durable, so no receipt may leave,
        before."""
        posted = [request for request in group if request.spend is not None]
        spends = [request.spend for request in posted if request.spend is not None]
        if not spends:
            return lambda: None
        commit = self._groups().stage(spends, now)

        def finish() -> None:
            fresh = commit()
            for request, paid in zip(posted, fresh, strict=True):
                if paid:
                    request.paid = True
                else:
                    request.refusal = Refusal(
                        ErrorCode.TOKEN_SPENT, "a token of this spend was spent before"
                    )

        return finish

    def _groups(self) -> SpendGroups:
        """The group commit's own pool, whose statements wait at most ``GROUP_LOCK_WAIT_S`` for
        another writer's lock: some run on the event loop, so a group fails (its spends are
        answered ``spend_failed``) rather than stall every socket of the process."""
        if self._spend_groups is None:
            url = self._runtime.engine.url.render_as_string(hide_password=False)
            self._engine = make_engine(url, lock_wait_s=GROUP_LOCK_WAIT_S, pool_pre_ping=False)
            self._spend_groups = SpendGroups(self._engine, make_sessionmaker(self._engine))
        return self._spend_groups

    def _spend(self, request: SpendRequest, paying: Paying) -> TokenSpend:
        stream = request.stream
        return TokenSpend(
            paying.currency,
            paying.epoch,
            paying.nullifiers,
            stream.payee.account_id,
            stream.payee.fee_account_id,
            paying.amount_minor,
            money.fee_of(paying.amount_minor, self._settings.fee_bps),
            stream.origin,
            stream.sid,
        )

    # --- on the event loop, after the commit -------------------------------------------------

    def _answer(self, group: list[SpendRequest]) -> None:
        """Each spend's answer, in order: its receipt (signed now, after the commit) or its
        error; then a stopped stream's ``stopped`` after its last answer."""
        tokens = self._sign(group)
        with self._outbox.gathering():
            for request, token in zip(group, tokens, strict=True):
                stream = request.stream
                connection = stream.link.connection
                if request.paid:
                    stream.seq += 1
                    stream.total_minor += request.amount_minor
                    if token is not None:
                        connection.send_text(
                            stream_protocol.receipt_text(
                                stream.sid,
                                stream.seq,
                                request.amount_minor,
                                stream.total_minor,
                                token,
                            )
                        )
                else:
                    refusal = request.refusal or Refusal(ErrorCode.SPEND_FAILED, "not committed")
                    connection.send(
                        protocol.error_message(
                            refusal.code,
                            refusal.message,
                            stream=stream.stream,
                            sid=stream.sid,
                            index=refusal.index,
                        )
                    )
                stream.pending -= 1
                stream.link.spend_answered()
                if stream.stopped and stream.pending == 0:
                    connection.send(stopped_message(stream))

    def _sign(self, group: list[SpendRequest]) -> list[str | None]:
        """The paid spends' receipts. Never raises: the money moved. A receipt that could not
        be signed is ``None`` (logged); the stream's next receipt, cumulative, covers it."""
        try:
            return self._sign_all(group)
        except Exception:
            log.exception("signing a committed private group failed")
            return [None] * len(group)

    def _sign_all(self, group: list[SpendRequest]) -> list[str | None]:
        settings = self._settings
        issued_at = int(self._runtime.clock().timestamp())
        expires_at = issued_at + settings.receipt_ttl_s
        signer = ReceiptSigner(self._runtime.key_ring.current.active)
        issuer, currency, scale = settings.issuer, settings.currency, settings.asset_scale
        totals: dict[PrivateStream, tuple[int, int]] = {}  # the seq and tot so far, per stream
        tokens: list[str | None] = []
        for request in group:
            if not request.paid:
                tokens.append(None)
                continue
            stream = request.stream
            seq, total = totals.get(stream, (stream.seq, stream.total_minor))
            seq, total = seq + 1, total + request.amount_minor
            totals[stream] = seq, total
            claims = ReceiptClaims(
                iss=issuer,
                aud=stream.origin,
                pay=stream.payee.pointer,
                sid=stream.sid,
                seq=seq,
                amount_minor=request.amount_minor,
                total_minor=total,
                currency=currency,
                scale=scale,
                issued_at=issued_at,
                expires_at=expires_at,
                binding=stream.binding,
            )
            tokens.append(signer.sign(claims))
        return tokens


def stopped_message(stream: PrivateStream) -> dict[str, object]:
    return {
        "type": "stopped",
        "stream": stream.stream,
        "sid": stream.sid,
        "reason": "stopped",
        "seq": stream.seq,
        "tot": str(stream.total_minor),
    }
