"""The docs list every setting and every error code the code has (and nothing it lacks)."""

from __future__ import annotations

import dataclasses
import re

from tests.conftest import REPO
from trickle.errors import all_error_classes
from trickle.settings import Settings, env_name


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"`(TRICKLE_[A-Z_]+)`", (REPO / "docs/settings.md").read_text()))
    in_code = {env_name(field.name) for field in dataclasses.fields(Settings)}
    assert documented == in_code


def test_every_error_code_is_documented_with_its_status() -> None:
    text = (REPO / "docs/errors.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", text, flags=re.MULTILINE))
    in_code = {cls.code: str(cls.status) for cls in all_error_classes()}
    assert rows == in_code
