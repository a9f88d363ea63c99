"""What a batch changes, computed once for both databases: one move per account and one spend
per (reader, month), each with the bounds the database checks it against.

A batch is posted with one statement per step instead of several per transfer (``ledger.sqlite``,
``ledger.postgres``), under the rules of ``post_transfer`` and of a month's budget. Its debits
and credits are summed per account first, so each account's row is written once per batch: a
popular payee's too. A conditional update of a sum succeeds exactly when each of its parts
would have, in any order; so a batch never moves what the transfers one by one would not.
Every bound is computed here (``money.headroom``): the database never computes a value past
2^63-1, and a sum that could not even be sent is refused before it reaches the database.

The rate cap (``rate_sums``) is here too: a reader's streamed charges draw on one allowance per
reader (``reader_rates``, a token bucket), in the same transaction, on every node.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol

from trickle import money
from trickle.db import DriverCursor
from trickle.ledger.transfers import TransferRequest, check_amount

MAX = money.MAX_AMOUNT
HOUR_MS = 3_600_000  # a rate allowance's units per minor unit: minor units x ms per hour


class BatchRefused(Exception):
    """Something of a batch was refused (a debit, a budget, a key posted before, a sum past
    2^63-1): nothing of it moved. Post its parts one at a time to learn which."""


class Move(NamedTuple):
    """One account's change in a batch: one conditional UPDATE, in this column order."""

    account_id: int
    currency: str
    net_minor: int  # what the balance changes by
    need_minor: int  # the least it must hold first: its debits, less credits that come before
    floor_minor: int  # the same for an account that may go negative: down to -(2^63-1)
    room_minor: int  # the most it may hold first, for every credit to fit


class SpendSum(NamedTuple):
    """One (reader, month)'s spends in a batch: one conditional UPDATE, in this column order."""

    user_id: int
    month: str
    amount_minor: int
    room_minor: int  # the most already spent for the sum to fit the smallest budget


class RateSum(NamedTuple):
    """One reader's streamed charges in a batch, against their rate allowance (``reader_rates``):
    one conditional upsert, in this column order. Units: minor units x ms per hour."""

    user_id: int
    cost: int  # the charges' sum x HOUR_MS
    rate_per_hour_minor: int  # refills rate x elapsed ms
    burst_ms: int  # the most it holds: capacity = rate x burst_ms
    capacity: int
    now_ms: int  # the batch's clock, ms since 1970 (UTC)


class Rated(Protocol):
    """What the rate cap reads of a charge (``ledger.Charge``): None, not capped."""

    @property
    def user_id(self) -> int: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def rate_per_hour_minor(self) -> int | None: ...
    @property
    def rate_burst_ms(self) -> int: ...


class Spend(NamedTuple):
    """An amount a reader spends in a month, against their monthly budget."""

    user_id: int
    month: str
    amount_minor: int
    budget_minor: int


