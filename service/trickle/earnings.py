"""A creator's earnings, read from the ledger: per payee, per UTC day and per site origin, what
was credited (streams and payments), what fees took and what was claimed; and the balance split
into what may be claimed now (available) and recent credits still held back (held). Credits from
a site the payee proved to own are held for a shorter time than the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from trickle import payees
from trickle.errors import ValidationFailed
from trickle.ledger import AccountKind, TransferKind
from trickle.models import LedgerAccount, Payee, Transfer
from trickle.settings import Settings

MAX_DAYS = 366
DEFAULT_DAYS = 30
# what pays a payee: streams, payments, and tokens spent (private streams and payments)
EARNING_KINDS = (
    TransferKind.STREAM.value,
    TransferKind.PAYMENT.value,
    TransferKind.TOKEN_SPEND.value,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    """What a payee account holds back now, net of fees, and when it is released (None: nothing
    is held)."""

    held_minor: int = 0
    next_release_at: dt.datetime | None = None  # when the oldest held credit becomes available
    released_by: dt.datetime | None = None  # when all that is held now has become available


@dataclasses.dataclass(frozen=True, slots=True)
class Standing:
    """A payee account's balance now: ``available + held == balance``."""

    balance_minor: int
    held_minor: int
    next_release_at: dt.datetime | None = None
    released_by: dt.datetime | None = None

    @property
    def available_minor(self) -> int:
        return self.balance_minor - self.held_minor


@dataclasses.dataclass(slots=True)
class SiteDay:
    origin: str | None  # None: a credit without a site (e.g. a one-time payment)
    credited_minor: int = 0
    fees_minor: int = 0


@dataclasses.dataclass(slots=True)
class Day:
    day: dt.date
    credited_minor: int = 0
    fees_minor: int = 0
    claimed_minor: int = 0
    returned_minor: int = 0  # failed payouts, back in the earnings
    sites: dict[str | None, SiteDay] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class PayeeEarnings:
    payee: Payee
    standing: Standing
    days: list[Day]  # newest first; days with no movement are left out


