"""Text for people to read that the service stores and shows (a payee's display name, a one-time
payment's description): one rule, ``TEXT_PATTERN``, which /openapi.json declares too."""

from __future__ import annotations

import re

from trickle.errors import ValidationFailed

# Refused anywhere in the text: control characters (tab, line feed and carriage return aside),
# characters that hide or reorder text (soft hyphen, zero-width and bidi controls, the BOM, the
# other format characters of the Basic Multilingual Plane), private-use characters and
# noncharacters. Escapes that Python's and JSON Schema's regexes both read. (Lone surrogates
# never get here: a JSON body with one is malformed_json, and UTF-8 cannot encode them.)
_REFUSED = (
    r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    r"\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    r"\ue000-\uf8ff\ufdd0-\ufdef\ufffe\uffff"
)
# Whitespace (as str.split sees it, once the refused characters are out): runs become one space.
_SPACE = r"\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# At least one character that is neither refused nor whitespace.
TEXT_PATTERN = rf"^[^{_REFUSED}]*[^{_REFUSED}{_SPACE}][^{_REFUSED}]*$"
_TEXT = re.compile(TEXT_PATTERN)


def clean_text(text: str, *, field: str, max_chars: int) -> str:
    """``text`` with every run of whitespace one space and none around it, if it has at most
    ``max_chars`` characters (as sent) and matches ``TEXT_PATTERN``; else ``ValidationFailed``."""
    if len(text) > max_chars or not _TEXT.fullmatch(text):
        raise ValidationFailed(
            f"{field} must be 1-{max_chars} characters, not all spaces, without control or "
            "invisible formatting characters"
        )
    return " ".join(text.split())
