"""Origins: the one rule (``ORIGIN_PATTERN``) that every origin the service takes in passes, and
its normalization; the pattern /openapi.json declares is the one the code runs."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trickle import origins
from trickle.errors import ValidationFailed
from trickle.origins import ORIGIN_PATTERN, normalize_origin


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://blog.example", "https://blog.example"),
        ("HTTPS://Blog.Example:443/", "https://blog.example"),
        ("http://blog.example:80", "http://blog.example"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://127.0.0.1", "https://127.0.0.1"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://[::1]", "https://[::1]"),
        ("http://[2001:DB8::1]:443", "http://[2001:db8::1]:443"),
        ("https://[::ffff:192.0.2.1]", "https://[::ffff:192.0.2.1]"),
        ("https://my_site.example", "https://my_site.example"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ("https://123.example", "https://123.example"),
        ("https://a:65535", "https://a:65535"),
        # docs/receipts.md §3.1, as the verifiers read a configured origin (the shared vectors):
        ("https://blog.example:", "https://blog.example"),  # an empty port
        ("https://blog.example/?#", "https://blog.example"),  # an empty query and fragment
        ("https://blog.example?", "https://blog.example"),
        ("https://blog.example:08443", "https://blog.example:8443"),  # leading zeros
        ("https://blog.example:0443", "https://blog.example"),
        ("https://blog.123", "https://blog.123"),  # not only digits and dots: a name
        ("https://3com", "https://3com"),
        ("https://" + "a" * 63 + ".example", "https://" + "a" * 63 + ".example"),
    ],
)
def test_normalize_origin_accepts_origins(text: str, expected: str) -> None:
    assert normalize_origin(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "blog.example",
        "javascript:alert(1)",
        "https://",
        "https://blog.example/a",
        "https://blog.example#x",
        "https://a:b@blog.example",
        "https://blog .example",
        " https://blog.example",
        "https://-blog.example",
        "https://blog.example.",
        "https://[::g]",
        "https://[::1",
        "https://]a",
        "https://[1::2::3]",
        "https://[fe80::1%25eth0]",
        "https://blog.example:65536",
        "https://blog.example:0",
        "https://1.2.3",  # digits and dots: an IPv4 address, and not a valid one
        "https://blog.example:00",
        "https://blog.example?x",
        "https://blog.example/#x",
        "https://" + ("a" * 50 + ".") * 5 + "example",  # a name of 262 characters
        "https://256.1.1.1",
        "https://01.2.3.4",
        # Issue 11 item 9: what a payment's origin could be before, signed into `aud`.
        'https://x"onmouseover="alert(1)',
        "https://<b>",
        "https://a\x01b.example",
        "https://a.example\n",
        "https://a\x00.example",
        "https://bücher.example",
        "https://" + "a" * 64 + ".example",  # a label of 64
        "https://" + "a." * 148 + "example",  # 300+ characters
    ],
)
def test_normalize_origin_refuses_everything_else(text: str) -> None:
    with pytest.raises(ValidationFailed):
        normalize_origin(text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.from_regex(ORIGIN_PATTERN, fullmatch=True).filter(lambda t: len(t) <= 300))
def test_every_text_the_pattern_matches_is_an_origin(text: str) -> None:
    host = re.fullmatch(ORIGIN_PATTERN, text)[2]  # type: ignore[index]
    if len(host) > origins.MAX_NAME_CHARS:  # the one rule the pattern does not say
        with pytest.raises(ValidationFailed):
            normalize_origin(text)
        return
    origin = normalize_origin(text)
    host = urllib.parse.urlsplit(origin).hostname or ""
    if ":" in host:  # the pattern's IPv6 literals are ones Python's ipaddress reads too
        ipaddress.IPv6Address(host)
    elif all(label.isdigit() for label in host.split(".")):  # digits and dots: IPv4
        ipaddress.IPv4Address(host)
    assert normalize_origin(origin) == origin  # normalizing is idempotent


def test_the_pattern_is_plain_enough_for_json_schema() -> None:
    # No named groups and no lookaround: JSON Schema's regex dialect and fuzzers read it.
    assert "(?P<" not in ORIGIN_PATTERN
    assert "(?=" not in ORIGIN_PATTERN and "(?!" not in ORIGIN_PATTERN
    assert origins.MAX_ORIGIN_CHARS == 300
