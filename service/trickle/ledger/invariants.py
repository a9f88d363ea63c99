"""The ledger's invariants (docs/ledger.md), recomputed from the transfers: what ``trickle ledger
check`` and the test suite (after every test that moves money) run."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trickle.ledger.accounts import NEGATIVE_ALLOWED, AccountKind
from trickle.ledger.transfers import TransferKind
from trickle.models import LedgerAccount, SpentToken, TokenIssuance, TokenKey, Transfer

# What each token transfer moves between: (kind of its debit account, of its credit account).
_TOKEN_PAIRS: dict[str, tuple[str, str]] = {
    TransferKind.TOKEN_ISSUE.value: (AccountKind.READER, AccountKind.TOKEN_FLOAT),
    TransferKind.TOKEN_SPEND.value: (AccountKind.TOKEN_FLOAT, AccountKind.PAYEE),
    TransferKind.TOKEN_REFUND.value: (AccountKind.TOKEN_FLOAT, AccountKind.READER),
}
# Which count of tokens each kind of token transfer stands for (``_tokens_worth``).
_TOKEN_COUNTED = {
    TransferKind.TOKEN_ISSUE.value: "issued",
    TransferKind.TOKEN_SPEND.value: "spend",
    TransferKind.TOKEN_REFUND.value: "refund",
}


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
        elif not _token_transfer_fits(transfer, debit, credit):
            violations.append(Violation("token_float_transfers", f"transfer {transfer.id}"))
    violations.extend(_token_float(session, accounts.values()))
    return violations


def _token_transfer_fits(transfer: Transfer, debit: LedgerAccount, credit: LedgerAccount) -> bool:
    """The token float only takes tokens bought, and only pays tokens spent or refunded."""
    pair = _TOKEN_PAIRS.get(transfer.kind)
    touches_float = AccountKind.TOKEN_FLOAT in (debit.kind, credit.kind)
    if pair is None:
        return not touches_float
    return (debit.kind, credit.kind) == pair


def _token_float(session: Session, accounts: Iterable[LedgerAccount]) -> list[Violation]:
    """Per currency, the float holds what its outstanding tokens are worth: the sum over its
    epochs of value x (issued - spent - refunded); and each kind of token transfer adds up to
    the value of the tokens it stands for."""
    violations, worth = _tokens_worth(session)
    moved: dict[str, dict[str, int]] = {}
    for currency, kind, amount in session.execute(
        select(Transfer.currency, Transfer.kind, Transfer.amount_minor).where(
            Transfer.kind.in_(list(_TOKEN_PAIRS))
        )
    ):
        sums = moved.setdefault(currency, {})
        sums[kind] = sums.get(kind, 0) + amount
    floats: dict[str, int] = {}
    for acc in accounts:
        if acc.kind == AccountKind.TOKEN_FLOAT:
            floats[acc.currency] = floats.get(acc.currency, 0) + acc.balance_minor
    for currency in sorted(set(worth) | set(moved) | set(floats)):
        want = worth.get(currency, {})
        outstanding = want.get("issued", 0) - want.get("spend", 0) - want.get("refund", 0)
        if floats.get(currency, 0) != outstanding:
            violations.append(
                Violation(
                    "token_float_matches_tokens",
                    f"{currency} token float holds {floats.get(currency, 0)}, its outstanding "
                    f"tokens are worth {outstanding}",
                )
            )
        for kind, counted in _TOKEN_COUNTED.items():
            got = moved.get(currency, {}).get(kind, 0)
            if got != want.get(counted, 0):
                violations.append(
                    Violation(
                        "token_transfers_match_tokens",
                        f"{currency} {kind} transfers move {got}, their tokens are worth "
                        f"{want.get(counted, 0)}",
                    )
                )
    return violations


def _tokens_worth(session: Session) -> tuple[list[Violation], dict[str, dict[str, int]]]:
    """Per currency, what its tokens issued, spent and refunded are worth (each epoch's count
    times its key's value); and the epochs that break a rule."""
    values = {
        (currency, epoch): value
        for currency, epoch, value in session.execute(
            select(TokenKey.currency, TokenKey.epoch, TokenKey.value_minor)
        )
    }
    counted: dict[tuple[str, int], dict[str, int]] = {}
    for currency, epoch, count in session.execute(
        select(TokenIssuance.currency, TokenIssuance.epoch, func.sum(TokenIssuance.count)).group_by(
            TokenIssuance.currency, TokenIssuance.epoch
        )
    ):
        counted.setdefault((currency, epoch), {})["issued"] = int(count)
    for currency, epoch, use, count in session.execute(
        select(SpentToken.currency, SpentToken.epoch, SpentToken.use, func.count()).group_by(
            SpentToken.currency, SpentToken.epoch, SpentToken.use
        )
    ):
        counted.setdefault((currency, epoch), {})[use] = int(count)
    violations = []
    worth: dict[str, dict[str, int]] = {}
    for (currency, epoch), counts in sorted(counted.items()):
        value = values.get((currency, epoch))
        if value is None:
            violations.append(Violation("token_keys_exist", f"{currency} epoch {epoch}"))
            continue
        if counts.get("spend", 0) + counts.get("refund", 0) > counts.get("issued", 0):
            violations.append(
                Violation("tokens_issued_before_spent", f"{currency} epoch {epoch}: {counts}")
            )
        sums = worth.setdefault(currency, {})
        for what, count in counts.items():
            sums[what] = sums.get(what, 0) + value * count
    return violations, worth


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
