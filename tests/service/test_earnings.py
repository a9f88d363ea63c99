"""Earnings from the ledger: per UTC day and per site origin, fees, and the balance split into
available and held (recent credits, net of their fees) under an injected clock."""

from __future__ import annotations

import datetime as dt

import pytest
from starlette.testclient import TestClient

from tests.factories import add_site, asset, create_payee, create_user, fund_reader
from trickle import earnings, ledger
from trickle.db import transaction
from trickle.errors import ConfigError
from trickle.ledger import AccountKind, TransferKind, TransferRequest
from trickle.runtime import Runtime
from trickle.settings import Settings

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
_keys = iter(range(1_000_000))


def earn(
    runtime: Runtime,
    payee_id: int,
    amount_minor: int,
    origin: str | None,
    *,
    at: dt.datetime,
    fee_minor: int = 0,
    kind: TransferKind = TransferKind.STREAM,
) -> None:
    """What the streaming engine posts: a funded reader pays the payee for a site (at ``at``),
    and the platform fee, if any, leaves the payee's account in the same breath."""
    reader = create_user(runtime)
    fund_reader(runtime, reader.id, amount_minor)
    key = f"earn-{next(_keys)}"
    with transaction(runtime.sessions) as session:
        a = asset(runtime)
        source = ledger.account(session, AccountKind.READER, f"user:{reader.id}", a, at)
        payee = ledger.account(session, AccountKind.PAYEE, f"payee:{payee_id}", a, at)
        fees = ledger.account(session, AccountKind.FEE, "platform", a, at)
        ledger.post_transfer(
            session,
            TransferRequest(source.id, payee.id, amount_minor, a.code, kind, key, origin=origin),
            at,
        )
        if fee_minor:
            ledger.post_transfer(
                session,
                TransferRequest(
                    payee.id, fees.id, fee_minor, a.code, TransferKind.FEE, key, origin=origin
                ),
                at,
            )


@pytest.fixture
def clock(runtime: Runtime) -> list[dt.datetime]:
    """The runtime's clock, frozen at NOW; set ``clock[0]`` to move it."""
    current = [NOW]
    runtime.clock = lambda: current[0]
    return current


def _earnings(runtime: Runtime, user_id: int, days: int = 30) -> list[earnings.PayeeEarnings]:
    with transaction(runtime.sessions) as session:
        return earnings.for_creator(
            session, user_id, days=days, settings=runtime.settings, now=runtime.clock()
        )


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def test_earnings_per_utc_day_and_per_site(runtime: Runtime, clock: list[dt.datetime]) -> None:
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "daily")
    plus_two = dt.timezone(dt.timedelta(hours=2))
    a, b = "https://a.example", "https://b.example"
    payment = TransferKind.PAYMENT
    earn(runtime, payee.id, 100, a, at=_utc(2026, 3, 9, 23, 59, 59), fee_minor=10)
    earn(runtime, payee.id, 200, a, at=_utc(2026, 3, 10, 0, 0, 1))
    earn(runtime, payee.id, 50, b, at=dt.datetime(2026, 3, 10, 1, 0, tzinfo=plus_two))
    earn(runtime, payee.id, 300, b, at=_utc(2026, 3, 10, 6), kind=payment)
    earn(runtime, payee.id, 7, None, at=_utc(2026, 3, 10, 7), kind=payment)
    earn(runtime, payee.id, 1000, a, at=_utc(2026, 1, 1))

    (found,) = _earnings(runtime, creator.id)
    assert found.payee.name == "daily"
    assert found.standing == earnings.Standing(balance_minor=1647, held_minor=0)
    assert found.standing.available_minor == 1647
    today, yesterday = found.days  # January is outside the 30 days
    assert (today.day, today.credited_minor, today.fees_minor) == (dt.date(2026, 3, 10), 507, 0)
    assert {o: (s.credited_minor, s.fees_minor) for o, s in today.sites.items()} == {
        "https://a.example": (200, 0),
        "https://b.example": (300, 0),
        None: (7, 0),
    }
    assert (yesterday.day, yesterday.credited_minor, yesterday.fees_minor) == (
        dt.date(2026, 3, 9),
        150,
        10,
    )
    assert {o: (s.credited_minor, s.fees_minor) for o, s in yesterday.sites.items()} == {
        "https://a.example": (100, 10),
        "https://b.example": (50, 0),  # 01:00 at +02:00 is 23:00 UTC the day before
    }
    (only_today,) = _earnings(runtime, creator.id, days=1)
    assert [d.day for d in only_today.days] == [dt.date(2026, 3, 10)]
    (long_view,) = _earnings(runtime, creator.id, days=366)
    assert [d.day for d in long_view.days][-1] == dt.date(2026, 1, 1)


def test_recent_credits_are_held_net_of_fees(runtime: Runtime, clock: list[dt.datetime]) -> None:
    assert runtime.settings.claim_hold_s == 3600
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "held")
    earn(runtime, payee.id, 5000, "https://a.example", at=NOW - dt.timedelta(hours=2))
    recent = NOW - dt.timedelta(minutes=10)
    earn(runtime, payee.id, 1000, "https://a.example", at=recent, fee_minor=100)
    (found,) = _earnings(runtime, creator.id)
    assert (found.standing.balance_minor, found.standing.held_minor) == (5900, 900)
    assert found.standing.available_minor == 5000

    clock[0] = NOW + dt.timedelta(minutes=51)  # the recent credit is now 61 minutes old
    (later,) = _earnings(runtime, creator.id)
    assert (later.standing.balance_minor, later.standing.held_minor) == (5900, 0)


