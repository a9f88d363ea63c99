"""Card top-ups' money rules: Trickle's minor units (scale 9) <-> Stripe's (the currency's minor
unit), exact at the edges or refused; and the Stripe settings, refused at start-up when wrong."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trickle import cards
from trickle.cards import STRIPE_MAX_AMOUNT, Conversion, StripeCurrency
from trickle.errors import (
    AmountNotChargeable,
    ConfigError,
    InvalidAmount,
    TopupAmountOutOfRange,
)
from trickle.settings import Settings, load_settings

CENT = 10_000_000  # one US cent at scale 9
USD = Conversion("USD", 9, StripeCurrency.of("usd"))
JPY = Conversion("JPY", 9, StripeCurrency.of("JPY"))
KWD = Conversion("KWD", 9, StripeCurrency.of("kwd"))
ISK = Conversion("ISK", 9, StripeCurrency.of("isk"))
STRIPE = Settings(stripe_secret_key="sk_test_abc", stripe_webhook_secret="whsec_abc")


def _stripe(**overrides: Any) -> Settings:
    """The settings with Stripe's keys, and ``overrides``."""
    return dataclasses.replace(STRIPE, **overrides)


def test_stripes_minor_units_per_currency() -> None:
    assert (USD.currency.exponent, USD.currency.step, USD.factor) == (2, 1, CENT)
    assert (JPY.currency.code, JPY.currency.exponent, JPY.factor) == ("jpy", 0, 10**9)
    assert (KWD.currency.exponent, KWD.currency.step) == (3, 10)
    assert (ISK.currency.exponent, ISK.currency.step) == (2, 100)


@pytest.mark.parametrize(
    ("conversion", "amount_minor", "stripe_amount"),
    [
        (USD, CENT, 1),  # the smallest chargeable amount
        (USD, 5_000_000_000, 500),
        (USD, STRIPE_MAX_AMOUNT * CENT, STRIPE_MAX_AMOUNT),  # 999,999.99: eight digits
        (JPY, 10**9, 1),
        (JPY, 500 * 10**9, 500),
        (KWD, 1_010_000_000, 1010),  # 1.010 KWD: the last digit is 0
        (ISK, 5 * 10**9, 500),
        (Conversion("USD", 2, StripeCurrency.of("usd")), 500, 500),  # scale 2: one to one
    ],
)
def test_exact_amounts_convert_exactly(
    conversion: Conversion, amount_minor: int, stripe_amount: int
) -> None:
    assert conversion.to_stripe(amount_minor) == stripe_amount


