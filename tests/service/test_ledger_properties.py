"""Property-based: random sequences of top-ups, debits, claims and payout outcomes (and retries of
any of them) keep every ledger invariant, and the balances match a simple model."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.orm import Session, sessionmaker

from trickle import ledger
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.errors import InsufficientFunds
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest

ASSET = Asset("USD", 9)
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
amounts = st.integers(min_value=1, max_value=10_000)


class LedgerMachine(RuleBasedStateMachine):
    sessions: sessionmaker[Session]

    @initialize()
    def open_accounts(self) -> None:
        run = secrets.token_hex(4)  # fresh accounts per example; the database is shared
        self.ids: dict[str, int] = {}
        with transaction(self.sessions) as session:
            for name, kind in [
                ("funding", AccountKind.FUNDING),
                ("reader_a", AccountKind.READER),
                ("reader_b", AccountKind.READER),
                ("payee", AccountKind.PAYEE),
                ("clearing", AccountKind.PAYOUT_CLEARING),
                ("settled", AccountKind.PAYOUT_SETTLED),
            ]:
                self.ids[name] = ledger.account(session, kind, f"{name}:{run}", ASSET, NOW).id
        self.model = dict.fromkeys(self.ids, 0)
        self.posted: list[tuple[str, str, int, TransferKind, str]] = []
        self.pending_payouts: list[int] = []
        self.keys = itertools.count()

    def _post(self, debit: str, credit: str, amount: int, kind: TransferKind) -> bool:
        key = f"k{next(self.keys)}"
        request = TransferRequest(self.ids[debit], self.ids[credit], amount, ASSET.code, kind, key)
        try:
            with transaction(self.sessions) as session:
                ledger.post_transfer(session, request, NOW)
        except InsufficientFunds:
            assert self.model[debit] < amount and debit != "funding"
            return False
        self.model[debit] -= amount
        self.model[credit] += amount
        self.posted.append((debit, credit, amount, kind, key))
        return True

    @rule(reader=st.sampled_from(["reader_a", "reader_b"]), amount=amounts)
    def top_up(self, reader: str, amount: int) -> None:
        self._post("funding", reader, amount, TransferKind.TOPUP)

    @rule(reader=st.sampled_from(["reader_a", "reader_b"]), amount=amounts)
    def stream(self, reader: str, amount: int) -> None:
        self._post(reader, "payee", amount, TransferKind.STREAM)

    @rule(amount=amounts)
    def claim(self, amount: int) -> None:
        if self._post("payee", "clearing", amount, TransferKind.CLAIM):
            self.pending_payouts.append(amount)

    @precondition(lambda self: bool(self.pending_payouts))
    @rule(paid=st.booleans())
    def settle_payout(self, paid: bool) -> None:
        amount = self.pending_payouts.pop(0)
        if paid:
            assert self._post("clearing", "settled", amount, TransferKind.PAYOUT_PAID)
        else:
            assert self._post("clearing", "payee", amount, TransferKind.PAYOUT_FAILED)

    @precondition(lambda self: bool(self.posted))
    @rule(data=st.data())
    def retry_an_earlier_transfer(self, data: st.DataObject) -> None:
        debit, credit, amount, kind, key = data.draw(st.sampled_from(self.posted))
        request = TransferRequest(self.ids[debit], self.ids[credit], amount, ASSET.code, kind, key)
        with transaction(self.sessions) as session:
            assert ledger.post_transfer(session, request, NOW).replayed

    @invariant()
    def balances_match_the_model_and_every_invariant_holds(self) -> None:
        if not hasattr(self, "ids"):
            return
        with transaction(self.sessions) as session:
            actual = {name: ledger.balance(session, i) for name, i in self.ids.items()}
            violations = ledger.check(session)
        assert actual == self.model
        assert violations == []
        assert all(v >= 0 for name, v in actual.items() if name != "funding")


def test_random_money_movements_keep_every_invariant(database_url: str) -> None:
    engine = make_engine(database_url)
    LedgerMachine.sessions = make_sessionmaker(engine)
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=25,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        engine.dispose()
