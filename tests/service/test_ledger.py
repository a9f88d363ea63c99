from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from tests.factories import asset, create_user
from trickle import ledger, money, spending
from trickle.db import transaction
from trickle.errors import (
    AccountNotFound,
    AmountOverflow,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
)
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.models import LedgerAccount, Transfer
from trickle.runtime import Runtime

NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


def _accounts(runtime: Runtime) -> tuple[int, int, int]:
    user = create_user(runtime)
    with transaction(runtime.sessions) as session:
        source = ledger.account(session, AccountKind.FUNDING, "test", asset(runtime), NOW)
        reader = ledger.account(session, AccountKind.READER, f"user:{user.id}", asset(runtime), NOW)
        payee = ledger.account(session, AccountKind.PAYEE, "payee:1", asset(runtime), NOW)
        return source.id, reader.id, payee.id


def _post(
    runtime: Runtime,
    debit: int,
    credit: int,
    amount: object,
    key: str,
    kind: TransferKind = TransferKind.TOPUP,
    currency: str = "USD",
) -> ledger.PostedTransfer:
    with transaction(runtime.sessions) as session:
        request = TransferRequest(debit, credit, amount, currency, kind, key)  # type: ignore[arg-type]
        return ledger.post_transfer(session, request, NOW)


def _balance(runtime: Runtime, account_id: int) -> int:
    with transaction(runtime.sessions) as session:
        return ledger.balance(session, account_id)


def test_a_transfer_debits_one_account_and_credits_another(runtime: Runtime) -> None:
    source, reader, _ = _accounts(runtime)
    posted = _post(runtime, source, reader, 500, "t1")
    assert not posted.replayed
    assert (_balance(runtime, source), _balance(runtime, reader)) == (-500, 500)


def test_the_same_key_and_amount_replays_without_moving_money(runtime: Runtime) -> None:
    source, reader, _ = _accounts(runtime)
    first = _post(runtime, source, reader, 500, "t1")
    again = _post(runtime, source, reader, 500, "t1")
    assert again.replayed and again.id == first.id
    assert _balance(runtime, reader) == 500


def test_the_same_key_with_another_amount_is_a_conflict(runtime: Runtime) -> None:
    source, reader, _ = _accounts(runtime)
    _post(runtime, source, reader, 500, "t1")
    with pytest.raises(IdempotencyConflict):
        _post(runtime, source, reader, 501, "t1")
    assert _balance(runtime, reader) == 500


def test_the_same_key_for_another_purpose_is_another_transfer(runtime: Runtime) -> None:
    source, reader, payee = _accounts(runtime)
    _post(runtime, source, reader, 500, "k")
    _post(runtime, reader, payee, 100, "k", TransferKind.STREAM)
    assert _balance(runtime, reader) == 400


def test_a_reader_cannot_go_below_zero(runtime: Runtime) -> None:
    source, reader, payee = _accounts(runtime)
    _post(runtime, source, reader, 100, "fund")
    _post(runtime, reader, payee, 60, "s1", TransferKind.STREAM)
    with pytest.raises(InsufficientFunds):
        _post(runtime, reader, payee, 41, "s2", TransferKind.STREAM)
    _post(runtime, reader, payee, 40, "s3", TransferKind.STREAM)
    assert _balance(runtime, reader) == 0


@pytest.mark.parametrize("amount", [0, -1, 2**63, 1.5, 1.0, "5", True, None])
def test_amounts_are_positive_integers_below_2_63(runtime: Runtime, amount: object) -> None:
    source, reader, _ = _accounts(runtime)
    with pytest.raises(InvalidAmount):
        _post(runtime, source, reader, amount, "bad")


def test_assets_never_mix(runtime: Runtime) -> None:
    source, reader, _ = _accounts(runtime)
    with transaction(runtime.sessions) as session:
        euro = ledger.account(session, AccountKind.READER, "user:eur", Asset("EUR", 9), NOW).id
    with pytest.raises(CurrencyMismatch):
        _post(runtime, source, euro, 5, "x")
    with pytest.raises(CurrencyMismatch):
        _post(runtime, source, reader, 5, "y", currency="EUR")


