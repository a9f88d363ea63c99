"""What the dashboard shows of ``earnings.for_creator``: the same numbers regrouped for tables,
the chart and the CSV export (every day of the window, per payee, per site origin). Sums only:
what counts as earned, held or available is decided in ``earnings``."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io

from trickle import earnings, money

CSV_COLUMNS = ("date", "payee", "origin", "credited", "fees", "net", "currency")


@dataclasses.dataclass(slots=True)
class Totals:
    credited_minor: int = 0
    fees_minor: int = 0

    @property
    def net_minor(self) -> int:
        return self.credited_minor - self.fees_minor

    def add(self, credited_minor: int, fees_minor: int) -> None:
        self.credited_minor += credited_minor
        self.fees_minor += fees_minor


@dataclasses.dataclass(frozen=True, slots=True)
class DayTotals:
    day: dt.date
    totals: Totals


@dataclasses.dataclass(frozen=True, slots=True)
class PayeeTotals:
    name: str
    display_name: str
    standing: earnings.Standing
    totals: Totals


@dataclasses.dataclass(frozen=True, slots=True)
class OriginTotals:
    payee: str
    origin: str | None
    totals: Totals


def window(now: dt.datetime, days: int) -> list[dt.date]:
    """The UTC days ``earnings.for_creator(days=days)`` covers, oldest first."""
    today = now.astimezone(dt.UTC).date()
    return [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def _selected(
    found: list[earnings.PayeeEarnings], payee: str | None
) -> list[earnings.PayeeEarnings]:
    return [item for item in found if payee is None or item.payee.name == payee]


def per_day(
    found: list[earnings.PayeeEarnings], days: list[dt.date], payee: str | None = None
) -> list[DayTotals]:
    """Every day of the window (days without movement too), summed over the payees."""
    by_day = {day: Totals() for day in days}
    for item in _selected(found, payee):
        for entry in item.days:
            if entry.day in by_day:
                by_day[entry.day].add(entry.credited_minor, entry.fees_minor)
    return [DayTotals(day, by_day[day]) for day in days]


def per_payee(found: list[earnings.PayeeEarnings]) -> list[PayeeTotals]:
    rows = []
    for item in found:
        totals = Totals()
        for entry in item.days:
            totals.add(entry.credited_minor, entry.fees_minor)
        rows.append(PayeeTotals(item.payee.name, item.payee.display_name, item.standing, totals))
    return rows


def per_origin(found: list[earnings.PayeeEarnings], payee: str | None = None) -> list[OriginTotals]:
    """Per payee and site origin over the window (``origin`` None: payments without a site)."""
    rows: dict[tuple[str, str | None], Totals] = {}
    for item in _selected(found, payee):
        for entry in item.days:
            for site in entry.sites.values():
                key = (item.payee.name, site.origin)
                rows.setdefault(key, Totals()).add(site.credited_minor, site.fees_minor)
    ordered = sorted(rows, key=lambda key: (key[0], key[1] or ""))
    return [OriginTotals(name, origin, rows[(name, origin)]) for name, origin in ordered]


def csv_text(found: list[earnings.PayeeEarnings], *, currency: str, scale: int) -> str:
    """One row per UTC day, payee and site origin, oldest first; amounts as decimal strings in
    major units (``0.50``), never floats. Names and origins cannot start a spreadsheet formula
    (payee names are ``[a-z0-9-]``, origins start with ``http``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = []
    for item in found:
        for entry in item.days:
            for site in entry.sites.values():
                rows.append((entry.day, item.payee.name, site.origin or "", site))
    for day, name, origin, site in sorted(rows, key=lambda row: row[:3]):
        writer.writerow(
            [
                day.isoformat(),
                name,
                origin,
                money.format_minor(site.credited_minor, scale),
                money.format_minor(site.fees_minor, scale),
                money.format_minor(site.credited_minor - site.fees_minor, scale),
                currency,
            ]
        )
    return out.getvalue()
