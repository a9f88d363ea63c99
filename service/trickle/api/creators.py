"""HTTP endpoints: creators. Payees and their public payment-pointer document, site
verification, earnings, claims and the creator's payouts. A payee that is not yours is
``payee_not_found``, exactly like one that does not exist."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints
from starlette.responses import JSONResponse, Response

from trickle import earnings, payees, payouts, siteverify
from trickle.api.base import (
    AmountMinor,
    ApiRouter,
    Context,
    Origin,
    PositiveAmountMinor,
    Schema,
    amount_value,
    error_response,
)
from trickle.errors import TrickleError
from trickle.models import Payee, Payout, SiteVerification
from trickle.text import TEXT_PATTERN

router = ApiRouter(tag="creators")

PayeeName = Annotated[str, StringConstraints(pattern=payees.NAME_PATTERN.pattern)]
DisplayName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=payees.DISPLAY_NAME_MAX_CHARS),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),  # checked by text.clean_text
]
NAME_IN_PATH = {"name": PayeeName}  # /p/{name}, /api/v1/payees/{name}/...


# --- bodies ---------------------------------------------------------------------------------


class PayeeIn(Schema):
    name: PayeeName
    display_name: DisplayName | None = None


class SiteOut(Schema):
    origin: str
    verified: bool
    verified_at: dt.datetime | None


class PayeeOut(Schema):
    name: str
    display_name: str
    payment_pointer: str
    currency: str
    scale: int
    created_at: dt.datetime
    sites: list[SiteOut]


class PayeesOut(Schema):
    payees: list[PayeeOut]


class AssetOut(Schema):
    code: str
    scale: int


class PublicPayeeOut(Schema):
    name: str
    display_name: str
    payment_pointer: str
    asset: AssetOut
    jwks_url: str
    verified_origins: list[str]


class SiteIn(Schema):
    origin: Origin


class SiteChallengeOut(Schema):
    origin: str
    token: str
    url: str
    verified: bool
    verified_at: dt.datetime | None


class SiteEarningsOut(Schema):
    origin: str | None
    credited_minor: AmountMinor
    fees_minor: AmountMinor


class DayOut(Schema):
    day: dt.date
    credited_minor: AmountMinor
    fees_minor: AmountMinor
    claimed_minor: AmountMinor
    returned_minor: AmountMinor
    sites: list[SiteEarningsOut]


class PayeeEarningsOut(Schema):
    payee: str
    balance_minor: AmountMinor
    available_minor: AmountMinor
    held_minor: AmountMinor
    next_release_at: dt.datetime | None  # when the oldest held credit becomes available
    released_by: dt.datetime | None  # when all that is held now has become available
    days: list[DayOut]


class EarningsOut(Schema):
    currency: str
    scale: int
    days: int
    claim_hold_s: int
    claim_hold_verified_s: int
    min_claim_minor: AmountMinor
    payees: list[PayeeEarningsOut]


class ClaimIn(Schema):
    payee: PayeeName
    amount_minor: PositiveAmountMinor | None = None


class PayoutOut(Schema):
    id: int
    payee: str
    amount_minor: AmountMinor
    currency: str
    scale: int
    state: str
    provider: str
    external_reference: str | None
    created_at: dt.datetime
    settled_at: dt.datetime | None


class PayoutsOut(Schema):
    payouts: list[PayoutOut]


# --- rendering ------------------------------------------------------------------------------


def _site_out(row: SiteVerification) -> SiteOut:
    return SiteOut(
        origin=row.origin, verified=row.verified_at is not None, verified_at=row.verified_at
    )


def _payee_out(ctx: Context, payee: Payee, rows: list[SiteVerification]) -> PayeeOut:
    return PayeeOut(
        name=payee.name,
        display_name=payee.display_name,
        payment_pointer=payees.payment_pointer(ctx.runtime.settings, payee.name),
        currency=payee.currency,
        scale=ctx.runtime.settings.asset_scale,
        created_at=payee.created_at,
        sites=[_site_out(row) for row in rows],
    )


def _challenge_out(row: SiteVerification) -> SiteChallengeOut:
    return SiteChallengeOut(
        origin=row.origin,
        token=row.token,
        url=siteverify.token_url(row.origin),
        verified=row.verified_at is not None,
        verified_at=row.verified_at,
    )


def _payout_out(ctx: Context, payout: Payout, payee_name: str) -> PayoutOut:
    return PayoutOut(
        id=payout.id,
        payee=payee_name,
        amount_minor=str(payout.amount_minor),
        currency=payout.currency,
        scale=ctx.runtime.settings.asset_scale,
        state=payout.state,
        provider=payout.provider,
        external_reference=payout.external_reference,
        created_at=payout.created_at,
        settled_at=payout.settled_at,
    )


def _earnings_out(found: earnings.PayeeEarnings) -> PayeeEarningsOut:
    return PayeeEarningsOut(
        payee=found.payee.name,
        balance_minor=str(found.standing.balance_minor),
        available_minor=str(found.standing.available_minor),
        held_minor=str(found.standing.held_minor),
        next_release_at=found.standing.next_release_at,
        released_by=found.standing.released_by,
        days=[
            DayOut(
                day=day.day,
                credited_minor=str(day.credited_minor),
                fees_minor=str(day.fees_minor),
                claimed_minor=str(day.claimed_minor),
                returned_minor=str(day.returned_minor),
                sites=[
                    SiteEarningsOut(
                        origin=site.origin,
                        credited_minor=str(site.credited_minor),
                        fees_minor=str(site.fees_minor),
                    )
                    for site in sorted(day.sites.values(), key=lambda s: s.origin or "")
                ],
            )
            for day in found.days
        ],
    )


# --- payees ---------------------------------------------------------------------------------


@router.post("/api/v1/payees", body=PayeeIn, response=PayeeOut, status=201)
def create_payee(ctx: Context, body: PayeeIn) -> PayeeOut:
    """Create a payee: a payment pointer of its own (names are unique and never reused)."""
    payee = payees.create(
        ctx.session,
        user_id=ctx.user_id,
        name=body.name,
        display_name=body.display_name,
        settings=ctx.runtime.settings,
        now=ctx.now,
    )
    return _payee_out(ctx, payee, [])


@router.get("/api/v1/payees", response=PayeesOut)
def list_payees(ctx: Context, _body: None) -> PayeesOut:
    """The signed-in creator's payees, with their sites (verified or not)."""
    owned = payees.list_for_user(ctx.session, ctx.user_id)
    sites = payees.sites(ctx.session, [p.id for p in owned])
    return PayeesOut(payees=[_payee_out(ctx, p, sites[p.id]) for p in owned])


