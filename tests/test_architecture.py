"""The map of docs/architecture.md is true and enforced: its dependency rules are import-linter
contracts that hold and that can fail, every module it names exists and every module is named,
every database branch is where it says, and the JavaScript folders import as it says."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = {
    "trickle": ROOT / "service" / "trickle",
    "trickle_verifier": ROOT / "verifier" / "trickle_verifier",
    "trickle_publisher": ROOT / "publisher" / "trickle_publisher",
}


# --- the doc's module tables --------------------------------------------------------------------

_FOLDER_HEADING = re.compile(r"^#{2,3} .*\(`([\w./-]+/)`\)\s*$")
_CODE = re.compile(r"`([^`]+)`")


def _named_in_tables() -> set[str]:
    """Every path the doc's module tables name: each table under a heading that names its folder
    (``## The service (`service/trickle/`)``), the names in each row's first cell relative to it."""
    named: set[str] = set()
    folder: str | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = _FOLDER_HEADING.match(line)
            folder = heading.group(1) if heading else None
        elif folder is not None and line.startswith("| `"):
            first_cell = line.split("|")[1]
            named.update(folder + name for name in _CODE.findall(first_cell))
    return named


def _has_code(path: Path) -> bool:
    """Whether a module holds more than a docstring (an empty package ``__init__.py`` need not
    be named)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def _modules() -> set[str]:
    python = [
        path
        for package in PACKAGES.values()
        for path in package.rglob("*.py")
        if "versions" not in path.relative_to(ROOT).parts
        and (path.name != "__init__.py" or _has_code(path))
    ]
    extension = ROOT / "extension"
    javascript = [
        path
        for path in [*extension.rglob("*.js"), *extension.rglob("*.mjs")]
        if path.relative_to(extension).parts[0] not in ("test", "vendor")
    ]
    javascript += [*(ROOT / "sdk_js_bridge").glob("*.js")]
    javascript += [*(PACKAGES["trickle"] / "dashboard" / "static").glob("*.js")]
    return {path.relative_to(ROOT).as_posix() for path in python + javascript}


def test_every_module_is_named_in_the_architecture_doc() -> None:
    modules = _modules()
    assert "service/trickle/ledger/batches.py" in modules
    assert "extension/background/streams.js" in modules
    assert sorted(modules - _named_in_tables()) == [], "modules docs/architecture.md does not name"


def test_every_module_the_doc_names_exists() -> None:
    named = _named_in_tables()
    assert "service/trickle/streaming/engine.py" in named
    assert "sdk_js_bridge/bridge.js" in named
    assert [name for name in sorted(named) if not (ROOT / name).exists()] == []


# --- SQLite and PostgreSQL ------------------------------------------------------------------------

_DATABASE_BRANCH = re.compile(
    r"\.dialect\.name\b|\bis_sqlite\(|\.with_variant\(|sqlalchemy\.dialects"
)


def test_every_database_branch_is_named_where_the_databases_differ() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## SQLite and PostgreSQL: where they differ", 1)[1].split("\n## ", 1)[0]
    named = set(_CODE.findall(section))
    branching = {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGES["trickle"].rglob("*.py")
        if "versions" not in path.parts and _DATABASE_BRANCH.search(path.read_text("utf-8"))
    }
    assert "service/trickle/earnings.py" in branching
    assert sorted(branching - named) == [], "modules that tell the databases apart, not named"


# --- the import contracts -------------------------------------------------------------------------


def _lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", *selected],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " broken" in result.stdout and "0 broken" in result.stdout


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    """A copy of the three packages and the contracts, which a test may break."""
    for name, source in PACKAGES.items():
        shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_copy_keeps_the_contracts(packages: Path) -> None:
    """The control: the copy, unchanged, is read from its folder and keeps every contract."""
    result = _lint_imports(packages)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Analyzed" in result.stdout


WRONG_IMPORTS = [
    # (module, the import added to it, the contract it breaks)
    ("trickle/payments.py", "from trickle.streaming import protocol", "service-layers"),
    ("trickle/readers.py", "from trickle.api import base", "service-layers"),
    ("trickle/ledger/charges.py", "from trickle import payments", "service-layers"),
    ("trickle/errors.py", "from trickle import money", "service-layers"),
    ("trickle/api/base.py", "from trickle.dashboard import web", "service-layers"),
    ("trickle/freezes.py", "from trickle import payments", "acyclic"),
    ("trickle/streaming/protocol.py", "from trickle.streaming import engine", "streaming-rooms"),
    ("trickle/ledger/plan.py", "from trickle.ledger import batches", "ledger-parts"),
    ("trickle/api/topups.py", "from trickle.api import payments", "api-routers"),
    ("trickle/dashboard/web.py", "from trickle.dashboard import views", "dashboard-parts"),
    ("trickle_verifier/receipts.py", "import trickle.money", "verifier-alone"),
    ("trickle_verifier/keys.py", "from trickle_verifier import site", "verifier-layers"),
    ("trickle_publisher/articles.py", "import trickle.money", "publisher-apart"),
    ("trickle_publisher/amounts.py", "from trickle_publisher import app", "publisher-layers"),
    ("trickle/money.py", "import trickle_verifier", "service-without-verifier"),
    ("trickle/readers.py", "import starlette.requests", "web-at-the-edges"),
    ("trickle/streaming/engine.py", "import uvicorn", "web-at-the-edges"),
]


def test_every_contract_has_a_wrong_import_that_breaks_it() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    contracts = {contract["id"] for contract in config["tool"]["importlinter"]["contracts"]}
    assert len(contracts) >= 12
    assert contracts == {contract for _, _, contract in WRONG_IMPORTS}


@pytest.mark.parametrize(("module", "statement", "contract"), WRONG_IMPORTS)
def test_a_wrong_import_breaks_its_contract(
    packages: Path, module: str, statement: str, contract: str
) -> None:
    path = packages / module
    path.write_text(path.read_text("utf-8") + f"\n{statement}  # noqa\n", "utf-8")
    result = _lint_imports(packages, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and "Contracts: 0 kept, 1 broken." in result.stdout


def test_a_module_in_no_layer_breaks_the_service_layers(packages: Path) -> None:
    (packages / "trickle" / "orphan.py").write_text('"""In no layer of the contract."""\n')
    result = _lint_imports(packages, "service-layers")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "orphan" in result.stdout


# --- the JavaScript folders -----------------------------------------------------------------------

# Static imports and re-exports, side-effect imports, and the type imports of JSDoc comments.
_JS_IMPORT = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}/[^'"]+)['"]""", re.M
)
EXTENSION = ROOT / "extension"
# Which folders of the extension each folder may import (docs/architecture.md).
EXTENSION_IMPORTS = {
    "background": {"background", "shared"},
    "pages": {"shared"},
    "shared": {"shared", "vendor"},
    "content": set(),
    "vendor": {"vendor"},
}


