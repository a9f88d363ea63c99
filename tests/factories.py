"""Test factories: users with live sessions, funded readers, payees — straight through the
domain layer, so feature tests need not depend on each other's endpoints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from trickle import ledger, sessions, tokens, voprf
from trickle.db import transaction
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.models import Payee, SiteVerification, User
from trickle.runtime import Runtime


@dataclasses.dataclass(frozen=True)
class TestUser:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def asset(runtime: Runtime) -> Asset:
    return Asset(runtime.settings.currency, runtime.settings.asset_scale)


def create_user(runtime: Runtime, email: str | None = None) -> TestUser:
    email = email or f"user-{secrets.token_hex(4)}@example.test"
    now = runtime.clock()
    with transaction(runtime.sessions) as session:
        user = User(email=email, password_hash="!unusable", created_at=now)
        session.add(user)
        session.flush()
        issued = sessions.create(session, user.id, now, dt.timedelta(days=1))
        return TestUser(user.id, email, issued.token)


def fund_reader(runtime: Runtime, user_id: int, amount_minor: int, key: str | None = None) -> int:
    """Top up a reader from the test funding source; returns the new balance."""
    now = runtime.clock()
    with transaction(runtime.sessions) as session:
        source = ledger.account(session, AccountKind.FUNDING, "test", asset(runtime), now)
        reader = ledger.account(session, AccountKind.READER, f"user:{user_id}", asset(runtime), now)
        ledger.post_transfer(
            session,
            TransferRequest(
                source.id,
                reader.id,
                amount_minor,
                runtime.settings.currency,
                TransferKind.TOPUP,
                key or secrets.token_hex(8),
            ),
            now,
        )
        return ledger.balance(session, reader.id)


def create_payee(runtime: Runtime, user_id: int, name: str | None = None) -> Payee:
    name = name or f"payee-{secrets.token_hex(3)}"
    with transaction(runtime.sessions) as session:
        payee = Payee(
            user_id=user_id,
            name=name,
            display_name=name.title(),
            currency=runtime.settings.currency,
            created_at=runtime.clock(),
        )
        session.add(payee)
        session.flush()
        return payee


def add_site(runtime: Runtime, payee_id: int, origin: str, *, verified: bool = True) -> None:
    """A site of the payee, proven (``verified``) or only started, as the guided check leaves it."""
    with transaction(runtime.sessions) as session:
        session.add(
            SiteVerification(
                payee_id=payee_id,
                origin=origin,
                token=f"token-{secrets.token_hex(8)}",
                created_at=runtime.clock(),
                verified_at=runtime.clock() if verified else None,
            )
        )


@dataclasses.dataclass(frozen=True)
class ChargeAccounts:
    """A reader, funded, and a payee with its fee account: what a ledger charge moves between."""

    user_id: int
    reader: int
    payee: int
    fee: int


def charge_of(
    accounts: ChargeAccounts,
    amount: int,
    key: str,
    month: str,
    **changes: object,
) -> ledger.Charge:
    """A streamed increment's charge between ``charge_accounts``' accounts (in USD, for
    https://blog.example, no fee, a budget of 1,000); ``changes`` set any other field."""
    charge = ledger.Charge(
        user_id=accounts.user_id,
        reader_account_id=accounts.reader,
        payee_account_id=accounts.payee,
        fee_account_id=accounts.fee,
        currency="USD",
        amount_minor=amount,
        fee_minor=0,
        key=key,
        origin="https://blog.example",
        budget_minor=1_000,
        month=month,
    )
    return dataclasses.replace(charge, **changes)  # type: ignore[arg-type]


def charge_accounts(runtime: Runtime, funded_minor: int, payee_name: str) -> ChargeAccounts:
    now = runtime.clock()
    user = create_user(runtime)
    creator = create_user(runtime)
    payee = create_payee(runtime, creator.id, payee_name)
    with transaction(runtime.sessions) as session:
        source = ledger.account(session, AccountKind.FUNDING, "test", asset(runtime), now)
        reader = ledger.account(session, AccountKind.READER, f"user:{user.id}", asset(runtime), now)
        earnings = ledger.account(
            session, AccountKind.PAYEE, f"payee:{payee.id}", asset(runtime), now
        )
        fees = ledger.account(session, AccountKind.FEE, "platform", asset(runtime), now)
        request = TransferRequest(
            source.id, reader.id, funded_minor, "USD", TransferKind.TOPUP, "fund"
        )
        ledger.post_transfer(session, request, now)
        return ChargeAccounts(user.id, reader.id, earnings.id, fees.id)


def buy_tokens(
    runtime: Runtime, user_id: int, count: int, *, key: str | None = None
) -> list[tokens.Token]:
    """Tokens as the extension gets them: blind random inputs, have the service issue them
    (``tokens.issue``: the reader's balance pays), check the proof against the published key,
    unblind. The reader must be funded."""
    now = runtime.clock()
    ring = runtime.token_keys.current
    published = ring.issuing(tokens.epoch_of(now), now)
    inputs = [secrets.token_bytes(tokens.INPUT_BYTES) for _ in range(count)]
    blinded = [voprf.blind(data) for data in inputs]
    with transaction(runtime.sessions) as session:
        issued = tokens.issue(
            session,
            tokens.IssueRequest(
                user_id=user_id,
                idempotency_key=key or f"buy-{secrets.token_hex(8)}",
                currency=runtime.settings.currency,
                epoch=published.epoch,
                blinded=tuple(b.blinded_element for b in blinded),
            ),
            ring,
            runtime.settings,
            now,
            batch_max=runtime.settings.token_batch_max,
        )
    outputs = voprf.finalize_batch(published.public_key, blinded, issued.evaluated, issued.proof)
    return [
        tokens.Token(published.epoch, data, output)
        for data, output in zip(inputs, outputs, strict=True)
    ]
