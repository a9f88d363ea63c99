"""Fixed-window rate limits: the atomic counter, reservations and refunds, and the login limits
per account and per client address (on SQLite and PostgreSQL, across threads)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from trickle import accounts, ratelimit
from trickle.app import create_app
from trickle.db import transaction
from trickle.errors import InvalidCredentials, RateLimited
from trickle.models import RateLimitHit, User
from trickle.runtime import Runtime
from trickle.settings import Settings

PASSWORD = "correct horse battery"
T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)  # a window boundary for 300 s windows
LIMIT = ratelimit.Limit(max_attempts=3, window_s=300)


def counts(runtime: Runtime) -> dict[tuple[str, int], int]:
    with transaction(runtime.sessions) as session:
        rows = session.scalars(select(RateLimitHit)).all()
        return {(row.bucket, row.window_start): row.count for row in rows}


def limited(runtime: Runtime, max_attempts: int = 3) -> Settings:
    return dataclasses.replace(runtime.settings, login_max_attempts=max_attempts)


def make_account(runtime: Runtime, email: str) -> None:
    with transaction(runtime.sessions) as session:
        accounts.sign_up(session, email=email, password=PASSWORD, now=T0, settings=runtime.settings)


def attempt(
    runtime: Runtime,
    email: str,
    password: str,
    ip: str,
    now: dt.datetime = T0,
    settings: Settings | None = None,
) -> str:
    """One login in its own unit of work, as a request would: 'ok' or the error code."""
    try:
        with transaction(runtime.sessions) as session:
            accounts.log_in(
                session,
                runtime.sessions,
                email=email,
                password=password,
                client_ip=ip,
                now=now,
                settings=settings or limited(runtime),
            )
    except (InvalidCredentials, RateLimited) as exc:
        return exc.code
    return "ok"


# --- the counter ----------------------------------------------------------------------------


def test_hits_count_per_bucket_and_window(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        assert [ratelimit.hit(session, "a", 0) for _ in range(3)] == [1, 2, 3]
        assert ratelimit.hit(session, "b", 0) == 1
        assert ratelimit.hit(session, "a", 300) == 1
    assert counts(runtime) == {("a", 0): 3, ("b", 0): 1, ("a", 300): 1}


def test_windows_are_fixed_and_aligned() -> None:
    assert LIMIT.window_start(T0) == int(T0.timestamp())
    assert LIMIT.window_start(T0 + dt.timedelta(seconds=299)) == int(T0.timestamp())
    assert LIMIT.window_start(T0 + dt.timedelta(seconds=300)) == int(T0.timestamp()) + 300
    assert LIMIT.retry_after_s(T0 + dt.timedelta(seconds=299)) == 1


def test_reserve_refuses_past_the_limit_until_the_window_ends(runtime: Runtime) -> None:
    for _ in range(3):
        ratelimit.reserve(runtime.sessions, ["x", "y"], LIMIT, T0)
    with pytest.raises(RateLimited, match="try again in 60 s"):
        ratelimit.reserve(runtime.sessions, ["y"], LIMIT, T0 + dt.timedelta(seconds=240))
    window = int(T0.timestamp())
    assert counts(runtime) == {("x", window): 3, ("y", window): 3}  # refused: not counted
    ratelimit.reserve(runtime.sessions, ["x"], LIMIT, T0 + dt.timedelta(seconds=300))


def test_one_full_bucket_refuses_the_attempt_for_all_its_buckets(runtime: Runtime) -> None:
    for _ in range(3):
        ratelimit.reserve(runtime.sessions, ["full"], LIMIT, T0)
    with pytest.raises(RateLimited):
        ratelimit.reserve(runtime.sessions, ["fresh", "full"], LIMIT, T0)
    assert ("fresh", int(T0.timestamp())) not in counts(runtime)


def test_refund_takes_back_an_attempt_and_never_goes_below_zero(runtime: Runtime) -> None:
    reservation = ratelimit.reserve(runtime.sessions, ["r"], LIMIT, T0)
    with transaction(runtime.sessions) as session:
        ratelimit.refund(session, reservation)
        ratelimit.refund(session, reservation)
    assert counts(runtime) == {("r", int(T0.timestamp())): 0}


def test_a_new_window_prunes_windows_that_ended(runtime: Runtime) -> None:
    ratelimit.reserve(runtime.sessions, ["old"], LIMIT, T0)
    ratelimit.reserve(runtime.sessions, ["new"], LIMIT, T0 + dt.timedelta(seconds=300))
    assert len(counts(runtime)) == 2  # the previous window stays: an in-flight refund needs it
    ratelimit.reserve(runtime.sessions, ["new"], LIMIT, T0 + dt.timedelta(seconds=600))
    assert ("old", int(T0.timestamp())) not in counts(runtime)


def run_concurrently(count: int, action: Callable[[], str]) -> list[str]:
    barrier = threading.Barrier(count)
    results: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        outcome = action()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(results)


def test_concurrent_reservations_never_overshoot_the_limit(runtime: Runtime) -> None:
    limit = ratelimit.Limit(max_attempts=5, window_s=300)

    def reserve() -> str:
        try:
            ratelimit.reserve(runtime.sessions, ["busy"], limit, T0)
        except RateLimited:
            return "rate_limited"
        return "ok"

    assert run_concurrently(16, reserve) == ["ok"] * 5 + ["rate_limited"] * 11
    assert counts(runtime) == {("busy", int(T0.timestamp())): 5}


# --- login limits ---------------------------------------------------------------------------


def test_failed_logins_are_counted_although_the_request_rolls_back(runtime: Runtime) -> None:
    make_account(runtime, "ann@example.com")
    assert (
        attempt(runtime, "ann@example.com", "wrong password", "192.0.2.1") == "invalid_credentials"
    )
    assert attempt(runtime, "nobody@example.com", "wrong password", "192.0.2.1") == (
        "invalid_credentials"
    )
    window = int(T0.timestamp())
    assert counts(runtime) == {
        ("login:email:ann@example.com", window): 1,
        ("login:email:nobody@example.com", window): 1,
        ("login:ip:192.0.2.1", window): 2,
    }


def test_logins_per_account_are_limited_even_with_the_right_password(runtime: Runtime) -> None:
    make_account(runtime, "ann@example.com")
    for i in range(3):  # from three addresses: the account's own bucket fills
        assert attempt(runtime, "ann@example.com", "wrong", f"192.0.2.{i}") == "invalid_credentials"
    assert attempt(runtime, "ANN@example.com", PASSWORD, "198.51.100.7") == "rate_limited"
    later = T0 + dt.timedelta(seconds=300)
    assert attempt(runtime, "ann@example.com", PASSWORD, "198.51.100.7", now=later) == "ok"


def test_logins_per_address_are_limited_across_accounts(runtime: Runtime) -> None:
    make_account(runtime, "bo@example.com")
    for i in range(3):
        assert attempt(runtime, f"guess{i}@example.com", "wrong", "192.0.2.9") == (
            "invalid_credentials"
        )
    assert attempt(runtime, "bo@example.com", PASSWORD, "192.0.2.9") == "rate_limited"
    assert attempt(runtime, "bo@example.com", PASSWORD, "192.0.2.10") == "ok"


def test_successful_logins_do_not_count(runtime: Runtime) -> None:
    make_account(runtime, "cy@example.com")
    outcomes = [attempt(runtime, "cy@example.com", "wrong", "192.0.2.1") for _ in range(2)]
    outcomes += [attempt(runtime, "cy@example.com", PASSWORD, "192.0.2.1") for _ in range(4)]
    outcomes += [attempt(runtime, "cy@example.com", "wrong", "192.0.2.1")]
    outcomes += [attempt(runtime, "cy@example.com", PASSWORD, "192.0.2.1")]
    assert outcomes == ["invalid_credentials"] * 2 + ["ok"] * 4 + ["invalid_credentials"] + [
        "rate_limited"
    ]


def test_concurrent_wrong_passwords_get_exactly_the_allowed_guesses(runtime: Runtime) -> None:
    make_account(runtime, "dee@example.com")
    outcomes = run_concurrently(
        8, lambda: attempt(runtime, "dee@example.com", "wrong", "192.0.2.1")
    )
    assert outcomes == ["invalid_credentials"] * 3 + ["rate_limited"] * 5


def test_the_login_endpoint_answers_429_per_account_and_per_address(runtime: Runtime) -> None:
    runtime.settings = limited(runtime)
    runtime.clock = lambda: T0
    app = create_app(runtime)
    body = {"email": "eve@example.com", "password": PASSWORD}
    with (
        TestClient(app, client=("192.0.2.1", 1000), raise_server_exceptions=False) as first,
        TestClient(app, client=("192.0.2.2", 1000), raise_server_exceptions=False) as second,
    ):
        assert first.post("/api/v1/accounts", json=body).status_code == 201
        for _ in range(3):
            wrong = first.post("/api/v1/sessions", json={**body, "password": "wrong password"})
            assert wrong.status_code == 401
        refused = second.post("/api/v1/sessions", json=body)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"

        # The first address is also spent, for every account.
        other = {"email": "fay@example.com", "password": PASSWORD}
        assert second.post("/api/v1/accounts", json=other).status_code == 201
        assert first.post("/api/v1/sessions", json=other).status_code == 429
        assert second.post("/api/v1/sessions", json=other).status_code == 201

        runtime.clock = lambda: T0 + dt.timedelta(seconds=300)
        assert first.post("/api/v1/sessions", json=body).status_code == 201


# --- sign-ups per client address ------------------------------------------------------------


def test_sign_ups_per_address_are_limited_with_a_typed_429(runtime: Runtime) -> None:
    """40 accounts from one address were once accepted in a row: now the address gets
    ``TRICKLE_SIGNUP_MAX_PER_ADDRESS`` per window, then ``too_many_sign_ups`` (429), while
    another address still signs up, and the next window opens the first again."""
    runtime.settings = dataclasses.replace(
        runtime.settings, signup_max_per_address=5, signup_window_s=3600
    )
    runtime.clock = lambda: T0
    app = create_app(runtime)
    with (
        TestClient(app, client=("192.0.2.7", 1000), raise_server_exceptions=False) as crowd,
        TestClient(app, client=("192.0.2.8", 1000), raise_server_exceptions=False) as other,
    ):
        statuses = []
        for i in range(40):
            body = {"email": f"bulk{i}@example.com", "password": PASSWORD}
            response = crowd.post("/api/v1/accounts", json=body)
            statuses.append(response.status_code)
            if response.status_code == 429:
                error = response.json()["error"]
                assert error["code"] == "too_many_sign_ups"
                assert "try again in" in error["message"]
        assert statuses == [201] * 5 + [429] * 35
        # A failed sign-up (the email is taken) counts too: the limit is on attempts.
        taken = other.post(
            "/api/v1/accounts", json={"email": "bulk0@example.com", "password": PASSWORD}
        )
        assert taken.json()["error"]["code"] == "email_taken"
        assert (
            other.post(
                "/api/v1/accounts", json={"email": "solo@example.com", "password": PASSWORD}
            ).status_code
            == 201
        )

        runtime.clock = lambda: T0 + dt.timedelta(seconds=3600)
        later = crowd.post(
            "/api/v1/accounts", json={"email": "later@example.com", "password": PASSWORD}
        )
        assert later.status_code == 201
    with transaction(runtime.sessions) as session:
        users = session.scalars(select(User.email)).all()
    assert len(users) == 7  # five, solo, later: nothing of a refused sign-up was written


def test_the_dashboard_sign_up_counts_against_the_same_limit(runtime: Runtime) -> None:
    runtime.settings = dataclasses.replace(runtime.settings, signup_max_per_address=1)
    runtime.clock = lambda: T0
    with TestClient(
        create_app(runtime),
        base_url="https://testserver",
        client=("192.0.2.9", 1000),
        raise_server_exceptions=False,
    ) as browser:
        api = browser.post(
            "/api/v1/accounts", json={"email": "a@example.com", "password": PASSWORD}
        )
        assert api.status_code == 201
        page = browser.get("/dashboard/sign-in")
        nonce = re.search(r'name="login_nonce" value="([^"]+)"', page.text)
        assert nonce is not None, page.text[:2000]
        form = {"email": "b@example.com", "password": PASSWORD, "login_nonce": nonce.group(1)}
        refused = browser.post("/dashboard/sign-up", data=form, follow_redirects=False)
        assert refused.status_code == 429
        assert "too_many_sign_ups" in refused.text or "Too many" in refused.text
