"""Exact accrual of money over time: rate x active time, shared between a reader's active streams,
with the fractional remainder carried so nothing is lost to rounding, however long the run.

Rule: a reader's active streams share the reader's time. While k streams are active, each accrues
``its site's rate / k``, so the reader pays, at any moment, the average of the active sites' rates:
never more than the highest, and exactly the hourly rate when no site has an override. More tabs
never means more spending.
"""

from __future__ import annotations

from fractions import Fraction

HOUR_MS = 3_600_000


class Accrual:
    """Money a stream has earned but not yet been paid, as an exact fraction of a minor unit."""

    __slots__ = ("_carry",)

    def __init__(self) -> None:
        self._carry = Fraction(0)

    def add(self, rate_per_hour_minor: int, elapsed_ms: int, share: int) -> None:
        """Accrue ``elapsed_ms`` of active time at ``rate / share`` per hour."""
        if elapsed_ms <= 0 or rate_per_hour_minor <= 0:
            return
        self._carry += Fraction(rate_per_hour_minor * elapsed_ms, HOUR_MS * max(share, 1))

    def take(self) -> int:
        """The whole minor units accrued so far; the fraction stays for next time."""
        whole = self._carry.numerator // self._carry.denominator
        self._carry -= whole
        return whole

    def clear(self) -> None:
        self._carry = Fraction(0)

    @property
    def pending(self) -> Fraction:
        return self._carry
