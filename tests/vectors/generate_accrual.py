"""Generate ``accrual.json``: the accrual rule of streaming (``trickle.streaming.accrual``), which
the extension applies itself when it paces private spending (``extension/shared/accrual.js``).
Both suites replay every case and must take exactly these amounts.

Run: ``python tests/vectors/generate_accrual.py`` (a test checks the committed file is fresh)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from trickle.streaming.accrual import HOUR_MS, Accrual

OUT = Path(__file__).resolve().parent / "accrual.json"


def _case(name: str, steps: list[tuple[int, int, int]]) -> dict[str, Any]:
    accrual = Accrual()
    out = []
    for rate, elapsed_ms, share in steps:
        accrual.add(rate, elapsed_ms, share)
        out.append(
            {
                "rate_per_hour_minor": str(rate),
                "elapsed_ms": elapsed_ms,
                "share": share,
                "take": str(accrual.take()),
            }
        )
    return {"name": name, "steps": out}


def cases() -> list[dict[str, Any]]:
    rng = random.Random(13)
    return [
        _case("an hour at the default rate in 10 s steps", [(600_000_000, 10_000, 1)] * 360),
        _case("a third of a unit each time", [(1, HOUR_MS // 3, 1)] * 3),
        _case("two shares", [(600_000_000, 1000, 2)] * 50),
        _case(
            "shares changing",
            [
                (rng.choice([600_000_000, 1_234_567]), rng.randint(0, 5000), rng.randint(1, 12))
                for _ in range(200)
            ],
        ),
        _case(
            "many shares, past the reduction point",
            [(777_777, rng.randint(1, 5000), rng.randint(1, 512)) for _ in range(300)],
        ),
        _case("zero rate and zero time", [(0, 1000, 1), (5, 0, 1), (3_600_000, 1, 1)]),
    ]


def main() -> None:
    document = {
        "source": "trickle.streaming.accrual.Accrual (generate_accrual.py)",
        "hour_ms": HOUR_MS,
        "cases": cases(),
    }
    OUT.write_text(json.dumps(document, separators=(",", ":")) + "\n", "utf-8")


if __name__ == "__main__":
    main()
