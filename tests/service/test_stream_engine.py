"""The streaming engine driven directly with a fake clock: exact accrual, shared rates, settings,
funds and budget blocking, fees. No server and no timing: every interval is one ``tick``."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from tests.factories import asset, create_payee, create_user, fund_reader
from trickle import ledger, sessions
from trickle.db import transaction
from trickle.ledger import AccountKind
from trickle.models import ReaderRate, ReaderSettings, SiteOverride
from trickle.receipts import ReceiptClaims, ReceiptSigner
from trickle.runtime import Runtime
from trickle.streaming import protocol
from trickle.streaming.accrual import HOUR_MS
from trickle.streaming.connection import Connection
from trickle.streaming.engine import EngineLimits, StreamEngine
from trickle_verifier import KeySet, Verifier

ISSUER = "https://trickle.test"
BLOG = "https://blog.example"
NEWS = "https://news.example"
WIKI = "https://wiki.example"


class FakeClock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


@dataclasses.dataclass
class Tab:
    """One client connection and everything the engine sent it."""

    connection: Connection
    messages: list[dict[str, Any]]  # every message, ``batch`` envelopes unpacked
    frames: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # as sent

    def of(self, kind: str, sid: str | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.messages if m["type"] == kind and (sid is None or m.get("sid") == sid)
        ]

    def receipts(self, sid: str | None = None) -> list[dict[str, Any]]:
        return self.of("receipt", sid)

    def states(self, sid: str) -> list[str]:
        return [m["state"] for m in self.of("state", sid)]


class Harness:
    def __init__(self, runtime: Runtime, interval_ms: int = 1000, **limits: Any) -> None:
        self.runtime = runtime
        self.clock = clock = FakeClock()
        engine_limits = dataclasses.replace(
            EngineLimits.from_settings(runtime.settings), interval_ms=interval_ms, **limits
        )
        # The wall clock moves with the fake one, as it does with the monotonic one (the
        # ledger's rate cap refills by the group's wall-clock time).
        wall, start_ms = runtime.clock, clock.ms

        def wall_clock() -> dt.datetime:
            return wall() + dt.timedelta(milliseconds=clock.ms - start_ms)

        runtime = dataclasses.replace(runtime, clock=wall_clock)
        self.engine = StreamEngine(runtime, engine_limits, self.clock)
        self.interval_ms = interval_ms
        self.tabs: list[Tab] = []

    async def connect(self, token: str, batch: bool = False) -> Tab:
        messages: list[dict[str, Any]] = []
        frames: list[dict[str, Any]] = []

        async def send(text: str) -> None:
            frame = json.loads(text)
            frames.append(frame)
            messages.extend(frame["messages"] if frame["type"] == "batch" else [frame])

        tab = Tab(self.engine.open(send), messages, frames)
        await self.engine.authenticate(
            tab.connection, protocol.Hello(type="hello", v=1, token=token, batch=batch)
        )
        self.tabs.append(tab)
        await self.drain()
        return tab

    async def start(self, tab: Tab, origin: str, pointer: str, active: bool = True) -> str:
        ref = f"r{len(tab.messages)}"
        message = protocol.Start(
            type="start", ref=ref, origin=origin, pointer=pointer, active=active
        )
        await self.engine.handle(tab.connection, message)
        await self.drain()
        started = [m for m in tab.of("started") if m["ref"] == ref]
        assert len(started) == 1, tab.messages[-3:]
        sid: str = started[0]["sid"]
        return sid

    async def send(self, tab: Tab, message: protocol.ClientMessage) -> None:
        await self.engine.handle(tab.connection, message)
        await self.drain()

    async def drain(self) -> None:
        # A connection's writer drains its whole queue each time it runs.
        for _ in range(3):
            await asyncio.sleep(0)

    async def run(self, intervals: int, step_ms: int | None = None, flush_every: int = 1) -> None:
        """Advance the clock interval by interval; every ``flush_every`` steps the increments
        commit and their receipts go out (until then a stream's next increment waits its turn)."""
        step = step_ms or self.interval_ms
        for done in range(1, intervals + 1):
            self.clock.ms += step
            self.engine.tick(self.clock.ms)
            if done % flush_every == 0 or done == intervals:
                await self.engine.flush()
        await self.drain()
        for reader in self.engine.readers.values():  # the engine counts; recount by hand
            assert reader.active_count == sum(s.state == "active" for s in reader.streams)

    async def refresh(self) -> None:
        await self.engine.refresh_readers()
        await self.drain()

    async def close(self) -> None:
        await self.engine.stop()
        await self.drain()


def run_engine(
    runtime: Runtime,
    body: Callable[[Harness], Awaitable[None]],
    interval_ms: int = 1000,
    **limits: Any,
) -> None:
    """Run ``body`` with a harness whose engine has ``interval_ms`` and these other limits."""

    async def main() -> None:
        harness = Harness(runtime, interval_ms, **limits)
        try:
            await body(harness)
        finally:
            await harness.close()

    asyncio.run(main())


def pointer(name: str) -> str:
    return f"{ISSUER}/p/{name}"


def verify_all(runtime: Runtime, tab: Tab, sid: str, origin: str, payee: str) -> int:
    """Verify every receipt of a stream; check seq and tot run on without gaps; return tot."""
    verifier = Verifier(
        issuer=ISSUER,
        audience=origin,
        payees=[pointer(payee)],
        keys=KeySet.from_jwks(runtime.key_ring.current.jwks),
        leeway_s=2 * 3600,  # receipts are issued at the engine's wall clock: the fake one's time
    )
    total = 0
    for seq, message in enumerate(tab.receipts(sid), start=1):
        receipt = verifier.verify(message["receipt"])
        total += receipt.amount_minor
        assert (receipt.sid, receipt.seq, receipt.total_minor) == (sid, seq, total)
        assert receipt.amount_minor > 0
        assert (message["seq"], message["amt"], message["tot"]) == (
            seq,
            str(receipt.amount_minor),
            str(total),
        )
    return total


def set_reader(
    runtime: Runtime,
    user_id: int,
    *,
    rate: int = 600_000_000,
    budget: int = 5_000_000_000,
    paused: bool = False,
) -> None:
    with transaction(runtime.sessions) as session:
        row = session.get(ReaderSettings, user_id)
        if row is None:
            row = ReaderSettings(user_id=user_id, currency="USD")
            session.add(row)
        row.rate_per_hour_minor, row.monthly_budget_minor, row.paused = rate, budget, paused


def set_site(
    runtime: Runtime, user_id: int, origin: str, *, rate: int | None = None, disabled: bool = False
) -> None:
    with transaction(runtime.sessions) as session:
        row = session.get(SiteOverride, (user_id, origin))
        if row is None:
            row = SiteOverride(user_id=user_id, origin=origin)
            session.add(row)
        row.rate_per_hour_minor, row.disabled = rate, disabled


def balance_of(runtime: Runtime, kind: AccountKind, owner: str) -> int:
    with transaction(runtime.sessions) as session:
        account = ledger.account(session, kind, owner, asset(runtime), runtime.clock())
        return ledger.balance(session, account.id)


def payee_balance(runtime: Runtime, payee_id: int) -> int:
    return balance_of(runtime, AccountKind.PAYEE, f"payee:{payee_id}")


def reader_balance(runtime: Runtime, user_id: int) -> int:
    return balance_of(runtime, AccountKind.READER, f"user:{user_id}")


@dataclasses.dataclass
class World:
    reader: Any
    payees: dict[str, int]


@pytest.fixture
def world(runtime: Runtime) -> World:
    reader = create_user(runtime)
    owner = create_user(runtime)
    payees = {name: create_payee(runtime, owner.id, name).id for name in ("alice", "bob", "carol")}
    return World(reader, payees)


# --- exact accrual ------------------------------------------------------------------------


def test_an_hour_of_one_second_ticks_pays_the_rate_exactly(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    rate = 600_000_000

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(60)  # a commit per tick: each receipt is 166_666 2/3, carried exactly
        assert [r["amt"] for r in tab.receipts(sid)[:6]] == ["166666", "166667", "166667"] * 2
        # most of the hour with commits slower than the clock: an increment that finds its
        # stream still committing is cut the moment that one lands (so each slow commit yields
        # two receipts: the one in flight and the one owed), and nothing is lost or paid twice
        # (commits up to 3 intervals slow: the rate cap's burst is 2 intervals + 2 s; see
        # test_an_increment_past_the_rate_allowance_is_dropped_and_the_stream_goes_on)
        await h.run(3525, flush_every=3)
        await h.run(15)  # the last quarter minute commits every tick again
        assert len(tab.receipts(sid)) == 60 + 2 * (3525 // 3) + 15
        assert h.engine.streams[sid].accrual.pending == 0
        assert verify_all(runtime, tab, sid, BLOG, "alice") == rate

    run_engine(runtime, body)
    assert payee_balance(runtime, world.payees["alice"]) == rate
    assert reader_balance(runtime, world.reader.id) == 10**12 - rate


def test_an_odd_rate_carries_its_remainder_exactly(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    rate = 1_000_003
    set_reader(runtime, world.reader.id, rate=rate)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        for intervals in (1, 2, 10, 100, 150):
            await h.run(intervals)
        elapsed_ms = 263 * 7000
        paid = verify_all(runtime, tab, sid, BLOG, "alice")
        assert paid == rate * elapsed_ms // HOUR_MS
        amounts = {int(r["amt"]) for r in tab.receipts(sid)}
        assert amounts <= {rate * 7000 // HOUR_MS, rate * 7000 // HOUR_MS + 1}

    run_engine(runtime, body, interval_ms=7000)


def test_the_first_receipt_comes_after_one_full_interval(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(1, step_ms=999)
        assert tab.receipts(sid) == []
        await h.run(1, step_ms=1)
        assert [r["amt"] for r in tab.receipts(sid)] == [str(600_000_000 // 3600)]

    run_engine(runtime, body)


def test_a_zero_rate_sends_no_receipt(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=0)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(5)
        assert tab.states(sid) == ["active"] and tab.receipts(sid) == []

    run_engine(runtime, body)


# --- one reader, several streams: the rate is shared ---------------------------------------


def test_two_streams_share_the_readers_rate(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    rate = 600_000_000

    async def body(h: Harness) -> None:
        one, two = await h.connect(world.reader.token), await h.connect(world.reader.token)
        a = await h.start(one, BLOG, pointer("alice"))
        b = await h.start(two, NEWS, pointer("bob"))
        await h.run(120)  # two minutes
        paid_a = verify_all(runtime, one, a, BLOG, "alice")
        paid_b = verify_all(runtime, two, b, NEWS, "bob")
        assert paid_a == paid_b == rate // 30 // 2
        assert paid_a + paid_b == rate // 30  # not double

    run_engine(runtime, body)


def test_a_third_tab_joining_midway_takes_a_third_share(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)  # 100_000 per second

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        b = await h.start(tab, NEWS, pointer("bob"))
        await h.run(60)  # two active: 50_000/s each
        c = await h.start(tab, WIKI, pointer("carol"))
        await h.run(90)  # three active: 33_333.3/s each
        paid = {
            sid: verify_all(runtime, tab, sid, origin, name)
            for sid, origin, name in ((a, BLOG, "alice"), (b, NEWS, "bob"), (c, WIKI, "carol"))
        }
        assert paid[a] == paid[b] == 60 * 50_000 + 90 * 100_000 // 3
        assert paid[c] == 90 * 100_000 // 3
        assert sum(paid.values()) == 150 * 100_000

    run_engine(runtime, body)


def test_an_inactive_tab_does_not_take_a_share(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        b = await h.start(tab, NEWS, pointer("bob"), active=False)
        await h.run(10)
        assert tab.states(b) == ["inactive"]
        await h.send(tab, protocol.Attention(type="attention", sid=b, active=True))
        await h.run(10)
        await h.send(tab, protocol.Attention(type="attention", sid=a, active=False))
        await h.run(10)
        assert tab.states(a) == ["active", "inactive"]
        assert verify_all(runtime, tab, a, BLOG, "alice") == 10 * 100_000 + 10 * 50_000
        assert verify_all(runtime, tab, b, NEWS, "bob") == 10 * 50_000 + 10 * 100_000
        assert tab.of("state", b)[-1] == {"type": "state", "sid": b, "state": "active"}
        assert tab.of("state", a)[-1] == {
            "type": "state",
            "sid": a,
            "state": "inactive",
            "reason": "inactive",
        }

    run_engine(runtime, body)


# --- the reader's settings ----------------------------------------------------------------


def test_a_site_override_rate_applies_after_a_refresh(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(10)
        set_site(runtime, world.reader.id, BLOG, rate=36_000_000)
        await h.refresh()
        await h.run(10)
        assert verify_all(runtime, tab, sid, BLOG, "alice") == 10 * 100_000 + 10 * 10_000
        assert tab.receipts(sid)[-1]["amt"] == "10000"

    run_engine(runtime, body)


def test_overrides_share_as_an_average_of_the_sites_rates(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)
    set_site(runtime, world.reader.id, NEWS, rate=720_000_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        b = await h.start(tab, NEWS, pointer("bob"))
        await h.run(20)
        assert verify_all(runtime, tab, a, BLOG, "alice") == 20 * 50_000
        assert verify_all(runtime, tab, b, NEWS, "bob") == 20 * 100_000

    run_engine(runtime, body)


def test_a_disabled_site_stops_and_resumes_accruing(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        b = await h.start(tab, NEWS, pointer("bob"))
        await h.run(10)
        set_site(runtime, world.reader.id, NEWS, disabled=True)
        await h.refresh()
        assert tab.states(b) == ["active", "site_disabled"]
        await h.run(10)  # alice alone gets the whole rate
        set_site(runtime, world.reader.id, NEWS, disabled=False)
        await h.refresh()
        await h.run(10)
        assert tab.states(b) == ["active", "site_disabled", "active"]
        assert (
            verify_all(runtime, tab, a, BLOG, "alice") == 10 * 50_000 + 10 * 100_000 + 10 * 50_000
        )
        assert verify_all(runtime, tab, b, NEWS, "bob") == 20 * 50_000
        # a stream started on a disabled site says so at once
        set_site(runtime, world.reader.id, WIKI, disabled=True)
        await h.refresh()
        c = await h.start(tab, WIKI, pointer("carol"))
        assert tab.of("state", c)[-1]["reason"] == "site_disabled"

    run_engine(runtime, body)


def test_pause_stops_all_accrual_and_unpause_resumes_it(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        await h.run(10)
        set_reader(runtime, world.reader.id, rate=360_000_000, paused=True)
        await h.refresh()
        before = len(tab.receipts(a))
        await h.run(30)
        assert len(tab.receipts(a)) == before
        assert tab.states(a) == ["active", "paused"]
        set_reader(runtime, world.reader.id, rate=360_000_000, paused=False)
        await h.refresh()
        await h.run(10)
        assert verify_all(runtime, tab, a, BLOG, "alice") == 20 * 100_000

    run_engine(runtime, body)


# --- funds and budget ---------------------------------------------------------------------


def test_a_balance_for_n_intervals_pays_exactly_n_then_blocks(
    runtime: Runtime, world: World
) -> None:
    per_interval = 100_000  # 360_000_000 / 3600
    set_reader(runtime, world.reader.id, rate=360_000_000)
    fund_reader(runtime, world.reader.id, 5 * per_interval)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(20)
        assert len(tab.receipts(sid)) == 5
        assert tab.states(sid) == ["active", "insufficient_funds"]
        assert tab.of("balance")[-1]["balance_minor"] == "0"
        await h.refresh()  # nothing came in: still blocked
        await h.run(5)
        assert tab.states(sid) == ["active", "insufficient_funds"]

        fund_reader(runtime, world.reader.id, 3 * per_interval)
        await h.refresh()
        assert tab.states(sid)[-1] == "active"
        await h.run(10)
        assert len(tab.receipts(sid)) == 8
        assert tab.states(sid)[-1] == "insufficient_funds"
        assert verify_all(runtime, tab, sid, BLOG, "alice") == 8 * per_interval

    run_engine(runtime, body)
    assert reader_balance(runtime, world.reader.id) == 0
    assert payee_balance(runtime, world.payees["alice"]) == 8 * per_interval


def test_a_remainder_smaller_than_an_interval_does_not_flap(runtime: Runtime, world: World) -> None:
    set_reader(runtime, world.reader.id, rate=360_000_000)
    fund_reader(runtime, world.reader.id, 2 * 100_000 + 50_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(5)
        assert len(tab.receipts(sid)) == 2
        for _ in range(3):
            await h.refresh()
            await h.run(3)
        assert tab.states(sid) == ["active", "insufficient_funds"]

    run_engine(runtime, body)
    assert reader_balance(runtime, world.reader.id) == 50_000


def test_two_streams_share_what_is_left(runtime: Runtime, world: World) -> None:
    set_reader(runtime, world.reader.id, rate=360_000_000)
    fund_reader(runtime, world.reader.id, 7 * 50_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        b = await h.start(tab, NEWS, pointer("bob"))
        await h.run(10)
        assert tab.states(a)[-1] == tab.states(b)[-1] == "insufficient_funds"
        paid = verify_all(runtime, tab, a, BLOG, "alice") + verify_all(runtime, tab, b, NEWS, "bob")
        assert paid == 7 * 50_000

    run_engine(runtime, body)
    assert reader_balance(runtime, world.reader.id) == 0


def test_the_monthly_budget_blocks_and_a_raise_unblocks(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000, budget=4 * 100_000)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(10)
        assert len(tab.receipts(sid)) == 4
        assert tab.states(sid) == ["active", "budget_exhausted"]
        funds = tab.of("balance")[-1]
        assert (funds["month_spent_minor"], funds["month_budget_minor"]) == ("400000", "400000")
        await h.refresh()
        await h.run(3)
        assert len(tab.receipts(sid)) == 4

        set_reader(runtime, world.reader.id, rate=360_000_000, budget=6 * 100_000)
        await h.refresh()
        assert tab.states(sid)[-1] == "active"
        await h.run(10)
        assert len(tab.receipts(sid)) == 6
        assert tab.states(sid)[-1] == "budget_exhausted"
        assert verify_all(runtime, tab, sid, BLOG, "alice") == 6 * 100_000

    run_engine(runtime, body)
    assert payee_balance(runtime, world.payees["alice"]) == 6 * 100_000


def test_one_reader_running_dry_does_not_cost_another_their_receipt(
    runtime: Runtime, world: World
) -> None:
    rich = create_user(runtime)
    fund_reader(runtime, rich.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)
    set_reader(runtime, rich.id, rate=360_000_000)
    fund_reader(runtime, world.reader.id, 2 * 100_000)

    async def body(h: Harness) -> None:
        poor_tab, rich_tab = await h.connect(world.reader.token), await h.connect(rich.token)
        poor = await h.start(poor_tab, BLOG, pointer("alice"))
        wealthy = await h.start(rich_tab, BLOG, pointer("alice"))
        await h.run(5)
        assert len(poor_tab.receipts(poor)) == 2
        assert len(rich_tab.receipts(wealthy)) == 5
        assert verify_all(runtime, rich_tab, wealthy, BLOG, "alice") == 5 * 100_000

    run_engine(runtime, body)


def _over_rate_refusals() -> float:
    labels = {"reason": "over_rate"}
    return REGISTRY.get_sample_value("trickle_refusals_total", labels) or 0.0


def test_an_increment_past_the_rate_allowance_is_dropped_and_the_stream_goes_on(
    runtime: Runtime, world: World
) -> None:
    """Issue 14: the reader's allowance was drawn elsewhere (another node, here a row whose
    clock is 2.5 s ahead of this one: nothing refills until this clock passes it). The
    increments past it are refused ``over_rate``: no receipt, never charged later, the reader
    not blocked; the stream goes on and pays again, seq after seq, once the allowance refills."""
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)  # 100,000 per 1 s interval
    with transaction(runtime.sessions) as session:
        ahead_ms = ledger.plan.epoch_ms(runtime.clock()) + 2500
        session.add(
            ReaderRate(
                user_id=world.reader.id,
                allowance=0,
                as_of_ms=ahead_ms,
                rate_per_hour_minor=360_000_000,
                burst_ms=4000,
            )
        )
    before = _over_rate_refusals()

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(3)  # 1, 2 and 3 s: the allowance holds at most 0.5 s by then
        assert tab.receipts(sid) == []
        assert h.engine.streams[sid].state == "active"
        assert h.engine.readers[world.reader.id].blocked is None
        await h.run(3)
        assert [r["amt"] for r in tab.receipts(sid)] == ["100000"] * 3
        assert tab.states(sid) == ["active"]  # never blocked
        assert verify_all(runtime, tab, sid, BLOG, "alice") == 300_000

    run_engine(runtime, body)
    assert _over_rate_refusals() - before == 3
    assert payee_balance(runtime, world.payees["alice"]) == 300_000
    assert reader_balance(runtime, world.reader.id) == 10**12 - 300_000


# --- fees ------------------------------------------------------------------------------------


def test_the_fee_goes_to_the_fee_account(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=360_000_000)
    with_fee = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, fee_bps=250)
    )

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(10)
        # the receipt states what the reader paid for the site; the fee is the payee's cost
        assert verify_all(with_fee, tab, sid, BLOG, "alice") == 1_000_000

    run_engine(with_fee, body)
    assert payee_balance(runtime, world.payees["alice"]) == 1_000_000 - 10 * 2_500
    assert balance_of(runtime, AccountKind.FEE, "platform") == 10 * 2_500
    assert reader_balance(runtime, world.reader.id) == 10**12 - 1_000_000


# --- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True])
def test_stop_while_an_increment_commits_sends_stopped_last(
    runtime: Runtime, world: World, batch: bool
) -> None:
    fund_reader(runtime, world.reader.id, 10**12)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token, batch=batch)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(2)
        h.clock.ms += h.interval_ms
        h.engine.tick(h.clock.ms)  # the third increment is now committing
        await h.send(tab, protocol.Stop(type="stop", sid=sid))
        await h.engine.flush()
        await h.drain()
        about = [m for m in tab.messages if m.get("sid") == sid]
        assert [m["type"] for m in about[-2:]] == ["receipt", "stopped"]
        stopped = about[-1]
        assert (stopped["reason"], stopped["seq"]) == ("stopped", 3)
        assert stopped["tot"] == str(verify_all(runtime, tab, sid, BLOG, "alice"))

    run_engine(runtime, body)
    assert payee_balance(runtime, world.payees["alice"]) == 3 * 600_000_000 // 3600


@pytest.mark.parametrize("batch", [False, True])
def test_stop_charges_what_accrued_since_the_last_receipt(
    runtime: Runtime, world: World, batch: bool
) -> None:
    """Issue 11, item 14: stopping 2.5 intervals in pays for 2.5 intervals, not 2; the final
    receipt comes before ``stopped``, whose tot includes it. Only a fraction of a unit is left."""
    fund_reader(runtime, world.reader.id, 10**12)
    rate = 1_000_003  # an odd rate: the final increment leaves a fraction behind

    set_reader(runtime, world.reader.id, rate=rate)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token, batch=batch)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(2)
        h.clock.ms += h.interval_ms // 2  # half an interval, no tick
        await h.send(tab, protocol.Stop(type="stop", sid=sid))
        await h.engine.flush()
        await h.drain()
        about = [m for m in tab.messages if m.get("sid") == sid]
        assert [m["type"] for m in about[-2:]] == ["receipt", "stopped"]
        final, stopped = about[-2:]
        assert int(final["amt"]) == rate * 2500 // HOUR_MS - rate * 2000 // HOUR_MS
        assert (stopped["seq"], stopped["tot"]) == (3, final["tot"])
        assert verify_all(runtime, tab, sid, BLOG, "alice") == rate * 2500 // HOUR_MS

    run_engine(runtime, body)
    assert payee_balance(runtime, world.payees["alice"]) == rate * 2500 // HOUR_MS


def test_stop_while_an_increment_commits_charges_the_time_after_it_too(
    runtime: Runtime, world: World
) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    rate = 600_000_000

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(2)
        h.clock.ms += h.interval_ms
        h.engine.tick(h.clock.ms)  # the third increment is now committing
        h.clock.ms += 600
        await h.send(tab, protocol.Stop(type="stop", sid=sid))
        await h.engine.flush()
        await h.drain()
        about = [m for m in tab.messages if m.get("sid") == sid]
        assert [m["type"] for m in about[-3:]] == ["receipt", "receipt", "stopped"]
        assert [m["seq"] for m in about[-3:]] == [3, 4, 4]
        assert about[-2]["amt"] == str(rate * 3600 // HOUR_MS - rate * 3000 // HOUR_MS)
        assert about[-1]["tot"] == str(verify_all(runtime, tab, sid, BLOG, "alice"))

    run_engine(runtime, body)
    assert payee_balance(runtime, world.payees["alice"]) == rate * 3600 // HOUR_MS


def test_a_final_increment_the_balance_cannot_cover_is_not_paid(
    runtime: Runtime, world: World
) -> None:
    per_interval = 600_000_000 // 3600
    fund_reader(runtime, world.reader.id, 2 * per_interval + 10)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(2)
        h.clock.ms += h.interval_ms // 2
        await h.send(tab, protocol.Stop(type="stop", sid=sid))
        await h.engine.flush()
        await h.drain()
        about = [m for m in tab.messages if m.get("sid") == sid]
        assert about[-1]["type"] == "stopped"
        assert (about[-1]["seq"], about[-1]["tot"]) == (2, str(600_000_000 * 2000 // HOUR_MS))

    run_engine(runtime, body)
    assert payee_balance(runtime, world.payees["alice"]) == 600_000_000 * 2000 // HOUR_MS


def test_drain_stops_accruing_delivers_every_charged_receipt_and_closes_with_1001(
    runtime: Runtime, world: World
) -> None:
    """The graceful stop (issue 11, item 11): the increment in flight lands, a final one
    covers the time since, every receipt is written before the close, and the code is 1001."""
    fund_reader(runtime, world.reader.id, 10**12)
    rate = 600_000_000

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        idle = await h.connect(world.reader.token)  # no stream: closed all the same
        await h.run(2)
        h.clock.ms += h.interval_ms
        h.engine.tick(h.clock.ms)  # the third increment is committing
        h.clock.ms += 400
        await h.engine.drain()
        assert [m["seq"] for m in tab.receipts(sid)] == [1, 2, 3, 4]
        assert tab.receipts(sid)[-1]["amt"] == str(rate * 3400 // HOUR_MS - rate * 3000 // HOUR_MS)
        assert tab.of("stopped") == [] and "disconnected" not in tab.states(sid)
        for connection in (tab.connection, idle.connection):
            assert connection.close_code == protocol.CLOSE_CODES["server_shutdown"] == 1001
            assert connection.writer.done()
        h.clock.ms += 10 * h.interval_ms
        h.engine.tick(h.clock.ms)  # nothing accrues any more
        await h.engine.flush()
        assert len(tab.receipts(sid)) == 4
        paid.append(verify_all(runtime, tab, sid, BLOG, "alice"))
        late = h.engine.open(lambda _text: h.drain())
        with pytest.raises(protocol.ProtocolViolation) as refused:
            await h.engine.authenticate(
                late, protocol.Hello(type="hello", v=1, token=world.reader.token)
            )
        assert refused.value.close_code == 1001

    paid: list[int] = []
    run_engine(runtime, body)
    assert paid == [rate * 3400 // HOUR_MS]
    assert payee_balance(runtime, world.payees["alice"]) == paid[0]


def revoke_all_sessions(runtime: Runtime, user_id: int) -> None:
    with transaction(runtime.sessions) as session:
        sessions.revoke_all(session, user_id, runtime.clock())


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("in_flight", [False, True])
def test_a_revoked_session_ends_its_streams_and_closes_with_4440(
    runtime: Runtime, world: World, in_flight: bool, batch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, item 2: after a revoke the connection's streams end without charging the time
    since their last increment; one already committing is delivered; then the close."""
    fund_reader(runtime, world.reader.id, 10**12)
    other = create_user(runtime)
    fund_reader(runtime, other.id, 10**12)
    landing = threading.Event()  # while clear, a committed group is not reported back yet
    landing.set()
    stage = ledger.stage_charges

    def held_stage(*args: Any) -> Callable[[], ledger.GroupResult]:
        finish = stage(*args)

        def held_finish() -> ledger.GroupResult:
            result = finish()  # committed (SQLite's write lock is free again) but not landed
            assert landing.wait(10)
            return result

        return held_finish

    monkeypatch.setattr(ledger, "stage_charges", held_stage)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token, batch=batch)
        sid = await h.start(tab, BLOG, pointer("alice"))
        bystander = await h.connect(other.token, batch=batch)
        kept = await h.start(bystander, BLOG, pointer("bob"))
        await h.run(2)
        h.clock.ms += h.interval_ms
        if in_flight:
            landing.clear()
            h.engine.tick(h.clock.ms)
        h.clock.ms += 500
        revoke_all_sessions(runtime, world.reader.id)
        await h.engine.check_sessions()
        if in_flight:  # the close waits for the receipt in flight; nothing new starts meanwhile
            assert tab.connection.closing is not None and not tab.connection.closed
            late = protocol.Start(type="start", ref="late", origin=NEWS, pointer=pointer("alice"))
            await h.send(tab, late)
            landing.set()
        await h.engine.flush()
        await h.drain()
        about = [m for m in tab.messages if m.get("sid") == sid]
        assert [m["type"] for m in about[-2:]] == ["receipt", "stopped"]
        stopped = about[-1]
        assert stopped["reason"] == "session_ended"
        assert stopped["seq"] == (3 if in_flight else 2)
        assert tab.connection.close_code == protocol.CLOSE_CODES["session_ended"] == 4440
        assert tab.connection.writer.done()
        await h.run(5)
        assert len(tab.receipts(sid)) == stopped["seq"]
        assert tab.of("started")[-1]["sid"] == sid  # the late start was not carried out
        # another reader's session is not touched
        assert len(bystander.receipts(kept)) == 7 + in_flight
        paid.append(verify_all(runtime, tab, sid, BLOG, "alice"))

    paid: list[int] = []
    run_engine(runtime, body)
    assert payee_balance(runtime, world.payees["alice"]) == paid[0]


def test_an_expired_session_is_ended_without_asking_the_database(
    runtime: Runtime, world: World
) -> None:
    fund_reader(runtime, world.reader.id, 10**12)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(1)
        expires_at = tab.connection.session_expires_at
        assert expires_at is not None
        await h.engine.check_sessions(now=expires_at)
        await h.drain()
        assert tab.of("stopped", sid)[0]["reason"] == "session_ended"
        assert tab.connection.close_code == 4440

    run_engine(runtime, body)


def test_a_client_that_reads_batches_gets_each_group_in_one_frame(
    runtime: Runtime, world: World
) -> None:
    fund_reader(runtime, world.reader.id, 10**12)
    other = create_user(runtime)
    fund_reader(runtime, other.id, 10**12)

    async def body(h: Harness) -> None:
        batched = await h.connect(world.reader.token, batch=True)
        single = await h.connect(other.token)
        sids = [await h.start(batched, origin, pointer("alice")) for origin in (BLOG, NEWS, WIKI)]
        other_sids = [await h.start(single, origin, pointer("bob")) for origin in (BLOG, NEWS)]
        before = len(batched.frames), len(single.frames)
        await h.run(1)
        (frame,) = batched.frames[before[0] :]
        assert frame["type"] == "batch"
        assert [m["type"] for m in frame["messages"]] == ["receipt"] * 3 + ["balance"]
        assert {m["sid"] for m in frame["messages"][:3]} == set(sids)
        # a client that did not ask for batches gets one message per frame, as before
        assert [f["type"] for f in single.frames[before[1] :]] == ["receipt", "receipt", "balance"]
        await h.run(4)
        assert all(f["type"] == "batch" for f in batched.frames[before[0] :])
        for sid in sids:
            assert [r["seq"] for r in batched.receipts(sid)] == [1, 2, 3, 4, 5]
            verify_all(runtime, batched, sid, sid_origin(batched, sid), "alice")
        for sid in other_sids:
            assert len(single.receipts(sid)) == 5

    run_engine(runtime, body)


def sid_origin(tab: Tab, sid: str) -> str:
    (started,) = [m for m in tab.of("started") if m["sid"] == sid]
    origin: str = started["origin"]
    return origin


def test_a_group_blocked_by_another_writer_fails_fast_and_moves_nothing(
    runtime: Runtime, world: World
) -> None:
    """The group commit runs on the event loop: another writer's lock may hold it up only
    ``group_lock_wait_s``. The blocked group pays nothing and sends nothing; the stream goes on."""
    fund_reader(runtime, world.reader.id, 10**12)
    per_interval = 600_000_000 * 1000 // HOUR_MS

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(1)
        account_id = h.engine.readers[world.reader.id].account_id
        with runtime.engine.connect() as other, other.begin():  # SQLite: the write lock
            other.execute(  # PostgreSQL: the reader's row
                text("UPDATE ledger_accounts SET balance_minor = balance_minor WHERE id = :id"),
                {"id": account_id},
            )
            started = time.monotonic()
            await h.run(1)
            assert time.monotonic() - started < 5
            assert len(tab.receipts(sid)) == 1
        await h.run(1)
        receipts = tab.receipts(sid)
        assert [r["seq"] for r in receipts] == [1, 2]
        # the blocked interval was not charged: two receipts of one interval each
        assert {r["amt"] for r in receipts} <= {str(per_interval), str(per_interval + 1)}
        paid.append(verify_all(runtime, tab, sid, BLOG, "alice"))

    paid: list[int] = []
    run_engine(runtime, body, group_lock_wait_s=0.3)
    assert payee_balance(runtime, world.payees["alice"]) == paid[0]
    assert reader_balance(runtime, world.reader.id) == 10**12 - paid[0]


def test_unknown_sids_get_unknown_stream(runtime: Runtime, world: World) -> None:
    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        await h.send(tab, protocol.Attention(type="attention", sid="nope", active=True))
        await h.send(tab, protocol.Stop(type="stop", sid="nope"))
        await h.send(tab, protocol.Resume(type="resume", sid="nope"))
        errors = tab.of("error")
        assert [(e["code"], e["sid"]) for e in errors] == [("unknown_stream", "nope")] * 3

    run_engine(runtime, body)


def test_a_disconnected_stream_resumes_until_its_grace_ends(runtime: Runtime, world: World) -> None:
    fund_reader(runtime, world.reader.id, 10**12)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(3)
        h.engine.disconnect(tab.connection)
        await h.run(10)  # no accrual while disconnected
        again = await h.connect(world.reader.token)
        await h.send(again, protocol.Resume(type="resume", sid=sid))
        assert [m["type"] for m in again.messages[1:4]] == ["resumed", "receipt", "state"]
        assert again.messages[2]["resent"] is True and again.messages[2]["seq"] == 3
        await h.run(2)
        assert [r["seq"] for r in again.receipts(sid)] == [3, 4, 5]
        assert again.receipts(sid)[-1]["tot"] == str(5 * 600_000_000 // 3600)

        h.engine.disconnect(again.connection)
        h.clock.ms += int(h.engine.limits.resume_grace_s * 1000)  # grace over, no sweep yet
        late = await h.connect(world.reader.token)
        await h.send(late, protocol.Resume(type="resume", sid=sid))
        assert late.of("error")[-1]["code"] == "unknown_stream"
        assert sid not in h.engine.streams

    run_engine(runtime, body)


def test_a_reader_without_streams_is_forgotten_on_disconnect(
    runtime: Runtime, world: World
) -> None:
    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        assert world.reader.id in h.engine.readers
        h.engine.disconnect(tab.connection)
        assert h.engine.readers == {}

    run_engine(runtime, body)


def test_a_disconnect_ends_the_connections_writer(runtime: Runtime, world: World) -> None:
    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        tab.connection.closed = True  # what the socket does when the client went away
        h.engine.disconnect(tab.connection)
        await h.drain()
        assert tab.connection.writer.done()

    run_engine(runtime, body)


def test_a_client_that_does_not_read_is_closed_as_too_slow(runtime: Runtime, world: World) -> None:
    async def body(h: Harness) -> None:
        stuck = asyncio.Event()

        async def never_returns(_text: str) -> None:
            await stuck.wait()

        connection = h.engine.open(never_returns)
        hello = protocol.Hello(type="hello", v=1, token=world.reader.token)
        await h.engine.authenticate(connection, hello)
        await h.drain()  # the writer is now stuck sending the welcome
        for _ in range(5):
            await h.engine.handle(connection, protocol.Ping(type="ping"))
        assert (connection.closed, connection.close_code) == (True, 1008)
        assert protocol.CLOSE_CODES["too_slow"] == 1008
        stuck.set()
        h.engine.disconnect(connection)

    run_engine(runtime, body, max_queued_messages=3)


def test_no_payee_account_leaks_money_without_a_receipt(runtime: Runtime, world: World) -> None:
    """Every STREAM transfer of the ledger has exactly one receipt with the same amount."""
    fund_reader(runtime, world.reader.id, 10**12)
    set_reader(runtime, world.reader.id, rate=1_000_003)
    sent: dict[str, str] = {}

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        b = await h.start(tab, NEWS, pointer("bob"))
        await h.run(30)
        for sid in (a, b):
            for r in tab.receipts(sid):
                sent[f"{sid}.{r['seq']}"] = r["amt"]

    run_engine(runtime, body, interval_ms=7000)
    from trickle.models import Transfer

    with transaction(runtime.sessions) as session:
        rows = session.execute(
            select(Transfer.idempotency_key, Transfer.amount_minor).where(Transfer.kind == "stream")
        ).all()
    assert {key: str(amount) for key, amount in rows} == sent


# --- funding sources -----------------------------------------------------------------------


class PoolSource:
    """A second funding source, as anonymous prepaid tokens will be: every reader's increments
    debit one shared pool account, never the reader's own balance."""

    def __init__(self, pool_asset: ledger.Asset) -> None:
        self.asset = pool_asset

    def account_for(self, session: Any, user_id: int, now: Any) -> int:
        return ledger.account(session, AccountKind.READER, "pool:test", self.asset, now).id

    def balances(self, session: Any, account_ids: Any) -> dict[int, int]:
        return {account_id: ledger.balance(session, account_id) for account_id in account_ids}


def test_the_engine_debits_the_account_its_funding_source_names(
    runtime: Runtime, world: World
) -> None:
    fund_reader(runtime, world.reader.id, 10**12)  # the reader's own balance: never touched
    five_seconds = 600_000_000 * 5 // 3600  # what the default rate accrues in 5 s, exactly
    with transaction(runtime.sessions) as session:
        now = runtime.clock()
        funds = ledger.account(session, AccountKind.FUNDING, "test", asset(runtime), now)
        pool = ledger.account(session, AccountKind.READER, "pool:test", asset(runtime), now)
        ledger.post_transfer(
            session,
            ledger.TransferRequest(
                funds.id, pool.id, five_seconds, "USD", ledger.TransferKind.TOPUP, "pool-1"
            ),
            now,
        )

    async def body(h: Harness) -> None:
        h.engine.funding = PoolSource(asset(runtime))
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(8)
        assert verify_all(runtime, tab, sid, BLOG, "alice") == five_seconds
        assert tab.states(sid)[-1] == "insufficient_funds"

    run_engine(runtime, body)
    assert balance_of(runtime, AccountKind.READER, "pool:test") == 0
    assert payee_balance(runtime, world.payees["alice"]) == five_seconds
    assert reader_balance(runtime, world.reader.id) == 10**12


def test_a_receipt_that_fails_to_sign_after_the_commit_is_covered_by_the_next(
    runtime: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The money of a committed increment moved; if its receipt cannot be signed, the stream
    goes on and the next receipt's tot includes it (receipts are cumulative)."""
    fund_reader(runtime, world.reader.id, 10**12)
    sign = ReceiptSigner.sign
    calls = 0

    def flaky_sign(self: ReceiptSigner, claims: ReceiptClaims) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the signing key is unavailable")
        return sign(self, claims)

    monkeypatch.setattr(ReceiptSigner, "sign", flaky_sign)

    async def body(h: Harness) -> None:
        tab = await h.connect(world.reader.token)
        sid = await h.start(tab, BLOG, pointer("alice"))
        await h.run(4)
        seqs = [m["seq"] for m in tab.receipts(sid)]
        assert seqs == [1, 3, 4]  # seq 2 was committed but never signed
        last = tab.receipts(sid)[-1]
        assert payee_balance(runtime, world.payees["alice"]) == int(last["tot"])
        amounts = sum(int(m["amt"]) for m in tab.receipts(sid))
        assert int(last["tot"]) > amounts  # the unsigned increment is inside tot

    run_engine(runtime, body)
