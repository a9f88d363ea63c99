"""The real service as a subprocess, and a small client of its stream protocol (``websockets``).

Used by the process-level stream tests (crash, multi-process) and by ``bench/streams.py``: a
``ServerProcess`` runs ``python -m trickle.cli serve``; a ``StreamClient`` is one reader
connection that records, per stream, the receipts it was sent (highest seq and tot, the tokens to
verify, and how late each receipt arrived).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.processes import ProcessFailed, terminate, wait_until_answering
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.models import LedgerAccount, Transfer
from trickle_verifier import KeySet, Verifier

REPO = Path(__file__).resolve().parents[2]
ISSUER = "https://trickle.test"
ORIGIN = "https://blog.example"
PING_INTERVAL_S = 15.0


def pointer(payee_name: str) -> str:
    return f"{ISSUER}/p/{payee_name}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(
    database_url: str, data_dir: Path, kek_b64: str, interval_ms: int, **settings: object
) -> dict[str, str]:
    """The environment of a server subprocess: the parent's, minus its TRICKLE_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
    env.update(
        TRICKLE_ENV="test",
        TRICKLE_DATABASE_URL=database_url,
        TRICKLE_DATA_DIR=str(data_dir),
        TRICKLE_PUBLIC_URL=ISSUER,
        TRICKLE_KEY_ENCRYPTION_KEY=kek_b64,
        TRICKLE_STREAM_INTERVAL_MS=str(interval_ms),
        TRICKLE_LOG_LEVEL="warning",
    )
    env.update({f"TRICKLE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


class ServerProcess:
    """``trickle serve`` on 127.0.0.1:<port>, logging to a file in ``log_dir``."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, port: int | None = None) -> None:
        self.env = dict(env)
        self.port = port or free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/stream"

    @property
    def private_ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/private-stream"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"server-{self.port}-{self.starts}.log"

    def start(self, timeout_s: float = 60.0) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "trickle.cli", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=self.log_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_until_answering(
                self.process, f"{self.http_url}/healthz", timeout_s, self.log_tail, "trickle serve"
            )
        except ProcessFailed:
            self.stop()
            raise

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, in-flight commits are cut wherever they are."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is not None:
            terminate(self.process, timeout_s)

    def jwks(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.http_url}/.well-known/jwks.json", timeout=10) as r:
            document: dict[str, Any] = json.loads(r.read())
            return document

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def ledger_check(database_url: str) -> subprocess.CompletedProcess[str]:
    """``trickle ledger check`` as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLE_")}
    return subprocess.run(
        [sys.executable, "-m", "trickle.cli", "ledger", "check", "--database-url", database_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the client ---------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class StreamLog:
    """What one stream's client saw."""

    ref: str
    pointer: str
    sid: str | None = None
    state: str = ""
    reason: str | None = None
    seq: int = 0
    total_minor: int = 0
    receipts: int = 0
    stopped: bool = False
    gaps: int = 0  # receipts whose seq was not the previous one + 1
    anchor_s: float | None = None  # arrival of the latest "state: active"
    anchor_seq: int = 0  # the seq at that moment
    tokens: list[str] = dataclasses.field(default_factory=list)


class StreamClient:
    """One connection of one reader. ``keep_every``: keep the token of every n-th receipt for
    verification (1: all; counted over all clients of the process). Latencies (ms) are recorded
    while ``record_latency`` is set: receipt k after the stream turned active at time A was due
    at A + k x interval (time.monotonic)."""

    received_by_all = 0  # receipts of every client in this process: the sample's counter

    def __init__(
        self,
        url: str,
        token: str,
        *,
        interval_ms: int,
        keep_every: int = 1,
        compression: str | None = "deflate",
        batch: bool = True,
    ) -> None:
        self.url = url
        self.batch = batch  # say in hello that this client reads ``batch`` envelopes
        self.token = token
        self.interval_s = interval_ms / 1000
        self.keep_every = keep_every
        self.compression = compression
        self.streams: dict[str, StreamLog] = {}  # ref -> log
        self.by_sid: dict[str, StreamLog] = {}
        self.errors: list[dict[str, Any]] = []
        self.balance: dict[str, Any] | None = None
        self.welcome: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.ended = asyncio.Event()
        self.record_latency = False
        self.latencies_ms: list[float] = []
        self.receipts = 0
        self._ws: ClientConnection | None = None

    # --- running ---

    async def run(self, starts: Iterable[tuple[str, str]], stop: asyncio.Event) -> None:
        """Connect, hello, start the (ref, pointer) streams, read until ``stop`` or the socket
        closes. Never raises for a dropped connection: ``close_code`` says how it ended."""
        starts = list(starts)
        for ref, target in starts:
            self.streams[ref] = StreamLog(ref, target)
        try:
            async with connect(
                self.url,
                compression=self.compression,
                proxy=None,
                ping_interval=None,
                open_timeout=60,
                close_timeout=5,
                max_queue=None,
            ) as ws:
                self._ws = ws
                hello = {"type": "hello", "v": 1, "token": self.token, "batch": self.batch}
                await ws.send(json.dumps(hello))
                for ref, target in starts:
                    message = {"type": "start", "ref": ref, "origin": ORIGIN, "pointer": target}
                    await ws.send(json.dumps(message))
                await self._serve(ws, stop)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        except OSError:
            self.close_code = 1006
        finally:
            self._ws = None
            self.ended.set()

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        reading = asyncio.create_task(self._read(ws))
        stopping = asyncio.create_task(stop.wait())
        try:
            while not reading.done():
                done, _ = await asyncio.wait(
                    {reading, stopping},
                    timeout=PING_INTERVAL_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping in done:
                    break
                if not done:
                    await ws.send('{"type":"ping"}')
        finally:
            stopping.cancel()
            if not reading.done():
                await ws.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reading), 10)
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reading
        if ws.close_code is not None:
            self.close_code = ws.close_code

    async def _read(self, ws: ClientConnection) -> None:
        async for text in ws:
            message, now_s = json.loads(text), time.monotonic()
            if message["type"] == "batch":
                assert self.batch, "a batch sent to a client that did not ask for them"
                for item in message["messages"]:
                    self.on_message(item, now_s)
            else:
                self.on_message(message, now_s)

    async def stop_streams(self) -> None:
        """Send a stop for every started stream (the connection stays open)."""
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            for log in self.streams.values():
                if log.sid is not None and not log.stopped:
                    await ws.send(json.dumps({"type": "stop", "sid": log.sid}))

    # --- messages ---

    def on_message(self, message: dict[str, Any], now_s: float) -> None:
        kind = message["type"]
        if kind == "receipt":
            self._on_receipt(message, now_s)
        elif kind == "state":
            log = self.by_sid[message["sid"]]
            log.state, log.reason = message["state"], message.get("reason")
            if log.state == "active":
                log.anchor_s, log.anchor_seq = now_s, log.seq
        elif kind == "started":
            log = self.streams[message["ref"]]
            log.sid = message["sid"]
            self.by_sid[log.sid] = log
        elif kind == "balance":
            self.balance = message
        elif kind == "welcome":
            self.welcome = message
        elif kind == "stopped":
            log = self.by_sid[message["sid"]]
            log.stopped, log.state, log.reason = True, "stopped", message.get("reason")
        elif kind == "error":
            self.errors.append(message)

    def _on_receipt(self, message: dict[str, Any], now_s: float) -> None:
        log = self.by_sid[message["sid"]]
        seq = message["seq"]
        if seq != log.seq + 1:
            log.gaps += 1
        if seq > log.seq:
            log.seq, log.total_minor = seq, int(message["tot"])
        log.receipts += 1
        self.receipts += 1
        StreamClient.received_by_all += 1
        if self.keep_every and StreamClient.received_by_all % self.keep_every == 0:
            log.tokens.append(message["receipt"])
        if self.record_latency and log.anchor_s is not None:
            due_s = log.anchor_s + (seq - log.anchor_seq) * self.interval_s
            self.latencies_ms.append((now_s - due_s) * 1000)

    # --- views ---

    @property
    def started(self) -> bool:
        return bool(self.streams) and all(log.sid is not None for log in self.streams.values())

    def all_in(self, *states: str) -> bool:
        return bool(self.streams) and all(
            log.sid is not None and (log.state in states or log.reason in states)
            for log in self.streams.values()
        )


async def wait_for(predicate: Any, timeout_s: float, step_s: float = 0.02) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s``; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        await asyncio.sleep(step_s)
    return True


def verify_all(jwks: dict[str, Any], clients: Iterable[StreamClient]) -> int:
    """Verify every kept token (raises on the first bad one); returns how many were checked."""
    keys = KeySet.from_jwks(jwks)
    verifiers: dict[str, Verifier] = {}
    checked = 0
    for client in clients:
        for log in client.streams.values():
            verifier = verifiers.get(log.pointer)
            if verifier is None:
                verifier = Verifier(issuer=ISSUER, audience=ORIGIN, payees=[log.pointer], keys=keys)
                verifiers[log.pointer] = verifier
            for token in log.tokens:
                receipt = verifier.verify(token)
                if receipt.sid != log.sid:
                    raise AssertionError(f"a receipt of {receipt.sid} arrived as {log.sid}'s")
                checked += 1
    return checked


# --- the ledger as the tests read it -------------------------------------------------------------


@dataclasses.dataclass
class LedgerView:
    """Stream and fee transfers, by stream id, and account balances."""

    stream: dict[str, list[tuple[int, int, int, int]]]  # sid -> [(seq, debit, credit, amount)]
    fees: dict[str, list[tuple[int, int, int, int]]]  # sid -> [(seq, debit, credit, amount)]
    balances: dict[int, int]  # account id -> balance
    accounts: dict[tuple[str, str], int]  # (kind, owner) -> account id

    def credits(self, sid: str) -> int:
        return sum(amount for _, _, _, amount in self.stream.get(sid, []))

    def fee_total(self, sid: str) -> int:
        return sum(amount for _, _, _, amount in self.fees.get(sid, []))


def read_ledger(database_url: str) -> LedgerView:
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            rows = session.execute(
                select(
                    Transfer.kind,
                    Transfer.idempotency_key,
                    Transfer.debit_account_id,
                    Transfer.credit_account_id,
                    Transfer.amount_minor,
                ).where(Transfer.kind.in_(("stream", "fee")))
            ).all()
            accounts = session.execute(
                select(
                    LedgerAccount.id,
                    LedgerAccount.kind,
                    LedgerAccount.owner,
                    LedgerAccount.balance_minor,
                )
            ).all()
    finally:
        engine.dispose()
    view = LedgerView({}, {}, {}, {})
    for kind, key, debit, credit, amount in rows:
        sid, _, seq = key.partition(".")
        target = view.stream if kind == "stream" else view.fees
        target.setdefault(sid, []).append((int(seq), debit, credit, int(amount)))
    for entries in (*view.stream.values(), *view.fees.values()):
        entries.sort()
    for account_id, kind, owner, balance in accounts:
        view.balances[account_id] = int(balance)
        view.accounts[(kind, owner)] = account_id
    return view


def new_kek() -> str:
    import base64

    return base64.b64encode(secrets.token_bytes(32)).decode()


# --- seeding through the domain layer ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seeded:
    tokens: list[str]  # one session token per reader
    reader_ids: list[int]
    payees: list[str]  # payment pointer URLs
    payee_ids: list[int]
    funded_minor: int  # each reader's top-up


def seed(
    database_url: str,
    data_dir: Path,
    kek_b64: str,
    *,
    readers: int,
    funded_minor: int,
    payees: int = 1,
) -> Seeded:
    """Readers with a live session and a top-up, and payees, on a migrated database; with the
    servers' key-encryption key, so the signing key made here is the one they sign with."""
    from tests.factories import create_payee, create_user, fund_reader
    from trickle.runtime import bootstrap
    from trickle.settings import Settings

    settings = Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        public_url=ISSUER,
        key_encryption_key=kek_b64,
    ).validate()
    runtime = bootstrap(settings)
    try:
        users = [create_user(runtime) for _ in range(readers)]
        for user in users:
            fund_reader(runtime, user.id, funded_minor)
        owner = create_user(runtime)
        made = [create_payee(runtime, owner.id) for _ in range(payees)]
    finally:
        runtime.close()
    return Seeded(
        [u.token for u in users],
        [u.id for u in users],
        [pointer(p.name) for p in made],
        [p.id for p in made],
        funded_minor,
    )


def assert_receipts_match_ledger(
    view: LedgerView,
    clients: Iterable[StreamClient],
    *,
    reader_account: int,
    payee_accounts: Mapping[str, int],
    fee_account: int | None,
    fee_bps: int,
) -> None:
    """For every stream the clients of ONE reader saw: its committed increments are seq 1..n with
    no gap, each a reader -> payee transfer (plus its fee, payee -> fee); the highest receipt a
    client got is covered by those credits, and its ``tot`` is exactly their running sum."""
    for client in clients:
        for log in client.streams.values():
            if log.sid is None:
                continue
            entries = view.stream.get(log.sid, [])
            assert [seq for seq, *_ in entries] == list(range(1, len(entries) + 1)), log.sid
            for _, debit, credit, _ in entries:
                assert (debit, credit) == (reader_account, payee_accounts[log.pointer]), log.sid
            assert log.total_minor <= view.credits(log.sid), (log.sid, log.total_minor)
            assert log.seq <= len(entries), (log.sid, log.seq, len(entries))
            assert log.total_minor == sum(a for s, *_, a in entries if s <= log.seq), log.sid
            assert log.gaps == 0, f"{log.sid}: receipts arrived out of order"
            expected_fees = [
                (seq, payee_accounts[log.pointer], fee_account, amount * fee_bps // 10_000)
                for seq, _, _, amount in entries
                if amount * fee_bps // 10_000 > 0
            ]
            assert view.fees.get(log.sid, []) == expected_fees, log.sid


# --- the private stream's client -----------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class PrivateLog:
    """What one private stream's client saw. Its spends are answered in order, so each answer
    is matched with the spend it answers."""

    stream: str
    pointer: str
    wallet: list[dict[str, Any]]  # tokens (wire form) still to spend, one per spend
    sid: str | None = None
    seq: int = 0
    total_minor: int = 0
    receipts: int = 0
    gaps: int = 0
    stopped: dict[str, Any] | None = None
    tokens: list[str] = dataclasses.field(default_factory=list)  # receipts kept to verify
    sent: collections.deque[dict[str, Any]] = dataclasses.field(
        default_factory=collections.deque
    )  # spent, not answered yet
    paid: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # answered: receipt
    refused: list[tuple[dict[str, Any], str]] = dataclasses.field(default_factory=list)
    ran_dry_s: float | None = None  # when its wallet emptied (time.monotonic)


class PrivateStreamClient:
    """One private connection: no login. Each stream spends its wallet one token per spend,
    keeping ``in_flight`` spends unanswered at most; ``keep_every``: keep every n-th receipt to
    verify (1: all; counted over all clients of the process)."""

    received_by_all = 0  # receipts of every client in this process: the sample's counter

    def __init__(
        self,
        url: str,
        *,
        in_flight: int = 2,
        keep_every: int = 1,
        batch: bool = True,
        compression: str | None = None,
    ) -> None:
        self.url = url
        self.in_flight = in_flight
        self.keep_every = keep_every
        self.batch = batch
        self.compression = compression
        self.streams: dict[str, PrivateLog] = {}
        self.by_sid: dict[str, PrivateLog] = {}
        self.errors: list[dict[str, Any]] = []  # errors that answer no spend
        self.close_code: int | None = None
        self.receipts = 0
        self.welcome: dict[str, Any] | None = None
        self.ended = asyncio.Event()
        self._ws: ClientConnection | None = None

    async def run(
        self, plan: Iterable[tuple[str, str, list[dict[str, Any]]]], stop: asyncio.Event
    ) -> None:
        """Connect, hello, start the (stream id, pointer, wallet) streams and spend the wallets
        until ``stop``, the wallets are spent and answered, or the socket closes."""
        for stream, target, wallet in plan:
            self.streams[stream] = PrivateLog(stream, target, list(wallet))
        try:
            async with connect(
                self.url,
                compression=self.compression,
                proxy=None,
                ping_interval=None,
                open_timeout=60,
                close_timeout=5,
                max_queue=None,
            ) as ws:
                self._ws = ws
                hello = {"type": "hello", "v": 1, "private": True, "batch": self.batch}
                await ws.send(json.dumps(hello))
                for log in self.streams.values():
                    start = {
                        "type": "start",
                        "stream": log.stream,
                        "origin": ORIGIN,
                        "pointer": log.pointer,
                    }
                    await ws.send(json.dumps(start))
                reading = asyncio.create_task(self._read(ws))
                stopping = asyncio.create_task(stop.wait())
                try:
                    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    if not reading.done():
                        await ws.close()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await asyncio.wait_for(reading, 10)
                if ws.close_code is not None:
                    self.close_code = ws.close_code
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        except OSError:
            self.close_code = 1006
        finally:
            self._ws = None
            self.ended.set()

    @property
    def done(self) -> bool:
        return all(not log.wallet and not log.sent for log in self.streams.values())

    async def _read(self, ws: ClientConnection) -> None:
        async for text in ws:
            message = json.loads(text)
            items = message["messages"] if message["type"] == "batch" else [message]
            for item in items:
                await self._on_message(ws, item)
            if self.done:
                return

    async def _spend(self, ws: ClientConnection, log: PrivateLog) -> None:
        while log.wallet and len(log.sent) < self.in_flight:
            token = log.wallet.pop()
            log.sent.append(token)
            if not log.wallet:
                log.ran_dry_s = time.monotonic()
            message = {"type": "spend", "stream": log.stream, "tokens": [token]}
            await ws.send(json.dumps(message))

    async def _on_message(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "welcome":
            self.welcome = message
        elif kind == "started":
            log = self.streams[message["stream"]]
            log.sid = message["sid"]
            self.by_sid[log.sid] = log
            await self._spend(ws, log)
        elif kind == "receipt":
            log = self.by_sid[message["sid"]]
            if message["seq"] != log.seq + 1:
                log.gaps += 1
            log.seq, log.total_minor = message["seq"], int(message["tot"])
            log.receipts += 1
            self.receipts += 1
            PrivateStreamClient.received_by_all += 1
            if self.keep_every and PrivateStreamClient.received_by_all % self.keep_every == 0:
                log.tokens.append(message["receipt"])
            log.paid.append(log.sent.popleft())
            await self._spend(ws, log)
        elif kind == "error" and "sid" in message and message["sid"] in self.by_sid:
            log = self.by_sid[message["sid"]]
            log.refused.append((log.sent.popleft(), message["code"]))
            await self._spend(ws, log)
        elif kind == "error":
            self.errors.append(message)
        elif kind == "stopped":
            self.streams[message["stream"]].stopped = message

    def unanswered(self) -> list[dict[str, Any]]:
        """Tokens sent whose answer never came."""
        return [token for log in self.streams.values() for token in log.sent]


def verify_private(jwks: dict[str, Any], clients: Iterable[PrivateStreamClient]) -> int:
    """Every kept receipt verifies with the unchanged verifier and names its stream's sid."""
    keys = KeySet.from_jwks(jwks)
    checked = 0
    for client in clients:
        for log in client.streams.values():
            verifier = Verifier(issuer=ISSUER, audience=ORIGIN, payees=[log.pointer], keys=keys)
            for token in log.tokens:
                if verifier.verify(token).sid != log.sid:
                    raise AssertionError(f"a receipt of another stream arrived as {log.sid}'s")
                checked += 1
    return checked


def buy_wallet(
    database_url: str, data_dir: Path, kek_b64: str, user_id: int, count: int
) -> list[dict[str, Any]]:
    """``count`` tokens bought by a funded reader as the extension buys them (blind, issue,
    verify the proof, unblind: ``factories.buy_tokens``), in the wire form a ``spend`` shows.
    Bought in batches of 256 (the most an issuance may hold), within a budget of the reader's
    funds."""
    from tests.factories import buy_tokens
    from trickle.keys import b64url
    from trickle.runtime import bootstrap
    from trickle.settings import Settings

    settings = Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        public_url=ISSUER,
        key_encryption_key=kek_b64,
        token_batch_max=256,
        default_monthly_budget_minor=10**15,
    ).validate()
    runtime = bootstrap(settings)
    wallet: list[dict[str, Any]] = []
    try:
        while len(wallet) < count:
            batch = buy_tokens(runtime, user_id, min(256, count - len(wallet)))
            wallet += [
                {"epoch": t.epoch, "input": b64url(t.input), "output": b64url(t.output)}
                for t in batch
            ]
    finally:
        runtime.close()
    return wallet
