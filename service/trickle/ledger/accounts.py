"""Ledger accounts: their kinds and assets, finding (or creating) one, and reading its balance."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from trickle.db import insert_unless_present
from trickle.errors import AccountNotFound
from trickle.models import LedgerAccount

if TYPE_CHECKING:
    from trickle.settings import Settings


class AccountKind(enum.StrEnum):
    READER = "reader"  # a reader's prepaid balance
    PAYEE = "payee"  # a payee's earnings
    FUNDING = "funding"  # where top-ups come from (one per provider); goes negative
    FEE = "fee"  # the platform's fees
    PAYOUT_CLEARING = "payout_clearing"  # claimed, not yet paid out
    PAYOUT_SETTLED = "payout_settled"  # paid out: money that left the system
    # What the operator paid in from its own pocket when a top-up was taken back (refund,
    # dispute) after the reader had spent it; one per provider; never above zero
    OPERATOR_LOSSES = "operator_losses"
    # Private-payment tokens sold and not yet spent or refunded (one per asset): what every
    # outstanding token is worth (docs/tokens.md)
    TOKEN_FLOAT = "token_float"  # noqa: S105 - a kind, not a secret


NEGATIVE_ALLOWED = frozenset({AccountKind.FUNDING, AccountKind.OPERATOR_LOSSES})


@dataclasses.dataclass(frozen=True, slots=True)
class Asset:
    code: str
    scale: int


def asset_of(settings: Settings) -> Asset:
    """The asset this service pays in: every reader, payee and fee account holds it."""
    return Asset(settings.currency, settings.asset_scale)


def account(
    session: Session, kind: AccountKind, owner: str, asset: Asset, now: dt.datetime
) -> LedgerAccount:
    """The account for (kind, owner, asset), created on first use; safe when two racers create."""
    values = {
        "kind": kind.value,
        "owner": owner,
        "currency": asset.code,
        "scale": asset.scale,
        "may_go_negative": kind in NEGATIVE_ALLOWED,
        "balance_minor": 0,
        "created_at": now,
    }
    insert_unless_present(session, LedgerAccount, values, ["kind", "owner", "currency"])
    found = session.scalars(
        select(LedgerAccount).where(
            LedgerAccount.kind == kind.value,
            LedgerAccount.owner == owner,
            LedgerAccount.currency == asset.code,
        )
    ).one()
    return found


def balance(session: Session, account_id: int) -> int:
    value = session.scalar(
        select(LedgerAccount.balance_minor).where(LedgerAccount.id == account_id)
    )
    if value is None:
        raise AccountNotFound(f"no ledger account {account_id}")
    return int(value)


def lock(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    """Lock these accounts' rows until the transaction ends, one after the other in the order
    given, and return their balances: for a caller that moves "as much as an account holds" (no
    racer may debit in between). Callers keep one order — funding before reader, as a top-up's
    own debit and credit do — so that they cannot deadlock. On SQLite the transaction holds the
    database's write lock already."""
    found: dict[int, int] = {}
    for account_id in account_ids:
        value = session.scalar(
            select(LedgerAccount.balance_minor)
            .where(LedgerAccount.id == account_id)
            .with_for_update()
        )
        if value is None:
            raise AccountNotFound(f"no ledger account {account_id}")
        found[account_id] = int(value)
    return found
