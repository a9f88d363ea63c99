"""The publisher's amounts: written and read exactly as the service's own ``trickle.money`` does
(the publisher keeps its own two functions because it imports nothing of the service)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trickle.money import format_minor, parse_decimal
from trickle_publisher.amounts import format_amount, minor_units

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
