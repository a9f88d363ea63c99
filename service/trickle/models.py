"""SQLAlchemy models: the tables the service owns. Migrations in ``trickle/migrations``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC datetime is required")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SigningKey(Base):
    """An Ed25519 receipt-signing key. The private seed is sealed with the key-encryption key.

    A key is published from its creation, signs from ``activates_at`` until ``retired_at`` (the
    next key's ``activates_at``; none yet: it signs on), and stays published until every receipt
    it signed has expired. See ``keys.py``.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    activates_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


# --- accounts and authentication -------------------------------------------------------------


class User(Base):
    """A person: a reader, a creator, or both. Passwords are argon2id hashes (nacl.pwhash)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuthSession(Base):
    """A bearer token (or cookie session). Only the SHA-256 of the token is stored."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class RateLimitHit(Base):
    """A fixed-window counter, shared by every process (login attempts per account and per IP)."""

    __tablename__ = "rate_limit_hits"

    bucket: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class ReaderSettings(Base):
    """What the streaming engine enforces for a reader: rate, monthly budget, pause."""

    __tablename__ = "reader_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(12))
    rate_per_hour_minor: Mapped[int] = mapped_column(BigInteger)
    monthly_budget_minor: Mapped[int] = mapped_column(BigInteger)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        CheckConstraint("rate_per_hour_minor >= 0", name="rate_non_negative"),
        CheckConstraint("monthly_budget_minor >= 0", name="budget_non_negative"),
    )


class SiteOverride(Base):
    """A reader's per-site rule: a different hourly rate, or off."""

    __tablename__ = "site_overrides"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    origin: Mapped[str] = mapped_column(String(300), primary_key=True)
    rate_per_hour_minor: Mapped[int | None] = mapped_column(BigInteger, default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


# --- the ledger ----------------------------------------------------------------------------


class LedgerAccount(Base):
    """A ledger account. ``balance_minor`` = credits - debits, kept in step with the transfers
    in the same transaction. Only accounts with ``may_go_negative`` (money entering the system,
    e.g. funding sources) may fall below zero; the CHECK makes that a database rule too."""

    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(200))  # e.g. "user:12", "payee:3", "voucher"
    currency: Mapped[str] = mapped_column(String(12))
    scale: Mapped[int] = mapped_column(Integer)
    may_go_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint(
            "kind", "owner", "currency", name="uq_ledger_accounts_kind_owner_currency"
        ),
        CheckConstraint("may_go_negative OR balance_minor >= 0", name="no_overdraft"),
    )


class Transfer(Base):
    """One immutable movement of money: debit one account, credit another, same amount and asset.

    Never updated or deleted (database triggers refuse it); a correction is a new transfer.
    """

    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(12))
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str | None] = mapped_column(String(300), default=None)
    reference: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)

    __table_args__ = (
        UniqueConstraint(
            "debit_account_id",
            "credit_account_id",
            "kind",
            "idempotency_key",
            name="uq_transfers_idempotency",
        ),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
    )


# --- funding ------------------------------------------------------------------------------


class Voucher(Base):
    """A prepaid code minted by the operator. Only the SHA-256 of the code is stored."""

    __tablename__ = "vouchers"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    redeemed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)


# --- creators ------------------------------------------------------------------------------


class Payee(Base):
    """A creator's receiving address: ``<public url>/p/<name>`` is its payment pointer."""

    __tablename__ = "payees"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class SiteVerification(Base):
    """A creator's claim to a site origin, proven by a token at /.well-known/trickle.txt."""

    __tablename__ = "site_verifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    payee_id: Mapped[int] = mapped_column(ForeignKey("payees.id"), index=True)
    origin: Mapped[str] = mapped_column(String(300))
    token: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (UniqueConstraint("payee_id", "origin", name="uq_site_verifications_origin"),)


