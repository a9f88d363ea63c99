"""The dashboard's pages and form actions. Each one parses its form or query, calls the domain
(accounts, payees, siteverify, earnings, payouts) and renders; a change answers with a redirect
(post/redirect/get) or, when it fails, with its page again and the error's code."""

from __future__ import annotations

import secrets
import urllib.parse

from starlette.responses import Response

from trickle import accounts, earnings, money, payees, payouts, siteverify
from trickle.dashboard import chart, holds, snippets, summary
from trickle.dashboard.web import (
    CSRF_COOKIE,
    HOME,
    LOGIN_COOKIE,
    LOGIN_COOKIE_MAX_AGE_S,
    PREFIX,
    SIGN_IN_PATH,
    Ctx,
    check_login_nonce,
    login_nonce,
    redirect,
    render,
)
from trickle.errors import TrickleError, ValidationFailed
from trickle.models import Payee
from trickle.requests import IDEMPOTENCY_KEY_PATTERN, SESSION_COOKIE, delete_cookie, set_cookie

DAY_CHOICES = (7, 30, 90, 365)


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


# --- signing in and out ---------------------------------------------------------------------


def sign_in_form(ctx: Ctx) -> Response:
    return _sign_in_page(ctx, None)


def sign_in_failed(ctx: Ctx, error: TrickleError) -> Response:
    return _sign_in_page(ctx, error)


def _sign_in_page(ctx: Ctx, error: TrickleError | None) -> Response:
    nonce = login_nonce(ctx)
    response = render(
        ctx,
        "sign_in.html",
        error=error,
        login_nonce=nonce,
        email=ctx.form.get("email", ""),
        signed_out=ctx.query_params.get("signed_out") == "1",
        min_password=accounts.PASSWORD_MIN_CHARS,
    )
    set_cookie(
        response,
        ctx.settings,
        LOGIN_COOKIE,
        nonce,
        path=PREFIX,
        max_age=LOGIN_COOKIE_MAX_AGE_S,
    )
    return response


def sign_in(ctx: Ctx) -> Response:
    check_login_nonce(ctx)
    password = ctx.form.get("password", "")
    if not password or len(password) > accounts.PASSWORD_MAX_CHARS:
        raise ValidationFailed(f"a password is 1-{accounts.PASSWORD_MAX_CHARS} characters")
    signed_in = accounts.log_in(
        ctx.session,
        ctx.runtime.sessions,
        email=ctx.field("email"),
        password=password,
        client_ip=ctx.client_ip,
        now=ctx.now,
        settings=ctx.settings,
    )
    return _signed_in(ctx, signed_in)


def sign_up(ctx: Ctx) -> Response:
    check_login_nonce(ctx)
    password = ctx.form.get("password", "")
    if not accounts.PASSWORD_MIN_CHARS <= len(password) <= accounts.PASSWORD_MAX_CHARS:
        raise ValidationFailed(
            f"a password is {accounts.PASSWORD_MIN_CHARS}-{accounts.PASSWORD_MAX_CHARS} characters"
        )
    accounts.count_sign_up(
        ctx.runtime.sessions, client_ip=ctx.client_ip, now=ctx.now, settings=ctx.settings
    )
    signed_in = accounts.sign_up(
        ctx.session, email=ctx.field("email"), password=password, now=ctx.now, settings=ctx.settings
    )
    return _signed_in(ctx, signed_in)


def _signed_in(ctx: Ctx, signed_in: accounts.SignedIn) -> Response:
    issued = signed_in.session
    ttl_s = ctx.settings.session_ttl_s
    response = redirect(HOME)
    # The same cookie the API sets (path /), so the dashboard's session works for the API too.
    set_cookie(response, ctx.settings, SESSION_COOKIE, issued.token, path="/", max_age=ttl_s)
    set_cookie(response, ctx.settings, CSRF_COOKIE, issued.csrf_token, path=PREFIX, max_age=ttl_s)
    delete_cookie(response, ctx.settings, LOGIN_COOKIE, path=PREFIX)
    return response


def sign_out(ctx: Ctx) -> Response:
    assert ctx.auth_session is not None  # signed-in views always have one
    accounts.log_out(ctx.session, ctx.auth_session.id, ctx.now)
    response = redirect(f"{SIGN_IN_PATH}?signed_out=1")
    delete_cookie(response, ctx.settings, SESSION_COOKIE, path="/")
    delete_cookie(response, ctx.settings, CSRF_COOKIE, path=PREFIX)
    return response


