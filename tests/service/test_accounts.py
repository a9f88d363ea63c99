"""Accounts over HTTP and in the domain: sign-up, log-in, log-out, expiry, cookie sessions with
CSRF, reader settings, per-site overrides, and what bad input gets (never a 500)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests import factories
from tests.factories import create_user
from trickle import accounts
from trickle.app import create_app
from trickle.db import transaction
from trickle.errors import EmailTaken, InvalidCredentials, TooManySiteOverrides, ValidationFailed
from trickle.models import AuthSession, RateLimitHit, ReaderSettings, SiteOverride, User
from trickle.requests import SESSION_COOKIE
from trickle.runtime import Runtime

PASSWORD = "correct horse battery"


def sign_up(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    response = client.post("/api/v1/accounts", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def log_in(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/api/v1/sessions", json={"email": email, "password": password, **extra})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
def https_client(runtime: Runtime) -> Iterator[TestClient]:
    """The dashboard's view: https, so the Secure session cookie travels."""
    app = create_app(runtime)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def user(runtime: Runtime) -> factories.TestUser:
    return create_user(runtime)


# --- sign-up and log-in ---------------------------------------------------------------------


def test_sign_up_opens_a_session_and_stores_default_reader_settings(
    client: TestClient, runtime: Runtime
) -> None:
    body = sign_up(client, "  Ann@Example.COM ")
    assert set(body) == {"token", "csrf_token", "expires_at", "user"}
    assert body["token"].startswith("trk_")
    assert body["user"]["email"] == "ann@example.com"
    expires_at = dt.datetime.fromisoformat(body["expires_at"])
    ttl = expires_at - dt.datetime.fromisoformat(body["user"]["created_at"])
    assert ttl == dt.timedelta(seconds=runtime.settings.session_ttl_s)

    me = client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.json() == body["user"]

    settings = client.get("/api/v1/me/settings", headers=bearer(body["token"])).json()
    assert settings["rate_per_hour_minor"] == str(runtime.settings.default_rate_per_hour_minor)
    assert settings["monthly_budget_minor"] == str(runtime.settings.default_monthly_budget_minor)
    assert settings["paused"] is False
    assert (settings["currency"], settings["scale"]) == ("USD", 9)
    with transaction(runtime.sessions) as session:
        row = session.get(ReaderSettings, body["user"]["id"])
        assert row is not None and row.currency == "USD"


def test_log_in_works_with_any_case_and_gives_a_fresh_token(client: TestClient) -> None:
    first = sign_up(client, "bo@example.com")
    response = log_in(client, " BO@example.com")
    assert response.status_code == 201
    second = response.json()
    assert second["token"] != first["token"]
    assert second["user"] == first["user"]
    for token in (first["token"], second["token"]):
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_duplicate_email_is_email_taken(client: TestClient) -> None:
    sign_up(client, "cy@example.com")
    response = client.post(
        "/api/v1/accounts", json={"email": "CY@example.com", "password": "another password"}
    )
    assert response.status_code == 409
    assert error_code(response) == "email_taken"


def test_racing_sign_ups_with_one_email_give_email_taken_not_a_500(runtime: Runtime) -> None:
    """The second sign-up cannot see the first's uncommitted row; the unique index decides."""
    inserted = threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with transaction(runtime.sessions) as session:
                accounts.sign_up(
                    session,
                    email="race@example.com",
                    password=PASSWORD,
                    now=runtime.clock(),
                    settings=runtime.settings,
                )
                inserted.set()
                time.sleep(0.5)  # the second sign-up runs into the uncommitted row meanwhile
        except BaseException as exc:
            failures.append(exc)
            inserted.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert inserted.wait(10)
    with pytest.raises(EmailTaken), transaction(runtime.sessions) as session:
        accounts.sign_up(
            session,
            email="Race@Example.com",
            password=PASSWORD,
            now=runtime.clock(),
            settings=runtime.settings,
        )
    thread.join()
    assert failures == []
    with transaction(runtime.sessions) as session:
        emails = session.scalars(select(User.email)).all()
    assert emails == ["race@example.com"]


