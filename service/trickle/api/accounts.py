"""HTTP endpoints: sign-up, log-in and log-out, the signed-in user, a reader's settings and
per-site overrides. Sessions are bearer tokens (the extension) or an HttpOnly cookie plus a
CSRF token (the dashboard)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints
from starlette.responses import JSONResponse, Response

from trickle import accounts
from trickle.accounts import ReaderPreferences, SignedIn, SiteRule
from trickle.api.base import AmountMinor, ApiRouter, Context, Origin, Schema, settings_limit
from trickle.models import User
from trickle.requests import SESSION_COOKIE, delete_cookie, set_cookie

router = ApiRouter(tag="accounts")

Email = Annotated[
    str, StringConstraints(max_length=accounts.EMAIL_MAX_CHARS, pattern=accounts.EMAIL_PATTERN)
]
NewPassword = Annotated[
    str,
    StringConstraints(
        min_length=accounts.PASSWORD_MIN_CHARS, max_length=accounts.PASSWORD_MAX_CHARS
    ),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=accounts.PASSWORD_MAX_CHARS)]
RatePerHourMinor = Annotated[AmountMinor, settings_limit("max_rate_per_hour_minor")]
MonthlyBudgetMinor = Annotated[AmountMinor, settings_limit("max_monthly_budget_minor")]


# --- bodies ---------------------------------------------------------------------------------


class SignUpIn(Schema):
    email: Email
    password: NewPassword = Field(repr=False)
    cookie: bool = Field(
        default=False, description="also set the HttpOnly session cookie (the dashboard)"
    )


class LogInIn(Schema):
    email: Email
    password: Password = Field(repr=False)
    cookie: bool = Field(
        default=False, description="also set the HttpOnly session cookie (the dashboard)"
    )


class UserOut(Schema):
    id: int
    email: str
    created_at: dt.datetime


class SessionOut(Schema):
    token: str | None = Field(
        repr=False,
        description="the bearer token; null when it was set as the HttpOnly cookie instead",
    )
    csrf_token: str = Field(
        repr=False, description="send as X-CSRF-Token with every change made by cookie"
    )
    expires_at: dt.datetime
    user: UserOut


class RevokedOut(Schema):
    revoked: int


class SettingsIn(Schema):
    """Fields left out (or null) keep their value."""

    rate_per_hour_minor: RatePerHourMinor | None = None
    monthly_budget_minor: MonthlyBudgetMinor | None = None
    paused: bool | None = None


class SettingsOut(Schema):
    rate_per_hour_minor: AmountMinor
    monthly_budget_minor: AmountMinor
    paused: bool
    max_rate_per_hour_minor: AmountMinor
    max_monthly_budget_minor: AmountMinor
    currency: str
    scale: int


class SiteOverrideIn(Schema):
    """Another hourly rate, or off (disabled: true): an override needs one of the two."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["rate_per_hour_minor"],
                    "properties": {"rate_per_hour_minor": {"type": "string"}},
                },
                {"properties": {"disabled": {"const": True}}},
            ]
        }
    )

    origin: Origin
    rate_per_hour_minor: RatePerHourMinor | None = None
    disabled: bool


class SiteOverrideOut(Schema):
    origin: str
    rate_per_hour_minor: AmountMinor | None
    disabled: bool
    currency: str
    scale: int


class SiteOverridesOut(Schema):
    overrides: list[SiteOverrideOut]


class SiteOverrideDeleteIn(Schema):
    origin: Origin


class SiteOverrideDeletedOut(Schema):
    origin: str
    deleted: bool


# --- rendering ------------------------------------------------------------------------------


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, created_at=user.created_at)


def _session_response(ctx: Context, signed_in: SignedIn, *, cookie: bool, status: int) -> Response:
    issued = signed_in.session
    body = SessionOut(
        token=None if cookie else issued.token,
        csrf_token=issued.csrf_token,
        expires_at=issued.expires_at,
        user=_user_out(signed_in.user),
    )
    response = JSONResponse(body.model_dump(mode="json"), status_code=status)
    if cookie:
        settings = ctx.settings
        set_cookie(
            response,
            settings,
            SESSION_COOKIE,
            issued.token,
            path="/",
            max_age=settings.session_ttl_s,
        )
    return response


def _logged_out(ctx: Context, revoked: int) -> Response:
    response = JSONResponse(RevokedOut(revoked=revoked).model_dump(mode="json"))
    delete_cookie(response, ctx.settings, SESSION_COOKIE, path="/")
    return response


def _settings_out(ctx: Context, preferences: ReaderPreferences) -> SettingsOut:
    settings = ctx.runtime.settings
    return SettingsOut(
        rate_per_hour_minor=str(preferences.rate_per_hour_minor),
        monthly_budget_minor=str(preferences.monthly_budget_minor),
        paused=preferences.paused,
        max_rate_per_hour_minor=str(accounts.max_rate_per_hour_minor(settings)),
        max_monthly_budget_minor=str(accounts.max_monthly_budget_minor(settings)),
        currency=preferences.currency,
        scale=settings.asset_scale,
    )