def _day(session: Session) -> ColumnElement[str]:
    """The UTC calendar day of a transfer as 'YYYY-MM-DD', computed in the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Transfer.created_at), "YYYY-MM-DD")
    # SQLite stores UTC datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (see models.UTCDateTime).
    return func.substr(Transfer.created_at, 1, 10)


def hold_s(settings: Settings, *, verified: bool) -> int:
    """How long a credit is held: ``claim_hold_verified_s`` for one from a site the payee
    verified (never longer than the others' ``claim_hold_s``), else ``claim_hold_s``."""
    if verified:
        return max(min(settings.claim_hold_verified_s, settings.claim_hold_s), 0)
    return max(settings.claim_hold_s, 0)


def verified_origins(session: Session, payee_ids: Iterable[int]) -> dict[int, set[str]]:
    """Per payee: the site origins it proved to own (verified now)."""
    found = payees.sites(session, list(payee_ids))
    return {
        payee_id: {row.origin for row in rows if row.verified_at is not None}
        for payee_id, rows in found.items()
    }


def holds(
    session: Session, accounts: Mapping[int, int], settings: Settings, now: dt.datetime
) -> dict[int, Hold]:
    """Per payee account (``accounts`` maps account id -> payee id): what streams and payments
    brought in during their hold, net of their fees, and when that is released. A credit is held
    ``hold_s`` from its time: shorter when its origin is a site the payee verified (as verified
    now). Held back from claims so that a reversal window stays open."""
    ids = list(accounts)
    if not ids or hold_s(settings, verified=False) <= 0:
        return {i: Hold() for i in ids}
    verified = verified_origins(session, set(accounts.values()))
    # Summed in SQL per account and origin, over each window; each origin then takes its own.
    windows = {
        trusted: _held_sums(
            session, ids, now - dt.timedelta(seconds=hold_s(settings, verified=trusted))
        )
        for trusted in (False, True)
    }
    net = dict.fromkeys(ids, 0)
    first: dict[int, list[dt.datetime]] = {i: [] for i in ids}
    last: dict[int, list[dt.datetime]] = {i: [] for i in ids}
    for account_id, origin in windows[False]:
        trusted = origin is not None and origin in verified[accounts[account_id]]
        sums = windows[trusted].get((account_id, origin))
        if sums is None:  # a verified site's credits, all older than its shorter hold
            continue
        after = dt.timedelta(seconds=hold_s(settings, verified=trusted))
        net[account_id] += sums.credited_minor - sums.fees_minor
        if sums.first_at is not None and sums.last_at is not None:
            first[account_id].append(sums.first_at + after)
            last[account_id].append(sums.last_at + after)
    return {
        i: Hold(net[i], min(first[i]), max(last[i])) if net[i] > 0 and first[i] else Hold()
        for i in ids
    }


@dataclasses.dataclass(slots=True)
class _Sums:
    credited_minor: int = 0
    fees_minor: int = 0
    first_at: dt.datetime | None = None  # the oldest credit's time
    last_at: dt.datetime | None = None  # the newest credit's time


def _held_sums(
    session: Session, ids: list[int], since: dt.datetime
) -> dict[tuple[int, str | None], _Sums]:
    """Per (payee account, origin): credits and fees after ``since``, with the credits' times."""
    found: dict[tuple[int, str | None], _Sums] = {}
    credits = session.execute(
        select(
            Transfer.credit_account_id,
            Transfer.origin,
            func.sum(Transfer.amount_minor),
            func.min(Transfer.created_at),
            func.max(Transfer.created_at),
        )
        .where(
            Transfer.credit_account_id.in_(ids),
            Transfer.kind.in_(EARNING_KINDS),
            Transfer.created_at > since,
        )
        .group_by(Transfer.credit_account_id, Transfer.origin)
    ).all()
    for account_id, origin, amount, first_at, last_at in credits:
        found[(int(account_id), origin)] = _Sums(int(amount or 0), 0, first_at, last_at)
    fees = session.execute(
        select(Transfer.debit_account_id, Transfer.origin, func.sum(Transfer.amount_minor))
        .where(
            Transfer.debit_account_id.in_(ids),
            Transfer.kind == TransferKind.FEE.value,
            Transfer.created_at > since,
        )
        .group_by(Transfer.debit_account_id, Transfer.origin)
    ).all()
    for account_id, origin, amount in fees:
        found.setdefault((int(account_id), origin), _Sums()).fees_minor += int(amount or 0)
    return found


def held(
    session: Session, accounts: Mapping[int, int], settings: Settings, now: dt.datetime
) -> dict[int, int]:
    """Per payee account (account id -> payee id): what ``holds`` holds back now."""
    return {i: hold.held_minor for i, hold in holds(session, accounts, settings, now).items()}


def standing(balance_minor: int, held_minor: int, hold: Hold | None = None) -> Standing:
    """The held part never exceeds the balance (fees and claims may have taken some of it)."""
    held_part = min(max(held_minor, 0), balance_minor)
    if hold is None or held_part == 0:
        return Standing(balance_minor, held_part)
    return Standing(balance_minor, held_part, hold.next_release_at, hold.released_by)


def balances(session: Session, account_ids: Iterable[int]) -> dict[int, int]:
    """Fresh balances (a column query: never a stale object from the session)."""
    rows = session.execute(
        select(LedgerAccount.id, LedgerAccount.balance_minor).where(
            LedgerAccount.id.in_(list(account_ids))
        )
    ).all()
    return {int(i): int(b) for i, b in rows}


def days_asked(text: str | None) -> int:
    """The number of days a request asks for (``?days=`` in the API and the dashboard), or
    ``DEFAULT_DAYS`` when it names none; ``for_creator`` checks the range."""
    if text is None:
        return DEFAULT_DAYS
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise ValidationFailed(f"days must be 1..{MAX_DAYS}, got {text[:10]!r}")
    return int(text)


def for_creator(
    session: Session, user_id: int, *, days: int, settings: Settings, now: dt.datetime
) -> list[PayeeEarnings]:
    """Every payee of the user with its standing and its last ``days`` UTC days of movements."""
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed(f"days must be 1..{MAX_DAYS}, got {days}")
    owned = payees.list_for_user(session, user_id)
    if not owned:
        return []
    accounts = _accounts(session, owned, settings)
    by_account = {account_id: payee_id for payee_id, account_id in accounts.items()}
    hold_by_account = holds(session, by_account, settings, now)
    balance_by_account = balances(session, by_account)
    first_day = now.astimezone(dt.UTC).date() - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    ledgers: dict[int, dict[dt.date, Day]] = {p.id: {} for p in owned}
    for account_id, kind, origin, day, amount in _movements(session, list(by_account), since):
        book = ledgers[by_account[account_id]]
        date = dt.date.fromisoformat(day)
        entry = book.setdefault(date, Day(date))
        _add(entry, kind, origin, int(amount))
    result = []
    for payee in owned:
        account = accounts.get(payee.id, -1)  # -1: no account yet, so nothing earned
        book = ledgers[payee.id]
        hold = hold_by_account.get(account, Hold())
        result.append(
            PayeeEarnings(
                payee,
                standing(balance_by_account.get(account, 0), hold.held_minor, hold),
                [book[d] for d in sorted(book, reverse=True)],
            )
        )
    return result


def _accounts(session: Session, owned: list[Payee], settings: Settings) -> dict[int, int]:
    """payee id -> earnings account id, for the payees that have one (a read creates none)."""
    owners = {payees.account_owner(p.id): p.id for p in owned}
    rows = session.execute(
        select(LedgerAccount.owner, LedgerAccount.id).where(
            LedgerAccount.kind == AccountKind.PAYEE.value,
            LedgerAccount.owner.in_(list(owners)),
            LedgerAccount.currency == settings.currency,
        )
    ).all()
    return {owners[owner]: int(account_id) for owner, account_id in rows}


def _movements(
    session: Session, account_ids: list[int], since: dt.datetime
) -> list[tuple[int, str, str | None, str, int]]:
    """(payee account, kind, origin, day, sum) of every movement in or out of the accounts."""
    day = _day(session)
    incoming = (
        select(
            Transfer.credit_account_id,
            Transfer.kind,
            Transfer.origin,
            day,
            func.sum(Transfer.amount_minor),
        )
        .where(
            Transfer.credit_account_id.in_(account_ids),
            Transfer.kind.in_([*EARNING_KINDS, TransferKind.PAYOUT_FAILED.value]),
            Transfer.created_at >= since,
        )
        .group_by(Transfer.credit_account_id, Transfer.kind, Transfer.origin, day)
    )
    outgoing = (
        select(
            Transfer.debit_account_id,
            Transfer.kind,
            Transfer.origin,
            day,
            func.sum(Transfer.amount_minor),
        )
        .where(
            Transfer.debit_account_id.in_(account_ids),
            Transfer.kind.in_([TransferKind.FEE.value, TransferKind.CLAIM.value]),
            Transfer.created_at >= since,
        )
        .group_by(Transfer.debit_account_id, Transfer.kind, Transfer.origin, day)
    )
    rows = [*session.execute(incoming).all(), *session.execute(outgoing).all()]
    return [(int(a), str(k), o, str(d), int(s)) for a, k, o, d, s in rows]


def _add(entry: Day, kind: str, origin: str | None, amount: int) -> None:
    if kind in EARNING_KINDS:
        entry.credited_minor += amount
        entry.sites.setdefault(origin, SiteDay(origin)).credited_minor += amount
    elif kind == TransferKind.FEE.value:
        entry.fees_minor += amount
        entry.sites.setdefault(origin, SiteDay(origin)).fees_minor += amount
    elif kind == TransferKind.CLAIM.value:
        entry.claimed_minor += amount
    elif kind == TransferKind.PAYOUT_FAILED.value:
        entry.returned_minor += amount
