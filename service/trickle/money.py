"""Amounts: decimal text <-> integer minor units, exactly (no floats anywhere), amounts written
for people, and the one bound every amount, sum and balance stays within (a BIGINT), checked
before the database sees it."""

from __future__ import annotations

import re
import unicodedata

from trickle.errors import InvalidAmount

# The largest amount, sum or balance: the database's BIGINT. Past it, PostgreSQL fails the
# statement ("bigint out of range") and SQLite turns the value into a float.
MAX_AMOUNT = 2**63 - 1
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")


def parse_decimal(text: str, scale: int) -> int:
    """``"5.00"`` at scale 9 -> 5_000_000_000. More decimals than the scale holds is an error."""
    match = _DECIMAL.fullmatch(text.strip())
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


# How en-US writes currencies (CLDR, as Intl.NumberFormat does): the symbols that are not the code
# itself, and the currencies whose usual number of decimals is not 2. Every other code, and any
# asset code that is not an ISO 4217 code, is written as the code and a no-break space, with 2
# decimals. tests/vectors/amount-format.json holds this table to Intl's, currency by currency.
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
_NBSP = "\u00a0"


def _currency_prefix(currency: str) -> str:
    symbol = _EN_US_SYMBOLS.get(currency, currency)
    # CLDR's currency spacing: a no-break space unless the symbol ends in a symbol character ($, €).
    return symbol if unicodedata.category(symbol[-1]).startswith("S") else symbol + _NBSP


def format_money(amount_minor: int, scale: int, currency: str) -> str:
    """An amount for people (en-US), the rule the extension's ``formatMoney`` follows too: the
    currency's symbol or code, grouped digits, the currency's usual decimals and more only when the
    amount has them (4_001_000 USD at scale 9 -> ``"$0.004001"``; 5_000_000_000 -> ``"$5.00"``);
    never rounded. tests/vectors/amount-format.json holds the cases."""
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**scale)
    digits = str(fraction).rjust(scale, "0").rstrip("0") if scale else ""
    digits = digits.ljust(_EN_US_DECIMALS.get(currency, 2), "0")
    number = f"{whole:,}" + (f".{digits}" if digits else "")
    return f"{sign}{_currency_prefix(currency)}{number}"


def format_exact(amount_minor: int, scale: int, currency: str) -> str:
    """The exact value with every digit of the scale, for a title: ``"0.004001000 USD"``."""
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**scale)
    number = f"{whole}.{fraction:0{scale}d}" if scale else str(whole)
    return f"{sign}{number} {currency}"


def fee_of(amount_minor: int, fee_bps: int) -> int:
    """The platform's fee on a payment to a payee: ``fee_bps`` basis points, rounded down (the
    payee keeps the remainder), the same rule for streamed increments and one-time payments."""
    return amount_minor * fee_bps // 10_000


def headroom(amount_minor: int, limit_minor: int = MAX_AMOUNT) -> int:
    """The most a stored value (a balance, a month's spending) may hold for ``value + amount`` to
    stay within ``limit_minor``; negative when nothing can take the amount. A conditional UPDATE
    compares the column with it (``spent_minor <= ?``) instead of computing ``spent_minor + ?``
    in SQL, which would overflow before the comparison could refuse it. ``amount_minor`` and
    ``limit_minor`` are in 0..MAX_AMOUNT, so the result fits a BIGINT too."""
    return limit_minor - amount_minor


def decimal_pattern(high_minor: int, *, positive: bool = False) -> str:
    """A regular expression (anchored; JSON Schema's dialect too) for exactly the decimal strings
    of the integers 0..high_minor (1..high_minor when ``positive``) with no sign, no leading zero
    and no fraction: how the API declares an amount's bounds in /openapi.json and checks them."""
    if high_minor < (1 if positive else 0):
        raise ValueError(f"no amounts in an empty range up to {high_minor}")
    digits = str(high_minor)
    choices = [] if positive else ["0"]
    if len(digits) > 1:  # every number with fewer digits
        shorter = len(digits) - 2
        choices.append(f"[1-9][0-9]{{0,{shorter}}}" if shorter else "[1-9]")
    for index, digit in enumerate(digits):  # same length: equal up to index, then smaller
        lowest = 1 if index == 0 else 0
        if int(digit) > lowest:
            top = int(digit) - 1
            smaller = f"[{lowest}-{top}]" if top > lowest else str(lowest)
            rest = len(digits) - index - 1
            choices.append(digits[:index] + smaller + (f"[0-9]{{{rest}}}" if rest else ""))
    choices.append(digits)
    return "^(?:" + "|".join(dict.fromkeys(choices)) + ")$"
