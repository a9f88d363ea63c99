"""``trickle.text``: the one rule for text people read (display names, descriptions), which the
API's schema declares as the same pattern."""

from __future__ import annotations

import pytest

from trickle.errors import ValidationFailed
from trickle.text import clean_text


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("The long read", "The long read"),
        ("  two\t\nlines \r\n ", "two lines"),
        ("caf\u00e9 \u4e2d\u6587 \U0001f600", "caf\u00e9 \u4e2d\u6587 \U0001f600"),
        ("no\u00a0break\u3000space", "no break space"),
    ],
)
def test_text_is_kept_with_its_whitespace_collapsed(text: str, cleaned: str) -> None:
    assert clean_text(text, field="description", max_chars=200) == cleaned


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \t\n",
        "nul\x00",
        "bell\x07",
        "vertical\x0btab",
        "c1\x85control",
        "bidi \u202e override",
        "isolate\u2066x\u2069",
        "zero\u200bwidth",
        "soft\u00adhyphen",
        "bom\ufeff",
        "private\ue000use",
        "non\uffffcharacter",
        "x" * 201,
    ],
)
def test_control_and_invisible_characters_are_refused(text: str) -> None:
    with pytest.raises(ValidationFailed):
        clean_text(text, field="description", max_chars=200)