# --- payees ---------------------------------------------------------------------------------


def overview(ctx: Ctx) -> Response:
    return _overview_page(ctx, None)


def overview_failed(ctx: Ctx, error: TrickleError) -> Response:
    return _overview_page(ctx, error)


def _overview_page(ctx: Ctx, error: TrickleError | None) -> Response:
    found = earnings.for_creator(
        ctx.session, ctx.user_id, days=1, settings=ctx.settings, now=ctx.now
    )
    owned = [item.payee for item in found]
    sites = payees.sites(ctx.session, [p.id for p in owned])
    rows = [
        {
            "payee": item.payee,
            "pointer": payees.payment_pointer(ctx.settings, item.payee.name),
            "standing": item.standing,
            "sites": len(sites[item.payee.id]),
            "verified": sum(1 for s in sites[item.payee.id] if s.verified_at is not None),
        }
        for item in found
    ]
    return render(
        ctx,
        "overview.html",
        nav="payees",
        error=error,
        rows=rows,
        form_name=ctx.form.get("name", "") if error else "",
        form_display_name=ctx.form.get("display_name", "") if error else "",
    )


def create_payee(ctx: Ctx) -> Response:
    display_name = ctx.field("display_name", required=False)
    payee = payees.create(
        ctx.session,
        user_id=ctx.user_id,
        name=ctx.field("name"),
        display_name=display_name or None,
        settings=ctx.settings,
        now=ctx.now,
    )
    return redirect(f"{PREFIX}/payees/{payee.name}?created=1")


def payee_page(ctx: Ctx) -> Response:
    payee = payees.owned(ctx.session, ctx.user_id, ctx.path_params["name"])
    notice = None
    if ctx.query_params.get("created") == "1":
        notice = f"Payee {payee.name} created. Put its link tag on your site, then prove the site."
    elif "verified" in ctx.query_params:
        notice = f"{ctx.query_params['verified'][:300]} is verified for {payee.name}."
    elif "added" in ctx.query_params:
        notice = f"Now publish the file below on {ctx.query_params['added'][:300]}, then check it."
    return _payee_page(ctx, payee, None, notice)


def payee_failed(ctx: Ctx, error: TrickleError) -> Response:
    payee = payees.owned(ctx.session, ctx.user_id, ctx.path_params["name"])
    return _payee_page(ctx, payee, error, None)


def _payee_page(ctx: Ctx, payee: Payee, error: TrickleError | None, notice: str | None) -> Response:
    rows = payees.sites(ctx.session, [payee.id])[payee.id]
    pointer = payees.payment_pointer(ctx.settings, payee.name)
    verified = [row.origin for row in rows if row.verified_at is not None]
    sites = [
        {
            "origin": row.origin,
            "verified_at": row.verified_at,
            "url": snippets.token_url(row.origin),
            "file": snippets.token_file(row.token),
            "anchor": f"site-{index}",
        }
        for index, row in enumerate(rows)
    ]
    return render(
        ctx,
        "payee.html",
        nav="payees",
        error=error,
        notice=notice,
        payee=payee,
        pointer=pointer,
        snippets=snippets.for_payee(ctx.settings, pointer, verified),
        sites=sites,
        form_origin=ctx.form.get("origin", "") if error else "",
        checked_origin=ctx.form.get("origin", "") if error else "",
    )


def start_site(ctx: Ctx) -> Response:
    payee = payees.owned(ctx.session, ctx.user_id, ctx.path_params["name"])
    row = siteverify.start(
        ctx.session,
        payee,
        ctx.field("origin"),
        allow_private=ctx.settings.allow_private_site_urls,
        now=ctx.now,
    )
    return redirect(f"{PREFIX}/payees/{payee.name}?added={_quote(row.origin)}#sites")


def check_site(ctx: Ctx) -> Response:
    """Runs with its own transactions (see ``routes``): the fetch holds no database connection."""
    name = ctx.path_params["name"]
    row = siteverify.check(
        ctx.runtime.sessions,
        ctx.runtime.site_checks,
        user_id=ctx.user_id,
        payee_name=name,
        origin_text=ctx.field("origin"),
        allow_private=ctx.settings.allow_private_site_urls,
        clock=ctx.runtime.clock,
    )
    return redirect(f"{PREFIX}/payees/{_quote(name)}?verified={_quote(row.origin)}#sites")


