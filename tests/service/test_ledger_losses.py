"""The operator-losses account's invariant (docs/ledger.md, rule 7), as ``trickle ledger check``
sees it: never above zero, and trading only with its own provider's funding account. Each case
is built in a transaction that is rolled back, so the runtime's own check after the test holds."""

from __future__ import annotations

import pytest

from trickle import ledger
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.runtime import Runtime

USD = Asset("USD", 9)
Move = tuple[AccountKind, str, AccountKind, str, TransferKind, int]


def _rules(runtime: Runtime, moves: list[Move]) -> list[str]:
    now = runtime.clock()
    with runtime.sessions() as session, session.begin():
        for n, (debit_kind, debit_owner, credit_kind, credit_owner, kind, amount) in enumerate(
            moves
        ):
            debit = ledger.account(session, debit_kind, debit_owner, USD, now)
            credit = ledger.account(session, credit_kind, credit_owner, USD, now)
            request = TransferRequest(debit.id, credit.id, amount, "USD", kind, f"case-{n}")
            ledger.post_transfer(session, request, now)
        session.expire_all()  # the balances as the database has them, as a fresh check reads them
        rules = [v.rule for v in ledger.check(session)]
        session.rollback()
    return rules


FUNDING, LOSSES, READER = AccountKind.FUNDING, AccountKind.OPERATOR_LOSSES, AccountKind.READER
SPENT: list[Move] = [
    (FUNDING, "stripe", READER, "user:1", TransferKind.TOPUP, 500),
    (READER, "user:1", AccountKind.PAYEE, "payee:1", TransferKind.PAYMENT, 300),
    (READER, "user:1", FUNDING, "stripe", TransferKind.TOPUP_REVERSAL, 200),
    (LOSSES, "stripe", FUNDING, "stripe", TransferKind.LOSS, 300),
]


@pytest.mark.parametrize(
    ("moves", "rules"),
    [
        (SPENT, []),
        ([*SPENT, (FUNDING, "stripe", LOSSES, "stripe", TransferKind.LOSS_RECOVERED, 300)], []),
        (
            [*SPENT, (FUNDING, "stripe", LOSSES, "stripe", TransferKind.LOSS_RECOVERED, 301)],
            ["losses_not_positive"],
        ),
        (
            [(LOSSES, "stripe", READER, "user:1", TransferKind.LOSS, 5)],
            ["losses_against_funding"],
        ),
        (
            [(LOSSES, "stripe", FUNDING, "voucher", TransferKind.LOSS, 5)],
            ["losses_against_funding"],
        ),
        (
            [(LOSSES, "stripe", FUNDING, "stripe", TransferKind.TOPUP, 5)],
            ["losses_against_funding"],
        ),
    ],
)
def test_ledger_check_holds_the_losses_account_to_its_rule(
    runtime: Runtime, moves: list[Move], rules: list[str]
) -> None:
    assert _rules(runtime, moves) == rules


def test_a_losses_account_may_go_below_zero(runtime: Runtime) -> None:
    with runtime.sessions() as session, session.begin():
        losses = ledger.account(session, LOSSES, "stripe", USD, runtime.clock())
        assert losses.may_go_negative
        session.rollback()
