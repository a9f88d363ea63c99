"""JSON text from outside the service: the one nesting limit every parser of it applies (the
API's request bodies, the stream protocol's messages) before ``json.loads`` sees it, and
``loads`` for the API's bodies, which also refuses what JSON allows but no text can hold.

Python's parser recurses once per level, so text nested ~1000 deep raises ``RecursionError``
(a 500, a dropped socket), at a depth that depends on the caller's stack. The check here is a
flat scan, so its cut-off is exactly ``MAX_DEPTH`` wherever it runs. docs/api.md (Conventions)
is where the limit is documented.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # arrays and objects inside each other; every valid message or body needs <= 4

# A string (to its closing quote, or to the end of an unterminated one: then the text is not JSON
# and the parser never gets past it), or a bracket. A string always matches from its opening
# quote without backtracking, so the scan is linear whatever the text.
_TOKENS = re.compile(r'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.DOTALL)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins every valid pair


class TooDeep(ValueError):
    """The JSON text nests arrays and objects deeper than ``MAX_DEPTH``."""


class NotText(ValueError):
    """The JSON is well-formed but is not what the service reads: NaN or Infinity, or a string
    with a lone surrogate (``"\\ud800"`` unpaired), which no UTF-8 text, database or hash takes."""


def check_depth(text: str | bytes, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``TooDeep`` if ``text`` nests deeper than ``max_depth``; text that is not JSON passes
    (or raises ``UnicodeDecodeError``) and is left for the parser to refuse. Bytes are decoded as
    ``json.loads`` decodes them."""
    if isinstance(text, bytes):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    if text.count("[") + text.count("{") <= max_depth:
        return  # the common case: too few brackets to be too deep, no scan needed
    depth = 0
    for match in _TOKENS.finditer(text):
        bracket = match.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"JSON nested deeper than {max_depth} levels")
        elif bracket in ("]", "}"):
            depth = max(depth - 1, 0)


def loads(text: str) -> Any:
    """``json.loads`` within ``MAX_DEPTH``, refusing NaN and Infinity and lone surrogates (keys
    included). Every refusal is a ``ValueError``: ``json.JSONDecodeError``, ``TooDeep``,
    ``NotText``."""
    check_depth(text)
    data = json.loads(text, parse_constant=_refuse_constant)
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                raise NotText("a string holds a lone surrogate: it is not Unicode text")
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return data


def _refuse_constant(name: str) -> Any:
    raise NotText(f"{name} is not JSON")
