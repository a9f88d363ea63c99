"""Card top-ups' configuration and money rules: which Stripe currency Trickle's asset is charged
in, the operator's presets and limits, and the exact conversion between Trickle's minor units
(``TRICKLE_ASSET_SCALE``, 9 by default) and Stripe's (the currency's own minor unit).

Stripe's rules (https://docs.stripe.com/currencies): an amount is an integer of the currency's
minor unit — cents for USD, whole yen for the zero-decimal JPY, thousandths for the three-decimal
KWD, whose amounts must end in 0; ISK stays two-decimal in the API but only whole krónur are
charged — and at most eight digits. Every conversion here is exact or refused, never rounded.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

from trickle import money
from trickle.errors import (
    AmountNotChargeable,
    ConfigError,
    InvalidAmount,
    TopupAmountOutOfRange,
)

if TYPE_CHECKING:
    from trickle.settings import Settings

# Stripe's zero-decimal currencies: the amount is in whole units.
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd"}
    | {"vuv", "xaf", "xof", "xpf"}
)
# Three-decimal currencies: thousandths, and Stripe wants the last digit 0.
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Two-decimal in the API, but only whole units can be charged (amount divisible by 100).
WHOLE_UNITS_ONLY = frozenset({"isk"})
# "The amount value supports up to eight digits" (e.g. 99999999 for 999,999.99 USD).
STRIPE_MAX_AMOUNT = 99_999_999
MAX_MINOR = 2**63 - 1
MAX_PRESETS = 6
SESSION_TTL_RANGE_S = (1800, 86_400)  # Stripe: a session expires 30 minutes to 24 hours after


@dataclasses.dataclass(frozen=True, slots=True)
class StripeCurrency:
    """A currency as Stripe's API counts it."""

    code: str  # lower-case ISO 4217, as Stripe wants it
    exponent: int  # decimal places of the API's minor unit
    step: int  # an amount must be a multiple of this many minor units

    @classmethod
    def of(cls, code: str) -> StripeCurrency:
        code = code.lower()
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise ConfigError(f"a Stripe currency is a 3-letter ISO code, got {code!r}")
        if code in ZERO_DECIMAL:
            return cls(code, 0, 1)
        if code in THREE_DECIMAL:
            return cls(code, 3, 10)
        if code in WHOLE_UNITS_ONLY:
            return cls(code, 2, 100)
        return cls(code, 2, 1)


@dataclasses.dataclass(frozen=True, slots=True)
class Conversion:
    """Trickle's asset (code, scale) <-> a Stripe currency, exactly."""

    asset_code: str
    scale: int
    currency: StripeCurrency

    def __post_init__(self) -> None:
        if self.scale < self.currency.exponent:
            raise ConfigError(
                f"TRICKLE_ASSET_SCALE {self.scale} cannot hold {self.currency.code.upper()}'s "
                f"{self.currency.exponent} decimal places"
            )

    @property
    def factor(self) -> int:
        """Trickle minor units per Stripe minor unit."""
        factor: int = 10 ** (self.scale - self.currency.exponent)
        return factor

    def to_stripe(self, amount_minor: int) -> int:
        """Trickle minor units -> Stripe's amount; ``AmountNotChargeable`` unless exact."""
        if type(amount_minor) is not int or not 0 < amount_minor <= MAX_MINOR:
            raise InvalidAmount(f"amount must be a positive integer below 2^63, got {amount_minor}")
        amount, remainder = divmod(amount_minor, self.factor)
        if remainder or amount % self.currency.step:
            unit = money.format_minor(self.factor * self.currency.step, self.scale)
            raise AmountNotChargeable(
                f"{money.format_minor(amount_minor, self.scale)} {self.asset_code} cannot be "
                f"charged in {self.currency.code.upper()}: card amounts are whole multiples of "
                f"{unit}"
            )
        if amount > STRIPE_MAX_AMOUNT:
            raise AmountNotChargeable(
                f"Stripe charges at most {STRIPE_MAX_AMOUNT} {self.currency.code.upper()} "
                f"minor units at once, not {amount}"
            )
        return amount