def test_unknown_accounts_are_named(runtime: Runtime) -> None:
    source, _, _ = _accounts(runtime)
    with pytest.raises(AccountNotFound):
        _post(runtime, source, 999_999, 5, "x")
    with pytest.raises(AccountNotFound):
        _post(runtime, 999_999, source, 5, "y")


def test_transfers_are_append_only_in_the_database(runtime: Runtime) -> None:
    source, reader, _ = _accounts(runtime)
    _post(runtime, source, reader, 500, "t1")
    for statement in ("UPDATE transfers SET amount_minor = 1", "DELETE FROM transfers"):
        with (
            pytest.raises(DBAPIError, match="append-only"),
            transaction(runtime.sessions) as session,
        ):
            session.execute(text(statement))
    assert _balance(runtime, reader) == 500


def test_the_database_refuses_an_overdraft_even_past_the_code(runtime: Runtime) -> None:
    _, reader, _ = _accounts(runtime)
    with pytest.raises(DBAPIError), transaction(runtime.sessions) as session:
        session.execute(text(f"UPDATE ledger_accounts SET balance_minor = -1 WHERE id = {reader}"))


def test_check_names_the_account_whose_balance_disagrees(runtime: Runtime) -> None:
    source, reader, _ = _accounts(runtime)
    _post(runtime, source, reader, 500, "t1")
    with transaction(runtime.sessions) as session:
        assert ledger.check(session) == []
        session.get(LedgerAccount, reader).balance_minor = 400  # type: ignore[union-attr]
        session.flush()
        rules = {(v.rule, f"account {reader} " in v.detail) for v in ledger.check(session)}
        session.rollback()
    assert ("balance_matches_transfers", True) in rules
    assert ("zero_sum", False) in rules


# --- batches (the streaming engine's group commit) ---------------------------------------------

_ROW = (
    "SELECT debit_account_id, credit_account_id, amount_minor, currency, kind, origin, "
    "reference, created_at FROM transfers WHERE idempotency_key = :key"
)


def _stream(debit: int, credit: int, amount: int, key: str) -> TransferRequest:
    return TransferRequest(
        debit, credit, amount, "USD", TransferKind.STREAM, key, origin="https://a.example"
    )


def test_a_batch_stores_exactly_what_single_transfers_store(runtime: Runtime) -> None:
    """The batch path writes rows with the driver directly; every column, the timestamp's stored
    form included, must be what the ORM path writes."""
    source, reader, payee = _accounts(runtime)
    _post(runtime, source, reader, 1_000, "fund")
    at = dt.datetime(2026, 11, 28, 12, 30, 45, 123456, tzinfo=dt.UTC)
    with transaction(runtime.sessions) as session:
        ledger.post_transfer(session, _stream(reader, payee, 7, "single"), at)
        ledger.post_batch(
            session.connection(),
            [_stream(reader, payee, 7, "b1"), _stream(reader, payee, 5, "b2")],
            at,
        )
    with transaction(runtime.sessions) as session:
        single = session.execute(text(_ROW), {"key": "single"}).one()
        batched = session.execute(text(_ROW), {"key": "b1"}).one()
        assert tuple(batched) == tuple(single)
        row = session.scalars(select(Transfer).where(Transfer.idempotency_key == "b2")).one()
        assert (row.amount_minor, row.created_at, row.origin) == (5, at, "https://a.example")
        assert ledger.check(session) == []
    assert (_balance(runtime, reader), _balance(runtime, payee)) == (1_000 - 19, 19)


def test_a_refused_debit_rolls_the_whole_batch_back(runtime: Runtime) -> None:
    source, reader, payee = _accounts(runtime)
    _post(runtime, source, reader, 10, "fund")
    with transaction(runtime.sessions) as session:
        with pytest.raises(ledger.BatchRefused):
            ledger.post_batch(
                session.connection(),
                [_stream(reader, payee, 6, "r1"), _stream(reader, payee, 6, "r2")],
                NOW,
            )
        ledger.post_batch(session.connection(), [_stream(reader, payee, 4, "r3")], NOW)
    assert (_balance(runtime, reader), _balance(runtime, payee)) == (6, 4)
    with transaction(runtime.sessions) as session:
        keys = session.scalars(select(Transfer.idempotency_key).order_by(Transfer.id)).all()
        assert keys == ["fund", "r3"]


