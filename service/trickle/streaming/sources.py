"""Funding sources: which ledger account pays a reader's streams, and what it can still spend.

The engine never asks "what is this user's balance" directly; it asks its ``FundingSource``. Today
there is one source, the reader's own prepaid balance (vouchers and top-ups). A second one is
planned (anonymous prepaid tokens, so that the service cannot link a reader to the sites they
read): it only has to name the ledger account that a connection's increments debit and say what
that account holds. The debit itself is the same for every source: a ledger transfer with a
conditional debit (the group commit, ``committer.stage``), so no source can overdraw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from trickle import funding, ledger
from trickle.ledger import AccountKind, Asset
from trickle.models import LedgerAccount
from trickle.settings import Settings


class FundingSource(Protocol):
    """Where a reader's streamed money comes from. Plain synchronous calls, run off the event
    loop inside the caller's transaction."""

    def account_for(self, session: Session, user_id: int, now: dt.datetime) -> int:
        """The ledger account that this reader's increments debit (created on first use)."""
        ...

    def balances(self, session: Session, account_ids: Collection[int]) -> dict[int, int]:
        """What each of these accounts can still spend, in minor units (missing: nothing)."""
        ...


class ReaderBalance:
    """The reader's own prepaid balance: one ledger account per reader and asset."""

    def __init__(self, settings: Settings) -> None:
        self.asset = Asset(settings.currency, settings.asset_scale)

    def account_for(self, session: Session, user_id: int, now: dt.datetime) -> int:
        owner = funding.reader_account_owner(user_id)
        return ledger.account(session, AccountKind.READER, owner, self.asset, now).id

    def balances(self, session: Session, account_ids: Collection[int]) -> dict[int, int]:
        rows = session.execute(
            select(LedgerAccount.id, LedgerAccount.balance_minor).where(
                LedgerAccount.id.in_(list(account_ids))
            )
        )
        return {account_id: int(balance) for account_id, balance in rows}
