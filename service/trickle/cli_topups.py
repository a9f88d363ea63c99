"""``trickle topups``: the operator's side of card top-ups. List them, refund one through Stripe
(the money comes back out of the reader's balance, the spent part out of the operator's losses),
and see or lift the freezes that refunds and disputes put on readers' spending."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trickle import cards, freezes, money, stripe_gateway, topups
from trickle.db import transaction
from trickle.errors import CardTopupsUnavailable, TopupNotFound
from trickle.runtime import bootstrap
from trickle.settings import Settings
from trickle.topups import TopupState

STATES = [state.value for state in TopupState] + ["all"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    # The same options as every other command (trickle.cli reads them into the settings).
    parser.add_argument("--data-dir", type=Path, help="data folder (TRICKLE_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (TRICKLE_DATABASE_URL)")


def register(subparsers: Any) -> None:
    """Add ``topups list|refund|frozen|unfreeze`` to the ``trickle`` command's subparsers."""
    parser = subparsers.add_parser("topups", help="card top-ups, refunds and freezes")
    sub = parser.add_subparsers(dest="topups_command", required=True)

    listing = sub.add_parser("list", help="card top-ups, oldest first (default: all)")
    listing.add_argument("--state", choices=STATES, default="all", help="which top-ups")
    _add_common(listing)
    listing.set_defaults(handler=cmd_list)

    refund = sub.add_parser("refund", help="refund what is left of a top-up through Stripe")
    refund.add_argument("topup_id", type=int, metavar="ID", help="the top-up's id")
    _add_common(refund)
    refund.set_defaults(handler=cmd_refund)

    frozen = sub.add_parser("frozen", help="readers whose spending is frozen")
    _add_common(frozen)
    frozen.set_defaults(handler=cmd_frozen)

    unfreeze = sub.add_parser("unfreeze", help="lift every freeze of a reader")
    unfreeze.add_argument("user_id", type=int, metavar="USER_ID", help="the reader's user id")
    unfreeze.add_argument("--note", required=True, help="why (kept with the freeze)")
    _add_common(unfreeze)
    unfreeze.set_defaults(handler=cmd_unfreeze)


def _money(amount_minor: int, settings: Settings) -> str:
    return f"{money.format_minor(amount_minor, settings.asset_scale)} {settings.currency}"


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            rows = topups.listing(session, None if args.state == "all" else TopupState(args.state))
    finally:
        runtime.close()
    print(f"{'id':>6} {'created':<20} {'user':>6} {'amount':>16} {'state':<9} taken back")
    for t in rows:
        back = t.refunded_minor + t.disputed_minor
        print(
            f"{t.id:>6} {t.created_at:%Y-%m-%d %H:%M:%S} {t.user_id:>6} "
            f"{_money(t.amount_minor, settings):>16} {t.state:<9} "
            f"{_money(back, settings) if back else ''}"
        )
    print(f"{len(rows)} top-up(s)")
    return 0


def cmd_refund(args: argparse.Namespace, settings: Settings) -> int:
    config = cards.config_of(settings)
    if config is None:
        raise CardTopupsUnavailable("no Stripe settings: set TRICKLE_STRIPE_SECRET_KEY first")
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            topup = topups.find(session, topup_id=args.topup_id)
            if topup is None:
                raise TopupNotFound(f"no top-up {args.topup_id}")
            target_minor, amount = topups.rest_to_refund(topup)
        # Stripe is called with no transaction open; the refund's key makes a re-run safe.
        refunded = stripe_gateway.gateway(config).refund(
            topup, amount, stripe_gateway.refund_key(topup, target_minor)
        )
        if refunded.status in ("failed", "canceled"):
            print(f"Stripe refused the refund {refunded.refund_id}: {refunded.status}")
            return 1
        with transaction(runtime.sessions) as session:
            topup = topups.find(session, topup_id=args.topup_id)
            assert topup is not None
            taken = topups.refund(
                session,
                topup,
                refunded_total_minor=target_minor,
                reference=refunded.refund_id,
                now=runtime.clock(),
            )
    finally:
        runtime.close()
    print(f"top-up {topup.id} refunded at Stripe ({refunded.refund_id}, {refunded.status})")
    if taken is None:
        print("its refund was booked already (by Stripe's webhook)")
        return 0
    print(f"taken back from reader {topup.user_id}: {_money(taken.from_reader_minor, settings)}")
    print(f"booked to operator losses (already spent): {_money(taken.loss_minor, settings)}")
    if taken.frozen:
        print(
            f"reader {topup.user_id}'s spending is frozen; lift it with "
            f"`trickle topups unfreeze {topup.user_id} --note ...`"
        )
    return 0


def cmd_frozen(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            rows = freezes.frozen_readers(session)
    finally:
        runtime.close()
    print(f"{'user':>6} {'since':<20} reasons")
    for row in rows:
        print(f"{row.user_id:>6} {row.since:%Y-%m-%d %H:%M:%S} {', '.join(row.reasons)}")
    print(f"{len(rows)} frozen reader(s)")
    return 0


def cmd_unfreeze(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            lifted = freezes.lift(session, args.user_id, now=runtime.clock(), note=args.note)
    finally:
        runtime.close()
    if not lifted:
        print(f"reader {args.user_id} was not frozen")
        return 1
    print(f"lifted {lifted} freeze(s) of reader {args.user_id}; running services follow within 2 s")
    return 0