@pytest.mark.parametrize(
    ("email", "password"),
    [("ann@example.com", "wrong password"), ("nobody@example.com", PASSWORD)],
    ids=["wrong-password", "unknown-email"],
)
def test_wrong_credentials_do_not_say_which_part_was_wrong(
    client: TestClient, email: str, password: str
) -> None:
    sign_up(client, "ann@example.com")
    response = log_in(client, email, password)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "invalid_credentials", "message": "wrong email or password"}
    }


def test_an_account_without_a_usable_password_cannot_log_in(
    client: TestClient, user: factories.TestUser
) -> None:
    response = log_in(client, user.email, "!unusable")
    assert response.status_code == 401
    assert error_code(response) == "invalid_credentials"


def test_tokens_and_passwords_are_stored_only_hashed(client: TestClient, runtime: Runtime) -> None:
    body = sign_up(client, "dee@example.com")
    cookie = log_in(client, "dee@example.com", cookie=True).json()
    with transaction(runtime.sessions) as session:
        rows = session.scalars(select(AuthSession)).all()
        user = session.scalars(select(User)).one()
        stored = json.dumps(
            [[getattr(row, c.name) for c in AuthSession.__table__.columns] for row in rows],
            default=str,
        )
    assert body["token"] not in stored and body["csrf_token"] not in stored
    assert cookie["csrf_token"] not in stored
    assert hashlib.sha256(body["token"].encode()).hexdigest() in stored
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_tokens_and_passwords_never_reach_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # SQL statements and their parameters included
    body = sign_up(client, "eve@example.com")
    token = log_in(client, "eve@example.com").json()["token"]
    client.get("/api/v1/me", headers=bearer(token))
    client.delete("/api/v1/sessions/current", headers=bearer(body["token"]))
    assert caplog.records, "the test should see the SQL log"
    for secret in (body["token"], body["csrf_token"], token, PASSWORD):
        assert secret not in caplog.text


