"""``trickle payouts``: the operator's side of claims. List payouts, export them as CSV to pay
them outside Trickle, then mark each one paid (with the provider's reference) or failed (the
money returns to the creator's earnings)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from trickle import money, payouts
from trickle.db import transaction
from trickle.payouts import PayoutState
from trickle.runtime import bootstrap
from trickle.settings import Settings

STATES = [state.value for state in PayoutState] + ["all"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    # The same options as every other command (trickle.cli reads them into the settings).
    parser.add_argument("--data-dir", type=Path, help="data folder (TRICKLE_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (TRICKLE_DATABASE_URL)")


def _add_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", choices=STATES, default="pending", help="which payouts (default: pending)"
    )


def register(subparsers: Any) -> None:
    """Add ``payouts list|export|mark`` to the ``trickle`` command's subparsers."""
    parser = subparsers.add_parser("payouts", help="claims to pay out (the operator)")
    sub = parser.add_subparsers(dest="payouts_command", required=True)

    listing = sub.add_parser("list", help="payouts, oldest first (default: the pending ones)")
    _add_state(listing)
    _add_common(listing)
    listing.set_defaults(handler=cmd_list)

    export = sub.add_parser("export", help="payouts as CSV (default: the pending ones)")
    export.add_argument("--csv", type=Path, help="write to this file (default: stdout)")
    _add_state(export)
    _add_common(export)
    export.set_defaults(handler=cmd_export)

    mark = sub.add_parser("mark", help="record a payout's outcome: paid or failed")
    mark.add_argument("payout_id", type=int, metavar="ID", help="the payout's id")
    outcome = mark.add_subparsers(dest="outcome", required=True)
    paid = outcome.add_parser("paid", help="paid out: the money left Trickle")
    paid.add_argument("--reference", required=True, help="the bank or provider reference")
    _add_common(paid)
    paid.set_defaults(handler=cmd_mark)
    failed = outcome.add_parser("failed", help="not paid: the money returns to the earnings")
    failed.add_argument("--reason", required=True, help="why it failed (the creator sees it)")
    _add_common(failed)
    failed.set_defaults(handler=cmd_mark)


def _state(args: argparse.Namespace) -> PayoutState | None:
    return None if args.state == "all" else PayoutState(args.state)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            rows = payouts.listing(session, _state(args))
    finally:
        runtime.close()
    print(f"{'id':>6} {'created':<20} {'payee':<24} {'amount':>16} {'state':<8} reference")
    for row in rows:
        p = row.payout
        amount = f"{money.format_minor(p.amount_minor, settings.asset_scale)} {p.currency}"
        print(
            f"{p.id:>6} {p.created_at:%Y-%m-%d %H:%M:%S} {row.payee_name:<24} {amount:>16} "
            f"{p.state:<8} {p.external_reference or ''}"
        )
    print(f"{len(rows)} payout(s)")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            rows = payouts.listing(session, _state(args))
    finally:
        runtime.close()
    if args.csv is None or str(args.csv) == "-":
        payouts.write_csv(rows, sys.stdout, settings)
        return 0
    with args.csv.open("w", newline="", encoding="utf-8") as handle:
        payouts.write_csv(rows, handle, settings)
    print(f"{len(rows)} payout(s) written to {args.csv}")
    return 0


def cmd_mark(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            if args.outcome == "paid":
                payout = payouts.mark_paid(
                    session,
                    args.payout_id,
                    reference=args.reference,
                    settings=settings,
                    now=runtime.clock(),
                )
            else:
                payout = payouts.mark_failed(
                    session,
                    args.payout_id,
                    reason=args.reason,
                    settings=settings,
                    now=runtime.clock(),
                )
    finally:
        runtime.close()
    amount = money.format_minor(payout.amount_minor, settings.asset_scale)
    print(f"payout {payout.id} ({amount} {payout.currency}) marked {payout.state}")
    return 0
