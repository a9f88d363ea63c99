"""Jepsen-style bank tests: many racing debits against a balance that covers only some of them.

The harness checks what matters: the balance never goes below zero, and the money that the
successful debits say they moved equals the drop in balance. A deliberately naive debit
(read, then write the computed balance) runs through the same harness as a control: the harness
must catch it, or it proves nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from trickle import ledger
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.errors import InsufficientFunds
from trickle.ledger import AccountKind, Asset, TransferKind, TransferRequest
from trickle.models import LedgerAccount

ASSET = Asset("USD", 9)
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
AMOUNT = 7
REQUESTS = 50
FUNDED = AMOUNT * 20 + 3  # covers 20 of the 50 debits, with a remainder


@dataclasses.dataclass
class Race:
    reader_id: int
    payee_id: int


def _setup(database_url: str) -> Race:
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        source = ledger.account(session, AccountKind.FUNDING, "test", ASSET, NOW)
        reader = ledger.account(session, AccountKind.READER, "user:race", ASSET, NOW)
        payee = ledger.account(session, AccountKind.PAYEE, "payee:race", ASSET, NOW)
        ledger.post_transfer(
            session,
            TransferRequest(source.id, reader.id, FUNDED, "USD", TransferKind.TOPUP, "fund"),
            NOW,
        )
        race = Race(reader.id, payee.id)
    engine.dispose()
    return race


def _safe_debit(sessions: sessionmaker[Session], race: Race, key: str) -> bool:
    try:
        with transaction(sessions) as session:
            request = TransferRequest(
                race.reader_id, race.payee_id, AMOUNT, "USD", TransferKind.STREAM, key
            )
            ledger.post_transfer(session, request, NOW)
        return True
    except InsufficientFunds:
        return False


def _naive_debit(sessions: sessionmaker[Session], race: Race, key: str) -> bool:
    """The control: read the balance, decide, write the computed value. Lost updates follow."""
    with sessions() as session, session.begin():
        balance = session.scalar(
            select(LedgerAccount.balance_minor).where(LedgerAccount.id == race.reader_id)
        )
        assert balance is not None
        if balance < AMOUNT:
            return False
        time.sleep(0.005)  # widen the window that a real server hits by chance
        session.execute(
            text("UPDATE ledger_accounts SET balance_minor = :b WHERE id = :id"),
            {"b": balance - AMOUNT, "id": race.reader_id},
        )
    return True


def _race_threads(
    sessions: sessionmaker[Session],
    race: Race,
    debit: Callable[..., bool],
    prefix: str,
    count: int = REQUESTS,
) -> int:
    barrier = threading.Barrier(count)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        barrier.wait()
        ok = debit(sessions, race, f"{prefix}-{index}")
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == count
    return sum(results)


def _reader_balance(database_url: str, race: Race) -> int:
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        value = ledger.balance(session, race.reader_id)
    engine.dispose()
    return value


def _assert_conserved(database_url: str, race: Race, successes: int) -> None:
    balance = _reader_balance(database_url, race)
    assert balance >= 0, f"overdraft: {balance}"
    assert FUNDED - balance == successes * AMOUNT, (
        f"{successes} debits of {AMOUNT} succeeded but the balance fell by {FUNDED - balance}"
    )


def test_fifty_threads_never_overdraw(database_url: str) -> None:
    race = _setup(database_url)
    engine = make_engine(database_url, pool_size=REQUESTS, max_overflow=0)
    successes = _race_threads(make_sessionmaker(engine), race, _safe_debit, "t")
    engine.dispose()
    assert successes == FUNDED // AMOUNT
    _assert_conserved(database_url, race, successes)
    assert _reader_balance(database_url, race) == FUNDED % AMOUNT


def _process_worker(database_url: str, race: Race, prefix: str, count: int) -> int:
    engine = make_engine(database_url, pool_size=count, max_overflow=0)
    try:
        return _race_threads(make_sessionmaker(engine), race, _safe_debit, prefix, count)
    finally:
        engine.dispose()


def test_two_processes_never_overdraw(database_url: str) -> None:
    race = _setup(database_url)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.starmap(
            _process_worker,
            [(database_url, race, "p0", REQUESTS // 2), (database_url, race, "p1", REQUESTS // 2)],
        )
    assert sum(results) == FUNDED // AMOUNT
    _assert_conserved(database_url, race, sum(results))


def test_retries_of_one_key_racing_move_money_once(database_url: str) -> None:
    race = _setup(database_url)
    engine = make_engine(database_url, pool_size=20, max_overflow=0)
    sessions = make_sessionmaker(engine)
    barrier = threading.Barrier(20)

    def retry() -> None:
        barrier.wait()
        _safe_debit(sessions, race, "the-same-key")

    threads = [threading.Thread(target=retry) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert _reader_balance(database_url, race) == FUNDED - AMOUNT


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_harness_catches_a_naive_debit(database_url: str) -> None:
    """Control: the naive read-then-write debit under PostgreSQL's default READ COMMITTED."""
    race = _setup(database_url)
    engine = create_engine(database_url, pool_size=REQUESTS, max_overflow=0)
    successes = _race_threads(sessionmaker(engine), race, _naive_debit, "naive")
    engine.dispose()
    with pytest.raises(AssertionError, match="succeeded but the balance fell by"):
        _assert_conserved(database_url, race, successes)


def test_the_harness_catches_a_naive_debit_on_default_sqlite(tmp_path: object) -> None:
    """Control: the same naive debit through SQLAlchemy's default SQLite engine (lazy BEGIN)."""
    from trickle import migrate

    url = f"sqlite:///{tmp_path}/naive.db"
    migrate.upgrade(url)
    race = _setup(url)
    engine = create_engine(url, connect_args={"timeout": 30}, pool_size=REQUESTS, max_overflow=0)
    successes = _race_threads(sessionmaker(engine), race, _naive_debit, "naive")
    engine.dispose()
    with pytest.raises(AssertionError, match="succeeded but the balance fell by"):
        _assert_conserved(url, race, successes)
