"""Amounts for people: decimal text <-> integer minor units, exactly (no floats anywhere)."""

from __future__ import annotations

import re

from trickle.errors import InvalidAmount

MAX_AMOUNT = 2**63 - 1
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")


def parse_decimal(text: str, scale: int) -> int:
    """``"5.00"`` at scale 9 -> 5_000_000_000. More decimals than the scale holds is an error."""
    match = _DECIMAL.match(text.strip())
    if match is None:
        raise InvalidAmount(f"expected a decimal amount like 5.00, got {text!r}")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > scale:
        raise InvalidAmount(f"{text!r} has more than {scale} decimal places")
    value: int = int(whole) * 10**scale + int(fraction.ljust(scale, "0") or "0")
    if not 0 < value <= MAX_AMOUNT:
        raise InvalidAmount(f"amount must be positive and below 2^63 minor units, got {text!r}")
    return value


def format_minor(amount_minor: int, scale: int, *, min_decimals: int = 2) -> str:
    """5_000_000_000 at scale 9 -> "5.00"; keeps every significant digit, at least 2 decimals."""
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**scale)
    digits = str(fraction).rjust(scale, "0").rstrip("0") if scale else ""
    digits = digits.ljust(min(min_decimals, scale), "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def fee_of(amount_minor: int, fee_bps: int) -> int:
    """The platform's fee on a payment to a payee: ``fee_bps`` basis points, rounded down (the
    payee keeps the remainder), the same rule for streamed increments and one-time payments."""
    return amount_minor * fee_bps // 10_000
