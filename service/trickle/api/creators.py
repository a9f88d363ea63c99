"""HTTP endpoints: creators."""

from __future__ import annotations

from trickle.api.base import ApiRouter

router = ApiRouter(tag="creators")
