"""The money of private-payment tokens (docs/tokens.md): one token-float account per asset holds
what every outstanding token is worth.

- issuing: reader -> float (``token_issue``), counted against the reader's monthly budget with
  the one budget rule (``charges.add_spend``);
- spending: float -> payee (``token_spend``) and the fee payee -> fee account, with no reader
  anywhere: the tokens' nullifiers are recorded spent in the same transaction, and a token
  already recorded moves nothing;
- refunding: float -> reader (``token_refund``), the tokens recorded as refunded.

A ``spent_tokens`` row holds the currency, the epoch, the nullifier, whether it was spent or
refunded, and the day: nothing that names a reader, a session, a transfer or a site. The caller
owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from trickle.db import DriverCursor, transaction
from trickle.errors import BudgetExhausted, InvalidAmount
from trickle.ledger import plan, postgres, sqlite
from trickle.ledger.accounts import AccountKind, Asset, account
from trickle.ledger.batches import post_steps, stored_time
from trickle.ledger.charges import add_spend
from trickle.ledger.plan import BatchRefused, Spend
from trickle.ledger.transfers import (
    PostedTransfer,
    TransferKind,
    TransferRequest,
    check_amount,
    post_transfer,
)
from trickle.models import TokenKey

FLOAT_OWNER = "tokens"  # the one token-float account per asset


def float_account(session: Session, asset: Asset, now: dt.datetime) -> int:
    """The token float of this asset (created on first use)."""
    return account(session, AccountKind.TOKEN_FLOAT, FLOAT_OWNER, asset, now).id


@dataclasses.dataclass(frozen=True, slots=True)
class TokenSpend:
    """Tokens of one epoch that pay one payee: their value (``len(nullifiers)`` x the epoch's
    ``value_minor``, checked) moves float -> payee, and ``fee_minor`` (``money.fee_of`` of it)
    payee -> fee account, keyed by the first nullifier. ``origin`` and ``reference`` (a receipt's
    ``sid``) go on the transfers as on a charge's, for the payee's earnings per site."""

    currency: str
    epoch: int
    nullifiers: tuple[bytes, ...]
    payee_account_id: int
    fee_account_id: int
    amount_minor: int
    fee_minor: int
    origin: str | None = None
    reference: str | None = None

    @property
    def key(self) -> str:
        """The transfers' idempotency key: a fresh nullifier is never posted twice."""
        return f"token:{self.nullifiers[0].hex()}"


def post_token_spends(
    session: Session, spends: Sequence[TokenSpend], now: dt.datetime
) -> list[bool]:
    """Record each spend's nullifiers spent and move its money; per spend, True when it was
    posted, False when one of its tokens was spent (or refunded) before, or earlier in this
    same list: nothing of that spend is recorded or moves. Safe against racers in other
    transactions and processes: a nullifier is inserted once (its primary key), and a racer
    that inserts it too waits for this transaction, then finds it. Raises ``InvalidAmount``
    if a spend's amount is not its tokens' value (a caller's bug: nothing is posted)."""
    if not spends:
        return []
    floats = _check_values(session, spends, now)
    fresh = _first_claims(spends)
    while True:
        candidates = [i for i, ok in enumerate(fresh) if ok]
        if not candidates:
            break
        with session.begin_nested() as savepoint:
            inserted = _insert(session, [spends[i] for i in candidates], "spend", now)
            stale = [
                i
                for i in candidates
                if any(
                    (spends[i].currency, spends[i].epoch, n) not in inserted
                    for n in spends[i].nullifiers
                )
            ]
            if not stale:
                _post([spends[i] for i in candidates], floats, session, now)
                break
            savepoint.rollback()
        # Some tokens were spent by another transaction: try again without their spends (each
        # round drops at least one spend, so this ends).
        for i in stale:
            fresh[i] = False
    return fresh


def _first_claims(spends: Sequence[TokenSpend]) -> list[bool]:
    """Per spend, whether none of its tokens is claimed by an earlier spend of the list."""
    claimed: set[tuple[str, int, bytes]] = set()
    result = []
    for spend in spends:
        keys = [(spend.currency, spend.epoch, n) for n in spend.nullifiers]
        ok = bool(keys) and len(set(keys)) == len(keys) and not claimed.intersection(keys)
        if ok:
            claimed.update(keys)
        result.append(ok)
    return result


def _check_values(
    session: Session, spends: Sequence[TokenSpend], now: dt.datetime
) -> dict[str, int]:
    """Every spend's amount is its tokens' value under its epoch's key, and its fee within it;
    returns the float account of each currency."""
    values = _key_values(session, {s.epoch for s in spends})
    _check_amounts(spends, values)
    floats: dict[str, int] = {}
    for spend in spends:
        if spend.currency not in floats:
            _, scale = values[spend.currency, spend.epoch]
            floats[spend.currency] = float_account(session, Asset(spend.currency, scale), now)
    return floats


