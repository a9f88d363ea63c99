"""Strict decoding of JWS compact serialization pieces: canonical base64url and the profile's
JSON (docs/receipts.md §2): objects without duplicate members, nested at most ``MAX_JSON_DEPTH``
levels, no lone surrogates, integers without sign, fraction or exponent (two parsers must never
disagree on what was signed)."""

from __future__ import annotations

import binascii
import itertools
import json
import operator
import re
from collections.abc import Callable
from typing import Any, cast

__all__ = [
    "MAX_JSON_DEPTH",
    "DecodeError",
    "b64url_decode",
    "b64url_encode",
    "check_canonical_b64url",
    "compact_shape_problem",
    "decode_checked",
    "decode_checked_ascii",
    "describe",
    "has_canonical_tail",
    "json_type_name",
    "parse_json_object",
]

_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_INDEX = {char: index for index, char in enumerate(_B64URL_ALPHABET)}
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD_BYTES = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")


class DecodeError(ValueError):
    """A piece of a token is not strictly well formed; the caller maps it to a rule's code."""


def describe(value: object, limit: int = 40) -> str:
    """A short repr of an untrusted value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_canonical_b64url(text: str) -> None:
    """Raise ``DecodeError`` unless ``text`` is canonical unpadded base64url: only the url
    alphabet, a length that is not 1 mod 4, and zero bits after the last encoded byte."""
    remainder = len(text) % 4
    if remainder == 1:
        raise DecodeError(f"base64url text of length {len(text)} (1 mod 4) cannot be decoded")
    if not _B64URL_RE.fullmatch(text):
        raise DecodeError(
            f"expected base64url without padding (A-Z a-z 0-9 - _), got {describe(text)}"
        )
    # A non-canonical encoding sets bits the decoder would silently drop.
    if remainder == 2 and _B64URL_INDEX[text[-1]] & 0x0F:
        raise DecodeError("non-canonical base64url: trailing bits after the last byte are set")
    if remainder == 3 and _B64URL_INDEX[text[-1]] & 0x03:
        raise DecodeError("non-canonical base64url: trailing bits after the last byte are set")


def b64url_decode(text: str) -> bytes:
    """Decode canonical unpadded base64url, raising ``DecodeError`` on anything else."""
    check_canonical_b64url(text)
    return decode_checked(text)


def decode_checked(text: str) -> bytes:
    """Decode text already known to be canonical base64url."""
    return decode_checked_ascii(text.encode("ascii"))


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return (
        binascii.b2a_base64(data, newline=False)
        .decode("ascii")
        .rstrip("=")
        .translate(str.maketrans("+/", "-_"))
    )


def compact_shape_problem(token: str) -> str:
    """Say why ``token`` failed ``is_compact_shape`` (for the error message)."""
    parts = token.split(".")
    if len(parts) != 3:
        return f"expected 3 parts separated by '.', got {len(parts)}"
    if not all(parts):
        return "expected 3 non-empty parts, got an empty part"
    for name, part in zip(("header", "payload", "signature"), parts, strict=True):
        if not _B64URL_RE.fullmatch(part):
            return (
                "expected base64url without padding (A-Z a-z 0-9 - _) "
                f"in the {name}, got {describe(part)}"
            )
    return "expected a compact JWS"


def has_canonical_tail(part: str) -> bool:
    """For text of the base64url alphabet: True if its length is possible and the bits past
    the last encoded byte are zero (a non-canonical encoding sets bits decoders drop)."""
    remainder = len(part) & 3
    if remainder == 0:
        return True
    if remainder == 1:
        return False
    return not _B64URL_INDEX[part[-1]] & (0x0F if remainder == 2 else 0x03)


def decode_checked_ascii(data: bytes) -> bytes:
    """Decode ASCII bytes already known to be canonical base64url."""
    return binascii.a2b_base64(data.translate(_TO_STANDARD_BYTES) + _PADDING[len(data) & 3])


MAX_JSON_DEPTH = 32
"""The deepest nesting of arrays and objects allowed; the top-level object is level 1."""

_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_OPENER_TWO_CLOSER_ZERO = bytes.maketrans(b"[]{}", b"\x02\x00\x02\x00")
# Escaped backslashes and well-formed surrogate pairs; what is left of a \uD800-\uDFFF escape
# after removing them is a lone surrogate.
_BACKSLASH_OR_PAIR_RE = re.compile(
    r"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise DecodeError(f"expected unique member names, got {describe(name)} twice")
            seen.add(name)
    return result


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"expected standard JSON, got the non-standard constant {name}")


def _integer_or_negative_zero(literal: str) -> int | float:
    return -0.0 if literal == "-0" else int(literal)


_DECODER = json.JSONDecoder(object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
_DECODER_NEGATIVE_ZERO = json.JSONDecoder(
    object_pairs_hook=_object_pairs,
    parse_constant=_reject_constant,
    parse_int=_integer_or_negative_zero,
)
# The C scanner JSONDecoder.decode uses, minus its whitespace handling (an instance attribute
# that typeshed does not declare).
_SCAN = cast("Callable[[str, int], tuple[Any, int]]", vars(_DECODER)["scan_once"])


def parse_json_object(data: bytes, *, negative_zero_as_float: bool = False) -> dict[str, Any]:
    """Parse the profile's JSON (UTF-8, an object; no duplicate member names at any depth, at
    most ``MAX_JSON_DEPTH`` levels, no lone surrogate escapes), or raise ``DecodeError``.

    The literal ``-0`` is not an integer of the profile, but Python's parser reads it as 0;
    with ``negative_zero_as_float`` it comes back as ``-0.0``, which no integer check accepts.
    That decoder is slower, so callers ask for it only when a 0 they must vouch for turned up.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"expected UTF-8, got an invalid byte at offset {exc.start}") from None
    # Before parsing: the C scanner recurses, so its own limit depends on the caller's stack.
    # One object and no array (every receipt a service signs) needs no count; single-character
    # searches are the cheap ones.
    if "[" in text or text.rfind("{") > 0:
        depth = _nesting_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise DecodeError(
                f"expected JSON nested at most {MAX_JSON_DEPTH} levels deep, got {depth} levels"
            )
    try:
        if negative_zero_as_float:
            value = _DECODER_NEGATIVE_ZERO.decode(text)
        else:
            try:  # fast path: the object fills the text exactly (no surrounding whitespace)
                value, end = _SCAN(text, 0)
            except StopIteration:
                end = -1
            if end != len(text):
                value = _DECODER.decode(text)  # whitespace, or raises the precise syntax error
    except DecodeError:
        raise
    except ValueError as exc:  # json.JSONDecodeError and int-conversion limits
        raise DecodeError(f"expected JSON, got a syntax error: {exc}") from None
    if type(value) is not dict:
        raise DecodeError(f"expected a JSON object, got a JSON {json_type_name(value)}")
    if "\\" in text:  # escapes are rare; only they can spell a lone surrogate
        _check_surrogate_escapes(text)
    return value


def _nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, without recursion: brackets
    outside strings, each opener +1 and each closer -1; the highest running sum."""
    brackets = _NOT_BRACKET_RE.sub("", _JSON_STRING_RE.sub("", text)).encode("ascii")
    # With openers as 2 and closers as 0, the depth after the i-th bracket is the sum so far - i.
    steps = brackets.translate(_OPENER_TWO_CLOSER_ZERO)
    return max(map(operator.sub, itertools.accumulate(steps), itertools.count(1)), default=0)


def _check_surrogate_escapes(text: str) -> None:
    """Reject a \\uD800-\\uDFFF escape that is not half of a high-low pair (RFC 7493 §2.1): it
    names no character, and parsers disagree on what to make of it. ``text`` is valid JSON, so
    every backslash starts an escape."""
    match = _SURROGATE_ESCAPE_RE.search(_BACKSLASH_OR_PAIR_RE.sub("", text))
    if match is not None:
        raise DecodeError(f"expected no lone surrogate, got the escape {match.group()}")


def json_type_name(value: object) -> str:
    """Name a parsed JSON value's type the way JSON does (for error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
