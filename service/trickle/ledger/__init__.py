"""The double-entry, append-only ledger: accounts, transfers, balances and their invariants.

The rules (docs/ledger.md): every transfer debits one account and credits another by the same
positive integer amount in one asset; transfers are never updated or deleted; an account's balance
equals its credits minus its debits and is kept in step in the same transaction; only accounts
marked ``may_go_negative`` (where money enters the system) go below zero; per asset, all balances
sum to zero; the same (debit, credit, kind, idempotency key) posts at most once.

This package holds every statement that changes a balance or writes a transfer, on every
database: callers say what moves, never how. Its parts:

- ``accounts``: account kinds and assets, finding or creating an account, its balance;
- ``transfers``: one transfer through the ORM (``post_transfer``), the reference path;
- ``charges``: a reader pays a payee and the payee the fee, within the month's budget
  (``Charge``, ``post_charge``): streamed increments and one-time payments alike; a streamed
  increment also within the reader's rate allowance (``take_rate``: the rate cap);
- ``batches``: many at once (``post_batch``, and ``stage_charges``: the group commit), with
  ``plan`` (what a batch writes, for both databases) and one module of statements per database
  (``sqlite``, ``postgres``);
- ``tokens``: private-payment tokens' money: the token float, issuing (``post_token_issue``),
  spending with no reader named (``TokenSpend``, ``post_token_spends``) and refunding;
- ``invariants``: ``check`` recomputes every rule from the transfers.

Domain code: the caller owns the transaction.
"""

from trickle.ledger.accounts import (
    NEGATIVE_ALLOWED,
    AccountKind,
    Asset,
    account,
    asset_of,
    balance,
    lock,
)
from trickle.ledger.batches import post_batch, post_steps, stage_charges
from trickle.ledger.charges import Charge, OverRate, Refusal, add_spend, post_charge
from trickle.ledger.invariants import Violation, check, counts
from trickle.ledger.plan import AlsoWrite, BatchRefused, GroupResult, Spend, spend_sums
from trickle.ledger.tokens import TokenSpend, post_token_spends
from trickle.ledger.transfers import (
    PostedTransfer,
    TransferKind,
    TransferRequest,
    check_amount,
    post_transfer,
)

__all__ = [
    "NEGATIVE_ALLOWED",
    "AccountKind",
    "AlsoWrite",
    "Asset",
    "BatchRefused",
    "Charge",
    "GroupResult",
    "OverRate",
    "PostedTransfer",
    "Refusal",
    "Spend",
    "TokenSpend",
    "TransferKind",
    "TransferRequest",
    "Violation",
    "account",
    "add_spend",
    "asset_of",
    "balance",
    "check",
    "check_amount",
    "counts",
    "lock",
    "post_batch",
    "post_charge",
    "post_steps",
    "post_token_spends",
    "post_transfer",
    "spend_sums",
    "stage_charges",
]