def _key_values(session: Session, epochs: Iterable[int]) -> dict[tuple[str, int], tuple[int, int]]:
    """(currency, epoch) -> (a token's value, the asset's scale), of these epochs' keys."""
    return {
        (currency, epoch): (value, scale)
        for currency, epoch, value, scale in session.execute(
            select(TokenKey.currency, TokenKey.epoch, TokenKey.value_minor, TokenKey.scale).where(
                TokenKey.epoch.in_(sorted(set(epochs)))
            )
        )
    }


def _check_amounts(
    spends: Sequence[TokenSpend], values: dict[tuple[str, int], tuple[int, int]]
) -> None:
    """``InvalidAmount`` unless every spend's amount is its tokens' value and its fee fits."""
    for spend in spends:
        found = values.get((spend.currency, spend.epoch))
        if found is None:
            raise InvalidAmount(f"no token key of {spend.currency} for epoch {spend.epoch}")
        value, _ = found
        if check_amount(spend.amount_minor) != len(spend.nullifiers) * value:
            raise InvalidAmount(
                f"{len(spend.nullifiers)} tokens of epoch {spend.epoch} are worth "
                f"{len(spend.nullifiers) * value}, not {spend.amount_minor}"
            )
        if not 0 <= spend.fee_minor <= spend.amount_minor:
            raise InvalidAmount(f"a fee of {spend.fee_minor} does not fit {spend.amount_minor}")


def _insert(
    session: Session, spends: Iterable[TokenSpend], use: str, now: dt.datetime
) -> set[tuple[str, int, bytes]]:
    """Insert the spends' nullifiers unless present (each database's own statement, through the
    driver); the ones inserted now."""
    rows = _nullifier_rows(spends, use, now)
    session.flush()
    connection = session.connection()
    cursor = DriverCursor(connection)
    if connection.dialect.name == "postgresql":
        return postgres.insert_nullifiers(cursor, rows)
    return sqlite.insert_nullifiers(cursor, rows)


def _nullifier_rows(
    spends: Iterable[TokenSpend], use: str, now: dt.datetime
) -> list[tuple[str, int, bytes, str, dt.date]]:
    day = now.astimezone(dt.UTC).date()
    return [(s.currency, s.epoch, n, use, day) for s in spends for n in s.nullifiers]


def _post(
    spends: Sequence[TokenSpend], floats: dict[str, int], session: Session, now: dt.datetime
) -> None:
    """The spends' transfers, as one batch: float -> payees, then payees -> fee account."""
    steps = _transfers(spends, floats)
    session.flush()
    try:
        post_steps(session.connection(), steps, now)
    except BatchRefused:
        # Cannot happen while the ledger holds (the float covers every unspent token): post
        # them one by one, so that the rule that was broken raises its own error.
        for request in steps[0] + steps[1]:
            post_transfer(session, request, now)


def _transfers(
    spends: Sequence[TokenSpend], floats: dict[str, int]
) -> tuple[list[TransferRequest], list[TransferRequest]]:
    """The spends' two steps: float -> payees, then payees -> fee account."""
    paid = [
        TransferRequest(
            floats[s.currency],
            s.payee_account_id,
            s.amount_minor,
            s.currency,
            TransferKind.TOKEN_SPEND,
            s.key,
            s.origin,
            s.reference,
        )
        for s in spends
    ]
    fees = [
        TransferRequest(
            s.payee_account_id,
            s.fee_account_id,
            s.fee_minor,
            s.currency,
            TransferKind.FEE,
            s.key,
            s.origin,
            s.reference,
        )
        for s in spends
        if s.fee_minor > 0
    ]
    return paid, fees


# --- the private stream's group commit -----------------------------------------------------


