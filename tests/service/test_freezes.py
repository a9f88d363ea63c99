"""A frozen reader (a card top-up disputed, or refunded after spending) spends nothing: streams
go to ``account_frozen`` — also a stream started while frozen — and resume when the freeze is
lifted; one-time payments are refused (tests/service/test_topups.py). The streaming engine is
driven directly with a fake clock, as in test_stream_engine.py."""

from __future__ import annotations

from tests.factories import create_payee, create_user, fund_reader
from tests.service.test_stream_engine import (
    BLOG,
    Harness,
    pointer,
    run_engine,
    set_reader,
    verify_all,
)
from trickle import freezes
from trickle.db import transaction
from trickle.freezes import FreezeReason
from trickle.runtime import Runtime


def _freeze(runtime: Runtime, user_id: int) -> None:
    with transaction(runtime.sessions) as session:
        freezes.freeze(
            session, user_id, topup_id=None, reason=FreezeReason.DISPUTE, now=runtime.clock()
        )


def _lift(runtime: Runtime, user_id: int) -> int:
    with transaction(runtime.sessions) as session:
        return freezes.lift(session, user_id, now=runtime.clock(), note="resolved")


def test_a_freeze_stops_the_readers_streams_and_lifting_it_resumes_them(
    runtime: Runtime,
) -> None:
    reader = create_user(runtime)
    owner = create_user(runtime)
    create_payee(runtime, owner.id, "alice")
    fund_reader(runtime, reader.id, 10**12)
    set_reader(runtime, reader.id, rate=360_000_000)  # 100_000 a one-second interval

    async def body(h: Harness) -> None:
        tab = await h.connect(reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        await h.run(10)
        _freeze(runtime, reader.id)
        await h.refresh()
        before = len(tab.receipts(a))
        await h.run(30)
        assert len(tab.receipts(a)) == before
        assert tab.states(a) == ["active", "account_frozen"]
        (state,) = [m for m in tab.of("state", a) if m["state"] == "account_frozen"]
        assert state["reason"] == "account_frozen"
        assert _lift(runtime, reader.id) == 1
        await h.refresh()
        await h.run(10)
        assert tab.states(a) == ["active", "account_frozen", "active"]
        # 20 intervals paid: nothing for the 30 frozen ones
        assert verify_all(runtime, tab, a, BLOG, "alice") == 20 * 100_000

    run_engine(runtime, body)


def test_a_stream_started_while_frozen_does_not_accrue(runtime: Runtime) -> None:
    reader = create_user(runtime)
    owner = create_user(runtime)
    create_payee(runtime, owner.id, "alice")
    fund_reader(runtime, reader.id, 10**12)
    _freeze(runtime, reader.id)

    async def body(h: Harness) -> None:
        tab = await h.connect(reader.token)
        a = await h.start(tab, BLOG, pointer("alice"))
        await h.run(10)
        assert tab.receipts(a) == [] and tab.states(a) == ["account_frozen"]

    run_engine(runtime, body)


def test_freezes_are_per_reader_and_idempotent(runtime: Runtime) -> None:
    frozen, other = create_user(runtime), create_user(runtime)
    _freeze(runtime, frozen.id)
    _freeze(runtime, frozen.id)  # the same freeze again: still one
    with transaction(runtime.sessions) as session:
        assert freezes.frozen_among(session, [frozen.id, other.id]) == {frozen.id}
        (row,) = freezes.frozen_readers(session)
        assert (row.user_id, row.reasons) == (frozen.id, ("dispute",))
    assert _lift(runtime, frozen.id) == 1
    assert _lift(runtime, frozen.id) == 0
