"""What some tests need from the machine (PostgreSQL, Chromium). Missing, they skip locally and
FAIL in CI (``CI`` set): CI must run every test."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = bool(os.environ.get("CI"))


def unavailable(what: str, reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{what} is required in CI and is unavailable: {reason}", pytrace=False)
    pytest.skip(f"{what} unavailable locally: {reason}")