def test_signed_in_repr_hides_the_token(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        signed_in = accounts.sign_up(
            session,
            email="fay@example.com",
            password=PASSWORD,
            now=runtime.clock(),
            settings=runtime.settings,
        )
    assert signed_in.session.token not in repr(signed_in)
    assert signed_in.session.csrf_token not in repr(signed_in)


# --- log-out and expiry ---------------------------------------------------------------------


def test_log_out_revokes_only_the_current_session(client: TestClient) -> None:
    first = sign_up(client, "gus@example.com")["token"]
    second = log_in(client, "gus@example.com").json()["token"]
    response = client.delete("/api/v1/sessions/current", headers=bearer(first))
    assert response.status_code == 200
    assert response.json() == {"revoked": 1}
    gone = client.get("/api/v1/me", headers=bearer(first))
    assert gone.status_code == 401
    assert error_code(gone) == "unauthenticated"
    assert client.get("/api/v1/me", headers=bearer(second)).status_code == 200


def test_log_out_everywhere_revokes_every_session(
    client: TestClient, user: factories.TestUser
) -> None:
    tokens = [sign_up(client, "hal@example.com")["token"]]
    tokens += [log_in(client, "hal@example.com").json()["token"] for _ in range(2)]
    response = client.delete("/api/v1/sessions", headers=bearer(tokens[1]))
    assert response.status_code == 200
    assert response.json() == {"revoked": 3}
    for token in tokens:
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    # Someone else's session is untouched.
    assert client.get("/api/v1/me", headers=user.auth).status_code == 200


def test_a_session_expires_after_its_ttl(client: TestClient, runtime: Runtime) -> None:
    start = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    runtime.clock = lambda: start
    token = sign_up(client, "ida@example.com")["token"]
    ttl = dt.timedelta(seconds=runtime.settings.session_ttl_s)
    runtime.clock = lambda: start + ttl - dt.timedelta(seconds=1)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    runtime.clock = lambda: start + ttl
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


# --- cookie sessions and CSRF ---------------------------------------------------------------


def test_cookie_log_in_sets_a_strict_http_only_secure_cookie(https_client: TestClient) -> None:
    sign_up(https_client, "jo@example.com")
    response = log_in(https_client, "jo@example.com", cookie=True)
    assert response.status_code == 201
    body = response.json()
    assert body["token"] is None  # the token lives only in the HttpOnly cookie
    assert body["csrf_token"]
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=trk_")
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in set_cookie.lower()


def test_a_cookie_session_reads_freely_but_changes_only_with_the_csrf_token(
    https_client: TestClient,
) -> None:
    sign_up(https_client, "kim@example.com")
    https_client.cookies.clear()
    csrf = log_in(https_client, "kim@example.com", cookie=True).json()["csrf_token"]
    assert https_client.get("/api/v1/me").status_code == 200
    assert https_client.get("/api/v1/me/settings").status_code == 200

    change = {"paused": True}
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        refused = https_client.put("/api/v1/me/settings", json=change, headers=headers)
        assert refused.status_code == 403
        assert error_code(refused) == "csrf_failed"
    assert https_client.get("/api/v1/me/settings").json()["paused"] is False

    accepted = https_client.put("/api/v1/me/settings", json=change, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 200
    assert accepted.json()["paused"] is True

    logged_out = https_client.delete("/api/v1/sessions/current", headers={"X-CSRF-Token": csrf})
    assert logged_out.status_code == 200
    assert "max-age=0" in logged_out.headers["set-cookie"].lower()
    assert https_client.get("/api/v1/me").status_code == 401


def test_the_cookie_goes_without_secure_only_for_a_local_http_service(
    client: TestClient, runtime: Runtime
) -> None:
    runtime.settings = dataclasses.replace(runtime.settings, env="development", public_url="")
    sign_up(client, "lou@example.com")
    response = log_in(client, "lou@example.com", cookie=True)
    assert "secure" not in response.headers["set-cookie"].lower()
    assert client.get("/api/v1/me").status_code == 200  # the cookie alone signs in


# --- reader settings ------------------------------------------------------------------------


def test_settings_round_trip_and_omitted_fields_stay(
    client: TestClient, user: factories.TestUser
) -> None:
    # A user made without sign-up has no stored row yet: the defaults show, and PUT creates it.
    before = client.get("/api/v1/me/settings", headers=user.auth).json()
    response = client.put(
        "/api/v1/me/settings", json={"rate_per_hour_minor": "360000000"}, headers=user.auth
    )
    assert response.status_code == 200
    after = response.json()
    assert after == {**before, "rate_per_hour_minor": "360000000"}
    response = client.put(
        "/api/v1/me/settings",
        json={"monthly_budget_minor": "0", "paused": True, "rate_per_hour_minor": None},
        headers=user.auth,
    )
    assert response.json()["rate_per_hour_minor"] == "360000000"
    assert client.get("/api/v1/me/settings", headers=user.auth).json() == {
        **after,
        "monthly_budget_minor": "0",
        "paused": True,
    }


def test_settings_refuse_amounts_past_the_sane_maximum(
    client: TestClient, user: factories.TestUser
) -> None:
    limits = client.get("/api/v1/me/settings", headers=user.auth).json()
    assert limits["max_rate_per_hour_minor"] == str(100 * 10**9)  # 100 USD an hour
    for field in ("rate_per_hour_minor", "monthly_budget_minor"):
        too_much = str(int(limits[f"max_{field}"]) + 1)
        response = client.put("/api/v1/me/settings", json={field: too_much}, headers=user.auth)
        assert response.status_code == 422
        assert error_code(response) == "validation_failed"
        assert field in response.json()["error"]["message"]
        at_max = client.put(
            "/api/v1/me/settings", json={field: limits[f"max_{field}"]}, headers=user.auth
        )
        assert at_max.status_code == 200


# --- per-site overrides ---------------------------------------------------------------------


def test_site_overrides_round_trip(client: TestClient, user: factories.TestUser) -> None:
    url = "/api/v1/me/site-overrides"
    put = client.put(
        url,
        json={
            "origin": "HTTPS://Blog.Example:443/",
            "rate_per_hour_minor": "1000",
            "disabled": False,
        },
        headers=user.auth,
    )
    assert put.status_code == 200
    assert put.json() == {
        "origin": "https://blog.example",
        "rate_per_hour_minor": "1000",
        "disabled": False,
        "currency": "USD",
        "scale": 9,
    }
    client.put(url, json={"origin": "http://a.example:8080", "disabled": True}, headers=user.auth)
    replaced = client.put(
        url, json={"origin": "https://blog.example", "disabled": True}, headers=user.auth
    )
    assert replaced.json()["rate_per_hour_minor"] is None
    listed = client.get(url, headers=user.auth).json()["overrides"]
    assert [(o["origin"], o["rate_per_hour_minor"], o["disabled"]) for o in listed] == [
        ("http://a.example:8080", None, True),
        ("https://blog.example", None, True),
    ]

    deleted = client.request(
        "DELETE", url, json={"origin": "https://BLOG.example"}, headers=user.auth
    )
    assert deleted.status_code == 200
    assert deleted.json() == {"origin": "https://blog.example", "deleted": True}
    again = client.request(
        "DELETE", url, json={"origin": "https://blog.example"}, headers=user.auth
    )
    assert again.status_code == 404
    assert error_code(again) == "not_found"
    assert len(client.get(url, headers=user.auth).json()["overrides"]) == 1


def test_site_overrides_are_private_to_their_reader(
    client: TestClient, runtime: Runtime, user: factories.TestUser
) -> None:
    other = create_user(runtime)
    url = "/api/v1/me/site-overrides"
    client.put(url, json={"origin": "https://a.example", "disabled": True}, headers=user.auth)
    assert client.get(url, headers=other.auth).json() == {"overrides": []}
    gone = client.request("DELETE", url, json={"origin": "https://a.example"}, headers=other.auth)
    assert gone.status_code == 404
    assert len(client.get(url, headers=user.auth).json()["overrides"]) == 1


BAD_OVERRIDES: list[dict[str, Any]] = [
    {"origin": "https://a.example"},  # disabled is required
    {"origin": "https://a.example", "disabled": False},  # neither a rate nor off
    {"origin": "ftp://a.example", "disabled": True},
    {"origin": "https://a.example/path", "disabled": True},
    {"origin": "https://a.example?q=1", "disabled": True},
    {"origin": "https://user@a.example", "disabled": True},
    {"origin": "https://exa<mple.com", "disabled": True},
    {"origin": "https://a..example", "disabled": True},
    {"origin": "https://a.example:0", "disabled": True},
    {"origin": "https://a.example:99999", "disabled": True},
    {"origin": "https://999.1.1.1", "disabled": True},
    {"origin": "https://bücher.example", "disabled": True},
    {"origin": "", "disabled": True},
    {"origin": "https://a.example", "rate_per_hour_minor": "100000000001", "disabled": False},
]


def test_bad_site_overrides_are_validation_failed(
    client: TestClient, user: factories.TestUser
) -> None:
    # One test, many bodies: each case would otherwise pay for a fresh runtime and app.
    wrong = []
    for body in BAD_OVERRIDES:
        response = client.put("/api/v1/me/site-overrides", json=body, headers=user.auth)
        if (response.status_code, error_code(response)) != (422, "validation_failed"):
            wrong.append((body, response.status_code, response.text))
    assert wrong == []
    assert client.get("/api/v1/me/site-overrides", headers=user.auth).json() == {"overrides": []}


def test_a_reader_has_at_most_200_site_overrides(
    client: TestClient, runtime: Runtime, user: factories.TestUser
) -> None:
    with transaction(runtime.sessions) as session:
        for i in range(accounts.MAX_SITE_OVERRIDES):
            session.add(
                SiteOverride(user_id=user.id, origin=f"https://s{i}.example", disabled=True)
            )
    url = "/api/v1/me/site-overrides"
    response = client.put(
        url, json={"origin": "https://one-more.example", "disabled": True}, headers=user.auth
    )
    assert response.status_code == 409
    assert error_code(response) == "too_many_site_overrides"
    # Changing an existing rule is still fine.
    existing = {"origin": "https://s0.example", "rate_per_hour_minor": "5", "disabled": False}
    assert client.put(url, json=existing, headers=user.auth).status_code == 200
    with pytest.raises(TooManySiteOverrides), transaction(runtime.sessions) as session:
        accounts.set_site_override(
            session,
            user.id,
            origin="https://two-more.example",
            rate_per_hour_minor=None,
            disabled=True,
            settings=runtime.settings,
        )


def test_racing_puts_of_one_new_override_both_succeed_and_the_last_wins(
    runtime: Runtime, user: factories.TestUser
) -> None:
    inserted = threading.Event()
    failures: list[BaseException] = []

    def put(rate: int, hold_s: float) -> None:
        with transaction(runtime.sessions) as session:
            accounts.set_site_override(
                session,
                user.id,
                origin="https://race.example",
                rate_per_hour_minor=rate,
                disabled=False,
                settings=runtime.settings,
            )
            accounts.update_preferences(  # the user has no settings row yet either
                session, user.id, accounts.PreferencesChange(paused=rate == 1), runtime.settings
            )
            inserted.set()
            time.sleep(hold_s)

    def first() -> None:
        try:
            put(1, 0.5)
        except BaseException as exc:
            failures.append(exc)
            inserted.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert inserted.wait(10)
    put(2, 0)
    thread.join()
    assert failures == []
    with transaction(runtime.sessions) as session:
        rules = accounts.site_overrides(session, user.id)
        preferences = accounts.reader_preferences(session, user.id, runtime.settings)
    assert rules == [accounts.SiteRule("https://race.example", 2, False)]
    assert preferences.paused is False


# --- the domain's normalizers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" Ann@Example.COM ", "ann@example.com"),
        ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"),
    ],
)
def test_normalize_email(text: str, expected: str) -> None:
    assert accounts.normalize_email(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "a b@example.com",
        "ann@@example.com",
        "ann@exa_mple.com",
        "ann@-example.com",
        "x" * 65 + "@example.com",
        "ann@ex.c0m.",
        "\u00a0ann@example.com",  # only ASCII spaces are trimmed
        "ann@\u212axample.com",  # KELVIN SIGN lowercases to an ASCII k: not an address
        "ann\x00@example.com",
    ],
)
def test_normalize_email_refuses_non_addresses(text: str) -> None:
    with pytest.raises(ValidationFailed):
        accounts.normalize_email(text)


