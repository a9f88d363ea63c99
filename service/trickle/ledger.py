"""The double-entry, append-only ledger: accounts, transfers, balances and their invariants.

The rules (docs/ledger.md): every transfer debits one account and credits another by the same
positive integer amount in one asset; transfers are never updated or deleted; an account's balance
equals its credits minus its debits and is kept in step in the same transaction; only accounts
marked ``may_go_negative`` (where money enters the system) go below zero; per asset, all balances
sum to zero; the same (debit, credit, kind, idempotency key) posts at most once.

The debit is one conditional ``UPDATE ... WHERE balance_minor >= amount``: atomic on PostgreSQL
under READ COMMITTED (the row lock makes a racing debit re-check the new balance) and on SQLite
(every transaction is BEGIN IMMEDIATE). Domain code: the caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trickle import money
from trickle.db import DriverCursor
from trickle.errors import (
    AccountNotFound,
    AmountOverflow,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
)
from trickle.models import LedgerAccount, Transfer, UTCDateTime


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


class TransferKind(enum.StrEnum):
    TOPUP = "topup"
    STREAM = "stream"
    PAYMENT = "payment"
    FEE = "fee"
    CLAIM = "claim"
    PAYOUT_PAID = "payout_paid"
    PAYOUT_FAILED = "payout_failed"
    TOPUP_REVERSAL = "topup_reversal"  # reader -> funding: a refunded or disputed top-up
    LOSS = "loss"  # operator_losses -> funding: the part of it the reader had already spent
    LOSS_RECOVERED = "loss_recovered"  # funding -> operator_losses: a dispute won back


NEGATIVE_ALLOWED = frozenset({AccountKind.FUNDING, AccountKind.OPERATOR_LOSSES})


@dataclasses.dataclass(frozen=True, slots=True)
class Asset:
    code: str
    scale: int


class TransferRequest(NamedTuple):
    """One transfer to post. A named tuple, not a frozen dataclass: the group commit builds
    thousands a second, and a frozen dataclass costs several times more to build."""

    debit_account_id: int
    credit_account_id: int
    amount_minor: int
    currency: str
    kind: TransferKind
    idempotency_key: str
    origin: str | None = None
    reference: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PostedTransfer:
    id: int
    amount_minor: int
    replayed: bool  # True: this idempotency key had posted before; nothing moved now


def check_amount(amount_minor: object) -> int:
    # bool is an int in Python; money is never a bool (nor a float)
    if type(amount_minor) is not int or not 0 < amount_minor <= money.MAX_AMOUNT:
        raise InvalidAmount(
            f"amount must be a positive integer of minor units below 2^63, got {amount_minor!r}"
        )
    return amount_minor


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
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(LedgerAccount)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["kind", "owner", "currency"])
    )
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


def post_transfer(session: Session, request: TransferRequest, now: dt.datetime) -> PostedTransfer:
    """Move money once. A retry with the same idempotency key and amount is a replay."""
    amount = check_amount(request.amount_minor)
    existing = _find(session, request)
    if existing is not None:
        return _replay(existing, request)
    try:
        with session.begin_nested():
            _debit(session, request, amount)
            _credit(session, request, amount)
            transfer = Transfer(
                debit_account_id=request.debit_account_id,
                credit_account_id=request.credit_account_id,
                amount_minor=amount,
                currency=request.currency,
                kind=request.kind.value,
                idempotency_key=request.idempotency_key,
                origin=request.origin,
                reference=request.reference,
                created_at=now,
            )
            session.add(transfer)
            session.flush()
    except IntegrityError:
        # A racer posted the same idempotency key first and committed; ours rolled back whole.
        existing = _find(session, request)
        if existing is None:
            raise
        return _replay(existing, request)
    return PostedTransfer(transfer.id, amount, replayed=False)


def _debit(session: Session, request: TransferRequest, amount: int) -> None:
    # An account that may go negative still stops at -(2^63-1): the bound is computed here, so
    # the database never computes a balance it cannot hold (money.headroom).
    debited = session.execute(
        update(LedgerAccount)
        .where(
            LedgerAccount.id == request.debit_account_id,
            LedgerAccount.currency == request.currency,
            (LedgerAccount.balance_minor >= amount)
            | (
                LedgerAccount.may_go_negative
                & (LedgerAccount.balance_minor >= -money.headroom(amount))
            ),
        )
        .values(balance_minor=LedgerAccount.balance_minor - amount)
        .execution_options(synchronize_session=False)
    )
    if debited.rowcount == 1:  # type: ignore[attr-defined]
        return
    found = session.get(LedgerAccount, request.debit_account_id)
    if found is None:
        raise AccountNotFound(f"no ledger account {request.debit_account_id}")
    if found.currency != request.currency:
        raise CurrencyMismatch(
            f"account {found.id} holds {found.currency}, the transfer is in {request.currency}"
        )
    if found.may_go_negative:
        raise AmountOverflow(f"account {found.id} cannot go {amount} minor units further down")
    raise InsufficientFunds(f"account {found.id} cannot cover {amount} minor units")


def _credit(session: Session, request: TransferRequest, amount: int) -> None:
    credited = session.execute(
        update(LedgerAccount)
        .where(
            LedgerAccount.id == request.credit_account_id,
            LedgerAccount.currency == request.currency,
            LedgerAccount.balance_minor <= money.headroom(amount),
        )
        .values(balance_minor=LedgerAccount.balance_minor + amount)
        .execution_options(synchronize_session=False)
    )
    if credited.rowcount == 1:  # type: ignore[attr-defined]
        return
    found = session.get(LedgerAccount, request.credit_account_id)
    if found is None:
        raise AccountNotFound(f"no ledger account {request.credit_account_id}")
    if found.currency != request.currency:
        raise CurrencyMismatch(
            f"account {found.id} holds {found.currency}, the transfer is in {request.currency}"
        )
    raise AmountOverflow(f"account {found.id} cannot hold {amount} minor units more")


def _find(session: Session, request: TransferRequest) -> Transfer | None:
    return session.scalars(
        select(Transfer).where(
            Transfer.debit_account_id == request.debit_account_id,
            Transfer.credit_account_id == request.credit_account_id,
            Transfer.kind == request.kind.value,
            Transfer.idempotency_key == request.idempotency_key,
        )
    ).first()


def _replay(existing: Transfer, request: TransferRequest) -> PostedTransfer:
    if existing.amount_minor != request.amount_minor or existing.currency != request.currency:
        raise IdempotencyConflict(
            f"idempotency key {request.idempotency_key!r} already moved "
            f"{existing.amount_minor} {existing.currency}, not "
            f"{request.amount_minor} {request.currency}"
        )
    return PostedTransfer(existing.id, existing.amount_minor, replayed=True)


# --- batches (group commit) -----------------------------------------------------------------

# The group commit speaks to the driver directly (``db.DriverCursor``, ``?`` placeholders).
# The same bounds as ``_debit`` and ``_credit``, their values from ``money.headroom``.
_BATCH_DEBIT = (
    "UPDATE ledger_accounts SET balance_minor = balance_minor - ? WHERE id = ? AND currency = ? "
    "AND (balance_minor >= ? OR (may_go_negative AND balance_minor >= ?))"
)
_BATCH_CREDIT = (
    "UPDATE ledger_accounts SET balance_minor = balance_minor + ? "
    "WHERE id = ? AND currency = ? AND balance_minor <= ?"
)
# SQLite: all of a batch's rows in ONE statement too (a JSON array, unnested by json_each): one
# call into SQLite, so the caller's thread releases the GIL once for all of it (the streaming
# engine runs it in its committer thread, with the COMMIT).
_SQLITE_INSERT_TRANSFERS = (
    "INSERT INTO transfers (debit_account_id, credit_account_id, amount_minor, currency, kind, "
    "idempotency_key, origin, reference, created_at) "
    "SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, "
    "value->>7, ? FROM json_each(?)"
)
# PostgreSQL: the same, with arrays.
_PG_INSERT_TRANSFERS = (
    "INSERT INTO transfers (debit_account_id, credit_account_id, amount_minor, currency, kind, "
    "idempotency_key, origin, reference, created_at) "
    "SELECT d, c, a, cur, k, ik, o, ref, ? FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], "
    "?::varchar[], ?::varchar[], ?::varchar[], ?::varchar[], ?::varchar[]) "
    "AS t(d, c, a, cur, k, ik, o, ref)"
)


def transfer_rows(
    connection: Connection, requests: Sequence[TransferRequest], now: dt.datetime
) -> tuple[str, list[object]]:
    """The one statement (and its parameters) that stores these transfers' rows; run it with a
    ``DriverCursor`` in the same transaction. It raises the driver's IntegrityError if a key was
    posted before, and the transaction must then roll back."""
    to_db = UTCDateTime().dialect_impl(connection.dialect).bind_processor(connection.dialect)
    created_at = to_db(now) if to_db is not None else now  # as the ORM stores it
    rows = [
        (
            r.debit_account_id,
            r.credit_account_id,
            r.amount_minor,
            r.currency,
            r.kind.value,
            r.idempotency_key,
            r.origin,
            r.reference,
        )
        for r in requests
    ]
    if connection.dialect.name == "postgresql":
        return _PG_INSERT_TRANSFERS, [created_at, *map(list, zip(*rows, strict=True))]
    return _SQLITE_INSERT_TRANSFERS, [created_at, json.dumps(rows, separators=(",", ":"))]


class BatchRefused(Exception):
    """Some transfer of a batch was refused (a debit, or a duplicate key): the batch's savepoint
    rolled back and nothing of it moved. Post the transfers one by one to learn which."""


def move_balances(connection: Connection, requests: Sequence[TransferRequest]) -> None:
    """The balances side of a batch: debits and credits summed per account, one UPDATE per
    account; ``BatchRefused`` if a debit was refused or an account is missing (the caller rolls
    back). With the rows of ``transfer_rows``, this is ``post_batch``."""
    for request in requests:
        check_amount(request.amount_minor)
    debits = [
        (a, account, cur, a, -money.headroom(a))
        for account, cur, a in per_account(requests, debit=True)
    ]
    credits = [
        (a, account, cur, money.headroom(a))
        for account, cur, a in per_account(requests, debit=False)
    ]
    cursor = DriverCursor(connection)
    if cursor.executemany(_BATCH_DEBIT, debits) != len(debits):
        raise BatchRefused("a debit was refused")
    if cursor.executemany(_BATCH_CREDIT, credits) != len(credits):
        raise BatchRefused("a credit account is missing or in another asset")


def post_batch(
    connection: Connection, requests: Sequence[TransferRequest], now: dt.datetime
) -> None:
    """Post many fresh transfers with one statement per step (debits, credits, rows) instead of
    several per transfer: the streaming engine's group commit. All or nothing: on any refusal
    the batch's savepoint rolls back and ``BatchRefused`` is raised. Runs inside the caller's
    transaction, through the driver (``DriverCursor``).

    The same rules hold as for ``post_transfer``. Debits and credits are summed per account
    first (one UPDATE per account, not per transfer: a popular payee's row is written once per
    batch): a conditional debit of the sum succeeds exactly when every one of the account's
    debits would have, in any order.
    """
    if not requests:
        return
    cursor = DriverCursor(connection)
    cursor.execute("SAVEPOINT trickle_batch")
    try:
        move_balances(connection, requests)
        try:
            cursor.execute(*transfer_rows(connection, requests, now))
        except cursor.integrity_error:
            raise BatchRefused("a transfer in the batch was posted before") from None
    except BatchRefused:
        cursor.execute("ROLLBACK TO SAVEPOINT trickle_batch")
        cursor.execute("RELEASE SAVEPOINT trickle_batch")
        raise
    cursor.execute("RELEASE SAVEPOINT trickle_batch")


def per_account(requests: Sequence[TransferRequest], *, debit: bool) -> list[tuple[int, str, int]]:
    totals: dict[tuple[int, str], int] = {}
    for r in requests:
        key = (r.debit_account_id if debit else r.credit_account_id, r.currency)
        totals[key] = totals.get(key, 0) + r.amount_minor
    if any(money.headroom(total) < 0 for total in totals.values()):
        raise BatchRefused("a sum is past the largest amount; post the transfers one by one")
    # in account order: two processes' batches lock shared rows in the same order (no deadlock)
    return [(account, currency, total) for (account, currency), total in sorted(totals.items())]


# --- invariants -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def check(session: Session) -> list[Violation]:
    """Recompute every balance from the transfers and check every invariant of docs/ledger.md."""
    violations: list[Violation] = []
    # Summed here, not with SQL's SUM: an account's credits may add up past 2^63-1 while its
    # balance stays within it, and SQLite's SUM fails on that ("integer overflow").
    credits: dict[int, int] = {}
    debits: dict[int, int] = {}
    for debit_id, credit_id, amount in session.execute(
        select(Transfer.debit_account_id, Transfer.credit_account_id, Transfer.amount_minor)
    ):
        debits[debit_id] = debits.get(debit_id, 0) + amount
        credits[credit_id] = credits.get(credit_id, 0) + amount
    totals: dict[str, int] = {}
    accounts = {a.id: a for a in session.scalars(select(LedgerAccount))}
    for acc in accounts.values():
        derived = int(credits.get(acc.id) or 0) - int(debits.get(acc.id) or 0)
        name = f"account {acc.id} ({acc.kind} {acc.owner} {acc.currency})"
        if derived != acc.balance_minor:
            violations.append(
                Violation(
                    "balance_matches_transfers",
                    f"{name} has balance {acc.balance_minor}, its transfers give {derived}",
                )
            )
        if acc.balance_minor < 0 and not acc.may_go_negative:
            violations.append(Violation("no_overdraft", f"{name} is at {acc.balance_minor}"))
        if acc.may_go_negative != (acc.kind in NEGATIVE_ALLOWED):
            violations.append(Violation("overdraft_policy", f"{name} has the wrong policy"))
        if acc.kind == AccountKind.OPERATOR_LOSSES and acc.balance_minor > 0:
            violations.append(Violation("losses_not_positive", f"{name} is at {acc.balance_minor}"))
        totals[acc.currency] = totals.get(acc.currency, 0) + acc.balance_minor
    for currency, total in sorted(totals.items()):
        if total != 0:
            violations.append(Violation("zero_sum", f"{currency} balances sum to {total}"))
    for transfer in session.scalars(select(Transfer)):
        debit = accounts.get(transfer.debit_account_id)
        credit = accounts.get(transfer.credit_account_id)
        if transfer.amount_minor <= 0:
            violations.append(Violation("amount_positive", f"transfer {transfer.id}"))
        if debit is None or credit is None:
            violations.append(Violation("accounts_exist", f"transfer {transfer.id}"))
        elif not debit.currency == credit.currency == transfer.currency:
            violations.append(Violation("one_asset", f"transfer {transfer.id}"))
        elif AccountKind.OPERATOR_LOSSES in (debit.kind, credit.kind) and not _loss_transfer(
            transfer, debit, credit
        ):
            violations.append(Violation("losses_against_funding", f"transfer {transfer.id}"))
    return violations


def _loss_transfer(transfer: Transfer, debit: LedgerAccount, credit: LedgerAccount) -> bool:
    """An operator-losses account only pays a loss into its provider's funding account, or
    gets a recovered loss back from it."""
    if transfer.kind == TransferKind.LOSS:
        pair = (debit.kind, credit.kind) == (AccountKind.OPERATOR_LOSSES, AccountKind.FUNDING)
    elif transfer.kind == TransferKind.LOSS_RECOVERED:
        pair = (debit.kind, credit.kind) == (AccountKind.FUNDING, AccountKind.OPERATOR_LOSSES)
    else:
        return False
    return pair and debit.owner == credit.owner


def counts(session: Session) -> tuple[int, int]:
    """How many accounts and transfers the ledger holds."""
    accounts = session.scalar(select(func.count()).select_from(LedgerAccount)) or 0
    transfers = session.scalar(select(func.count()).select_from(Transfer)) or 0
    return int(accounts), int(transfers)