@dataclasses.dataclass(frozen=True, slots=True)
class CardConfig:
    """Everything card top-ups need, checked once at start-up (``from_settings``)."""

    secret_key: str = dataclasses.field(repr=False)
    webhook_secret: str = dataclasses.field(repr=False)
    api_base: str  # empty: Stripe's own
    conversion: Conversion
    presets_minor: tuple[int, ...]
    min_minor: int
    max_minor: int
    session_ttl_s: int

    def check_amount(self, amount_minor: int) -> int:
        """The Stripe amount of a top-up of ``amount_minor``, or why it cannot be one."""
        if not self.min_minor <= amount_minor <= self.max_minor:
            scale, code = self.conversion.scale, self.conversion.asset_code
            raise TopupAmountOutOfRange(
                f"a card top-up is {money.format_minor(self.min_minor, scale)} to "
                f"{money.format_minor(self.max_minor, scale)} {code}, not "
                f"{money.format_minor(amount_minor, scale)}"
            )
        return self.conversion.to_stripe(amount_minor)

    def amount_pattern(self) -> str:
        """A regular expression (anchored; JSON Schema's dialect too) for exactly the amounts a
        card top-up may be: min..max, in whole multiples of the smallest chargeable amount (a
        power of ten). The served /openapi.json declares it, so the schema says what
        ``check_amount`` accepts."""
        unit = self.conversion.factor * self.conversion.currency.step
        zeros = len(str(unit)) - 1
        choices = range_choices(-(-self.min_minor // unit), self.max_minor // unit)
        return "^(?:" + "|".join(choices) + ")" + (f"0{{{zeros}}}" if zeros else "") + "$"


def range_choices(low: int, high: int) -> list[str]:
    """Regular expressions whose union matches exactly the decimal strings of low..high (no
    sign, no leading zero): split by digit count, then by prefix, like money.decimal_pattern."""
    choices: list[str] = []
    while low <= high:
        top = min(high, 10 ** len(str(low)) - 1)
        choices += _same_length(str(low), str(top))
        low = top + 1
    return choices


def _same_length(low: str, high: str) -> list[str]:
    """Digit strings of one length from low to high (leading zeros allowed past the first)."""
    if low == high:
        return [low]
    common = 0
    while low[common] == high[common]:
        common += 1
    prefix, low, high = low[:common], low[common:], high[common:]
    rest = len(low) - 1
    if rest == 0:
        return [f"{prefix}[{low}-{high}]"]
    choices: list[str] = []
    first, last = int(low[0]), int(high[0])
    if low[1:] != "0" * rest:
        choices += [prefix + low[0] + c for c in _same_length(low[1:], "9" * rest)]
        first += 1
    if high[1:] != "9" * rest:
        last -= 1
    if first <= last:
        digit = str(first) if first == last else f"[{first}-{last}]"
        choices.append(f"{prefix}{digit}[0-9]{{{rest}}}")
    if high[1:] != "9" * rest:
        choices += [prefix + high[0] + c for c in _same_length("0" * rest, high[1:])]
    return choices


def _amount(name: str, text: str, scale: int) -> int:
    try:
        return money.parse_decimal(text, scale)
    except InvalidAmount as exc:
        raise ConfigError(f"{name}: {exc}") from None


def from_settings(settings: Settings) -> CardConfig | None:
    """The card top-up configuration, or None when the operator set no Stripe secret key (then
    the card option is absent and nothing else changes). ``ConfigError`` for any bad value."""
    if not settings.stripe_secret_key:
        if settings.stripe_webhook_secret:
            raise ConfigError(
                "TRICKLE_STRIPE_WEBHOOK_SECRET is set without TRICKLE_STRIPE_SECRET_KEY"
            )
        return None
    if not settings.stripe_secret_key.startswith(("sk_", "rk_")):
        raise ConfigError(
            "TRICKLE_STRIPE_SECRET_KEY must be a secret (sk_…) or restricted (rk_…) key; "
            "never the publishable pk_… key"
        )
    if not settings.stripe_webhook_secret.startswith("whsec_"):
        raise ConfigError(
            "TRICKLE_STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret (whsec_…)"
        )
    api_base = settings.stripe_api_base.rstrip("/")
    if api_base and not api_base.startswith(("https://", "http://")):
        raise ConfigError(f"TRICKLE_STRIPE_API_BASE must be an http(s) URL, got {api_base!r}")
    if settings.env == "production" and api_base and not api_base.startswith("https://"):
        raise ConfigError("TRICKLE_STRIPE_API_BASE must be https:// in production")
    ttl_low, ttl_high = SESSION_TTL_RANGE_S
    if not ttl_low <= settings.stripe_session_ttl_s <= ttl_high:
        raise ConfigError(
            f"TRICKLE_STRIPE_SESSION_TTL_S must be {ttl_low}..{ttl_high} seconds (Stripe's "
            f"range), got {settings.stripe_session_ttl_s}"
        )
    currency = StripeCurrency.of(settings.stripe_currency or settings.currency)
    conversion = Conversion(settings.currency, settings.asset_scale, currency)
    scale = settings.asset_scale
    low = _amount("TRICKLE_STRIPE_MIN_AMOUNT", settings.stripe_min_amount, scale)
    high = _amount("TRICKLE_STRIPE_MAX_AMOUNT", settings.stripe_max_amount, scale)
    if low > high:
        raise ConfigError("TRICKLE_STRIPE_MIN_AMOUNT is above TRICKLE_STRIPE_MAX_AMOUNT")
    texts = [p.strip() for p in settings.stripe_presets.split(",") if p.strip()]
    if not 1 <= len(texts) <= MAX_PRESETS:
        raise ConfigError(f"TRICKLE_STRIPE_PRESETS must list 1..{MAX_PRESETS} amounts")
    presets = tuple(_amount("TRICKLE_STRIPE_PRESETS", text, scale) for text in texts)
    for name, value in [("MIN_AMOUNT", low), ("MAX_AMOUNT", high)] + [
        ("PRESETS", p) for p in presets
    ]:
        try:
            conversion.to_stripe(value)
        except AmountNotChargeable as exc:
            raise ConfigError(f"TRICKLE_STRIPE_{name}: {exc}") from None
    if any(not low <= p <= high for p in presets):
        raise ConfigError("every TRICKLE_STRIPE_PRESETS amount must be within the min and max")
    return CardConfig(
        secret_key=settings.stripe_secret_key,
        webhook_secret=settings.stripe_webhook_secret,
        api_base=api_base,
        conversion=conversion,
        presets_minor=tuple(sorted(set(presets))),
        min_minor=low,
        max_minor=high,
        session_ttl_s=settings.stripe_session_ttl_s,
    )


@functools.lru_cache(maxsize=8)
def config_of(settings: Settings) -> CardConfig | None:
    """``from_settings``, parsed once per settings object."""
    return from_settings(settings)
