"""The accrual rule's shared vectors (tests/vectors/accrual.json): the service's Accrual takes
exactly what they say, and the committed file is a fresh generation. The extension's
``shared/accrual.js`` replays the same file (extension/test/accrual.test.js)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from trickle.streaming.accrual import HOUR_MS, Accrual

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "accrual.json"


def _load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(VECTORS.read_text("utf-8"))
    return document


def test_the_service_takes_what_the_vectors_say() -> None:
    document = _load()
    assert document["hour_ms"] == HOUR_MS
    for case in document["cases"]:
        accrual = Accrual()
        for step in case["steps"]:
            accrual.add(int(step["rate_per_hour_minor"]), step["elapsed_ms"], step["share"])
            assert accrual.take() == int(step["take"]), case["name"]


def test_the_committed_vectors_are_a_fresh_generation() -> None:
    spec = importlib.util.spec_from_file_location(
        "trickle_accrual_generate", VECTORS.with_name("generate_accrual.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert _load()["cases"] == json.loads(json.dumps(module.cases()))
