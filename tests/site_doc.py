"""docs/site-owners.md as a site: its code blocks read out of the markdown and written into a
folder exactly as a site owner copying them would (tests/service/test_site_owner_doc.py checks
them and runs the server in-process; tests/e2e/test_site_owner_doc.py runs it for real).

Every fenced block of the doc is marked by the HTML comment on the line before it:
``<!-- site-example: <part> -->`` (a part of the example site, ``trickle.dashboard.snippets``)
or ``<!-- diagram -->`` (not code). An unmarked block is an error: nothing in the doc escapes
being run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

from trickle.dashboard import snippets

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "site-owners.md"
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!-- (?:site-example: ([a-z-]+)|(diagram)) -->\n\Z")

# Stands in for pip in the setup block: the test environment already holds what it installs
# (make setup), so this checks that every requirement named is one: a local project with the
# extras asked for, whose requirements are installed, or an installed distribution.
PIP_CHECK = """
import importlib.metadata, re, sys, tomllib
from pathlib import Path

def installed(requirement):
    name = re.split(r"[<>=!~\\[; ]", requirement)[0]
    importlib.metadata.version(name)  # PackageNotFoundError if it is not installed
    return name

assert sys.argv[1] == "install", sys.argv
for argument in sys.argv[2:]:
    found = re.fullmatch(r"(.*?)(?:\\[([a-z,]+)\\])?", argument)
    path, extras = found.group(1), (found.group(2) or "").split(",")
    if "/" not in path:
        print("installed:", installed(argument))
        continue
    project = tomllib.loads((Path(path) / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in filter(None, extras):
        wanted += project["optional-dependencies"][extra]  # KeyError: no such extra
    print("installed:", installed(project["name"]), [installed(r) for r in wanted])
"""


@dataclasses.dataclass(frozen=True)
class Block:
    line: int
    language: str
    text: str
    part: str | None  # None: a diagram


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the doc, with its marker; AssertionError for an unmarked one."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()]
        marker = MARKER.search(before[before.rfind("\n", 0, len(before) - 1) + 1 :])
        assert marker, (
            f"docs/site-owners.md:{line}: a code block without a marker; mark it "
            "<!-- site-example: <part> --> (and add the part) or <!-- diagram -->"
        )
        found.append(Block(line, match.group(1), match.group(2), marker.group(1)))
    return found


def site_files(text: str | None = None) -> dict[str, str]:
    """The site's files (path -> text) as the doc's blocks make them, in the doc's order."""
    parts: dict[str, list[str]] = {}
    by_id = {part.id: part for part in snippets.PARTS}
    for block in blocks(text):
        if block.part is not None:
            parts.setdefault(by_id[block.part].path, []).append(block.text)
    return {path: "\n\n".join(texts) for path, texts in parts.items()}


def write_site(root: Path, *, issuer: str, pointer: str, origin: str) -> Path:
    """The doc's site in ``root/site``, with the service, payee and origin of the test, set up
    by the doc's setup block run in bash (``root/trickle`` is the checkout it copies from).
    Returns the site's folder."""
    site = root / "site"
    site.mkdir(parents=True)
    (root / "trickle").symlink_to(REPO)
    files = site_files()
    for path, text in files.items():
        if path.endswith(".sh") or path == "link.html":
            continue  # run below, or a tag of a page of its own
        target = site / path
        target.parent.mkdir(parents=True, exist_ok=True)
        personal = snippets.personalize(text, issuer=issuer, pointer=pointer, origin=origin)
        target.write_text(personal, encoding="utf-8")
    tools = root / "bin"
    tools.mkdir()
    (tools / "pip").write_text(f"#!{sys.executable}\n{PIP_CHECK}", encoding="utf-8")
    (tools / "pip").chmod(0o755)
    environment = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    setup = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", files["setup.sh"]],
        cwd=site,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert setup.returncode == 0, f"the setup block failed:\n{setup.stdout}\n{setup.stderr}"
    return site


def run_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The doc's run block as bash runs it (this Python's tools first on the PATH), on ``port``
    instead of the doc's 8000; and its environment."""
    (command,) = site_files()["run.sh"].strip().splitlines()
    assert command.endswith(" --port 8000"), command
    command = command.removesuffix("8000") + str(port)
    tools = str(Path(sys.executable).parent)
    environment = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    return ["bash", "-c", f"exec {command}"], environment