@pytest.mark.parametrize(
    ("conversion", "amount_minor"),
    [
        (USD, CENT - 1),  # below a cent
        (USD, 5_000_000_001),  # 5.000000001
        (USD, 5 * 10**9 + CENT // 2),  # half a cent
        (USD, (STRIPE_MAX_AMOUNT + 1) * CENT),  # nine digits
        (JPY, 10**9 // 2),  # half a yen
        (KWD, 1_005_000_000),  # 1.005 KWD: Stripe wants the last digit 0
        (ISK, 150 * 10**7),  # 1.50 ISK: whole krónur only
    ],
)
def test_amounts_that_do_not_convert_exactly_are_refused(
    conversion: Conversion, amount_minor: int
) -> None:
    with pytest.raises(AmountNotChargeable):
        conversion.to_stripe(amount_minor)


@pytest.mark.parametrize("amount", [0, -1, 2**63, True, 1.0])
def test_non_amounts_are_refused(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        USD.to_stripe(amount)  # type: ignore[arg-type]


@given(cents=st.integers(1, STRIPE_MAX_AMOUNT), dust=st.integers(0, CENT - 1))
def test_every_cent_amount_round_trips_and_nothing_between(cents: int, dust: int) -> None:
    amount_minor = cents * CENT + dust
    if dust == 0:
        assert USD.to_stripe(amount_minor) * USD.factor == amount_minor
    else:
        with pytest.raises(AmountNotChargeable):
            USD.to_stripe(amount_minor)


def test_a_scale_below_the_currencys_decimals_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot hold"):
        Conversion("USD", 1, StripeCurrency.of("usd"))
    assert Conversion("JPY", 0, StripeCurrency.of("jpy")).to_stripe(5) == 5


def test_without_a_secret_key_there_are_no_card_topups() -> None:
    assert cards.from_settings(Settings()) is None
    assert load_settings({}).stripe_secret_key == ""


def test_the_defaults_make_a_usd_card_config() -> None:
    config = cards.from_settings(STRIPE)
    assert config is not None
    assert config.presets_minor == (5 * 10**9, 10 * 10**9, 20 * 10**9)
    assert (config.min_minor, config.max_minor) == (10**9, 500 * 10**9)
    assert config.conversion.currency.code == "usd"
    assert "sk_test_abc" not in repr(config) and "whsec_abc" not in repr(config)
    assert "sk_test_abc" not in repr(STRIPE)


def test_a_zero_decimal_service_currency_needs_whole_presets() -> None:
    base = _stripe(currency="JPY", stripe_min_amount="100", stripe_max_amount="50000")
    config = cards.from_settings(dataclasses.replace(base, stripe_presets="500,1000"))
    assert config is not None and config.conversion.factor == 10**9
    with pytest.raises(ConfigError, match="PRESETS"):
        cards.from_settings(dataclasses.replace(base, stripe_presets="500.50"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stripe_secret_key": "pk_test_abc"}, "publishable"),
        ({"stripe_webhook_secret": ""}, "whsec_"),
        ({"stripe_secret_key": ""}, "without TRICKLE_STRIPE_SECRET_KEY"),
        ({"stripe_presets": "5.00,600.00"}, "within the min and max"),
        ({"stripe_presets": "5.001"}, "PRESETS"),
        ({"stripe_presets": ""}, "1..6"),
        ({"stripe_presets": "1,2,3,4,5,6,7"}, "1..6"),
        ({"stripe_min_amount": "10.00", "stripe_max_amount": "5.00"}, "above"),
        ({"stripe_max_amount": "1000000.00"}, "MAX_AMOUNT"),  # nine digits of cents
        ({"stripe_min_amount": "abc"}, "MIN_AMOUNT"),
        ({"stripe_currency": "dollars"}, "3-letter"),
        ({"stripe_session_ttl_s": 600}, "1800..86400"),
        ({"stripe_api_base": "ftp://stripe.test"}, "http"),
        ({"asset_scale": 1}, "cannot hold"),
        # Scale 18: 10.00 USD is past 2^63 minor units.
        ({"asset_scale": 18, "stripe_presets": "5.00"}, "MAX_AMOUNT"),
    ],
)
def test_bad_stripe_settings_are_refused_at_start_up(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _stripe(**overrides).validate()


def test_production_wants_https_for_a_stripe_api_base() -> None:
    production = {
        "env": "production",
        "key_encryption_key": "x" * 44,
        "public_url": "https://trickle.example",
    }
    with pytest.raises(ConfigError, match="https"):
        _stripe(**production, stripe_api_base="http://127.0.0.1:1").validate()
    _stripe(**production).validate()


def test_settings_from_the_environment() -> None:
    settings = load_settings(
        {
            "TRICKLE_STRIPE_SECRET_KEY": "rk_live_abc",
            "TRICKLE_STRIPE_WEBHOOK_SECRET": "whsec_abc",
            "TRICKLE_STRIPE_PRESETS": "2.50, 7.50",
            "TRICKLE_STRIPE_SESSION_TTL_S": "1800",
        }
    )
    config = cards.config_of(settings)
    assert config is not None and config.presets_minor == (2_500_000_000, 7_500_000_000)
    assert config.session_ttl_s == 1800
    assert dataclasses.replace(settings, stripe_secret_key="") != settings


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"stripe_min_amount": "0.50", "stripe_max_amount": "999999.99", "stripe_presets": "1.00"},
        {"currency": "JPY", "stripe_min_amount": "50", "stripe_max_amount": "99999999"}
        | {"stripe_presets": "500"},
        {"currency": "KWD", "stripe_min_amount": "0.100", "stripe_max_amount": "1234.560"}
        | {"stripe_presets": "5.000"},
        {"currency": "ISK", "stripe_min_amount": "100", "stripe_max_amount": "75000"}
        | {"stripe_presets": "1000"},
    ],
)
def test_the_served_amount_pattern_is_exactly_what_the_limits_allow(
    overrides: dict[str, str],
) -> None:
    """/openapi.json declares the top-up amounts with ``amount_pattern``; every amount matches
    it exactly when ``check_amount`` takes it."""
    config = cards.from_settings(_stripe(**overrides))
    assert config is not None
    pattern = re.compile(config.amount_pattern())
    unit = config.conversion.factor * config.conversion.currency.step
    low, high = config.min_minor, config.max_minor
    candidates = {low, high, low - 1, high + 1, low - unit, high + unit, low + 1, high - 1}
    candidates |= {low + k * unit for k in (1, 2, 7, 10, 99, 100, 1000)}
    candidates |= {high - k * unit for k in (1, 9, 10, 11)}
    candidates |= {10**n for n in range(19)} | {5 * 10**n + unit for n in range(17)}
    for amount in sorted(c for c in candidates if c > 0):
        try:
            config.check_amount(amount)
            taken = True
        except (AmountNotChargeable, TopupAmountOutOfRange):
            taken = False
        assert bool(pattern.fullmatch(str(amount))) == taken, amount


@given(low=st.integers(0, 10**7), span=st.integers(0, 10**7), probe=st.integers(0, 3 * 10**7))
def test_range_choices_match_exactly_the_range(low: int, span: int, probe: int) -> None:
    pattern = re.compile("^(?:" + "|".join(cards.range_choices(low, low + span)) + ")$")
    for value in (probe, low, low + span, low - 1, low + span + 1):
        if value >= 0:
            assert bool(pattern.match(str(value))) == (low <= value <= low + span), value
    assert not pattern.match(f"0{low + span}")