# --- earnings -------------------------------------------------------------------------------


def earnings_page(ctx: Ctx) -> Response:
    days = earnings.days_asked(ctx.query_params.get("days"))
    found = earnings.for_creator(
        ctx.session, ctx.user_id, days=days, settings=ctx.settings, now=ctx.now
    )
    names = [item.payee.name for item in found]
    selected = ctx.query_params.get("payee") or None
    if selected is not None and selected not in names:
        payees.owned(ctx.session, ctx.user_id, selected)  # says payee_not_found
    window = summary.window(ctx.now, days)
    daily = summary.per_day(found, window, selected)
    return render(
        ctx,
        "earnings.html",
        nav="earnings",
        days=days,
        day_choices=DAY_CHOICES,
        names=names,
        selected=selected,
        daily=daily,
        chart=chart.build([(d.day, d.totals.net_minor) for d in daily], ctx.settings.asset_scale),
        window_total=sum(d.totals.net_minor for d in daily),
        by_payee=summary.per_payee(found),
        by_origin=summary.per_origin(found, selected),
        hold_text=holds.hold_text(ctx.settings),
        first_day=window[0],
        last_day=window[-1],
    )


def earnings_csv(ctx: Ctx) -> Response:
    days = earnings.days_asked(ctx.query_params.get("days"))
    found = earnings.for_creator(
        ctx.session, ctx.user_id, days=days, settings=ctx.settings, now=ctx.now
    )
    window = summary.window(ctx.now, days)
    text = summary.csv_text(found, currency=ctx.settings.currency, scale=ctx.settings.asset_scale)
    filename = f"trickle-earnings-{window[0].isoformat()}-{window[-1].isoformat()}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


# --- claims and payouts ---------------------------------------------------------------------


def payouts_page(ctx: Ctx) -> Response:
    return _payouts_page(ctx, None)


def payouts_failed(ctx: Ctx, error: TrickleError) -> Response:
    return _payouts_page(ctx, error)


def _payouts_page(ctx: Ctx, error: TrickleError | None) -> Response:
    found = earnings.for_creator(
        ctx.session, ctx.user_id, days=1, settings=ctx.settings, now=ctx.now
    )
    history = payouts.for_creator(ctx.session, ctx.user_id)
    notice = None
    claimed = ctx.query_params.get("claimed", "")
    for payout, name in history:
        if claimed == str(payout.id):
            amount = money.format_money(
                payout.amount_minor, ctx.settings.asset_scale, payout.currency
            )
            notice = (
                f"This claim was already made: payout #{payout.id} of {amount} for {name}."
                if ctx.query_params.get("replayed") == "1"
                else f"Claimed {amount} for {name}: payout #{payout.id} is pending."
            )
    claims = [
        {
            "payee": item.payee,
            "standing": item.standing,
            # A new key per rendered form: submitting the same form twice claims once.
            "key": "dash-" + secrets.token_urlsafe(18),
            "outlook": holds.outlook(item.standing, ctx.settings),
        }
        for item in found
    ]
    return render(
        ctx,
        "payouts.html",
        nav="payouts",
        error=error,
        notice=notice,
        claims=claims,
        history=history,
        min_claim_minor=ctx.settings.min_claim_minor,
        hold_text=holds.hold_text(ctx.settings),
    )


def claim(ctx: Ctx) -> Response:
    key = ctx.field("idempotency_key")
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise ValidationFailed("the claim form's key is malformed; reload the page")
    amount_text = ctx.field("amount", required=False)
    amount = money.parse_decimal(amount_text, ctx.settings.asset_scale) if amount_text else None
    claimed = payouts.claim(
        ctx.session,
        user_id=ctx.user_id,
        payee_name=ctx.field("payee"),
        amount_minor=amount,
        idempotency_key=key,
        settings=ctx.settings,
        now=ctx.now,
    )
    replayed = "&replayed=1" if claimed.replayed else ""
    return redirect(f"{PREFIX}/payouts?claimed={claimed.payout.id}{replayed}")
