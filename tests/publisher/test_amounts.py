"""The publisher's amounts: written and read exactly as the service's own ``trickle.money`` does
(the publisher keeps its own two functions because it imports nothing of the service)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trickle import money
from trickle.money import format_minor, parse_decimal
from trickle_publisher.amounts import format_amount, format_exact, format_money, minor_units

SCALES = st.integers(min_value=0, max_value=18)


@given(st.integers(min_value=0, max_value=2**63 - 1), SCALES)
def test_amounts_are_written_as_the_service_writes_them(amount_minor: int, scale: int) -> None:
    assert format_amount(amount_minor, scale) == format_minor(amount_minor, scale)


@given(st.integers(min_value=1, max_value=2**63 - 1), SCALES)
def test_prices_are_read_as_the_service_reads_them(amount_minor: int, scale: int) -> None:
    text = format_minor(amount_minor, scale)
    assert minor_units(text, scale) == parse_decimal(text, scale) == amount_minor


@pytest.mark.parametrize("text", ["0", "0.00", "-1", "0.0000000001", "abc", "", "NaN", "inf"])
def test_an_impossible_price_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a positive amount with at most 9 decimals"):
        minor_units(text, 9)


AMOUNT_FORMAT = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "amount-format.json").read_text("utf-8")
)


@pytest.mark.parametrize("case", AMOUNT_FORMAT["cases"], ids=lambda c: c["name"])
def test_amounts_for_people_follow_the_shared_vectors(case: dict[str, Any]) -> None:
    assert format_money(int(case["minor"]), case["scale"], case["currency"]) == case["text"]


@pytest.mark.parametrize("case", AMOUNT_FORMAT["exact"], ids=lambda c: c["name"])
def test_the_exact_amount_keeps_every_digit(case: dict[str, Any]) -> None:
    assert format_exact(int(case["minor"]), case["scale"], case["currency"]) == case["text"]


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), SCALES)
def test_amounts_for_people_are_written_as_the_service_writes_them(
    amount_minor: int, scale: int
) -> None:
    for currency in ("USD", "JPY", "BHD", "CHF", "USDC"):
        assert format_money(amount_minor, scale, currency) == money.format_money(
            amount_minor, scale, currency
        )