def test_passwords_outside_10_to_200_characters_are_refused() -> None:
    for password in ("x" * 9, "x" * 201):
        with pytest.raises(ValidationFailed):
            accounts.hash_password(password)


def test_a_password_s_length_is_counted_as_typed_not_after_nfkc() -> None:
    # What the API's schema and the dashboard count: NFKC joins "e" + U+0301 into one character
    # and splits U+FB03 into three, but the password is as long as it was typed.
    for password in ("e\u0301" * 5, "\ufb03" * 200):
        assert accounts.hash_password(password).startswith("$argon2id$")


def test_log_in_refuses_an_overlong_email_without_counting_it(runtime: Runtime) -> None:
    with pytest.raises(InvalidCredentials), transaction(runtime.sessions) as session:
        accounts.log_in(
            session,
            runtime.sessions,
            email="x" * 300 + "@example.com",
            password=PASSWORD,
            client_ip="192.0.2.1",
            now=runtime.clock(),
            settings=runtime.settings,
        )
    with transaction(runtime.sessions) as session:
        assert session.scalars(select(RateLimitHit)).all() == []


# --- bad input: the exact code, never a 500 -------------------------------------------------

JSON = {"Content-Type": "application/json"}
SETTINGS = ("PUT", "/api/v1/me/settings")


