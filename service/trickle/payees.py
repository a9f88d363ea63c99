"""Payees: a creator's receiving addresses. ``<issuer>/p/<name>`` is a payee's payment pointer;
its public description lists the site origins the creator proved to control. Finding the payee a
pointer names is shared by streaming and one-time payments."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import ledger
from trickle.errors import PayeeNameTaken, PayeeNotFound, ValidationFailed
from trickle.ledger import AccountKind, Asset
from trickle.models import LedgerAccount, Payee, SiteVerification
from trickle.settings import Settings
from trickle.text import clean_text

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
DISPLAY_NAME_MAX_CHARS = 200
FEE_ACCOUNT_OWNER = "platform"  # the one fee account (per asset) every payee pays its fees to
_POINTER_PATH = re.compile(r"/p/([a-z0-9][a-z0-9-]{0,63})")  # whole string: fullmatch


@dataclasses.dataclass(frozen=True, slots=True)
class PublicPayee:
    """What anyone may learn about a payee: what ``GET /p/{name}`` serves."""

    name: str
    display_name: str
    payment_pointer: str
    asset: Asset
    jwks_url: str
    verified_origins: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class PayeeInfo:
    """Where a payment to a payee goes: its earnings account, and the fee account it pays."""

    id: int
    pointer: str
    account_id: int
    fee_account_id: int


def account_owner(payee_id: int) -> str:
    return f"payee:{payee_id}"


def earnings_account(
    session: Session, payee: Payee, settings: Settings, now: dt.datetime
) -> LedgerAccount:
    """The payee's earnings account (created on first use)."""
    return ledger.account(
        session, AccountKind.PAYEE, account_owner(payee.id), ledger.asset_of(settings), now
    )


def fee_account(session: Session, settings: Settings, now: dt.datetime) -> LedgerAccount:
    """The platform's fee account (created on first use)."""
    asset = ledger.asset_of(settings)
    return ledger.account(session, AccountKind.FEE, FEE_ACCOUNT_OWNER, asset, now)


def payee_by_pointer(
    session: Session, pointer: str, settings: Settings, now: dt.datetime
) -> PayeeInfo | None:
    """The payee a payment pointer of this service names (``<issuer>/p/<name>``), or None."""
    issuer = settings.issuer
    if not pointer.startswith(issuer + "/"):
        return None
    match = _POINTER_PATH.fullmatch(pointer[len(issuer) :])
    if match is None:
        return None
    payee = session.scalars(select(Payee).where(Payee.name == match.group(1))).first()
    if payee is None or payee.currency != settings.currency:
        return None
    account = earnings_account(session, payee, settings, now)
    fees = fee_account(session, settings, now)
    return PayeeInfo(payee.id, pointer, account.id, fees.id)


def payment_pointer(settings: Settings, name: str) -> str:
    return f"{settings.issuer}/p/{name}"


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationFailed(
            "a payee name is 2-63 characters of a-z, 0-9 and '-', starting with a letter or "
            f"digit, got {name[:70]!r}"
        )
    return name


def _display_name(text: str | None, name: str) -> str:
    if text is None:
        return name
    return clean_text(text, field="display_name", max_chars=DISPLAY_NAME_MAX_CHARS)


def create(
    session: Session,
    *,
    user_id: int,
    name: str,
    display_name: str | None,
    settings: Settings,
    now: dt.datetime,
) -> Payee:
    """A new payee for the user, with its (empty) earnings account. Names are unique forever."""
    check_name(name)
    payee = Payee(
        user_id=user_id,
        name=name,
        display_name=_display_name(display_name, name),
        currency=settings.currency,
        created_at=now,
    )
    if session.scalar(select(Payee.id).where(Payee.name == name)) is not None:
        raise PayeeNameTaken(f"the payee name {name!r} is taken")
    try:
        with session.begin_nested():
            session.add(payee)
            session.flush()
    except IntegrityError:
        # A racer committed the same name between our check and our insert.
        raise PayeeNameTaken(f"the payee name {name!r} is taken") from None
    earnings_account(session, payee, settings, now)
    return payee


def list_for_user(session: Session, user_id: int) -> list[Payee]:
    return list(session.scalars(select(Payee).where(Payee.user_id == user_id).order_by(Payee.name)))


def owned(session: Session, user_id: int, name: str) -> Payee:
    """The user's payee of that name. Someone else's payee is ``PayeeNotFound`` too: whether a
    name exists is public (its pointer), but nothing else about it is."""
    payee = session.scalars(select(Payee).where(Payee.name == name)).first()
    if payee is None or payee.user_id != user_id:
        raise PayeeNotFound(f"you have no payee named {name[:70]!r}")
    return payee


def sites(session: Session, payee_ids: list[int]) -> dict[int, list[SiteVerification]]:
    """Every site (verified or pending) of each payee, by origin."""
    found: dict[int, list[SiteVerification]] = {payee_id: [] for payee_id in payee_ids}
    rows = session.scalars(
        select(SiteVerification)
        .where(SiteVerification.payee_id.in_(payee_ids))
        .order_by(SiteVerification.origin)
    )
    for row in rows:
        found[row.payee_id].append(row)
    return found


def describe(session: Session, name: str, settings: Settings) -> PublicPayee:
    """The public description of a payee (its payment pointer document)."""
    payee = session.scalars(select(Payee).where(Payee.name == name)).first()
    if payee is None:
        raise PayeeNotFound(f"no payee named {name[:70]!r}")
    origins = session.scalars(
        select(SiteVerification.origin)
        .where(SiteVerification.payee_id == payee.id, SiteVerification.verified_at.is_not(None))
        .order_by(SiteVerification.origin)
    )
    return PublicPayee(
        name=payee.name,
        display_name=payee.display_name,
        payment_pointer=payment_pointer(settings, payee.name),
        asset=Asset(payee.currency, settings.asset_scale),
        jwks_url=f"{settings.issuer}/.well-known/jwks.json",
        verified_origins=list(origins),
    )