class SpendGroups:
    """Posts the private stream's groups of spends in transactions of their own, the way
    ``stage_charges`` posts the identified streams' (``batches``): what a group writes is
    planned once (``plan``) and run with each database's own statements through the driver.
    It keeps what never changes once read: each epoch's token value and each currency's float
    account.

    ``stage`` works on the caller's thread and returns ``finish``, for another thread, which
    commits and returns, per spend, whether it was posted (as ``post_token_spends``). Nothing
    is durable before ``finish`` returned. The common case, every token fresh, is a few
    statements: on SQLite the nullifiers (``executemany``) and the balances on the caller's
    thread, the transfer rows' one statement and the COMMIT in ``finish``; on PostgreSQL
    everything in ``finish`` (two statements: the nullifiers, then the batch). Otherwise the
    transaction rolls back and ``finish`` posts the group with ``post_token_spends`` (rare: a
    token spent twice)."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session]) -> None:
        self._engine = engine
        self._sessions = sessions
        self._values: dict[tuple[str, int], tuple[int, int]] = {}
        self._floats: dict[str, int] = {}

    def stage(self, spends: Sequence[TokenSpend], now: dt.datetime) -> Callable[[], list[bool]]:
        """Raises ``InvalidAmount`` (a caller's bug: nothing is posted)."""
        if not spends:
            return list
        self._learn(spends, now)
        _check_amounts(spends, self._values)
        if not all(_first_claims(spends)):
            return self._one_by_one(spends, now)
        rows = _nullifier_rows(spends, "spend", now)
        try:
            batch = plan.batch(_transfers(spends, self._floats))
        except BatchRefused:  # a sum past 2^63-1
            return self._one_by_one(spends, now)
        created_at = stored_time(self._engine.dialect, now)
        if self._engine.dialect.name == "postgresql":
            return self._postgres(spends, rows, batch, created_at, now)
        staged = sqlite.open_batch(
            self._engine,
            batch,
            created_at,
            read=lambda cursor, batch: [True] * len(spends),
            first=lambda cursor: sqlite.insert_fresh_nullifiers(cursor, rows),
        )
        return staged if staged is not None else self._one_by_one(spends, now)

    def _postgres(
        self,
        spends: Sequence[TokenSpend],
        rows: list[tuple[str, int, bytes, str, dt.date]],
        batch: plan.Batch,
        created_at: object,
        now: dt.datetime,
    ) -> Callable[[], list[bool]]:
        def finish() -> list[bool]:
            try:
                with self._engine.begin() as connection:
                    cursor = DriverCursor(connection)
                    if len(postgres.insert_nullifiers(cursor, rows)) != len(rows):
                        raise BatchRefused("a token was spent before")
                    postgres.post(cursor, batch, created_at)
            except BatchRefused:  # rolled back
                return self._one_by_one(spends, now)()
            return [True] * len(spends)

        return finish

    def _one_by_one(
        self, spends: Sequence[TokenSpend], now: dt.datetime
    ) -> Callable[[], list[bool]]:
        def finish() -> list[bool]:
            with transaction(self._sessions) as session:
                return post_token_spends(session, spends, now)

        return finish

    def _learn(self, spends: Sequence[TokenSpend], now: dt.datetime) -> None:
        """Read what this group needs and was not read before (a new epoch or currency: rare),
        in a short transaction of its own (it may create the currency's float account)."""
        if all(
            (s.currency, s.epoch) in self._values and s.currency in self._floats for s in spends
        ):
            return
        with transaction(self._sessions) as session:
            self._values.update(_key_values(session, {s.epoch for s in spends}))
            for spend in spends:
                found = self._values.get((spend.currency, spend.epoch))
                if spend.currency not in self._floats and found is not None:
                    asset = Asset(spend.currency, found[1])
                    self._floats[spend.currency] = float_account(session, asset, now)


# --- issuing and refunding ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TokenIssue:
    """A reader buys tokens: ``amount_minor`` (count x value) moves reader -> float and counts
    against the month's budget."""

    user_id: int
    reader_account_id: int
    asset: Asset
    amount_minor: int
    key: str  # the transfer's idempotency key: unique per issuance
    budget_minor: int
    month: str


def post_token_issue(session: Session, issue: TokenIssue, now: dt.datetime) -> PostedTransfer:
    """All or nothing (a savepoint): count the amount against the month's budget, then debit the
    reader into the float. Raises ``BudgetExhausted``, ``InsufficientFunds`` and whatever else
    ``post_transfer`` raises."""
    with session.begin_nested():
        spend = Spend(issue.user_id, issue.month, issue.amount_minor, issue.budget_minor)
        if not add_spend(session, spend):
            raise BudgetExhausted(
                f"buying {issue.amount_minor} minor units of tokens would pass the monthly "
                f"budget of {issue.budget_minor}"
            )
        return post_transfer(
            session,
            TransferRequest(
                issue.reader_account_id,
                float_account(session, issue.asset, now),
                issue.amount_minor,
                issue.asset.code,
                TransferKind.TOKEN_ISSUE,
                issue.key,
            ),
            now,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TokenRefund:
    """A reader gives back unspent tokens of one epoch: their value moves float -> reader."""

    currency: str
    epoch: int
    nullifiers: tuple[bytes, ...]
    reader_account_id: int
    asset: Asset
    amount_minor: int
    key: str  # the transfer's idempotency key: unique per refund and epoch


def post_token_refunds(
    session: Session, refunds: Sequence[TokenRefund], now: dt.datetime
) -> list[bytes]:
    """Record every refund's nullifiers refunded and move their value back, all or nothing: the
    nullifiers that were spent or refunded before (or repeat) are returned and nothing is
    recorded or moves (the savepoint rolls back). Empty: all posted. Raises ``InvalidAmount``
    for an amount that is not the tokens' value."""
    spends = [
        TokenSpend(r.currency, r.epoch, r.nullifiers, r.reader_account_id, 0, r.amount_minor, 0)
        for r in refunds
    ]
    _check_values(session, spends, now)
    seen: set[tuple[str, int, bytes]] = set()
    repeated = []
    for r in refunds:
        for n in r.nullifiers:
            if (r.currency, r.epoch, n) in seen:
                repeated.append(n)
            seen.add((r.currency, r.epoch, n))
    if repeated:
        return repeated
    with session.begin_nested() as savepoint:
        inserted = _insert(session, spends, "refund", now)
        missing = [key[2] for key in sorted(seen) if key not in inserted]
        if missing:
            savepoint.rollback()
            return missing
        for r in refunds:
            post_transfer(
                session,
                TransferRequest(
                    float_account(session, r.asset, now),
                    r.reader_account_id,
                    r.amount_minor,
                    r.currency,
                    TransferKind.TOKEN_REFUND,
                    r.key,
                ),
                now,
            )
    return []