class Payout(Base):
    """A claim of earnings: pending until the payout provider reports it paid or failed."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    payee_id: Mapped[int] = mapped_column(ForeignKey("payees.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(12))
    provider: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # pending | paid | failed
    idempotency_key: Mapped[str] = mapped_column(String(200))
    external_reference: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (
        UniqueConstraint("payee_id", "idempotency_key", name="uq_payouts_idempotency"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )


# --- API idempotency ----------------------------------------------------------------------


class IdempotentRequest(Base):
    """The first response to a money-moving request, replayed for a retry with the same key."""

    __tablename__ = "idempotent_requests"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- spending -----------------------------------------------------------------------------


class MonthlySpend(Base):
    """What a reader has paid (streams and payments) in one calendar month (UTC), kept in step
    with the ledger in the same transaction so the budget cap holds across processes."""

    __tablename__ = "monthly_spend"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-11"
    spent_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("spent_minor >= 0", name="spent_non_negative"),)


class ReaderRate(Base):
    """A reader's streaming allowance (``ledger.plan.rate_sums``): a token bucket, drawn by every
    streamed increment on every node in the transaction that pays it, so that all of a reader's
    streams together never pay more than their rate (plus one burst). Units: minor units x ms
    per hour, so a charge of A minor units costs A x 3,600,000 and an hour at R minor units/h
    refills R x 3,600,000."""

    __tablename__ = "reader_rates"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    allowance: Mapped[int] = mapped_column(BigInteger)  # at as_of_ms, after its last charge
    as_of_ms: Mapped[int] = mapped_column(BigInteger)  # the latest clock a charge brought (ms)
    # the rate and burst of its last charge: capacity = rate x burst_ms
    rate_per_hour_minor: Mapped[int] = mapped_column(BigInteger)
    burst_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("allowance >= 0", name="allowance_non_negative"),
        CheckConstraint("as_of_ms >= 0", name="as_of_non_negative"),
        CheckConstraint("rate_per_hour_minor >= 0", name="rate_non_negative"),
        CheckConstraint("burst_ms >= 0", name="burst_non_negative"),
    )


# --- one-time payments --------------------------------------------------------------------


class Payment(Base):
    """A one-time payment (a purchase or a tip): what its receipt says, kept so a retry with the
    same idempotency key re-signs the same receipt, and so the reader can list their purchases.
    The money is the ``payment`` transfer (and its ``fee``) keyed ``payment:<idempotency key>``."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    payee_id: Mapped[int] = mapped_column(ForeignKey("payees.id"), index=True)
    payment_pointer: Mapped[str] = mapped_column(String(300))
    origin: Mapped[str] = mapped_column(String(300))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(12))
    scale: Mapped[int] = mapped_column(Integer)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    jti: Mapped[str] = mapped_column(String(64))
    order_ref: Mapped[str] = mapped_column(String(128))
    binding: Mapped[str | None] = mapped_column(String(256), default=None)
    description: Mapped[str | None] = mapped_column(String(200), default=None)
    issued_at_s: Mapped[int] = mapped_column(BigInteger)
    expires_at_s: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_payments_idempotency"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("fee_minor >= 0 AND fee_minor <= amount_minor", name="fee_in_range"),
    )


# --- card top-ups (docs/funding.md) ---------------------------------------------------------


class Topup(Base):
    """A reader's card top-up through a payment provider (Stripe Checkout): ``pending`` until the
    provider says the payment succeeded (``credited``) or will not (``failed``); later maybe
    ``refunded`` or ``disputed``. Amounts in Trickle's minor units, ``provider_amount`` in the
    provider currency's; ``public_id`` names the top-up at the provider (metadata, idempotency
    keys), so that two deployments sharing one Stripe account never mistake each other's."""

    __tablename__ = "topups"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(12))
    scale: Mapped[int] = mapped_column(Integer)
    provider_amount: Mapped[int] = mapped_column(BigInteger)
    provider_currency: Mapped[str] = mapped_column(String(12))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    checkout_url: Mapped[str | None] = mapped_column(Text, default=None)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    failure_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    credited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    credited_event_id: Mapped[str | None] = mapped_column(String(255), default=None)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    dispute_id: Mapped[str | None] = mapped_column(String(255), default=None)
    dispute_status: Mapped[str | None] = mapped_column(String(32), default=None)
    disputed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    dispute_reader_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    dispute_loss_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    loss_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("provider_amount > 0", name="provider_amount_positive"),
        CheckConstraint(
            "state IN ('pending', 'credited', 'failed', 'refunded', 'disputed')", name="state_known"
        ),
        CheckConstraint(
            "refunded_minor >= 0 AND disputed_minor >= 0 "
            "AND refunded_minor + disputed_minor <= amount_minor",
            name="taken_back_in_range",
        ),
        CheckConstraint(
            "dispute_reader_minor >= 0 AND dispute_loss_minor >= 0 AND loss_minor >= 0",
            name="parts_non_negative",
        ),
    )


class StripeEvent(Base):
    """A Stripe webhook event, stored in the transaction that applied it (or decided to ignore
    it): a redelivery finds its id and changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    topup_id: Mapped[int | None] = mapped_column(ForeignKey("topups.id"), index=True, default=None)
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AccountFreeze(Base):
    """A hold on a reader's spending after a card payment was taken back (a dispute, or a refund
    of money already spent). The reader is frozen while any freeze of theirs is not lifted."""

    __tablename__ = "account_freezes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    topup_id: Mapped[int | None] = mapped_column(ForeignKey("topups.id"), default=None)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    lifted_note: Mapped[str | None] = mapped_column(String(200), default=None)


# --- private-payment tokens (docs/tokens.md) -------------------------------------------------


class TokenKey(Base):
    """A VOPRF token key: one per currency and epoch (a UTC month), the same for every reader.
    Issues from ``issue_from`` to ``issue_until``; its tokens pay until ``spend_until`` and are
    refundable after. The secret scalar is sealed with the key-encryption key, as signing keys
    are. ``value_minor`` is every token's value under this key (a setting read when it was made)."""

    __tablename__ = "token_keys"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(12))
    epoch: Mapped[int] = mapped_column(Integer)  # YYYYMM
    value_minor: Mapped[int] = mapped_column(BigInteger)
    scale: Mapped[int] = mapped_column(Integer)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    sealed_secret_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    issue_from: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    issue_until: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    spend_until: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("currency", "epoch", name="uq_token_keys_currency_epoch"),
        CheckConstraint("value_minor > 0", name="value_positive"),
    )


