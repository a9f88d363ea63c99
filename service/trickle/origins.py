"""Web origins (RFC 6454): ``scheme://host[:port]``, the unit of a site in Trickle. Every origin
the service takes in (a stream's ``start``, a one-time payment, a per-site override, a site to
verify) goes through ``normalize_origin``: one rule, ``ORIGIN_PATTERN``, decides what is an
origin, and /openapi.json declares the same pattern."""

from __future__ import annotations

import re

from trickle.errors import ValidationFailed

MAX_ORIGIN_CHARS = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}

# A DNS label: letters, digits, "_" and "-", not starting or ending with "-", at most 63.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
# A name's last label starts with a letter or "_": browsers read a host whose last label is a
# number (12, 0x1f) as an IPv4 address. (No lookahead: fuzzers generate from this pattern.)
_NAME = rf"(?:{_LABEL}\.)*[A-Za-z_](?:[A-Za-z0-9_-]{{0,61}}[A-Za-z0-9_])?"
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
_PORT = r"[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]"
# What ``normalize_origin`` accepts (with at most MAX_ORIGIN_CHARS): any case, a default port,
# a trailing "/". Nothing else: no path, query, fragment, credentials, spaces, controls, markup.
# Groups: scheme, host, port. No named groups: JSON Schema's regex dialect has none.
ORIGIN_PATTERN = rf"^([Hh][Tt][Tt][Pp][Ss]?)://({_NAME}|{_IPV4}|\[(?:{_IPV6})\])(?::({_PORT}))?/?$"
_ORIGIN = re.compile(ORIGIN_PATTERN)


def normalize_origin(text: str) -> str:
    """``HTTPS://Blog.Example:443/`` -> ``https://blog.example``: lowercase, without the
    default port or the trailing "/". Anything ``ORIGIN_PATTERN`` does not match is
    ``ValidationFailed``: what is stored, signed into a receipt's ``aud`` and shown on a
    creator's dashboard is never markup or a control character."""
    match = _ORIGIN.fullmatch(text) if len(text) <= MAX_ORIGIN_CHARS else None
    if match is None:
        raise ValidationFailed(
            f"not an origin (http(s)://host[:port], nothing after it): {text[:60]!r}"
        )
    scheme, host, port = match[1].lower(), match[2].lower(), match[3]
    if port is None or int(port) == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
