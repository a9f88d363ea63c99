"""HTTP endpoints: accounts."""

from __future__ import annotations

from trickle.api.base import ApiRouter

router = ApiRouter(tag="accounts")
