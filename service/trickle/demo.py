"""Demo data: a funded reader, a creator and a payee, so a new user sees money move at once.

Development only; idempotent (running it again changes nothing that exists).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from trickle import accounts, funding, payees
from trickle.db import transaction
from trickle.errors import ConfigError
from trickle.ledger import asset_of
from trickle.models import Payee, User
from trickle.runtime import Runtime

READER_EMAIL = "reader@demo.trickle.test"
CREATOR_EMAIL = "creator@demo.trickle.test"
DEMO_PASSWORD = "trickle-demo-password"  # noqa: S105 - a published demo credential, dev only
PAYEE_NAME = "demo"
TOP_UP_MINOR = 5_000_000_000  # 5.00 at scale 9


@dataclasses.dataclass(frozen=True)
class DemoAccounts:
    reader_email: str
    creator_email: str
    password: str
    payment_pointer: str
    reader_balance_minor: int


def seed(runtime: Runtime) -> DemoAccounts:
    settings = runtime.settings
    if settings.env == "production":
        raise ConfigError("the demo data is for development only")
    asset = asset_of(settings)
    now = runtime.clock()
    with transaction(runtime.sessions) as session:
        reader = session.scalars(select(User).where(User.email == READER_EMAIL)).first()
        if reader is None:
            reader = accounts.sign_up(
                session, email=READER_EMAIL, password=DEMO_PASSWORD, now=now, settings=settings
            ).user
            (code,) = funding.create_vouchers(
                session, amount_minor=TOP_UP_MINOR, currency=asset.code, count=1, now=now
            )
            funding.redeem_voucher(session, code=code, user_id=reader.id, asset=asset, now=now)
        creator = session.scalars(select(User).where(User.email == CREATOR_EMAIL)).first()
        if creator is None:
            creator = accounts.sign_up(
                session, email=CREATOR_EMAIL, password=DEMO_PASSWORD, now=now, settings=settings
            ).user
        if session.scalars(select(Payee).where(Payee.name == PAYEE_NAME)).first() is None:
            payees.create(
                session,
                user_id=creator.id,
                name=PAYEE_NAME,
                display_name="Demo Creator",
                settings=settings,
                now=now,
            )
        balance = funding.reader_balance(session, reader.id, asset, now)
    return DemoAccounts(
        READER_EMAIL,
        CREATOR_EMAIL,
        DEMO_PASSWORD,
        payees.payment_pointer(settings, PAYEE_NAME),
        balance,
    )
