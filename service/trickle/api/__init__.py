"""The JSON API (``/api/v1``): one router per feature, declared with ``trickle.api.base``."""

from __future__ import annotations

from trickle.api import accounts, creators, funding, payments, tokens, topups
from trickle.api.base import ApiRouter


def routers() -> list[ApiRouter]:
    return [
        accounts.router,
        funding.router,
        creators.router,
        payments.router,
        tokens.router,
        topups.router,
    ]
