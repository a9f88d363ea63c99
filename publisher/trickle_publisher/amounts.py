"""How the publisher writes amounts on its pages and reads the prices of its articles. A site
counts in integer minor units, as its receipts do; these turn them into text and back, exactly
(never a float). Written here because the publisher, like any site, imports nothing of the
service; the pages show amounts as the service's dashboard and the extension do: the same rule,
held to the same cases (tests/vectors/amount-format.json)."""

from __future__ import annotations

import unicodedata
from decimal import Decimal, InvalidOperation

# en-US's currency symbols and usual decimals where they are not "the code" and 2 (CLDR, as
# Intl.NumberFormat writes them); the shared vectors hold this table to Intl's.
_EN_US_SYMBOLS = {
    "AUD": "A$", "BRL": "R$", "CAD": "CA$", "CNY": "CN¥", "EUR": "€", "GBP": "£", "HKD": "HK$",
    "ILS": "₪", "INR": "₹", "JPY": "¥", "KRW": "₩", "MXN": "MX$", "NZD": "NZ$", "PHP": "₱",
    "TWD": "NT$", "USD": "$", "VND": "₫", "XAF": "FCFA", "XCD": "EC$", "XCG": "Cg.",
    "XOF": "F\u202fCFA", "XPF": "CFPF",
}  # fmt: skip
_EN_US_DECIMALS = {
    **dict.fromkeys((
        "AFN", "ALL", "BIF", "CLP", "COP", "DJF", "GNF", "HUF", "IDR", "IQD", "IRR", "ISK", "JPY",
        "KMF", "KPW", "KRW", "LAK", "LBP", "MGA", "MMK", "PKR", "PYG", "RWF", "SLL", "SOS", "SYP",
        "UGX", "VND", "VUV", "XAF", "XOF", "XPF", "YER",
    ), 0),
    **dict.fromkeys(("BHD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}  # fmt: skip


def format_money(amount_minor: int, scale: int, currency: str) -> str:
    """An amount for people (en-US): 4_001_000 USD at scale 9 -> ``"$0.004001"``, 50_000_000 ->
    ``"$0.05"``; the currency's usual decimals, more only when the amount has them; not rounded."""
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**scale)
    digits = str(fraction).rjust(scale, "0").rstrip("0") if scale else ""
    digits = digits.ljust(_EN_US_DECIMALS.get(currency, 2), "0")
    symbol = _EN_US_SYMBOLS.get(currency, currency)
    # CLDR's currency spacing: a no-break space unless the symbol ends in a symbol character.
    prefix = symbol if unicodedata.category(symbol[-1]).startswith("S") else symbol + "\u00a0"
    return f"{sign}{prefix}{whole:,}" + (f".{digits}" if digits else "")


def format_exact(amount_minor: int, scale: int, currency: str) -> str:
    """The exact value with every digit of the scale, for a title: ``"0.004001000 USD"``."""
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**scale)
    number = f"{whole}.{fraction:0{scale}d}" if scale else str(whole)
    return f"{sign}{number} {currency}"


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
