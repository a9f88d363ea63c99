"""Fixtures for the trickle_verifier tests: the shared vectors, their generator, and verifiers
and databases built from them."""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.prerequisites import unavailable
from trickle_verifier import KeySet, Verifier

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS_DIR = REPO_ROOT / "tests" / "vectors"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"


def load_vectors() -> dict[str, Any]:
    return json.loads((VECTORS_DIR / "receipts.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "trickle_vectors_generate", VECTORS_DIR / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return load_vectors()


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="session")
def key_set(vectors: dict[str, Any]) -> KeySet:
    return KeySet.from_jwks(vectors["jwks"])


@pytest.fixture(scope="session")
def make_verifier(vectors: dict[str, Any], key_set: KeySet) -> Callable[..., Verifier]:
    config = vectors["verifier"]

    def make(**overrides: Any) -> Verifier:
        options: dict[str, Any] = {
            "issuer": config["issuer"],
            "audience": config["audience"],
            "payees": config["payees"],
            "keys": key_set,
            "leeway_s": config["leeway_s"],
            "clock": lambda: float(config["now"]),
        }
        options.update(overrides)
        return Verifier(**options)

    return make


@pytest.fixture(scope="session")
def verifier(make_verifier: Callable[..., Verifier]) -> Verifier:
    return make_verifier()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL; skips when unreachable, except under CI where that is a failure."""
    url = os.environ.get("TRICKLE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    import sqlalchemy  # a dev dependency; the verifier itself does not need it

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as exc:
        unavailable("PostgreSQL", f"{url} is unreachable: {exc}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def unique_table_name() -> str:
    """A table name no parallel test run shares."""
    return f"trickle_stream_credits_t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Any]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url, pool_size=25, max_overflow=5)
    yield engine
    engine.dispose()