def _amount(value: str) -> bytes:
    return ('{"rate_per_hour_minor": ' + value + "}").encode()


BAD_INPUT: list[tuple[str, tuple[str, str], dict[str, str], bytes, int, str]] = [
    ("malformed-json", SETTINGS, JSON, b'{"paused": tru', 400, "malformed_json"),
    ("not-utf8", SETTINGS, JSON, b'{"paused": "\xff"}', 400, "malformed_json"),
    ("nan", SETTINGS, JSON, _amount("NaN"), 400, "malformed_json"),
    (
        "text-plain",
        SETTINGS,
        {"Content-Type": "text/plain"},
        b'{"paused": true}',
        415,
        "unsupported_media_type",
    ),
    ("no-content-type", SETTINGS, {}, b'{"paused": true}', 415, "unsupported_media_type"),
    (
        "form",
        SETTINGS,
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"paused=1",
        415,
        "unsupported_media_type",
    ),
    ("unknown-field", SETTINGS, JSON, b'{"paused": true, "admin": true}', 422, "validation_failed"),
    ("array-body", SETTINGS, JSON, b"[]", 422, "validation_failed"),
    ("string-bool", SETTINGS, JSON, b'{"paused": "true"}', 422, "validation_failed"),
    ("int-bool", SETTINGS, JSON, b'{"paused": 1}', 422, "validation_failed"),
    ("number-amount", SETTINGS, JSON, _amount("100"), 422, "validation_failed"),
    ("float-amount", SETTINGS, JSON, _amount("1.5"), 422, "validation_failed"),
    ("float-string-amount", SETTINGS, JSON, _amount('"1.5"'), 422, "validation_failed"),
    ("exponent-amount", SETTINGS, JSON, _amount('"1e3"'), 422, "validation_failed"),
    ("negative-amount", SETTINGS, JSON, _amount('"-1"'), 422, "validation_failed"),
    ("leading-zero-amount", SETTINGS, JSON, _amount('"007"'), 422, "validation_failed"),
    ("padded-amount", SETTINGS, JSON, _amount('" 7"'), 422, "validation_failed"),
    (
        "above-2^63-amount",
        SETTINGS,
        JSON,
        _amount('"9999999999999999999"'),
        422,
        "validation_failed",
    ),
    (
        "20-digit-amount",
        SETTINGS,
        JSON,
        _amount('"99999999999999999999"'),
        422,
        "validation_failed",
    ),
    ("huge-number", SETTINGS, JSON, _amount("1" + "0" * 400), 422, "validation_failed"),
    (
        "oversized-body",
        SETTINGS,
        JSON,
        b'{"x": "' + b"a" * (64 * 1024) + b'"}',
        413,
        "body_too_large",
    ),
    (
        "override-number-rate",
        ("PUT", "/api/v1/me/site-overrides"),
        JSON,
        b'{"origin": "https://a.example", "rate_per_hour_minor": 5, "disabled": false}',
        422,
        "validation_failed",
    ),
    (
        "override-missing-origin",
        ("DELETE", "/api/v1/me/site-overrides"),
        JSON,
        b"{}",
        422,
        "validation_failed",
    ),
    (
        "signup-bad-email",
        ("POST", "/api/v1/accounts"),
        JSON,
        b'{"email": "not an email", "password": "long enough pw"}',
        422,
        "validation_failed",
    ),
    (
        "signup-short-password",
        ("POST", "/api/v1/accounts"),
        JSON,
        b'{"email": "a@example.com", "password": "short"}',
        422,
        "validation_failed",
    ),
    (
        "signup-cookie-string",
        ("POST", "/api/v1/accounts"),
        JSON,
        b'{"email": "a@example.com", "password": "long enough pw", "cookie": "yes"}',
        422,
        "validation_failed",
    ),
    (
        "login-missing-password",
        ("POST", "/api/v1/sessions"),
        JSON,
        b'{"email": "a@example.com"}',
        422,
        "validation_failed",
    ),
    ("wrong-method", ("PATCH", "/api/v1/me/settings"), JSON, b"{}", 405, "method_not_allowed"),
]


