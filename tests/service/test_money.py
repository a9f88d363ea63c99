"""``trickle.money``: the one bound (2^63-1) and the patterns that declare amounts' bounds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from trickle import money

MAX = money.MAX_AMOUNT


def test_headroom_is_what_may_be_held_before_adding() -> None:
    assert money.headroom(10) == MAX - 10
    assert money.headroom(10, 100) == 90
    assert money.headroom(101, 100) == -1


def test_decimal_patterns_match_exactly_their_range() -> None:
    for high in (0, 1, 9, 10, 99, 100, 101, 555, 10**11, money.MAX_AMOUNT):
        for positive in (False, True):
            if positive and high < 1:
                continue
            pattern = re.compile(money.decimal_pattern(high, positive=positive))
            low = 1 if positive else 0
            values = [*range(0, 200), high - 1, high, high + 1, high * 10, 10**19]
            for value in values:
                assert bool(pattern.fullmatch(str(value))) == (low <= value <= high), (high, value)
            for text in ("00", "01", "-1", "1.0", "", " 1", "1e3", "+1"):
                assert not pattern.fullmatch(text)


# Amounts for people: the cases the extension's formatMoney passes too (en-US).
AMOUNT_FORMAT = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "amount-format.json").read_text("utf-8")
)


@pytest.mark.parametrize("case", AMOUNT_FORMAT["cases"], ids=lambda c: c["name"])
def test_amounts_for_people_follow_the_shared_vectors(case: dict[str, Any]) -> None:
    assert AMOUNT_FORMAT["locale"] == "en-US"
    text = money.format_money(int(case["minor"]), case["scale"], case["currency"])
    assert text == case["text"]


@pytest.mark.parametrize("case", AMOUNT_FORMAT["exact"], ids=lambda c: c["name"])
def test_the_exact_amount_keeps_every_digit(case: dict[str, Any]) -> None:
    assert money.format_exact(int(case["minor"]), case["scale"], case["currency"]) == case["text"]
