"""Private one-time payments: a price paid with tokens by nobody in particular. The request
carries no session; the tokens are the payment. The payee gets the tokens' value less the fee,
and a one-time receipt that states the price exactly as an identified payment's does
(docs/payments.md); receipts.md does not change, so every verifier and site keeps working.

A price takes ``ceil(price / value)`` tokens, exactly: the remainder (less than one token's
value) goes to the payee with the rest. Idempotent per Idempotency-Key (its row holds the
receipt's claims, so a retry re-signs the same receipt) and naturally: a token pays once. The
caller owns the transaction and signs the receipt after it committed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import money, payees, payments
from trickle.errors import (
    IdempotencyKeyReused,
    PayeeNotFound,
    TokenSpent,
    TooFewTokens,
    TooManyTokens,
)
from trickle.ledger.tokens import TokenSpend, post_token_spends
from trickle.models import PrivatePayment, SpentToken
from trickle.receipts import new_stream_id
from trickle.settings import Settings
from trickle.tokens import Token, TokenKey, TokenKeyRing

MAX_TOKENS = 256  # per payment: a body of at most 64 KiB (about 170 bytes a token)


@dataclasses.dataclass(frozen=True, slots=True)
class PrivatePaymentRequest:
    """What the extension asks to pay, and the tokens it pays with. ``request_hash`` names the
    whole request (tokens included): a retry must send the same."""

    idempotency_key: str
    request_hash: str
    payment_pointer: str
    origin: str
    amount_minor: int
    currency: str
    order_ref: str
    tokens: tuple[Token, ...]
    binding: str | None = None
    description: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PrivatePaid:
    payment: PrivatePayment
    token_count: int
    replayed: bool  # True: this Idempotency-Key had paid before; nothing moved now


def request_hash(canonical_body: str) -> str:
    return hashlib.sha256(canonical_body.encode()).hexdigest()


def pay(
    session: Session,
    request: PrivatePaymentRequest,
    ring: TokenKeyRing,
    settings: Settings,
    now: dt.datetime,
) -> PrivatePaid:
    """Pay once with tokens: check every token (``TokenKeyRing.check``), record them spent, move
    their value from the float to the payee and the fee to the fee account, and keep the
    receipt's claims. Raises ``TooFewTokens``, ``TooManyTokens``, ``InvalidToken``,
    ``UnknownEpoch``, ``EpochExpired``, ``TokenSpent`` (naming the first token spent before),
    ``PayeeNotFound``, ``CurrencyMismatch``, ``InvalidAmount``, ``ValidationFailed`` or
    ``IdempotencyKeyReused``; a refused payment leaves nothing behind."""
    existing = _find(session, request.idempotency_key)
    if existing is not None:
        return _replay(existing, request)
    origin, description = payments.checked_order(request, settings)
    keys = _keys_for_price(request, ring)
    for index, token in enumerate(request.tokens):
        ring.check(token, now, index=index)
    payee = payees.payee_by_pointer(session, request.payment_pointer, settings, now)
    if payee is None:
        raise PayeeNotFound(f"no payee has the payment pointer {request.payment_pointer[:300]!r}")
    spends = _spends(request.tokens, keys, payee, origin, settings)
    paid = sum(spend.amount_minor for spend in spends)
    issued_at = int(now.timestamp())
    payment = PrivatePayment(
        idempotency_key=request.idempotency_key,
        request_hash=request.request_hash,
        payee_id=payee.id,
        payment_pointer=request.payment_pointer,
        origin=origin,
        amount_minor=request.amount_minor,
        paid_minor=paid,
        fee_minor=sum(spend.fee_minor for spend in spends),
        currency=ring.currency,
        scale=keys[0].scale,
        sid=new_stream_id(),
        jti=new_stream_id(),
        order_ref=request.order_ref,
        binding=request.binding,
        description=description,
        issued_at_s=issued_at,
        expires_at_s=issued_at + settings.receipt_ttl_s,
    )
    spends = [dataclasses.replace(spend, reference=payment.sid) for spend in spends]
    try:
        with session.begin_nested() as savepoint:
            # The row first: a racer with the same key waits on its unique index, then replays.
            session.add(payment)
            session.flush()
            posted = post_token_spends(session, spends, now)
            if not all(posted):
                savepoint.rollback()
    except IntegrityError:
        raced = _find(session, request.idempotency_key)
        if raced is None:
            raise
        return _replay(raced, request)
    if not all(posted):
        first = _first_spent(session, request.tokens, keys)
        raise TokenSpent(f"token {first} was spent or refunded before", index=first)
    return PrivatePaid(payment, len(request.tokens), replayed=False)


def _keys_for_price(request: PrivatePaymentRequest, ring: TokenKeyRing) -> list[TokenKey]:
    """Each token's key (by its epoch), once the tokens' values cover the price with none to
    spare: ``ceil(price / value)`` tokens when all are worth the same."""
    keys = [ring.key_of(token, index) for index, token in enumerate(request.tokens)]
    worth = sum(key.value_minor for key in keys)
    if worth < request.amount_minor:
        raise TooFewTokens(
            f"{len(keys)} tokens are worth {worth}, the price is {request.amount_minor}"
        )
    if worth - min(key.value_minor for key in keys) >= request.amount_minor:
        raise TooManyTokens(
            f"{len(keys)} tokens are worth {worth}: the price of {request.amount_minor} needs "
            "fewer (a price takes ceil(price / value) tokens)"
        )
    return keys


def _spends(
    tokens: Sequence[Token],
    keys: Sequence[TokenKey],
    payee: payees.PayeeInfo,
    origin: str,
    settings: Settings,
) -> list[TokenSpend]:
    """One spend per epoch among the tokens: its value to the payee, the fee of it to the fee
    account."""
    by_epoch: dict[int, list[Token]] = {}
    for token in tokens:
        by_epoch.setdefault(token.epoch, []).append(token)
    values = {key.epoch: key for key in keys}
    spends = []
    for epoch, group in sorted(by_epoch.items()):
        key = values[epoch]
        amount = len(group) * key.value_minor
        spends.append(
            TokenSpend(
                currency=key.currency,
                epoch=epoch,
                nullifiers=tuple(token.nullifier for token in group),
                payee_account_id=payee.account_id,
                fee_account_id=payee.fee_account_id,
                amount_minor=amount,
                fee_minor=money.fee_of(amount, settings.fee_bps),
                origin=origin,
            )
        )
    return spends


def _first_spent(session: Session, tokens: Sequence[Token], keys: Sequence[TokenKey]) -> int | None:
    spent = set(
        session.scalars(
            select(SpentToken.nullifier).where(
                SpentToken.nullifier.in_([token.nullifier for token in tokens])
            )
        )
    )
    for index, (token, key) in enumerate(zip(tokens, keys, strict=True)):
        if token.nullifier in spent and key.epoch == token.epoch:
            return index
    return None


def _find(session: Session, idempotency_key: str) -> PrivatePayment | None:
    return session.scalars(
        select(PrivatePayment).where(PrivatePayment.idempotency_key == idempotency_key)
    ).first()


def _replay(payment: PrivatePayment, request: PrivatePaymentRequest) -> PrivatePaid:
    if payment.request_hash != request.request_hash:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {request.idempotency_key!r} paid for another request"
        )
    return PrivatePaid(payment, len(request.tokens), replayed=True)


def by_sid(session: Session, sid: str) -> PrivatePayment | None:
    return session.scalars(select(PrivatePayment).where(PrivatePayment.sid == sid)).first()