def test_a_verified_sites_earnings_are_held_for_a_shorter_time(
    runtime: Runtime, clock: list[dt.datetime]
) -> None:
    settings = runtime.settings
    assert (settings.claim_hold_s, settings.claim_hold_verified_s) == (3600, 600)
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "proven")
    mine, pending, theirs = "https://mine.example", "https://pending.example", "https://b.example"
    add_site(runtime, payee.id, mine)
    add_site(runtime, payee.id, pending, verified=False)
    someone_else = create_payee(runtime, create_user(runtime).id)
    add_site(runtime, someone_else.id, theirs)  # verified, for someone else's payee
    twenty_ago, five_ago = NOW - dt.timedelta(minutes=20), NOW - dt.timedelta(minutes=5)
    earn(runtime, payee.id, 1000, mine, at=twenty_ago, fee_minor=10)  # past its 10 minutes
    earn(runtime, payee.id, 200, mine, at=five_ago, fee_minor=2)  # held 5 more minutes
    earn(runtime, payee.id, 30, pending, at=twenty_ago)  # not verified: an hour
    earn(runtime, payee.id, 4, theirs, at=twenty_ago)  # not verified for this payee
    earn(runtime, payee.id, 5, None, at=twenty_ago, kind=TransferKind.PAYMENT)  # no site
    (found,) = _earnings(runtime, creator.id)
    assert found.payee.name == "proven"
    assert found.standing.balance_minor == 1000 - 10 + 200 - 2 + 30 + 4 + 5
    assert found.standing.held_minor == 198 + 30 + 4 + 5
    assert found.standing.available_minor == 990
    assert found.standing.next_release_at == five_ago + dt.timedelta(minutes=10)
    assert found.standing.released_by == twenty_ago + dt.timedelta(hours=1)

    clock[0] = NOW + dt.timedelta(minutes=5)  # the verified site's recent credit is free now
    (later,) = _earnings(runtime, creator.id)
    assert (later.standing.held_minor, later.standing.available_minor) == (39, 1188)
    assert later.standing.next_release_at == twenty_ago + dt.timedelta(hours=1)
    clock[0] = twenty_ago + dt.timedelta(hours=1)
    (free,) = _earnings(runtime, creator.id)
    assert free.standing == earnings.Standing(1227, 0)


def test_the_verified_hold_is_never_longer_than_the_others() -> None:
    settings = Settings(claim_hold_s=1, claim_hold_verified_s=600)
    assert earnings.hold_s(settings, verified=True) == 1
    assert earnings.hold_s(settings, verified=False) == 1
    with pytest.raises(ConfigError, match="TRICKLE_CLAIM_HOLD_VERIFIED_S"):
        Settings(claim_hold_verified_s=-1).validate()


def test_held_never_exceeds_the_balance() -> None:
    assert earnings.standing(balance_minor=40, held_minor=100) == earnings.Standing(40, 40)
    assert earnings.standing(balance_minor=40, held_minor=-5).available_minor == 40


def test_the_earnings_endpoint(
    runtime: Runtime, client: TestClient, clock: list[dt.datetime]
) -> None:
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, "api-earnings")
    create_payee(runtime, creator.id, "api-idle")
    earn(runtime, payee.id, 3_000_000_000, "https://a.example", at=NOW - dt.timedelta(days=1))
    earn(runtime, payee.id, 500, "https://a.example", at=NOW - dt.timedelta(seconds=5), fee_minor=5)
    response = client.get("/api/v1/earnings", headers=creator.auth)
    assert response.status_code == 200
    body = response.json()
    assert (body["currency"], body["scale"], body["days"], body["claim_hold_s"]) == (
        "USD",
        9,
        30,
        3600,
    )
    assert body["min_claim_minor"] == "1000000000"
    assert body["claim_hold_verified_s"] == 600
    busy, idle = body["payees"]
    assert idle == {
        "payee": "api-idle",
        "balance_minor": "0",
        "available_minor": "0",
        "held_minor": "0",
        "next_release_at": None,
        "released_by": None,
        "days": [],
    }
    assert busy["payee"] == "api-earnings"
    assert (busy["balance_minor"], busy["available_minor"], busy["held_minor"]) == (
        "3000000495",
        "3000000000",
        "495",
    )
    released = (NOW - dt.timedelta(seconds=5) + dt.timedelta(hours=1)).isoformat()
    assert busy["next_release_at"] == busy["released_by"]
    assert dt.datetime.fromisoformat(busy["released_by"]) == dt.datetime.fromisoformat(released)
    assert busy["days"][0] == {
        "day": "2026-03-10",
        "credited_minor": "500",
        "fees_minor": "5",
        "claimed_minor": "0",
        "returned_minor": "0",
        "sites": [{"origin": "https://a.example", "credited_minor": "500", "fees_minor": "5"}],
    }
    assert busy["days"][1]["day"] == "2026-03-09"
    assert client.get("/api/v1/earnings?days=1", headers=creator.auth).json()["payees"][0][
        "days"
    ] == [busy["days"][0]]
    stranger = create_user(runtime)
    assert client.get("/api/v1/earnings", headers=stranger.auth).json()["payees"] == []


@pytest.mark.parametrize("days", ["0", "367", "abc", "-1", "1.5", "", "99999"])
def test_bad_day_counts_are_refused(runtime: Runtime, client: TestClient, days: str) -> None:
    creator = create_user(runtime)
    response = client.get(f"/api/v1/earnings?days={days}", headers=creator.auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