@router.get("/p/{name}", response=PublicPayeeOut, auth=False, path_types=NAME_IN_PATH)
def payment_pointer(ctx: Context, _body: None) -> Response:
    """A payee's public payment-pointer document (readable from any web page)."""
    cors = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"}
    try:
        found = payees.describe(ctx.session, ctx.path_params["name"], ctx.runtime.settings)
    except TrickleError as exc:
        # Rendered here, not by the app: a page's fetch must be able to read the error too.
        return error_response(exc, headers=cors)
    body = PublicPayeeOut(
        name=found.name,
        display_name=found.display_name,
        payment_pointer=found.payment_pointer,
        asset=AssetOut(code=found.asset.code, scale=found.asset.scale),
        jwks_url=found.jwks_url,
        verified_origins=found.verified_origins,
    )
    return JSONResponse(body.model_dump(mode="json"), headers=cors)


# --- sites ----------------------------------------------------------------------------------


@router.post(
    "/api/v1/payees/{name}/sites",
    body=SiteIn,
    response=SiteChallengeOut,
    path_types=NAME_IN_PATH,
)
def start_site_verification(ctx: Context, body: SiteIn) -> SiteChallengeOut:
    """Start verifying a site for a payee: the token to serve and the exact URL to serve it at."""
    payee = payees.owned(ctx.session, ctx.user_id, ctx.path_params["name"])
    row = siteverify.start(
        ctx.session,
        payee,
        body.origin,
        allow_private=ctx.runtime.settings.allow_private_site_urls,
        now=ctx.now,
    )
    return _challenge_out(row)


@router.post(
    "/api/v1/payees/{name}/sites/check",
    body=SiteIn,
    response=SiteOut,
    own_transactions=True,
    path_types=NAME_IN_PATH,
)
def check_site_verification(ctx: Context, body: SiteIn) -> SiteOut:
    """Fetch the site's token file now; the site is verified if it holds the payee's token."""
    runtime = ctx.runtime
    row = siteverify.check(
        runtime.sessions,
        runtime.site_checks,
        user_id=ctx.user_id,
        payee_name=ctx.path_params["name"],
        origin_text=body.origin,
        allow_private=runtime.settings.allow_private_site_urls,
        clock=runtime.clock,
    )
    return _site_out(row)


# --- earnings, claims, payouts --------------------------------------------------------------


@router.get("/api/v1/earnings", response=EarningsOut)
def get_earnings(ctx: Context, _body: None) -> EarningsOut:
    """Earnings per payee, per UTC day and per site; what is available to claim and held."""
    settings = ctx.runtime.settings
    days = earnings.days_asked(ctx.query_params.get("days"))
    found = earnings.for_creator(
        ctx.session, ctx.user_id, days=days, settings=settings, now=ctx.now
    )
    return EarningsOut(
        currency=settings.currency,
        scale=settings.asset_scale,
        days=days,
        claim_hold_s=settings.claim_hold_s,
        claim_hold_verified_s=earnings.hold_s(settings, verified=True),
        min_claim_minor=str(settings.min_claim_minor),
        payees=[_earnings_out(item) for item in found],
    )


@router.post("/api/v1/claims", body=ClaimIn, response=PayoutOut, idempotent=True, status=201)
def create_claim(ctx: Context, body: ClaimIn) -> PayoutOut:
    """Claim a payee's available earnings (all, or amount_minor of them) as a pending payout."""
    requested = None if body.amount_minor is None else amount_value(body.amount_minor)
    claimed = payouts.claim(
        ctx.session,
        user_id=ctx.user_id,
        payee_name=body.payee,
        amount_minor=requested,
        idempotency_key=ctx.headers["idempotency-key"],
        settings=ctx.runtime.settings,
        now=ctx.now,
    )
    return _payout_out(ctx, claimed.payout, body.payee)


@router.get("/api/v1/payouts", response=PayoutsOut)
def list_payouts(ctx: Context, _body: None) -> PayoutsOut:
    """The signed-in creator's payouts, newest first (at most 200)."""
    rows = payouts.for_creator(ctx.session, ctx.user_id)
    return PayoutsOut(payouts=[_payout_out(ctx, payout, name) for payout, name in rows])
