"""CreditTracker and its stores: the docs/receipts.md §4 example, and exact totals under
concurrent threads (every store, SQLite and PostgreSQL) and processes (SQLiteCreditStore)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy

from tests.verifier.stores import store_fixture
from trickle_verifier import (
    CreditStore,
    CreditTracker,
    MemoryCreditStore,
    Receipt,
    SQLAlchemyCreditStore,
    SQLiteCreditStore,
    Verifier,
)

NOW = 1795000100
DOCS_EXAMPLE = [(1, 100, 100), (2, 200, 100), (2, 200, 0), (4, 400, 200), (3, 300, 0)]


make_store = store_fixture(
    MemoryCreditStore,
    SQLiteCreditStore,
    SQLAlchemyCreditStore,
    file="credits",
    table_option="table_name",
    drop=SQLAlchemyCreditStore.drop_table,
)


def _receipt(generator: ModuleType, verifier: Verifier, sid: str, seq: int, tot: int) -> Receipt:
    body = generator.claims(sid=sid, seq=seq, amt=str(min(tot, 100)), tot=str(tot), jti=f"j{seq}")
    return verifier.verify(generator.token(body=body), now=NOW)


def test_docs_example(
    make_store: Callable[[], CreditStore], generator: ModuleType, verifier: Verifier
) -> None:
    tracker = CreditTracker(make_store())
    credited = [
        tracker.credit(_receipt(generator, verifier, "S", seq, tot)) for seq, tot, _ in DOCS_EXAMPLE
    ]
    assert credited == [expected for _, _, expected in DOCS_EXAMPLE]
    assert all(type(amount) is int for amount in credited)
    assert sum(credited) == 400


def test_streams_are_independent(
    make_store: Callable[[], CreditStore], generator: ModuleType, verifier: Verifier
) -> None:
    tracker = CreditTracker(make_store())
    assert tracker.credit(_receipt(generator, verifier, "A", 1, 100)) == 100
    assert tracker.credit(_receipt(generator, verifier, "B", 1, 100)) == 100
    assert tracker.credit(_receipt(generator, verifier, "A", 2, 150)) == 50
    assert tracker.credit(_receipt(generator, verifier, "B", 1, 100)) == 0


def test_amounts_up_to_2_63_minus_1(
    make_store: Callable[[], CreditStore], generator: ModuleType, verifier: Verifier
) -> None:
    tracker = CreditTracker(make_store())
    top = 2**63 - 1
    first = generator.claims(sid="big", amt=str(top - 1), tot=str(top - 1))
    second = generator.claims(sid="big", seq=2, amt="1", tot=str(top))
    assert tracker.credit(verifier.verify(generator.token(body=first), now=NOW)) == top - 1
    assert tracker.credit(verifier.verify(generator.token(body=second), now=NOW)) == 1


def test_concurrent_threads_credit_exactly_the_highest_total(
    make_store: Callable[[], CreditStore], generator: ModuleType, verifier: Verifier
) -> None:
    receipts = [
        _receipt(generator, verifier, sid, seq, seq * 100)
        for sid in ("S", "T")
        for seq in range(1, 11)
    ]
    credited: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20, timeout=60)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            tracker = CreditTracker(make_store())
            barrier.wait()
            order = receipts[index % 7 :] + receipts[: index % 7]  # different orders per thread
            for receipt in order:
                amount = tracker.credit(receipt)
                with lock:
                    credited.append(amount)
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(credited) == 20 * len(receipts)
    assert sum(credited) == 1000 + 1000  # the highest tot of S plus that of T


def test_tracker_only_takes_verified_receipts() -> None:
    with pytest.raises(TypeError):
        CreditTracker(MemoryCreditStore()).credit({"sid": "S", "tot": "100"})  # type: ignore[arg-type]


@pytest.mark.parametrize("total", [-1, 2**63, 1.5, "100", True])
def test_stores_refuse_impossible_totals(total: Any, tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    sqlite_store = SQLiteCreditStore(tmp_path / "y.sqlite3")
    try:
        for store in (MemoryCreditStore(), sqlite_store, SQLAlchemyCreditStore(engine)):
            with pytest.raises(ValueError):
                store.raise_total("S", "aud", "pay", total)
    finally:
        sqlite_store.close()
        engine.dispose()


def test_table_name_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SQLiteCreditStore(tmp_path / "z.sqlite3", table_name="x; DROP TABLE y")


def test_sqlite_store_keeps_aud_and_pay(
    tmp_path: Path, generator: ModuleType, verifier: Verifier
) -> None:
    import sqlite3

    store = SQLiteCreditStore(tmp_path / "c.sqlite3")
    CreditTracker(store).credit(_receipt(generator, verifier, "S", 1, 100))
    store.close()
    with sqlite3.connect(tmp_path / "c.sqlite3") as connection:
        row = connection.execute(
            "SELECT sid, aud, pay, total_minor FROM trickle_stream_credits"
        ).fetchone()
    connection.close()
    assert row == ("S", "https://blog.example", "https://trickle.test/p/alice", 100)


def _credit_in_process(path: str, tokens: list[str], results: Any) -> None:
    """Child process: verify and credit every token, report the sum credited."""
    import json as _json

    from trickle_verifier import KeySet

    vectors = _json.loads(
        (Path(__file__).resolve().parents[1] / "vectors" / "receipts.json").read_text("utf-8")
    )
    config = vectors["verifier"]
    verifier = Verifier(
        issuer=config["issuer"],
        audience=config["audience"],
        payees=config["payees"],
        keys=KeySet.from_jwks(vectors["jwks"]),
    )
    store = SQLiteCreditStore(path)
    tracker = CreditTracker(store)
    total = 0
    for token in tokens:
        total += tracker.credit(verifier.verify(token, now=NOW))
    store.close()
    results.put(total)


def test_sqlite_store_is_exact_across_processes(tmp_path: Path, generator: ModuleType) -> None:
    path = str(tmp_path / "shared.sqlite3")
    SQLiteCreditStore(path).close()  # create the table before the race
    tokens = [
        generator.token(body=generator.claims(sid=sid, seq=seq, amt="10", tot=str(seq * 10)))
        for seq in range(1, 41)
        for sid in ("P", "Q")
    ]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(
            target=_credit_in_process,
            args=(path, tokens if index == 0 else list(reversed(tokens)), results),
        )
        for index in range(2)
    ]
    for process in processes:
        process.start()
    totals = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert sum(totals) == 400 + 400