def _override_out(ctx: Context, rule: SiteRule) -> SiteOverrideOut:
    return SiteOverrideOut(
        origin=rule.origin,
        rate_per_hour_minor=_decimal(rule.rate_per_hour_minor),
        disabled=rule.disabled,
        currency=ctx.runtime.settings.currency,
        scale=ctx.runtime.settings.asset_scale,
    )


def _decimal(value: int | None) -> str | None:
    return None if value is None else str(value)


def _minor(text: str | None) -> int | None:
    return None if text is None else int(text)


# --- sessions -------------------------------------------------------------------------------


@router.post("/api/v1/accounts", body=SignUpIn, response=SessionOut, auth=False, status=201)
def sign_up(ctx: Context, body: SignUpIn) -> Response:
    """Create an account (reader and creator alike) and sign in."""
    accounts.count_sign_up(
        ctx.runtime.sessions, client_ip=ctx.client_ip, now=ctx.now, settings=ctx.runtime.settings
    )
    signed_in = accounts.sign_up(
        ctx.session,
        email=body.email,
        password=body.password,
        now=ctx.now,
        settings=ctx.runtime.settings,
    )
    return _session_response(ctx, signed_in, cookie=body.cookie, status=201)


@router.post("/api/v1/sessions", body=LogInIn, response=SessionOut, auth=False, status=201)
def log_in(ctx: Context, body: LogInIn) -> Response:
    """Log in with email and password: a bearer token, or the session cookie."""
    signed_in = accounts.log_in(
        ctx.session,
        ctx.runtime.sessions,
        email=body.email,
        password=body.password,
        client_ip=ctx.client_ip,
        now=ctx.now,
        settings=ctx.runtime.settings,
    )
    return _session_response(ctx, signed_in, cookie=body.cookie, status=201)


@router.delete("/api/v1/sessions/current", response=RevokedOut)
def log_out(ctx: Context, _body: None) -> Response:
    """Log out: revoke the session this request was made with."""
    assert ctx.auth_session is not None  # auth=True endpoints always have one
    return _logged_out(ctx, accounts.log_out(ctx.session, ctx.auth_session.id, ctx.now))


@router.delete("/api/v1/sessions", response=RevokedOut)
def log_out_everywhere(ctx: Context, _body: None) -> Response:
    """Log out everywhere: revoke every session of the user, this one included."""
    return _logged_out(ctx, accounts.log_out_everywhere(ctx.session, ctx.user_id, ctx.now))


@router.get("/api/v1/me", response=UserOut)
def me(ctx: Context, _body: None) -> UserOut:
    """The signed-in user."""
    assert ctx.user is not None
    return _user_out(ctx.user)


# --- reader settings ------------------------------------------------------------------------


@router.get("/api/v1/me/settings", response=SettingsOut)
def get_settings(ctx: Context, _body: None) -> SettingsOut:
    """The reader's hourly rate, monthly budget and pause switch."""
    preferences = accounts.reader_preferences(ctx.session, ctx.user_id, ctx.runtime.settings)
    return _settings_out(ctx, preferences)


@router.put("/api/v1/me/settings", body=SettingsIn, response=SettingsOut)
def put_settings(ctx: Context, body: SettingsIn) -> SettingsOut:
    """Change the hourly rate, monthly budget or pause switch (omitted fields stay)."""
    change = accounts.PreferencesChange(
        rate_per_hour_minor=_minor(body.rate_per_hour_minor),
        monthly_budget_minor=_minor(body.monthly_budget_minor),
        paused=body.paused,
    )
    preferences = accounts.update_preferences(
        ctx.session, ctx.user_id, change, ctx.runtime.settings
    )
    ctx.changed_readers.add(ctx.user_id)  # open streams take the new rate or pause at once
    return _settings_out(ctx, preferences)


@router.get("/api/v1/me/site-overrides", response=SiteOverridesOut)
def list_site_overrides(ctx: Context, _body: None) -> SiteOverridesOut:
    """The reader's per-site rules, by origin."""
    rules = accounts.site_overrides(ctx.session, ctx.user_id)
    return SiteOverridesOut(overrides=[_override_out(ctx, rule) for rule in rules])


@router.put("/api/v1/me/site-overrides", body=SiteOverrideIn, response=SiteOverrideOut)
def put_site_override(ctx: Context, body: SiteOverrideIn) -> SiteOverrideOut:
    """Set the reader's rule for one site: another hourly rate, or off."""
    rule = accounts.set_site_override(
        ctx.session,
        ctx.user_id,
        origin=body.origin,
        rate_per_hour_minor=_minor(body.rate_per_hour_minor),
        disabled=body.disabled,
        settings=ctx.runtime.settings,
    )
    ctx.changed_readers.add(ctx.user_id)
    return _override_out(ctx, rule)


@router.delete(
    "/api/v1/me/site-overrides", body=SiteOverrideDeleteIn, response=SiteOverrideDeletedOut
)
def delete_site_override(ctx: Context, body: SiteOverrideDeleteIn) -> SiteOverrideDeletedOut:
    """Remove the reader's rule for one site: the reader's own rate applies again."""
    origin = accounts.delete_site_override(ctx.session, ctx.user_id, body.origin)
    ctx.changed_readers.add(ctx.user_id)
    return SiteOverrideDeletedOut(origin=origin, deleted=True)
