"""HTTP endpoints: a reader's balance and voucher top-ups."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from trickle import funding
from trickle.api.base import AmountMinor, ApiRouter, Context, Empty, Schema
from trickle.ledger import Asset, asset_of

router = ApiRouter(tag="funding")


class BalanceOut(Schema):
    balance_minor: AmountMinor
    currency: str
    scale: int


class RedeemIn(Schema):
    code: Annotated[str, StringConstraints(min_length=4, max_length=64)]


class RedeemOut(Schema):
    amount_minor: AmountMinor
    balance_minor: AmountMinor
    currency: str
    scale: int


def _asset(ctx: Context) -> Asset:
    return asset_of(ctx.runtime.settings)


@router.get("/api/v1/balance", response=BalanceOut)
def get_balance(ctx: Context, _body: Empty | None) -> BalanceOut:
    """The signed-in reader's balance."""
    asset = _asset(ctx)
    value = funding.reader_balance(ctx.session, ctx.user_id, asset, ctx.now)
    return BalanceOut(balance_minor=str(value), currency=asset.code, scale=asset.scale)


@router.post("/api/v1/vouchers/redeem", body=RedeemIn, response=RedeemOut, idempotent=True)
def redeem(ctx: Context, body: RedeemIn) -> RedeemOut:
    """Redeem a voucher code into the reader's balance (once, ever)."""
    asset = _asset(ctx)
    topup = funding.redeem_voucher(
        ctx.session, code=body.code, user_id=ctx.user_id, asset=asset, now=ctx.now
    )
    ctx.changed_readers.add(ctx.user_id)  # streams blocked on funds resume at once
    return RedeemOut(
        amount_minor=str(topup.amount_minor),
        balance_minor=str(topup.balance_minor),
        currency=asset.code,
        scale=asset.scale,
    )