def test_bad_input_gets_its_exact_error(client: TestClient, user: factories.TestUser) -> None:
    wrong = []
    for name, (method, path), headers, content, status, code in BAD_INPUT:
        response = client.request(method, path, content=content, headers={**user.auth, **headers})
        got = (response.status_code, response.json().get("error", {}))
        if got[0] != status or got[1].get("code") != code or set(got[1]) != {"code", "message"}:
            wrong.append((name, got))
    assert wrong == []


BAD_AUTHORIZATION = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer trk_garbage",
    "bearer trk_garbage",
    "Basic dXNlcjpwdw==",
    "trk_no_scheme",
    "Bearer " + "x" * 5000,
]


def test_missing_or_garbage_tokens_are_unauthenticated(client: TestClient) -> None:
    wrong = []
    for authorization in BAD_AUTHORIZATION:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in [
            ("GET", "/api/v1/me"),
            ("PUT", "/api/v1/me/settings"),
            ("DELETE", "/api/v1/sessions"),
        ]:
            response = client.request(method, path, json={}, headers=headers)
            if (response.status_code, error_code(response)) != (401, "unauthenticated"):
                wrong.append((authorization, method, path, response.status_code))
    assert wrong == []


def test_a_revoked_token_is_unauthenticated_everywhere(
    client: TestClient, user: factories.TestUser
) -> None:
    assert client.delete("/api/v1/sessions/current", headers=user.auth).status_code == 200
    for method, path in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/me/settings"),
        ("DELETE", "/api/v1/sessions/current"),
    ]:
        response = client.request(method, path, headers=user.auth)
        assert response.status_code == 401
        assert error_code(response) == "unauthenticated"
