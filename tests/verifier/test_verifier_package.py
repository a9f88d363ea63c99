"""The package surface: ``__all__``, the error tree against docs/receipts.md, strict base64url
and JSON decoding, and that the verifier works with SQLAlchemy absent."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import trickle_verifier
from trickle_verifier import RECEIPT_ERRORS, KeySetError, ReceiptError, error_for_code
from trickle_verifier._jws import DecodeError, b64url_decode, b64url_encode, parse_json_object

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_name_in_all_exists() -> None:
    assert len(set(trickle_verifier.__all__)) == len(trickle_verifier.__all__)
    for name in trickle_verifier.__all__:
        assert hasattr(trickle_verifier, name), name


def test_error_codes_match_the_spec_table_in_rule_order() -> None:
    spec = (REPO_ROOT / "docs" / "receipts.md").read_text("utf-8")
    section = spec.split("## 3. Verification", 1)[1].split("## 4.", 1)[0]
    codes = [
        re.search(r"`([a-z_]+)`", row.rsplit("|", 2)[1]).group(1)  # type: ignore[union-attr]
        for row in section.splitlines()
        if re.match(r"\| \d+ \|", row)
    ]
    assert codes == list(RECEIPT_ERRORS)


def test_the_json_nesting_limit_is_the_documented_one(generator: Any) -> None:
    spec = (REPO_ROOT / "docs" / "receipts.md").read_text("utf-8")
    assert f"**Nesting: at most {trickle_verifier.MAX_JSON_DEPTH} levels.**" in spec
    assert generator.MAX_JSON_DEPTH == trickle_verifier.MAX_JSON_DEPTH


def test_readme_lists_every_error_code() -> None:
    readme = (REPO_ROOT / "verifier" / "README.md").read_text("utf-8")
    for code in RECEIPT_ERRORS:
        assert f"`{code}`" in readme, code


def test_error_tree() -> None:
    for code, cls in RECEIPT_ERRORS.items():
        assert issubclass(cls, ReceiptError) and cls is not ReceiptError
        assert cls.code == code and error_for_code(code) is cls
        assert cls.__doc__ and "Rule" in cls.__doc__
        error = cls("expected x, got y")
        assert str(error) == f"{code}: expected x, got y" and error.message == "expected x, got y"
    for key_error in (
        trickle_verifier.InvalidJWKS,
        trickle_verifier.JWKSFetchFailed,
        trickle_verifier.JWKSTooLarge,
        trickle_verifier.InvalidKey,
    ):
        assert issubclass(key_error, KeySetError) and not issubclass(key_error, ReceiptError)
        assert key_error.__doc__
    with pytest.raises(KeyError):
        error_for_code("no_such_code")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("AA", b"\x00"),
        ("AAA", b"\x00\x00"),
        ("AAAA", b"\x00\x00\x00"),
        ("_-8", b"\xff\xef"),
    ],
)
def test_b64url_decode_canonical(text: str, expected: bytes) -> None:
    assert b64url_decode(text) == expected
    assert b64url_encode(expected) == text


@pytest.mark.parametrize(
    "text", ["A", "AB", "AAB", "AA==", "AA=", "A+AA", "A/AA", "AA AA", "AA\n", "é"]
)
def test_b64url_decode_rejects_non_canonical(text: str) -> None:
    with pytest.raises(DecodeError):
        b64url_decode(text)


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b'"x"',
        b"1",
        b"null",
        b'{"a":1,"a":1}',
        b'{"a":{"b":1,"b":2}}',
        b"{",
        b"\xff",
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":-Infinity}',
        b"\xef\xbb\xbf{}",
        b"{} {}",
        b'{"a":' + b"[" * 32 + b"]" * 32 + b"}",
        b'{"a":"\\ud800"}',
        b'{"\\udc00":1}',
        b'{"a":"\xed\xa0\x80"}',
    ],
)
def test_parse_json_object_rejects(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_json_object(data)


def test_parse_json_object_accepts_whitespace_and_nesting() -> None:
    assert parse_json_object(b' {"a": [1, {"b": 2}], "c": "\\u00e9"} \n') == {
        "a": [1, {"b": 2}],
        "c": "\u00e9",
    }


def test_a_jwk_set_text_with_a_lone_surrogate_is_invalid_jwks(vectors: dict[str, Any]) -> None:
    text = json.dumps(vectors["jwks"])[:-1]
    assert trickle_verifier.KeySet.from_jwks(text + ',"x":"\\ud83d\\ude00"}').kids
    for lone in (',"x":"\ud800"}', ',"x":"\\ud800"}'):  # raw, then escaped
        with pytest.raises(trickle_verifier.InvalidJWKS):
            trickle_verifier.KeySet.from_jwks(text + lone)


def test_imports_and_verifies_without_sqlalchemy() -> None:
    vectors = REPO_ROOT / "tests" / "vectors" / "receipts.json"
    script = f"""
import json, sys
sys.modules["sqlalchemy"] = None  # any import of it now fails
import trickle_verifier as tv
data = json.loads(open({str(vectors)!r}, encoding="utf-8").read())
config = data["verifier"]
verifier = tv.Verifier(issuer=config["issuer"], audience=config["audience"],
                       payees=config["payees"], keys=tv.KeySet.from_jwks(data["jwks"]))
receipt = verifier.verify(data["valid"][0]["token"], now=config["now"])
tracker = tv.CreditTracker(tv.MemoryCreditStore())
assert tracker.credit(receipt) == receipt.total_minor
try:
    tv.SQLAlchemyCreditStore(None)
except ImportError:
    pass
else:
    raise AssertionError("SQLAlchemyCreditStore should need sqlalchemy")
assert "sqlalchemy" not in {{name for name in sys.modules if sys.modules[name] is not None}}
print(json.dumps([receipt.sid, receipt.total_minor]))
"""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["sTrEaM0aaaaaaaaaaaaaaA", 100]


def test_the_distribution_ships_every_subpackage() -> None:
    # A wheel (``pip install ./verifier``, not editable) holds only the packages named here.
    root = REPO_ROOT / "verifier"
    config = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    packages = {
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "trickle_verifier").rglob("__init__.py")
    }
    assert "trickle_verifier.stores" in packages
    assert set(config["tool"]["setuptools"]["packages"]) == packages


def test_the_starlette_extra_brings_everything_the_asgi_module_imports() -> None:
    # pip install './verifier[starlette]' is what docs/site-owners.md tells site owners to run.
    config = tomllib.loads((REPO_ROOT / "verifier" / "pyproject.toml").read_text("utf-8"))
    assert config["project"]["dependencies"] == ["pynacl>=1.5"]
    extra = config["project"]["optional-dependencies"]["starlette"]
    source = (REPO_ROOT / "verifier" / "trickle_verifier" / "asgi.py").read_text("utf-8")
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.level == 0
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"starlette"}
    assert {re.split(r"[<>=!~\[; ]", requirement)[0] for requirement in extra} == third_party


def test_without_starlette_the_asgi_module_names_the_extra_to_install() -> None:
    script = """
import sys
sys.modules["starlette"] = None  # as if it were not installed
import trickle_verifier  # the core needs only PyNaCl
try:
    import trickle_verifier.asgi
except ModuleNotFoundError as error:
    print(error.name)
    print(error)
else:
    raise AssertionError("trickle_verifier.asgi imported without Starlette")
"""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    name, message = result.stdout.strip().split("\n", 1)
    assert name == "starlette"
    assert "pip install 'trickle-verifier[starlette]'" in message
    assert "pip install './verifier[starlette]'" in message
