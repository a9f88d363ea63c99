"""The privacy test of private payments (docs/privacy.md): three readers buy tokens with their
sessions and pay five sites anonymously through a real ``trickle serve`` (its log at info level,
access lines included); then every row of every table and every line of the log is read, and
nothing may tie a reader (user id, email, session, reader account) to what was paid (origin,
payee, ``sid``, spent token). SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select, text

from tests import factories
from tests.service.stream_client import ServerProcess, ledger_check, new_kek, pointer, server_env
from trickle import payments, tokens, voprf
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.keys import b64url
from trickle.ledger import AccountKind
from trickle.models import AuthSession, LedgerAccount, SpentToken
from trickle.runtime import bootstrap
from trickle.settings import Settings

SITES = 5
READERS = 3


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _buy(server: ServerProcess, user: factories.TestUser, count: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.http_url}/.well-known/trickle-token-keys") as r:
        published = min(json.loads(r.read())["keys"], key=lambda k: k["epoch"])
    blinded = [voprf.blind(secrets.token_bytes(32)) for _ in range(count)]
    status, answer = _post(
        f"{server.http_url}/api/v1/tokens",
        {
            "currency": "USD",
            "epoch": published["epoch"],
            "blinded": [b64url(b.blinded_element) for b in blinded],
        },
        {**user.auth, "Idempotency-Key": f"buy-{secrets.token_hex(8)}"},
    )
    assert status == 201, answer
    outputs = voprf.finalize_batch(
        voprf.PublicKey.from_bytes(tokens.b64url_decode(published["public_key"], 32)),
        blinded,
        [tokens.b64url_decode(e, 32) for e in answer["evaluated"]],
        tokens.b64url_decode(answer["proof"], 64),
    )
    return [
        {"epoch": answer["epoch"], "input": b64url(b.input), "output": b64url(o)}
        for b, o in zip(blinded, outputs, strict=True)
    ]


def _rows(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the operator can read them."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
            return {
                table: [
                    dict(row._mapping)
                    for row in connection.execute(text(f'SELECT * FROM "{table}"'))
                ]
                for table in tables
            }
    finally:
        engine.dispose()


def _text(value: object) -> str:
    if isinstance(value, bytes | memoryview):
        data = bytes(value)
        return f"{data.hex()} {b64url(data)}"
    return str(value)


def test_nothing_ties_a_reader_to_what_their_tokens_paid(database_url: str, tmp_path: Path) -> None:
    kek = new_kek()
    settings = Settings(
        env="test",
        data_dir=tmp_path / "seed",
        database_url=database_url,
        public_url="https://trickle.test",
        key_encryption_key=kek,
    ).validate()
    runtime = bootstrap(settings)
    try:
        readers = [factories.create_user(runtime) for _ in range(READERS)]
        for reader in readers:
            factories.fund_reader(runtime, reader.id, 100_000_000)
        owner = factories.create_user(runtime)
        payees = [factories.create_payee(runtime, owner.id, f"site-{i}") for i in range(SITES)]
    finally:
        runtime.close()
    origins = [f"https://site{i}.example" for i in range(SITES)]
    server = ServerProcess(
        server_env(database_url, tmp_path / "data", kek, 2000, log_level="info"),
        tmp_path / "logs",
    )
    sids: list[str] = []
    spent_inputs: list[str] = []
    payment_keys: list[str] = []
    try:
        server.start()
        for reader in readers:
            held = _buy(server, reader, SITES)
            for i, token in enumerate(held):
                key = f"pay-{secrets.token_hex(8)}"
                status, paid = _post(
                    f"{server.http_url}/api/v1/private/payments",
                    {
                        "payment_pointer": pointer(payees[i].name),
                        "origin": origins[i],
                        "amount_minor": "1000000",
                        "currency": "USD",
                        "order_ref": f"article-{i}",
                        "tokens": [token],
                    },
                    {"Idempotency-Key": key},
                )
                assert status == 201, paid
                sids.append(paid["sid"])
                spent_inputs.append(token["input"])
                payment_keys.append(key)
    finally:
        server.stop()
    log = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
    # the request lines (JSON, trickle.logs) are there to be read
    assert '"path": "/api/v1/private/payments"' in log
    rows = _rows(database_url)

    # What names a reader, and what names where money went.
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            token_hashes = list(session.scalars(select(AuthSession.token_hash)))
            reader_accounts = set(
                session.scalars(
                    select(LedgerAccount.id).where(LedgerAccount.kind == AccountKind.READER.value)
                )
            )
            payee_accounts = set(
                session.scalars(
                    select(LedgerAccount.id).where(LedgerAccount.kind == AccountKind.PAYEE.value)
                )
            )
            nullifiers = [bytes(n).hex() for n in session.scalars(select(SpentToken.nullifier))]
    finally:
        engine.dispose()
    assert len(nullifiers) == READERS * SITES
    reader_marks = (
        [r.email for r in readers]
        + [r.token for r in readers]
        + token_hashes
        + [f"user:{r.id}" for r in readers]
    )
    paid_marks = (
        origins
        + [pointer(p.name) for p in payees]
        + [f"payee:{p.id}" for p in payees]
        + sids
        + nullifiers
        + spent_inputs
        + payment_keys
    )

    identities = Identities(
        reader_marks, paid_marks, {r.id for r in readers}, reader_accounts, payee_accounts
    )
    assert identities.links(rows, log) == []
    checked = ledger_check(database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # 2. the tables of the anonymous path have no column that could name a reader, nor a time
    #    finer than a day where none is needed
    assert set(rows["spent_tokens"][0]) == {"currency", "epoch", "nullifier", "use", "day"}
    assert all(len(str(r["day"])) == 10 for r in rows["spent_tokens"])  # YYYY-MM-DD
    for column in rows["private_payments"][0]:
        assert "user" not in column and "session" not in column, column

    # The control: one identified payment (the mode before tokens) is a link the test finds.
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            payments.pay(
                session,
                payments.PaymentRequest(
                    user_id=readers[0].id,
                    idempotency_key="identified-control",
                    payment_pointer=pointer(payees[0].name),
                    origin=origins[0],
                    amount_minor=1_000_000,
                    currency="USD",
                    order_ref="article-0",
                ),
                runtime.settings,
                runtime.clock(),
            )
    finally:
        runtime.close()
    found = identities.links(_rows(database_url), "")
    assert any(link.startswith("payments:") for link in found), found
    assert any(link.startswith("transfers:") for link in found), found


@dataclasses.dataclass(frozen=True)
class Identities:
    """What names a reader and what names where money went, in text and in id columns."""

    reader_marks: list[str]
    paid_marks: list[str]
    reader_ids: set[int]
    reader_accounts: set[int]
    payee_accounts: set[int]

    def links(self, rows: dict[str, list[dict[str, Any]]], log: str) -> list[str]:
        """Every row (``table: row``) and log line that names a reader and where money went."""
        found = []
        for table, table_rows in rows.items():
            for row in table_rows:
                if self._names_reader(table, row) and self._names_payment(row):
                    found.append(f"{table}: {row}")
        for line in log.splitlines():
            if any(m in line for m in self.reader_marks) and any(
                m in line for m in self.paid_marks
            ):
                found.append(f"log: {line}")
        return found

    def _names_reader(self, table: str, row: dict[str, Any]) -> bool:
        seen = " ".join(_text(value) for value in row.values())
        if any(mark in seen for mark in self.reader_marks):
            return True
        for column, value in row.items():
            if column == "user_id" and table != "payees" and value in self.reader_ids:
                return True
            if column.endswith("account_id") and value in self.reader_accounts:
                return True
        return False

    def _names_payment(self, row: dict[str, Any]) -> bool:
        seen = " ".join(_text(value) for value in row.values())
        if any(mark in seen for mark in self.paid_marks):
            return True
        return any(
            column.endswith("account_id") and value in self.payee_accounts
            for column, value in row.items()
        )
