"""Accessibility checks of the e2e tests: axe-core (npm, pinned in package.json) run in a page.

axe is evaluated through the DevTools protocol (``page.evaluate``), not added as a script tag, so
it runs in extension pages too, whose CSP allows only the extension's own scripts.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_SOURCE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


@cache
def _axe_source() -> str:
    assert AXE_SOURCE.is_file(), f"axe-core is not installed at {AXE_SOURCE} (run make setup)"
    return AXE_SOURCE.read_text(encoding="utf-8")


def violations(page: Page, *, context: str = "document") -> list[dict[str, Any]]:
    """axe's violations of impact serious or critical on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    found: list[dict[str, Any]] = page.evaluate(
        f"async () => (await axe.run({context}, {{resultTypes: ['violations']}})).violations"
    )
    return [v for v in found if v.get("impact") in BLOCKING_IMPACTS]


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for violation in found:
        targets = [" ".join(node["target"]) for node in violation["nodes"][:5]]
        lines.append(f"{violation['impact']} {violation['id']}: {violation['help']} at {targets}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """No serious or critical axe violation on the page (WCAG rules axe checks by default)."""
    found = violations(page)
    assert found == [], f"{page.url}:\n{describe(found)}"
