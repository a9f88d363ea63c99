"""How the publisher writes amounts on its pages and reads the prices of its articles. A site
counts in integer minor units, as its receipts do; these turn them into text and back, exactly
(``decimal``, never a float). Written here because the publisher, like any site, imports nothing
of the service; the pages show amounts as the service's dashboard does."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def format_amount(amount_minor: int, scale: int) -> str:
    """``1_000_000`` at scale 9 -> ``"0.001"``: every significant digit, and at least two
    decimals when the scale has them (``0`` at scale 9 -> ``"0.00"``)."""
    value = Decimal(amount_minor).scaleb(-scale)
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # a finite number
    return f"{value:.{max(-exponent, min(2, scale))}f}"


def minor_units(amount: str, scale: int) -> int:
    """``"0.05"`` at scale 9 -> ``50_000_000``. An amount that is not positive or has more
    decimals than the scale holds is the demo's own bug: ``ValueError``."""
    try:
        value = Decimal(amount).scaleb(scale)
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or value <= 0 or value != value.to_integral_value():
        raise ValueError(
            f"expected a positive amount with at most {scale} decimals, got {amount!r}"
        )
    return int(value)
