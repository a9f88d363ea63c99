"""Exact accrual of money over time: rate x active time, shared between a reader's active streams,
with the fractional remainder carried so nothing is lost to rounding, however long the run.

Rule: a reader's active streams share the reader's time. While k streams are active, each accrues
``its site's rate / k``, so the reader pays, at any moment, the average of the active sites' rates:
never more than the highest, and exactly the hourly rate when no site has an override. More tabs
never means more spending.
"""

from __future__ import annotations

import math
from fractions import Fraction

HOUR_MS = 3_600_000
_REDUCE_ABOVE = 2**96


class Accrual:
    """Money a stream has earned but not yet been paid, as an exact fraction of a minor unit:
    ``numerator / denominator``, in plain integers (``Fraction`` cost a fifth of the tick)."""

    __slots__ = ("_den", "_num")

    def __init__(self) -> None:
        self._num = 0
        self._den = HOUR_MS

    def add(self, rate_per_hour_minor: int, elapsed_ms: int, share: int) -> None:
        """Accrue ``elapsed_ms`` of active time at ``rate / share`` per hour."""
        if elapsed_ms <= 0 or rate_per_hour_minor <= 0:
            return
        numerator, denominator = rate_per_hour_minor * elapsed_ms, HOUR_MS * max(share, 1)
        if denominator == self._den:  # the usual case: the same share as last time
            self._num += numerator
            return
        common = math.lcm(self._den, denominator)
        self._num = self._num * (common // self._den) + numerator * (common // denominator)
        self._den = common
        if common > _REDUCE_ABOVE:  # shares changed many times: keep the integers small
            divisor = math.gcd(self._num, common)
            self._num //= divisor
            self._den //= divisor

    def take(self) -> int:
        """The whole minor units accrued so far; the fraction stays for next time."""
        whole = self._num // self._den
        self._num -= whole * self._den
        return whole

    def clear(self) -> None:
        self._num = 0

    @property
    def pending(self) -> Fraction:
        return Fraction(self._num, self._den)