def _relative_imports(path: Path) -> list[Path]:
    source = path.read_text("utf-8")
    return [(path.parent / spec).resolve() for spec in _JS_IMPORT.findall(source)]


def _extension_violations(path: Path, imports: list[Path]) -> list[str]:
    folder = path.relative_to(EXTENSION).parts[0]
    wrong = []
    for imported in imports:
        parts = imported.relative_to(EXTENSION).parts if imported.is_relative_to(EXTENSION) else ()
        if not parts or parts[0] not in EXTENSION_IMPORTS[folder]:
            wrong.append(f"{path.relative_to(ROOT)} imports {imported.relative_to(ROOT)}")
    return wrong


def _extension_scripts() -> list[Path]:
    return sorted(
        path for folder in EXTENSION_IMPORTS for path in (EXTENSION / folder).glob("*.js")
    )


def test_the_extension_folders_import_as_the_doc_says() -> None:
    scripts = _extension_scripts()
    imports = {path: _relative_imports(path) for path in scripts}
    streams = EXTENSION / "background" / "streams.js"
    assert EXTENSION / "shared" / "attention.js" in imports[streams], "the imports are read"
    assert EXTENSION / "background" / "protocol.js" in imports[streams], "JSDoc types too"
    assert [v for path in scripts for v in _extension_violations(path, imports[path])] == []


def test_the_extension_folder_rule_can_fail() -> None:
    shared = EXTENSION / "shared" / "ui.js"
    background = EXTENSION / "background" / "state.js"
    assert _extension_violations(shared, [background]) != []
    assert _extension_violations(EXTENSION / "content" / "content.js", [shared]) != []
    assert _extension_violations(EXTENSION / "pages" / "popup.js", [shared]) == []


def _is_bridge(path: Path) -> bool:
    return path.name == "bridge.js" or path.name.startswith("bridge-")


def test_the_page_bridge_imports_only_its_own_files() -> None:
    """A page loads bridge.js and the bridge-*.js beside it, nothing else; the verifier's side
    does not import the bridge (index.js exports both)."""
    modules = sorted((ROOT / "sdk_js_bridge").glob("*.js"))
    imports = {path: _relative_imports(path) for path in modules}
    bridge = ROOT / "sdk_js_bridge" / "bridge.js"
    assert ROOT / "sdk_js_bridge" / "bridge-payments.js" in imports[bridge]
    wrong = [
        f"{path.name} imports {imported.name}"
        for path in modules
        if path.name != "index.js"
        for imported in imports[path]
        if _is_bridge(path) != _is_bridge(imported)
    ]
    assert wrong == []
