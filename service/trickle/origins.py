"""Web origins (RFC 6454): ``scheme://host[:port]``, the unit of a site in Trickle."""

from __future__ import annotations

import urllib.parse

from trickle.errors import ValidationFailed

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(text: str) -> str:
    """``HTTPS://Blog.Example:443`` -> ``https://blog.example``; anything else than an http(s)
    origin (a path, a query, credentials, an empty host) is ``ValidationFailed``."""
    if len(text) > 300 or not text.isascii() or any(c.isspace() for c in text):
        raise ValidationFailed(f"not an origin: {text[:60]!r}")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:  # e.g. an unclosed "[" in the host
        raise ValidationFailed(f"not an origin: {text[:60]!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValidationFailed(f"an origin must be http:// or https://, got {text[:60]!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValidationFailed(f"an origin has no path, query or credentials: {text[:60]!r}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValidationFailed(f"bad port in {text[:60]!r}") from None
    if not host:
        raise ValidationFailed(f"an origin needs a host: {text[:60]!r}")
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{_bracket(host)}"
    return f"{scheme}://{_bracket(host)}:{port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
