"""The origin rule of docs/receipts.md §3.1: a site's configured ``audience`` and ``issuer`` are
brought to the form the service signs (``scheme://host[:port]``, lower case, no default port, no
trailing ``/``); anything that is not an http(s) origin is refused when the verifier is built."""

from __future__ import annotations

import re

__all__ = ["MAX_ORIGIN_LENGTH", "normalize_origin"]

MAX_ORIGIN_LENGTH = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}
# ASCII only (checked first), so IGNORECASE cannot let a Kelvin sign pass as a "k".
_ORIGIN_RE = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[0-9a-f]*:[0-9a-f:.]*\]|[a-z0-9_.-]+)"
    r"(?::(?P<port>[0-9]*))?/?\??#?",  # an empty query or fragment is no query or fragment
    re.IGNORECASE | re.ASCII,
)
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
_IPV4_PART_RE = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)
_IPV6_GROUP_RE = re.compile(r"[0-9a-f]{1,4}", re.ASCII)


def normalize_origin(name: str, text: str) -> str:
    """``HTTPS://Blog.Example:443/`` -> ``https://blog.example``; ``ValueError`` naming the
    option ``name`` for anything else than an http(s) origin (a path, a query, credentials, a
    bad host or port, non-ASCII)."""
    match = _ORIGIN_RE.fullmatch(text) if len(text) <= MAX_ORIGIN_LENGTH else None
    if match is None or not text.isascii():
        raise ValueError(
            f"{name}: expected an http(s) origin such as https://blog.example (scheme, host, "
            f"optional port; no path, query or credentials), got {text[:80]!r}"
        )
    scheme = match["scheme"].lower()
    host = match["host"].lower()
    if not _valid_host(host):
        raise ValueError(
            f"{name}: expected an http(s) origin whose host is a DNS name, an IPv4 address or "
            f"a [bracketed] IPv6 address, got {text[:80]!r}"
        )
    port_text = match["port"]
    if not port_text:  # absent, or an empty ":" (which browsers drop too)
        return f"{scheme}://{host}"
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(
            f"{name}: expected an http(s) origin with a port in 1..65535, got {text[:80]!r}"
        )
    if port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        return _valid_ipv6(host[1:-1])
    labels = host.split(".")
    if all(label.isdigit() for label in labels):  # browsers read all-numeric hosts as IPv4
        return _valid_ipv4(host)
    return len(host) <= 253 and all(_LABEL_RE.fullmatch(label) for label in labels)


def _valid_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(
        _IPV4_PART_RE.fullmatch(part) and int(part) <= 255 for part in parts
    )


def _valid_ipv6(text: str) -> bool:
    """RFC 4291 text form: eight groups of 1-4 hex digits, one ``::`` for a run of zero
    groups, the last two groups optionally written as an IPv4 address."""
    if "." in text:
        last_colon = text.rfind(":")
        if not _valid_ipv4(text[last_colon + 1 :]):
            return False
        text = text[: last_colon + 1] + "0:0"
    head, gap, tail = text.partition("::")
    groups = (head.split(":") if head else []) + (tail.split(":") if tail else [])
    if "::" in tail or not all(_IPV6_GROUP_RE.fullmatch(group) for group in groups):
        return False
    return len(groups) < 8 if gap else len(groups) == 8
