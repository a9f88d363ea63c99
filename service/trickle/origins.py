"""Web origins (RFC 6454): ``scheme://host[:port]``, the unit of a site in Trickle. Every origin
the service takes in (a stream's ``start``, a one-time payment, a per-site override, a site to
verify, the public URL) goes through ``normalize_origin``: one rule, docs/receipts.md §3.1 (the
verifiers normalise a configured origin the same way; the shared vectors pin both), written as
``ORIGIN_PATTERN``, which /openapi.json declares too."""

from __future__ import annotations

import re

from trickle.errors import ValidationFailed

MAX_ORIGIN_CHARS = 300
MAX_NAME_CHARS = 253  # a DNS name: the one part of the rule that the pattern does not say
_DEFAULT_PORTS = {"http": 80, "https": 443}

# A DNS label: letters, digits, "_" and "-", not starting or ending with "-", at most 63.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
# A host of digits and dots is read as an IPv4 address, so a name has a label with some other
# character: such a label, spelled out by how many digits come before its first other character.
# (No lookahead: fuzzers generate values from this pattern, and a lookahead makes that slow.)
_REST = "[A-Za-z0-9_-]{{0,{}}}[A-Za-z0-9_]"  # the rest of a label of at most 63
_LETTERED_LABEL = (
    "(?:"
    + "|".join(
        [r"[A-Za-z_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"]
        + [
            rf"[0-9]{{{digits}}}(?:[A-Za-z_]|[A-Za-z_-]{_REST.format(61 - digits)})"
            for digits in range(1, 62)
        ]
        + [r"[0-9]{62}[A-Za-z_]"]
    )
    + ")"
)
_NAME = rf"(?:{_LABEL}\.)*{_LETTERED_LABEL}(?:\.{_LABEL})*"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# RFC 3986's IPv6address, without a zone id (it names an interface of one machine only).
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join(
    [
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
# 1..65535, after any leading zeros.
_PORT = (
    r"0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
# What ``normalize_origin`` accepts (with at most MAX_ORIGIN_CHARS, a name of at most
# MAX_NAME_CHARS): any case, a default or an empty port, a trailing "/", an empty "?" and "#".
# Nothing else: no path, query, fragment, credentials, spaces, controls or markup. Groups:
# scheme, host, port. No named groups: JSON Schema's regex dialect has none.
ORIGIN_PATTERN = (
    rf"^([Hh][Tt][Tt][Pp][Ss]?)://({_NAME}|{_IPV4}|\[(?:{_IPV6})\])(?::({_PORT})?)?/?\??#?$"
)
_ORIGIN = re.compile(ORIGIN_PATTERN)


def normalize_origin(text: str) -> str:
    """``HTTPS://Blog.Example:0443/`` -> ``https://blog.example``: lowercase, without the
    default port, a port's leading zeros or what follows the host and port. Anything else than
    what ``ORIGIN_PATTERN`` matches is ``ValidationFailed``: what is stored, signed into a
    receipt's ``aud`` and shown on a creator's dashboard is never markup or a control character."""
    match = _ORIGIN.fullmatch(text) if len(text) <= MAX_ORIGIN_CHARS else None
    if match is None or len(match[2]) > MAX_NAME_CHARS:
        raise ValidationFailed(
            f"not an origin (http(s)://host[:port], nothing after it): {text[:60]!r}"
        )
    scheme, host = match[1].lower(), match[2].lower()
    port = int(match[3]) if match[3] else _DEFAULT_PORTS[scheme]
    if port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
