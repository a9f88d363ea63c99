"""``trickle tokens``: the private-payment token keys, as the operator and anyone comparing them
with what the service publishes see them."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from trickle import keys, money, tokens
from trickle.runtime import bootstrap, utc_now
from trickle.settings import Settings


def register(subparsers: Any) -> None:
    """Add ``tokens keys`` to the ``trickle`` command's subparsers."""
    parser = subparsers.add_parser("tokens", help="private-payment tokens")
    sub = parser.add_subparsers(dest="tokens_command", required=True)
    listing = sub.add_parser(
        "keys", help="the token keys (made if missing): epoch, value, public key, when each pays"
    )
    listing.add_argument(
        "--json",
        action="store_true",
        help="print the document /.well-known/trickle-token-keys serves, to compare with it",
    )
    # The same options as every other command (trickle.cli reads them into the settings).
    listing.add_argument("--data-dir", type=Path, help="data folder (TRICKLE_DATA_DIR)")
    listing.add_argument("--database-url", help="SQLAlchemy URL (TRICKLE_DATABASE_URL)")
    listing.set_defaults(handler=cmd_tokens_keys)


def state(key: tokens.TokenKey, now: dt.datetime) -> str:
    """``next`` (published, not issuing yet), ``issuing``, ``grace`` (pays, issues no more) or
    ``refunds`` (past ``spend_until``: refundable only)."""
    if key.issuing(now):
        return "issuing"
    if now < key.issue_from:
        return "next"
    return "grace" if key.spendable(now) else "refunds"


def cmd_tokens_keys(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        ring = runtime.token_keys.current
    finally:
        runtime.close()
    now = utc_now()
    if args.json:
        print(json.dumps(tokens.key_document(ring, now), indent=2))
        return 0
    print(
        f"{'epoch':<7} {'state':<8} {'value':<16} {'issues from':<21} {'pays until':<21} public key"
    )
    for key in sorted(ring.keys.values(), key=lambda k: k.epoch):
        value = money.format_exact(key.value_minor, key.scale, key.currency)
        print(
            f"{key.epoch:<7} {state(key, now):<8} {value:<16} {_when(key.issue_from):<21} "
            f"{_when(key.spend_until):<21} {keys.b64url(key.public_key.to_bytes())}"
        )
    return 0


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"
