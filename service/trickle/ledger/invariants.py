"""The ledger's invariants (docs/ledger.md), recomputed from the transfers: what ``trickle ledger
check`` and the test suite (after every test that moves money) run."""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trickle.ledger.accounts import NEGATIVE_ALLOWED, AccountKind
from trickle.ledger.transfers import TransferKind
from trickle.models import LedgerAccount, Transfer


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