class Spending(Protocol):
    """What the budget rule reads of a spend: a ``Spend``, or a ``ledger.Charge`` as it is."""

    @property
    def user_id(self) -> int: ...
    @property
    def month(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def budget_minor(self) -> int: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """Everything one batch writes: its spends, its accounts' moves and its transfers' rows."""

    spends: list[SpendSum]
    moves: list[Move]
    rows: Sequence[TransferRequest]
    rates: list[RateSum] = dataclasses.field(default_factory=list)


def batch(
    steps: Sequence[Sequence[TransferRequest]],
    spends: Iterable[Spending] = (),
    rates: list[RateSum] | None = None,
) -> Batch:
    """The batch that posts these transfers, step after step, and records these spends (and
    draws these rate allowances). ``BatchRefused`` when a sum is past 2^63-1 or a budget."""
    return Batch(spend_sums(spends), moves(steps), [r for step in steps for r in step], rates or [])


def moves(steps: Sequence[Sequence[TransferRequest]]) -> list[Move]:
    """One move per account, in account order (two processes' batches lock shared rows in the
    same order: no deadlock). Within a step all debits come before all credits, so a step
    never pays with money it brings in itself; a later step may (a payee pays a fee out of
    what the step before credited it)."""
    # per account: [what it moved so far, what it must hold first, the most it may hold first]
    state: dict[tuple[int, str], list[int]] = {}
    for step in steps:
        debits, credits = _sums(step)
        for key, total in debits.items():
            moved = state.get(key)
            if moved is None:
                state[key] = [-total, total, MAX]
            else:
                moved[1] = max(moved[1], total - moved[0])
                moved[0] -= total
        for key, total in credits.items():
            moved = state.get(key)
            if moved is None:
                state[key] = [total, 0, MAX - total]
            else:
                moved[2] = min(moved[2], MAX - total - moved[0])
                moved[0] += total
    result = []
    for (account, currency), (net, need, room) in sorted(state.items()):
        if not (-MAX <= net <= MAX and need <= MAX and room >= -MAX):
            raise BatchRefused("a sum is past the largest amount; post the transfers one by one")
        result.append(Move(account, currency, net, need, need - MAX, room))
    return result


def _sums(
    requests: Sequence[TransferRequest],
) -> tuple[dict[tuple[int, str], int], dict[tuple[int, str], int]]:
    """Each account's debits and credits, summed; ``InvalidAmount`` for an amount that is not
    one, ``BatchRefused`` for a sum past 2^63-1."""
    debits: dict[tuple[int, str], int] = {}
    credits: dict[tuple[int, str], int] = {}
    for r in requests:
        amount = check_amount(r.amount_minor)
        key = (r.debit_account_id, r.currency)
        debits[key] = debits.get(key, 0) + amount
        key = (r.credit_account_id, r.currency)
        credits[key] = credits.get(key, 0) + amount
    if any(total > MAX for total in debits.values()) or any(
        total > MAX for total in credits.values()
    ):
        raise BatchRefused("a sum is past the largest amount; post the transfers one by one")
    return debits, credits


def spend_sums(spends: Iterable[Spending]) -> list[SpendSum]:
    """The one budget rule for many spends: per (reader, month), the sum of its spends under
    the smallest budget among them (never looser than adding them one by one). In order.
    ``BatchRefused`` when a sum is past its budget (it may be past 2^63-1: it is not sent)."""
    totals: dict[tuple[int, str], list[int]] = {}
    for spend in spends:
        entry = totals.get((spend.user_id, spend.month))
        if entry is None:
            totals[spend.user_id, spend.month] = [spend.amount_minor, spend.budget_minor]
        else:
            entry[0] += spend.amount_minor
            entry[1] = min(entry[1], spend.budget_minor)
    result = []
    for (user_id, month), (amount, budget) in sorted(totals.items()):
        room = money.headroom(amount, budget)
        if room < 0:
            raise BatchRefused("a spend would pass its monthly budget")
        result.append(SpendSum(user_id, month, amount, room))
    return result


def epoch_ms(now: dt.datetime) -> int:
    """``now`` in whole ms since 1970 (UTC), in integers."""
    return (now - _EPOCH) // dt.timedelta(milliseconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def rate_sums(charges: Iterable[Rated], now_ms: int) -> list[RateSum]:
    """The one rate rule for many charges: per reader, the sum of their streamed charges
    (those with a rate) against one allowance, under the smallest rate and burst among them
    (never looser than one by one). In reader order. ``BatchRefused`` when a sum cannot fit
    even a full allowance, or a bound is past 2^63-1 (nothing is sent that could overflow: the
    database computes at most rate x burst_ms, the capacity).

    The allowance, in the database: refilled by rate x the ms since its ``as_of_ms`` (never
    negative: a node whose clock is behind refills nothing), capped at the capacity, then less
    the cost; refused if the cost does not fit. A reader's first charge finds it full."""
    totals: dict[int, list[int]] = {}
    for charge in charges:
        rate = charge.rate_per_hour_minor
        if rate is None:
            continue
        entry = totals.get(charge.user_id)
        if entry is None:
            totals[charge.user_id] = [charge.amount_minor, rate, charge.rate_burst_ms]
        else:
            entry[0] += charge.amount_minor
            entry[1] = min(entry[1], rate)
            entry[2] = min(entry[2], charge.rate_burst_ms)
    if not 0 <= now_ms <= MAX:
        raise BatchRefused("the clock is outside 1970..2^63-1 ms")
    result = []
    for user_id, (amount, rate, burst_ms) in sorted(totals.items()):
        if rate < 0 or burst_ms < 0 or amount > MAX // HOUR_MS or rate > MAX // max(burst_ms, 1):
            raise BatchRefused("a rate allowance is past the largest amount")
        cost, capacity = amount * HOUR_MS, rate * burst_ms
        if cost > capacity:
            raise BatchRefused("streamed charges would pass the reader's rate")
        result.append(RateSum(user_id, cost, rate, burst_ms, capacity, now_ms))
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class GroupResult:
    """What a group of charges left behind, read in the same transaction."""

    balances: dict[int, int]  # each debited (reader) account's id -> its balance after
    spent: dict[tuple[int, str], int]  # (user id, month) -> spent after


@dataclasses.dataclass(frozen=True, slots=True)
class AlsoWrite:
    """One more write in a group's transaction, after its charges (PostgreSQL only; the
    streams' positions, ``trickle.nodes``): durable exactly when they are. ``statement``, with
    ``params`` (psycopg's ``%s``), runs as one more data-modifying CTE of the group's one
    statement when every charge of it posts (no round trip of its own); a group posted one
    charge at a time calls ``write`` instead, after the charges' ``refused`` are set."""

    statement: str
    params: Sequence[object]
    write: Callable[[DriverCursor], None]
