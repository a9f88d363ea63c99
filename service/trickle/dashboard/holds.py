"""What the dashboard tells a creator about held earnings and the smallest claim, in words: how
long earnings are held, when what is held now becomes available, and how much is still missing
before a claim is possible. The amounts and times come from ``earnings``."""

from __future__ import annotations

import dataclasses
import datetime as dt

from trickle import earnings
from trickle.settings import Settings

_UNITS = (("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1))


def duration(seconds: int) -> str:
    """``3600`` -> "1 hour", ``600`` -> "10 minutes", ``90`` -> "90 seconds": the largest unit
    that says it exactly."""
    for name, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {name}" + ("" if count == 1 else "s")
    return f"{max(seconds, 0)} seconds"


def release_time(at: dt.datetime) -> str:
    """A release time for people, in UTC, rounded up to the minute: it is available *by* then."""
    at = at.astimezone(dt.UTC)
    if at.second or at.microsecond:
        at = at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return at.strftime("%Y-%m-%d %H:%M UTC")


@dataclasses.dataclass(frozen=True, slots=True)
class Outlook:
    """A payee's claim outlook now."""

    can_claim: bool
    held_minor: int
    next_release: str | None  # when the oldest held part becomes available (None: none held)
    all_released: str | None  # when all that is held now is available
    min_claim_minor: int
    missing_minor: int  # what the balance lacks to reach the smallest claim (0: it has enough)


def outlook(standing: earnings.Standing, settings: Settings) -> Outlook:
    minimum = max(settings.min_claim_minor, 1)
    return Outlook(
        can_claim=standing.available_minor >= minimum,
        held_minor=standing.held_minor,
        next_release=_when(standing.next_release_at),
        all_released=_when(standing.released_by),
        min_claim_minor=minimum,
        missing_minor=max(minimum - standing.balance_minor, 0),
    )


def hold_text(settings: Settings) -> str:
    """How long earnings are held, e.g. "1 hour (10 minutes from a site you verified)"."""
    usual = earnings.hold_s(settings, verified=False)
    verified = earnings.hold_s(settings, verified=True)
    if verified == usual:
        return duration(usual)
    return f"{duration(usual)} ({duration(verified)} from a site you verified)"


def _when(at: dt.datetime | None) -> str | None:
    return None if at is None else release_time(at)