def test_a_batch_with_a_key_posted_before_moves_nothing(runtime: Runtime) -> None:
    source, reader, payee = _accounts(runtime)
    _post(runtime, source, reader, 100, "fund")
    with transaction(runtime.sessions) as session:
        ledger.post_batch(session.connection(), [_stream(reader, payee, 3, "k1")], NOW)
    with transaction(runtime.sessions) as session, pytest.raises(ledger.BatchRefused):
        ledger.post_batch(
            session.connection(),
            [_stream(reader, payee, 3, "k2"), _stream(reader, payee, 3, "k1")],
            NOW,
        )
    assert (_balance(runtime, reader), _balance(runtime, payee)) == (97, 3)


# --- the bound every balance stays within (issue 11, item 8) ----------------------------------

MAX = money.MAX_AMOUNT


def _funding(runtime: Runtime, provider: str) -> int:
    with transaction(runtime.sessions) as session:
        return ledger.account(session, AccountKind.FUNDING, provider, asset(runtime), NOW).id


def test_a_credit_past_2_63_is_a_typed_refusal_on_both_databases(runtime: Runtime) -> None:
    # Before: PostgreSQL failed the statement ("bigint out of range", a 500); SQLite turned the
    # balance into a float, and the ledger no longer added up.
    source, reader, payee = _accounts(runtime)
    other = _funding(runtime, "other")
    _post(runtime, source, reader, MAX, "fill")
    with pytest.raises(AmountOverflow):
        _post(runtime, other, reader, 1, "one-more")
    assert (_balance(runtime, reader), _balance(runtime, other)) == (MAX, 0)
    _post(runtime, reader, payee, 10, "spend", TransferKind.STREAM)
    _post(runtime, other, reader, 10, "fits-again")  # exactly up to the bound
    assert _balance(runtime, reader) == MAX


def test_an_account_that_may_go_negative_stops_at_minus_2_63(runtime: Runtime) -> None:
    source, reader, payee = _accounts(runtime)
    _post(runtime, source, reader, MAX, "fill")
    _post(runtime, reader, payee, MAX, "empty", TransferKind.STREAM)
    with pytest.raises(AmountOverflow):
        _post(runtime, source, reader, 1, "below-the-bound")
    assert (_balance(runtime, source), _balance(runtime, reader)) == (-MAX, 0)


def test_a_batch_past_2_63_is_refused_before_the_database_sees_it(runtime: Runtime) -> None:
    source, reader, payee = _accounts(runtime)
    other = _funding(runtime, "other")
    _post(runtime, source, reader, MAX, "fill")
    _post(runtime, reader, payee, MAX - 5, "almost", TransferKind.STREAM)
    _post(runtime, other, reader, MAX - 5, "refill")
    for batch in (
        [_stream(reader, payee, 6, "over")],  # the payee's balance would pass the bound
        [_stream(reader, payee, MAX, "a"), _stream(reader, payee, MAX, "b")],  # the sum would
    ):
        with transaction(runtime.sessions) as session, pytest.raises(ledger.BatchRefused):
            ledger.post_batch(session.connection(), batch, NOW)
    assert (_balance(runtime, reader), _balance(runtime, payee)) == (MAX, MAX - 5)


def test_a_month_s_spending_is_bounded_before_the_database_adds(runtime: Runtime) -> None:
    user = create_user(runtime)
    month = spending.month_of(NOW)
    budget = 1_000
    with transaction(runtime.sessions) as session:
        assert ledger.add_spend(session, ledger.Spend(user.id, month, 10, budget))
        # Before: PostgreSQL computed spent_minor + amount and failed ("bigint out of range").
        assert not ledger.add_spend(session, ledger.Spend(user.id, month, MAX, budget))
        assert not ledger.add_spend(session, ledger.Spend(user.id, month, budget - 9, budget))
        assert ledger.add_spend(session, ledger.Spend(user.id, month, budget - 10, budget))
        spends = [ledger.Spend(user.id, month, MAX, MAX)] * 2  # a sum past 2^63-1
        with pytest.raises(ledger.BatchRefused):
            ledger.spend_sums(spends)
        assert spending.spent(session, user.id, month) == budget
