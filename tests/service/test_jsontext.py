"""The one JSON nesting limit (``trickle.jsontext``): exact, flat (independent of the caller's
stack), linear whatever the text; and ``loads``, which refuses what no text can hold."""

from __future__ import annotations

import json
import sys
import time

import pytest

from trickle import jsontext
from trickle.jsontext import MAX_DEPTH, NotText, TooDeep, check_depth


def nested(depth: int, *, opener: str = "[") -> str:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return '{"a":' * depth + "1" + closer * depth
    return opener * depth + closer * depth


@pytest.mark.parametrize("opener", ["[", "{"])
def test_the_cut_off_is_exactly_the_limit(opener: str) -> None:
    check_depth(nested(MAX_DEPTH, opener=opener))
    assert json.loads(nested(MAX_DEPTH, opener=opener))
    with pytest.raises(TooDeep):
        check_depth(nested(MAX_DEPTH + 1, opener=opener))


def test_the_issue_s_body_is_refused() -> None:
    # Issue 11 item 6: 1000 levels made json.loads raise RecursionError (a 500).
    with pytest.raises(TooDeep):
        check_depth("[" * 1000 + "]" * 1000)


def test_arrays_and_objects_count_alike_and_brackets_in_strings_do_not() -> None:
    mixed = '{"k":[' * (MAX_DEPTH // 2) + "0" + "]}" * (MAX_DEPTH // 2)
    check_depth(mixed)
    with pytest.raises(TooDeep):
        check_depth("[" + mixed + "]")
    in_strings = json.dumps({"text": "[[[{{{" * 100, "escaped": '\\"[[[' * 100})
    check_depth(in_strings)
    check_depth("[" * MAX_DEPTH + '"]]]]\\"[[[["' + "]" * MAX_DEPTH)


def test_text_that_is_not_json_is_left_to_the_parser() -> None:
    check_depth("]]]]]" + "[" * MAX_DEPTH)  # the parser stops at the first "]"
    check_depth('"unterminated [[[[' + "[" * 100)  # all one (broken) string to the parser
    with pytest.raises(TooDeep):
        check_depth("[" * (MAX_DEPTH + 1) + '"unterminated')


def test_bytes_are_read_as_json_loads_reads_them() -> None:
    check_depth(nested(MAX_DEPTH).encode())
    with pytest.raises(TooDeep):
        check_depth(nested(MAX_DEPTH + 1).encode("utf-16"))
    with pytest.raises(UnicodeDecodeError):
        check_depth(b"[\xff" + b"[" * 100)


def test_the_cut_off_does_not_depend_on_the_callers_stack() -> None:
    def at_depth(levels: int) -> None:
        if levels:
            at_depth(levels - 1)
            return
        check_depth(nested(MAX_DEPTH))
        with pytest.raises(TooDeep):
            check_depth(nested(MAX_DEPTH + 1))

    at_depth(sys.getrecursionlimit() - 100)


def test_the_scan_is_linear_on_hostile_text() -> None:
    # Many quotes that each start a string running to the end: a naive regex goes quadratic.
    hostile = "[" * (MAX_DEPTH + 1) + '"\\' * 30_000
    start = time.monotonic()
    with pytest.raises(TooDeep):
        check_depth(hostile)
    check_depth('"' + '\\"' * 30_000)
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        '{"a": Infinity}',
        '["\\ud800"]',
        '{"\\udfff": 1}',
        '"\\ud800\\u0041"',
    ],
)
def test_loads_refuses_what_no_text_holds(text: str) -> None:
    with pytest.raises(NotText):
        jsontext.loads(text)


def test_loads_reads_everything_else() -> None:
    assert jsontext.loads('{"emoji": "\\ud83d\\ude00", "n": [1, 2.5, null, true]}') == {
        "emoji": "\U0001f600",
        "n": [1, 2.5, None, True],
    }
    with pytest.raises(TooDeep):
        jsontext.loads(nested(MAX_DEPTH + 1))
