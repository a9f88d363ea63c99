"""The test site of the site, purchase and ASGI tests: its clock and binding key, and receipts
signed for it with the shared vectors' generator (tests/vectors/generate.py)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from trickle_verifier import SiteReceipts, SiteStore, Verifier

NOW = 1795000100
KEY = b"site-binding-key-for-tests-0123456789"


def make_site(
    make_verifier: Callable[..., Verifier],
    store: SiteStore,
    *,
    key: bytes | None = KEY,
    **extra: Any,
) -> SiteReceipts:
    """A site counting USD at scale 9 on the clock ``NOW`` (unless ``clock`` is given), whose
    verifier is ``make_verifier(**extra)``."""
    clock = extra.pop("clock", lambda: float(NOW))
    return SiteReceipts(
        make_verifier(**extra), store, binding_key=key, clock=clock, currency="USD", scale=9
    )


def receipt(
    generator: ModuleType,
    sid: str,
    seq: int,
    tot: int,
    *,
    bnd: str | None = None,
    key: Any = None,
    **changes: Any,
) -> str:
    """The ``seq``-th receipt of stream ``sid``, ``tot`` minor units in all (``amt`` too unless
    changed), carrying the binding ``bnd`` if given, signed with ``key`` (default: the vectors'
    first key). ``changes`` set other claims (``...`` removes one)."""
    standard = {"sid": sid, "seq": seq, "amt": str(tot), "tot": str(tot), "jti": f"{sid}-{seq}"}
    claims = generator.claims(**{**standard, **changes})
    if bnd is not None:
        claims["bnd"] = bnd
    return str(generator.token(body=claims, key=key or generator.KEY_1))