class TokenIssuance(Base):
    """A batch of tokens a reader bought: authenticated, so it names the reader. ``evaluated``
    is the answer (the evaluated elements, 32 bytes each, then the 64-byte proof), replayed for
    a retry with the same Idempotency-Key. The money is the ``token_issue`` transfer."""

    __tablename__ = "token_issuances"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(12))
    epoch: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    evaluated: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_token_issuances_idempotency"),
        CheckConstraint("count > 0", name="count_positive"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )


class SpentToken(Base):
    """A token that paid (``spend``) or went back to its holder (``refund``): its nullifier, the
    SHA-256 of its input. Deliberately nothing else: no user, no session, no transfer, no site,
    and the day only, so that no row ties a reader to where their tokens went."""

    __tablename__ = "spent_tokens"

    currency: Mapped[str] = mapped_column(String(12))
    epoch: Mapped[int] = mapped_column(Integer)
    nullifier: Mapped[bytes] = mapped_column(LargeBinary(32))
    use: Mapped[str] = mapped_column(String(8))
    day: Mapped[dt.date] = mapped_column(Date)

    __table_args__ = (
        PrimaryKeyConstraint("currency", "epoch", "nullifier", name="pk_spent_tokens"),
        CheckConstraint("use IN ('spend', 'refund')", name="use_known"),
    )


class PrivatePayment(Base):
    """A one-time payment made with tokens: what its receipt says, kept so that a retry with the
    same Idempotency-Key re-signs the same receipt. No user: the payer is anonymous. The money
    is one ``token_spend`` transfer per epoch of the tokens shown (and its ``fee``)."""

    __tablename__ = "private_payments"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    payee_id: Mapped[int] = mapped_column(ForeignKey("payees.id"), index=True)
    payment_pointer: Mapped[str] = mapped_column(String(300))
    origin: Mapped[str] = mapped_column(String(300))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # the price asked
    paid_minor: Mapped[int] = mapped_column(BigInteger)  # tokens x value: at least the price
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(12))
    scale: Mapped[int] = mapped_column(Integer)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    jti: Mapped[str] = mapped_column(String(64))
    order_ref: Mapped[str] = mapped_column(String(128))
    binding: Mapped[str | None] = mapped_column(String(256), default=None)
    description: Mapped[str | None] = mapped_column(String(200), default=None)
    issued_at_s: Mapped[int] = mapped_column(BigInteger)
    expires_at_s: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("paid_minor >= amount_minor", name="paid_covers_amount"),
        CheckConstraint("fee_minor >= 0 AND fee_minor <= paid_minor", name="fee_in_range"),
    )


# --- several service nodes on one PostgreSQL (``trickle.nodes``); unused on SQLite ---------------


class StreamNode(Base):
    """A running service process on PostgreSQL. It is alive while it holds its advisory lock
    (``nodes.NODE_LOCK_CLASS``, ``id``); ``seen_at`` is its heartbeat, so a dead node's streams
    are resumable for the grace period after it was last seen."""

    __tablename__ = "stream_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class StreamPosition(Base):
    """What a stream needs to resume on any node: written in the transaction of each of its
    increments (so it is exactly what the ledger holds), with the claims of its latest receipt
    (re-signed identically elsewhere: Ed25519 is deterministic). ``node`` and ``epoch`` say who
    holds it; ``released_at`` when its connection dropped (NULL: on a live connection)."""

    __tablename__ = "stream_positions"

    sid: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    node: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    origin: Mapped[str] = mapped_column(String(300))
    pointer: Mapped[str] = mapped_column(String(300))
    binding: Mapped[str | None] = mapped_column(String(256), default=None)
    seq: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    kid: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(64))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    ended: Mapped[bool] = mapped_column(Boolean, default=False)


class ReaderPresence(Base):
    """A reader's open connections and active streams on one node: the socket cap and the rate
    share count every live node's rows."""

    __tablename__ = "reader_presence"

    user_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    node: Mapped[int] = mapped_column(Integer, primary_key=True)
    connections: Mapped[int] = mapped_column(Integer, default=0)
    active_streams: Mapped[int] = mapped_column(Integer, default=0)
