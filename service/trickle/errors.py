"""The service's error tree: every error has a stable snake_case ``code`` and one HTTP status.

Every code is documented in docs/errors.md; a test keeps the two in step.
"""

from __future__ import annotations

from typing import ClassVar


class TrickleError(Exception):
    """Base of every error the service raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500


class ConfigError(TrickleError):
    """A setting is missing, malformed, or unsafe for the environment."""

    code = "config_error"


class KeyStoreError(TrickleError):
    """The signing-key store cannot give a key (no active key, or wrong key-encryption key)."""

    code = "key_store_error"


class NotFound(TrickleError):
    """The requested path or resource does not exist."""

    code = "not_found"
    status = 404


class MethodNotAllowed(TrickleError):
    """The path exists but not with this HTTP method."""

    code = "method_not_allowed"
    status = 405


def all_error_classes() -> list[type[TrickleError]]:
    """Every concrete error class, for the docs test and the HTTP error mapping."""
    seen: list[type[TrickleError]] = []
    stack: list[type[TrickleError]] = [TrickleError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
