"""Funding: money entering the system. Every top-up, from any provider, is one idempotent ledger
transfer from the provider's funding account to the reader, keyed by the provider's own id for the
event — so a webhook delivered twice, or a voucher redeemed twice, moves money once.

Built in: vouchers minted by the operator. A card or wallet processor plugs in by implementing
``FundingProvider`` and calling ``record_topup`` from its (signature-checked) webhook.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from trickle import ledger
from trickle.errors import VoucherAlreadyRedeemed, VoucherInvalid
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.models import Voucher

VOUCHER_PROVIDER = "voucher"
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: easy to read aloud
_CODE_GROUPS = 4


class FundingProvider(Protocol):
    """A source of top-ups. ``name`` names its funding account and its idempotency keys."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class TopUp:
    transfer_id: int
    amount_minor: int
    balance_minor: int
    replayed: bool


def reader_account_owner(user_id: int) -> str:
    return f"user:{user_id}"


def record_topup(
    session: Session,
    *,
    provider: str,
    external_id: str,
    user_id: int,
    amount_minor: int,
    asset: Asset,
    now: dt.datetime,
    reference: str | None = None,
) -> TopUp:
    """Credit a reader with money a provider received. Idempotent per (provider, external_id).
    ``reference`` (default ``<provider>:<external_id>``) names what proved the payment, e.g. the
    webhook event that credited it."""
    source = ledger.account(session, AccountKind.FUNDING, provider, asset, now)
    reader = ledger.account(session, AccountKind.READER, reader_account_owner(user_id), asset, now)
    posted = ledger.post_transfer(
        session,
        TransferRequest(
            debit_account_id=source.id,
            credit_account_id=reader.id,
            amount_minor=amount_minor,
            currency=asset.code,
            kind=TransferKind.TOPUP,
            idempotency_key=f"{provider}:{external_id}",
            reference=reference or f"{provider}:{external_id}",
        ),
        now,
    )
    return TopUp(
        posted.id, posted.amount_minor, ledger.balance(session, reader.id), posted.replayed
    )


def reader_balance(session: Session, user_id: int, asset: Asset, now: dt.datetime) -> int:
    reader = ledger.account(session, AccountKind.READER, reader_account_owner(user_id), asset, now)
    return reader.balance_minor


# --- vouchers -------------------------------------------------------------------------------


def normalize_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


def code_hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def new_code() -> str:
    """TRK-XXXX-XXXX-XXXX-XXXX: 16 characters of a 30-letter alphabet, ~78 random bits."""
    groups = [
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(_CODE_GROUPS)
    ]
    return "TRK-" + "-".join(groups)


def create_vouchers(
    session: Session, *, amount_minor: int, currency: str, count: int, now: dt.datetime
) -> list[str]:
    """Mint ``count`` codes. The codes are returned once; only their hashes are stored."""
    ledger.check_amount(amount_minor)
    codes = [new_code() for _ in range(count)]
    session.add_all(
        Voucher(
            code_hash=code_hash(code), amount_minor=amount_minor, currency=currency, created_at=now
        )
        for code in codes
    )
    session.flush()
    return codes


def redeem_voucher(
    session: Session, *, code: str, user_id: int, asset: Asset, now: dt.datetime
) -> TopUp:
    """Redeem a code once. Two redemptions racing: the conditional UPDATE lets exactly one win."""
    voucher = session.scalars(select(Voucher).where(Voucher.code_hash == code_hash(code))).first()
    if voucher is None or voucher.currency != asset.code:
        raise VoucherInvalid("no voucher has this code")
    claimed = session.execute(
        update(Voucher)
        .where(Voucher.id == voucher.id, Voucher.redeemed_by.is_(None))
        .values(redeemed_by=user_id, redeemed_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise VoucherAlreadyRedeemed("this voucher has already been redeemed")
    return record_topup(
        session,
        provider=VOUCHER_PROVIDER,
        external_id=str(voucher.id),
        user_id=user_id,
        amount_minor=voucher.amount_minor,
        asset=asset,
        now=now,
    )
