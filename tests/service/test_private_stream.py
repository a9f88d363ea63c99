"""The private stream through the real endpoint (/api/v1/private-stream): every message, error
code and close code of docs/stream-protocol.md's "Private streams", receipts that the unchanged
verifier accepts, a token that pays once however many connections show it, and the ledger
behind it (the ``runtime`` fixture runs ``ledger.check`` after every test)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests import factories
from tests.conftest import REPO
from tests.factories import buy_tokens, create_payee, create_user, fund_reader
from trickle import ledger, tokens, voprf
from trickle.app import create_app
from trickle.db import transaction
from trickle.keys import b64url
from trickle.ledger import AccountKind, TransferKind
from trickle.models import SpentToken, Transfer
from trickle.runtime import Runtime
from trickle.settings import Settings
from trickle.streaming.private import protocol
from trickle.streaming.protocol import CLOSE_CODES
from trickle_verifier import KeySet, Verifier

ISSUER = "https://trickle.test"
BLOG = "https://blog.example"
ALICE = f"{ISSUER}/p/alice"
PATH = "/api/v1/private-stream"
FEE_BPS = 250
Socket = Any  # starlette's WebSocketTestSession


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        fee_bps=FEE_BPS,
        stream_max_streams_per_connection=3,
        stream_token_check_processes=0,  # on the loop: no worker to start for every test
    )


@dataclasses.dataclass
class World:
    reader: factories.TestUser
    payee_id: int


@pytest.fixture
def world(runtime: Runtime) -> World:
    reader = create_user(runtime)
    fund_reader(runtime, reader.id, 10**12)
    owner = create_user(runtime)
    return World(reader, create_payee(runtime, owner.id, "alice").id)


def wire(token: tokens.Token) -> dict[str, Any]:
    return {"epoch": token.epoch, "input": b64url(token.input), "output": b64url(token.output)}


def buy(runtime: Runtime, world: World, count: int) -> list[dict[str, Any]]:
    return [wire(t) for t in buy_tokens(runtime, world.reader.id, count)]


def value_minor(runtime: Runtime) -> int:
    return runtime.settings.token_value_minor


def send(ws: Socket, message: dict[str, Any]) -> None:
    ws.send_text(json.dumps(message))


def hello(ws: Socket, **extra: Any) -> dict[str, Any]:
    send(ws, {"type": "hello", "v": 1, "private": True, **extra})
    welcome: dict[str, Any] = ws.receive_json()
    assert welcome["type"] == "welcome", welcome
    return welcome


def start(ws: Socket, stream: str = "s1", origin: str = BLOG, **extra: Any) -> str:
    send(ws, {"type": "start", "stream": stream, "origin": origin, "pointer": ALICE, **extra})
    started = ws.receive_json()
    assert started == {
        "type": "started",
        "stream": stream,
        "sid": started["sid"],
        "origin": origin,
        "pointer": ALICE,
    }
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", started["sid"])
    sid: str = started["sid"]
    return sid


def spend(ws: Socket, stream: str, *tokens_: dict[str, Any]) -> None:
    send(ws, {"type": "spend", "stream": stream, "tokens": list(tokens_)})


def expect_close(ws: Socket, code: int) -> list[dict[str, Any]]:
    seen = []
    with pytest.raises(WebSocketDisconnect) as closed:
        for _ in range(1000):
            seen.append(ws.receive_json())
    assert closed.value.code == code, seen[-3:]
    return seen


def verifier(runtime: Runtime) -> Verifier:
    return Verifier(
        issuer=ISSUER,
        audience=BLOG,
        payees=[ALICE],
        keys=KeySet.from_jwks(runtime.key_ring.current.jwks),
    )


def balance_of(runtime: Runtime, kind: AccountKind, owner: str) -> int:
    with transaction(runtime.sessions) as session:
        account = ledger.account(session, kind, owner, factories.asset(runtime), runtime.clock())
        return ledger.balance(session, account.id)


def token_spends(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Transfer)
                .where(Transfer.kind == TransferKind.TOKEN_SPEND)
            )
            or 0
        )


def spent_rows(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(SpentToken)) or 0)


# --- the happy path -------------------------------------------------------------------------


def test_hello_without_a_token_gets_the_private_welcome(client: TestClient, world: World) -> None:
    with client.websocket_connect(PATH) as ws:
        assert hello(ws) == {
            "type": "welcome",
            "v": 1,
            "private": True,
            "limits": {"max_message_bytes": 4096, "max_streams": 3, "max_tokens_per_spend": 16},
        }


def test_spends_pay_with_receipts_the_unchanged_verifier_accepts(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    wallet = buy(runtime, world, 4)
    value = value_minor(runtime)
    float_before = balance_of(runtime, AccountKind.TOKEN_FLOAT, "tokens")
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        sid = start(ws, binding="visit-42")
        spend(ws, "s1", wallet[0])
        spend(ws, "s1", wallet[1], wallet[2])
        first, second = ws.receive_json(), ws.receive_json()
        send(ws, {"type": "stop", "stream": "s1"})
        stopped = ws.receive_json()
    assert [first["type"], second["type"]] == ["receipt", "receipt"]
    assert (first["seq"], first["amt"], first["tot"]) == (1, str(value), str(value))
    assert (second["seq"], second["amt"], second["tot"]) == (2, str(2 * value), str(3 * value))
    check = verifier(runtime)
    for message in (first, second):
        receipt = check.verify(message["receipt"])
        assert (receipt.sid, receipt.seq, receipt.amount_minor, receipt.total_minor) == (
            sid,
            message["seq"],
            int(message["amt"]),
            int(message["tot"]),
        )
        assert receipt.binding == "visit-42"
    assert stopped == {
        "type": "stopped",
        "stream": "s1",
        "sid": sid,
        "reason": "stopped",
        "seq": 2,
        "tot": str(3 * value),
    }
    fee = 3 * value * FEE_BPS // 10_000
    payee = f"payee:{world.payee_id}"
    assert balance_of(runtime, AccountKind.PAYEE, payee) == 3 * value - fee
    assert balance_of(runtime, AccountKind.FEE, "platform") == fee
    assert balance_of(runtime, AccountKind.TOKEN_FLOAT, "tokens") == float_before - 3 * value
    assert spent_rows(runtime) == 3


def test_the_checks_in_a_process_of_their_own_accept_and_refuse_alike(
    runtime: Runtime, world: World
) -> None:
    """``TRICKLE_STREAM_TOKEN_CHECK_PROCESSES=1`` (the default): the same answers, from a
    worker process that gets the key ring with each group."""
    good, other = buy(runtime, world, 2)
    runtime.settings = dataclasses.replace(runtime.settings, stream_token_check_processes=1)
    with (
        TestClient(create_app(runtime)) as client,
        client.websocket_connect(PATH) as ws,
    ):
        hello(ws)
        start(ws)
        spend(ws, "s1", good)
        spend(ws, "s1", _forged(other))
        spend(ws, "s1", {**other, "epoch": 190001})
        spend(ws, "s1", good)
        answers = [ws.receive_json() for _ in range(4)]
    assert [(m["type"], m.get("seq") or m.get("code")) for m in answers] == [
        ("receipt", 1),
        ("error", "invalid_token"),
        ("error", "unknown_epoch"),
        ("error", "token_spent"),
    ]


def test_a_batch_client_gets_a_groups_answers_in_one_frame(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    """Two spends that land in one group: their receipts come in one ``batch`` frame. (With a
    long commit window, a pair sent right after a commit waits for the next group together.)"""
    wallet = buy(runtime, world, 10)
    frames: list[dict[str, Any]] = []
    client.app.state.private_streams.commits.window_s = 0.5  # type: ignore[attr-defined]
    with client.websocket_connect(PATH) as ws:
        hello(ws, batch=True)
        start(ws, "a")
        start(ws, "b")
        for round_ in range(5):
            spend(ws, "a", wallet[2 * round_])
            spend(ws, "b", wallet[2 * round_ + 1])
            got = 0
            while got < 2:
                frames.append(ws.receive_json())
                got += len(frames[-1].get("messages", [frames[-1]]))
            if frames[-1]["type"] == "batch":
                break
    batches = [f for f in frames if f["type"] == "batch"]
    assert batches, frames
    assert [m["type"] for m in batches[0]["messages"]] == ["receipt", "receipt"]


def test_ping_gets_pong(client: TestClient, world: World) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        send(ws, {"type": "ping", "data": "42"})
        assert ws.receive_json() == {"type": "pong", "data": "42"}


# --- spends that move nothing ---------------------------------------------------------------


def test_a_token_spent_twice_pays_once_and_the_second_is_token_spent(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    [token] = buy(runtime, world, 1)
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        sid = start(ws)
        spend(ws, "s1", token)
        assert ws.receive_json()["type"] == "receipt"
        spend(ws, "s1", token)
        error = ws.receive_json()
    assert error == {
        "type": "error",
        "code": "token_spent",
        "message": error["message"],
        "stream": "s1",
        "sid": sid,
    }
    assert token_spends(runtime) == 1


def test_a_spend_with_one_spent_token_moves_nothing_of_its_others(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    old, fresh = buy(runtime, world, 2)
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        start(ws)
        spend(ws, "s1", old)
        assert ws.receive_json()["seq"] == 1
        spend(ws, "s1", fresh, old)
        assert ws.receive_json()["code"] == "token_spent"
        spend(ws, "s1", fresh)  # the fresh one was not spent: it pays now
        receipt = ws.receive_json()
    assert (receipt["type"], receipt["seq"]) == ("receipt", 2)
    assert spent_rows(runtime) == 2


def test_the_same_token_in_one_group_from_two_streams_pays_once(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    [token] = buy(runtime, world, 1)
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        start(ws, "a")
        start(ws, "b")
        spend(ws, "a", token)
        spend(ws, "b", token)
        answers = [ws.receive_json(), ws.receive_json()]
    assert sorted(m["type"] for m in answers) == ["error", "receipt"]
    assert [m["code"] for m in answers if m["type"] == "error"] == ["token_spent"]
    assert token_spends(runtime) == 1


def _forged(token: dict[str, Any]) -> dict[str, Any]:
    output = bytearray(tokens.b64url_decode(token["output"], 64))
    output[0] ^= 1
    return {**token, "output": b64url(bytes(output))}


def test_token_refusals_name_their_code_and_index(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    good, other = buy(runtime, world, 2)
    now = runtime.clock()
    ring = runtime.token_keys.current
    later = max(ring.keys)  # the next epoch's key: published, not issuing
    data = secrets.token_bytes(32)
    next_epochs = {
        "epoch": later,
        "input": b64url(data),
        "output": b64url(voprf.evaluate(ring.keys[later].secret_key, data)),
    }
    assert later != tokens.epoch_of(now)
    cases = [
        ([good, _forged(other)], "invalid_token", 1),
        ([{**good, "epoch": 190001}], "unknown_epoch", 0),
        ([good, {**other, "input": "not base64!"}], "invalid_token", 1),
        ([good, good], "invalid_token", 1),
        ([good, {"epoch": good["epoch"], "input": good["input"]}], "invalid_token", 1),
        ([good, next_epochs], "invalid_message", 1),
    ]
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        sid = start(ws)
        for shown, code, index in cases:
            spend(ws, "s1", *shown)
            error = ws.receive_json()
            assert (error["type"], error["code"], error["index"], error["sid"]) == (
                "error",
                code,
                index,
                sid,
            ), (shown, error)
        spend(ws, "s1", good)  # nothing above spent it
        assert ws.receive_json()["seq"] == 1
    assert spent_rows(runtime) == 1


def test_a_token_past_its_epochs_spend_until_is_epoch_expired(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    [token] = buy(runtime, world, 1)
    key = runtime.token_keys.current.keys[token["epoch"]]
    real_clock = runtime.clock
    runtime.clock = lambda: key.spend_until + dt.timedelta(seconds=1)
    try:
        with client.websocket_connect(PATH) as ws:
            hello(ws)
            start(ws)
            spend(ws, "s1", token)
            error = ws.receive_json()
    finally:
        runtime.clock = real_clock
    assert (error["code"], error["index"]) == ("epoch_expired", 0)
    assert spent_rows(runtime) == 0


def test_answers_come_in_the_order_of_the_spends(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    wallet = buy(runtime, world, 3)
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        start(ws)
        spend(ws, "s1", wallet[0])
        spend(ws, "s1", {**wallet[1], "input": "bad"})  # refused before the commit
        spend(ws, "s1", _forged(wallet[1]))  # refused by the check
        spend(ws, "s1", wallet[2])
        send(ws, {"type": "stop", "stream": "s1"})
        answers = [ws.receive_json() for _ in range(5)]
    assert [(m["type"], m.get("seq") or m.get("code")) for m in answers] == [
        ("receipt", 1),
        ("error", "invalid_token"),
        ("error", "invalid_token"),
        ("receipt", 2),
        ("stopped", 2),
    ]


# --- the other errors -----------------------------------------------------------------------


def test_every_error_code_has_its_case(client: TestClient, runtime: Runtime, world: World) -> None:
    [token] = buy(runtime, world, 1)
    codes: dict[str, dict[str, Any]] = {}
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        start(ws, "s1")
        send(ws, {"type": "start", "stream": "s1", "origin": BLOG, "pointer": ALICE})
        codes["duplicate_stream"] = ws.receive_json()
        send(ws, {"type": "start", "stream": "s2", "origin": "ftp://x", "pointer": ALICE})
        codes["invalid_origin"] = ws.receive_json()
        send(ws, {"type": "start", "stream": "s2", "origin": BLOG, "pointer": f"{ISSUER}/p/x"})
        codes["payee_not_found"] = ws.receive_json()
        start(ws, "s2")  # an id answered by payee_not_found may be used again
        start(ws, "s3")
        send(ws, {"type": "start", "stream": "s4", "origin": BLOG, "pointer": ALICE})
        codes["too_many_streams"] = ws.receive_json()
        spend(ws, "nope", token)
        codes["unknown_stream"] = ws.receive_json()
        send(ws, {"type": "spend", "stream": "s1", "tokens": []})
        codes["invalid_message"] = ws.receive_json()
        send(ws, {"type": "spend", "stream": "s1", "tokens": [token] * 17})
        assert ws.receive_json()["code"] == "invalid_message"
        send(ws, {"type": "spend", "stream": "s1", "tokens": [token], "extra": 1})
        assert ws.receive_json() == {
            "type": "error",
            "code": "invalid_message",
            "message": "extra: Extra inputs are not permitted",
            "stream": "s1",
        }
        spend(ws, "s1", _forged(token))
        codes["invalid_token"] = ws.receive_json()
        spend(ws, "s1", {**token, "epoch": 190001})
        codes["unknown_epoch"] = ws.receive_json()
        spend(ws, "s1", token)
        assert ws.receive_json()["type"] == "receipt"
        spend(ws, "s1", token)
        codes["token_spent"] = ws.receive_json()
        send(ws, {"type": "stop", "stream": "s1"})
        ws.receive_json()
        spend(ws, "s1", token)
        assert ws.receive_json()["code"] == "unknown_stream"  # a stopped stream
        send(ws, {"type": "hello", "v": 1, "private": True})
        assert ws.receive_json()["code"] == "invalid_message"
    for code, error in codes.items():
        assert (error["type"], error["code"]) == ("error", code), error
    # epoch_expired and spend_failed have tests of their own
    assert set(codes) | {"epoch_expired", "spend_failed"} == set(protocol.ERROR_CODES)


def test_a_failed_commit_answers_spend_failed_and_spends_nothing(
    client: TestClient, runtime: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    [token] = buy(runtime, world, 1)
    from trickle.ledger.tokens import SpendGroups

    def broken(*_: object) -> Callable[[], list[bool]]:
        def finish() -> list[bool]:
            raise RuntimeError("the database went away")

        return finish

    with client.websocket_connect(PATH) as ws:
        hello(ws)
        start(ws)
        monkeypatch.setattr(SpendGroups, "stage", broken)
        spend(ws, "s1", token)
        error = ws.receive_json()
        monkeypatch.undo()
        spend(ws, "s1", token)  # its tokens were not spent
        receipt = ws.receive_json()
    assert (error["code"], receipt["seq"]) == ("spend_failed", 1)
    assert spent_rows(runtime) == 1


# --- the first frame and the close codes ----------------------------------------------------


@pytest.mark.parametrize(
    ("first", "close"),
    [
        ("x" * 5000, "message_too_large"),
        ("not json", "malformed_message"),
        ('["hello"]', "malformed_message"),
        ('{"type": "welcome"}', "unknown_message_type"),
        ('{"type": "hello", "v": 1}', "unauthenticated"),
        ('{"type": "hello", "v": 1, "private": true, "token": "s3ss10n"}', "unauthenticated"),
        ('{"type": "ping"}', "unauthenticated"),
        ('{"type": "hello", "v": 2, "private": true}', "unsupported_version"),
    ],
)
def test_the_first_frame_closes_with_the_code_of_the_rule_it_breaks(
    client: TestClient, world: World, first: str, close: str
) -> None:
    with client.websocket_connect(PATH) as ws:
        ws.send_text(first)
        assert expect_close(ws, CLOSE_CODES[close]) == []


@pytest.mark.parametrize(
    ("frame", "close"),
    [
        ("x" * 5000, "message_too_large"),
        ("{", "malformed_message"),
        ('{"type": "attention", "sid": "x", "active": true}', "unknown_message_type"),
        ('{"type": "resume", "sid": "x"}', "unknown_message_type"),
    ],
)
def test_a_later_frame_that_breaks_the_framing_closes_the_socket(
    client: TestClient, world: World, frame: str, close: str
) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        ws.send_text(frame)
        assert expect_close(ws, CLOSE_CODES[close]) == []


def test_too_many_invalid_messages_in_a_row_close_the_socket(
    client: TestClient, world: World
) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws)
        for _ in range(21):
            send(ws, {"type": "stop"})
        seen = expect_close(ws, CLOSE_CODES["too_many_errors"])
    assert [m["code"] for m in seen] == ["invalid_message"] * 21


def test_the_socket_reads_no_login(client: TestClient, runtime: Runtime, world: World) -> None:
    """A session token in the header or a cookie changes nothing: the endpoint never reads
    them (the private socket has no reader to bind to)."""
    [token] = buy(runtime, world, 1)
    headers = {"Authorization": f"Bearer {world.reader.token}"}
    client.cookies.set("trickle_session", world.reader.token)
    with client.websocket_connect(PATH, headers=headers) as ws:
        hello(ws)
        start(ws)
        spend(ws, "s1", token)
        assert ws.receive_json()["type"] == "receipt"
    client.cookies.clear()
    with transaction(runtime.sessions) as session:
        rows = session.execute(
            select(Transfer.debit_account_id, Transfer.credit_account_id).where(
                Transfer.kind == TransferKind.TOKEN_SPEND
            )
        ).all()
        reader = ledger.account(
            session,
            AccountKind.READER,
            f"user:{world.reader.id}",
            factories.asset(runtime),
            runtime.clock(),
        )
    assert len(rows) == 1 and reader.id not in rows[0]


# --- the race: one token, many connections ---------------------------------------------------


def test_a_token_shown_on_20_connections_at_once_pays_once(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    wallet = buy(runtime, world, 5)
    connections = 20
    answers: list[list[dict[str, Any]]] = [[] for _ in range(connections)]
    ready = threading.Barrier(connections)

    def reader(index: int) -> None:
        with client.websocket_connect(PATH) as ws:
            hello(ws)
            start(ws)
            ready.wait(30)
            for token in wallet:
                spend(ws, "s1", token)
            for _ in wallet:
                answers[index].append(ws.receive_json())

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    flat = [m for own in answers for m in own]
    assert len(flat) == connections * len(wallet)
    paid = [m for m in flat if m["type"] == "receipt"]
    assert len(paid) == len(wallet), [m.get("code") for m in flat if m["type"] != "receipt"]
    assert {m["code"] for m in flat if m["type"] == "error"} == {"token_spent"}
    assert token_spends(runtime) == len(wallet) == spent_rows(runtime)
    value = value_minor(runtime)
    fee = value * FEE_BPS // 10_000
    assert balance_of(runtime, AccountKind.PAYEE, f"payee:{world.payee_id}") == len(wallet) * (
        value - fee
    )


# --- the spec and the code in step ---------------------------------------------------------


def private_section(title: str) -> str:
    text = (REPO / "docs/stream-protocol.md").read_text()
    private = text[text.index("\n## Private streams\n") :]
    match = re.search(rf"^(#+) {re.escape(title)}\n", private, re.MULTILINE)
    assert match, f"no section {title!r} under Private streams"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(private, match.end())
    return private[match.end() : end.start() if end else len(private)]


def test_the_spec_lists_every_private_error_code() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \|", private_section("Private error codes"), re.MULTILINE)
    assert sorted(rows) == sorted(protocol.ERROR_CODES)


def test_the_spec_describes_every_private_client_message() -> None:
    names = re.findall(r"^#### `([a-z]+)`", private_section("Private client messages"), re.M)
    assert sorted(names) == sorted(protocol.KNOWN_TYPES)


def test_the_spec_describes_every_private_server_message() -> None:
    room = REPO / "service" / "trickle" / "streaming" / "private"
    source = "".join(module.read_text() for module in sorted(room.glob("*.py")))
    sent = set(re.findall(r'"type": "([a-z]+)"', source)) | {"receipt", "batch"}
    names = re.findall(r"^#### `([a-z]+)`", private_section("Private server messages"), re.M)
    assert sorted(names) == sorted(sent)


def test_token_error_codes_are_the_token_rules_own() -> None:
    from trickle import errors

    for cls in (errors.InvalidToken, errors.TokenSpent, errors.UnknownEpoch, errors.EpochExpired):
        assert protocol.ErrorCode(cls.code)
