"""The stream protocol through the real endpoint (/api/v1/stream): every message, error code and
close code of docs/stream-protocol.md, receipts that verify, resume, and the ledger behind it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests import factories
from tests.conftest import REPO
from tests.factories import asset, create_payee, create_user, fund_reader
from trickle import ledger, sessions
from trickle.db import transaction
from trickle.jsontext import MAX_DEPTH
from trickle.ledger import AccountKind
from trickle.receipts import ReceiptClaims, ReceiptSigner, new_stream_id
from trickle.runtime import Runtime
from trickle.settings import Settings
from trickle.streaming import protocol
from trickle.streaming.engine import StreamEngine
from trickle_verifier import KeySet, Verifier

ISSUER = "https://trickle.test"
BLOG = "https://blog.example"
ALICE = f"{ISSUER}/p/alice"
PATH = "/api/v1/stream"
Socket = Any  # starlette's WebSocketTestSession


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fast intervals and small limits, picked up by the standard runtime and client."""
    return dataclasses.replace(
        settings,
        stream_interval_ms=50,
        stream_max_streams_per_connection=2,
        stream_max_connections_per_reader=2,
        stream_max_message_bytes=512,
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


def engine_of(client: TestClient) -> StreamEngine:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    assert isinstance(engine, StreamEngine)
    return engine


def set_limits(client: TestClient, **changes: Any) -> None:
    engine = engine_of(client)
    engine.limits = dataclasses.replace(engine.limits, **changes)


def send(ws: Socket, message: dict[str, Any]) -> None:
    ws.send_text(json.dumps(message))


def hello(ws: Socket, token: str) -> dict[str, Any]:
    send(ws, {"type": "hello", "v": 1, "token": token})
    welcome: dict[str, Any] = ws.receive_json()
    assert welcome["type"] == "welcome", welcome
    return welcome


def receive_until(
    ws: Socket, done: Callable[[dict[str, Any]], bool], limit: int = 400
) -> list[dict[str, Any]]:
    """Messages up to and including the first one ``done`` accepts."""
    seen = []
    for _ in range(limit):
        message: dict[str, Any] = ws.receive_json()
        seen.append(message)
        if done(message):
            return seen
    raise AssertionError(f"not seen in {limit} messages; last: {seen[-3:]}")


def of_type(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == kind and all(m.get(k) == v for k, v in fields.items())


def start(ws: Socket, ref: str = "r1", origin: str = BLOG, **extra: Any) -> str:
    send(ws, {"type": "start", "ref": ref, "origin": origin, "pointer": ALICE, **extra})
    started = receive_until(ws, of_type("started", ref=ref))[-1]
    assert started == {
        "type": "started",
        "ref": ref,
        "sid": started["sid"],
        "origin": origin,
        "pointer": ALICE,
    }
    sid: str = started["sid"]
    return sid


def receipts(messages: list[dict[str, Any]], sid: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "receipt" and m["sid"] == sid]


def expect_close(ws: Socket, code: int) -> list[dict[str, Any]]:
    """Read until the server closes the socket; check the close code; return what came first."""
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


def check_chain(runtime: Runtime, messages: list[dict[str, Any]], sid: str) -> int:
    """Every receipt verifies and seq/tot run on without gaps; returns the last tot."""
    check = verifier(runtime)
    total = 0
    for seq, message in enumerate(messages, start=1):
        receipt = check.verify(message["receipt"])
        total += receipt.amount_minor
        assert (receipt.sid, receipt.seq, receipt.total_minor) == (sid, seq, total)
        assert (message["seq"], message["amt"], message["tot"]) == (
            seq,
            str(receipt.amount_minor),
            str(total),
        )
    return total


def payee_balance(runtime: Runtime, payee_id: int) -> int:
    with transaction(runtime.sessions) as session:
        account = ledger.account(
            session, AccountKind.PAYEE, f"payee:{payee_id}", asset(runtime), runtime.clock()
        )
        return ledger.balance(session, account.id)


# --- the happy path -------------------------------------------------------------------------


def test_hello_gets_a_welcome_with_the_limits_and_funds(
    client: TestClient, world: World, settings: Settings
) -> None:
    with client.websocket_connect(PATH) as ws:
        assert hello(ws, world.reader.token) == {
            "type": "welcome",
            "v": 1,
            "interval_ms": 50,
            "limits": {"max_message_bytes": 512, "max_streams": 2, "resume_grace_s": 30},
            "balance_minor": str(10**12),
            "month_spent_minor": "0",
            "month_budget_minor": str(settings.default_monthly_budget_minor),
            "currency": "USD",
            "scale": 9,
        }


def test_a_stream_pays_with_receipts_and_the_ledger_agrees(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        sid = start(ws, binding="visit-42")
        assert ws.receive_json() == {"type": "state", "sid": sid, "state": "active"}
        seen = receive_until(ws, lambda m: len(receipts([m], sid)) == 1 and m["seq"] == 4)
        balances = [m for m in seen if m["type"] == "balance"]
        assert balances and int(balances[-1]["balance_minor"]) < 10**12
        send(ws, {"type": "stop", "sid": sid})
        seen += receive_until(ws, of_type("stopped", sid=sid))
        stopped = seen[-1]
        chain = receipts(seen, sid)
        total = check_chain(runtime, chain, sid)
        assert stopped == {
            "type": "stopped",
            "sid": sid,
            "reason": "stopped",
            "seq": len(chain),
            "tot": str(total),
        }
        # the binding the page gave is in every receipt, for the site to check
        assert verifier(runtime).verify(chain[0]["receipt"], binding="visit-42").binding == (
            "visit-42"
        )
        # stopped is the last word on the stream
        send(ws, {"type": "ping", "data": "after"})
        after = receive_until(ws, of_type("pong"))
        assert receipts(after, sid) == []
    assert payee_balance(runtime, world.payee_id) == total


def test_ping_gets_pong(client: TestClient, world: World) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        send(ws, {"type": "ping", "data": "abc"})
        assert ws.receive_json() == {"type": "pong", "data": "abc"}
        send(ws, {"type": "ping"})
        assert ws.receive_json() == {"type": "pong", "data": None}


def test_balance_query(client: TestClient, world: World, settings: Settings) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        send(ws, {"type": "balance"})
        assert ws.receive_json() == {
            "type": "balance",
            "balance_minor": str(10**12),
            "month_spent_minor": "0",
            "month_budget_minor": str(settings.default_monthly_budget_minor),
            "currency": "USD",
            "scale": 9,
        }


def test_attention_stops_and_resumes_receipts(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        sid = start(ws, active=False)
        seen = [ws.receive_json()]
        assert seen[0] == {"type": "state", "sid": sid, "state": "inactive", "reason": "inactive"}
        time.sleep(0.2)  # four intervals, not one of them active
        send(ws, {"type": "ping"})
        seen += receive_until(ws, of_type("pong"))
        assert receipts(seen, sid) == []

        send(ws, {"type": "attention", "sid": sid, "active": True})
        seen += receive_until(ws, of_type("state", sid=sid, state="active"))
        seen += receive_until(ws, of_type("receipt", sid=sid, seq=2))
        send(ws, {"type": "attention", "sid": sid, "active": False})
        seen += receive_until(ws, of_type("state", sid=sid, state="inactive"))
        before = len(receipts(seen, sid))
        time.sleep(0.2)
        send(ws, {"type": "ping"})
        seen += receive_until(ws, of_type("pong"))
        assert len(receipts(seen, sid)) <= before + 1  # at most one already committing
        check_chain(runtime, receipts(seen, sid), sid)


def test_resume_after_a_dropped_connection_continues_the_stream(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        sid = start(ws)
        first = receive_until(ws, of_type("receipt", sid=sid, seq=2))
    # the connection dropped; the stream waits out the grace period
    assert engine_of(client).streams[sid].state == "disconnected"
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        send(ws, {"type": "resume", "sid": sid})
        resumed = ws.receive_json()
        resent = ws.receive_json()
        assert resumed["type"] == "resumed" and resumed["sid"] == sid
        assert resent["type"] == "receipt" and resent.pop("resent") is True
        assert (resent["seq"], resent["tot"]) == (resumed["seq"], resumed["tot"])
        assert resent["seq"] >= 2  # an increment committing at the drop is not lost
        assert ws.receive_json() == {"type": "state", "sid": sid, "state": "active"}
        later = receive_until(ws, of_type("receipt", sid=sid, seq=resent["seq"] + 3))
        send(ws, {"type": "stop", "sid": sid})
        tail = receive_until(ws, of_type("stopped", sid=sid))
    # an increment committing when the stop arrived is still delivered, before `stopped`
    chain = [
        *receipts(first, sid)[: resent["seq"] - 1],
        resent,
        *receipts(later, sid),
        *receipts(tail, sid),
    ]
    total = check_chain(runtime, chain, sid)
    assert tail[-1]["tot"] == str(total)
    assert payee_balance(runtime, world.payee_id) == total


def test_a_stream_cannot_be_resumed_by_another_reader_or_twice(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    other = create_user(runtime)
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        sid = start(ws)
    with client.websocket_connect(PATH) as ws:
        hello(ws, other.token)
        send(ws, {"type": "resume", "sid": sid})
        assert ws.receive_json() == {
            "type": "error",
            "code": "unknown_stream",
            "message": "no resumable stream with this sid",
            "sid": sid,
        }
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        send(ws, {"type": "resume", "sid": sid})
        assert ws.receive_json()["type"] == "resumed"
        send(ws, {"type": "resume", "sid": sid})  # already on this connection
        assert receive_until(ws, of_type("error"))[-1]["code"] == "unknown_stream"


# --- the login session: revoked or expired, the socket closes -------------------------------


def stream_until_closed(ws: Socket, sid: str, ended: Callable[[], float]) -> list[dict[str, Any]]:
    """Read until the server closes with ``session_ended``; every message after ``ended()``
    (the moment the session ended, time.monotonic) must come within 2 s of it."""
    seen = []
    with pytest.raises(WebSocketDisconnect) as closed:
        for _ in range(10_000):
            seen.append(ws.receive_json())
            if seen[-1]["type"] == "receipt":
                assert time.monotonic() - ended() < 2.0, "a receipt 2 s after the session ended"
    assert closed.value.code == protocol.CLOSE_CODES["session_ended"] == 4440
    assert time.monotonic() - ended() < 2.0, "the socket was closed late"
    assert seen[-1] == {
        "type": "stopped",
        "sid": sid,
        "reason": "session_ended",
        "seq": seen[-1]["seq"],
        "tot": seen[-1]["tot"],
    }
    return seen


def test_log_out_everywhere_closes_the_open_stream_socket(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    """Issue 11, item 2: the revoke stops the payments within 2 s and closes with 4440; the
    ledger holds exactly what the client got receipts for, and nothing after."""
    revoked_at: list[float] = []
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        sid = start(ws)
        seen = receive_until(ws, of_type("receipt", sid=sid, seq=2))
        response = client.delete("/api/v1/sessions", headers=world.reader.auth)
        revoked_at.append(time.monotonic())
        assert response.json() == {"revoked": 1}
        seen += stream_until_closed(ws, sid, lambda: revoked_at[0])
    total = check_chain(runtime, receipts(seen, sid), sid)
    assert seen[-1]["tot"] == str(total)
    time.sleep(0.3)  # a few more intervals: nothing is paid after the close
    assert payee_balance(runtime, world.payee_id) == total
    with client.websocket_connect(PATH) as ws:  # and the token no longer signs in
        send(ws, {"type": "hello", "v": 1, "token": world.reader.token})
        expect_close(ws, protocol.CLOSE_CODES["unauthenticated"])


def test_an_expired_session_closes_its_stream_socket(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    with transaction(runtime.sessions) as session:
        login = sessions.create(
            session, world.reader.id, runtime.clock(), dt.timedelta(seconds=1.5)
        )
    expires_in_s = (login.expires_at - runtime.clock()).total_seconds()
    expires = time.monotonic() + expires_in_s
    with client.websocket_connect(PATH) as ws:
        hello(ws, login.token)
        sid = start(ws)
        seen = stream_until_closed(ws, sid, lambda: expires)
    assert time.monotonic() > expires
    total = check_chain(runtime, receipts(seen, sid), sid)
    assert total > 0 and seen[-1]["tot"] == str(total)
    assert payee_balance(runtime, world.payee_id) == total


# --- error replies: the socket stays open ---------------------------------------------------


def error_for(ws: Socket, message: dict[str, Any]) -> dict[str, Any]:
    send(ws, message)
    error = receive_until(ws, of_type("error"))[-1]
    send(ws, {"type": "ping"})  # still open
    receive_until(ws, of_type("pong"))
    return error


def test_every_error_code(client: TestClient, world: World) -> None:
    start_message = {"type": "start", "origin": BLOG, "pointer": ALICE}
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        codes = {}
        invalid = error_for(ws, {**start_message, "ref": "x", "color": "red"})
        assert invalid["ref"] == "x"
        codes["invalid_message"] = invalid
        codes["invalid_message_second_hello"] = error_for(
            ws, {"type": "hello", "v": 1, "token": world.reader.token}
        )
        codes["invalid_origin"] = error_for(ws, {**start_message, "ref": "o", "origin": "ftp://x"})
        codes["payee_not_found"] = error_for(
            ws, {**start_message, "ref": "p", "pointer": f"{ISSUER}/p/nobody"}
        )
        start(ws, "a")
        codes["duplicate_ref"] = error_for(ws, {**start_message, "ref": "a"})
        start(ws, "b")
        codes["too_many_streams"] = error_for(ws, {**start_message, "ref": "c"})
        codes["unknown_stream"] = error_for(ws, {"type": "stop", "sid": "nope"})
        codes["unknown_stream_attention"] = error_for(
            ws, {"type": "attention", "sid": "nope", "active": True}
        )
    assert {name: error["code"] for name, error in codes.items()} == {
        "invalid_message": "invalid_message",
        "invalid_message_second_hello": "invalid_message",
        "invalid_origin": "invalid_origin",
        "payee_not_found": "payee_not_found",
        "duplicate_ref": "duplicate_ref",
        "too_many_streams": "too_many_streams",
        "unknown_stream": "unknown_stream",
        "unknown_stream_attention": "unknown_stream",
    }
    assert codes["too_many_streams"]["ref"] == "c"
    assert codes["unknown_stream"]["sid"] == "nope"
    assert {e["code"] for e in codes.values()} == set(protocol.ERROR_CODES)


def test_a_ref_is_free_again_after_payee_not_found(client: TestClient, world: World) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        send(ws, {"type": "start", "ref": "r", "origin": BLOG, "pointer": f"{ISSUER}/p/x"})
        assert receive_until(ws, of_type("error"))[-1]["code"] == "payee_not_found"
        start(ws, "r")


# --- close codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "code"),
    [
        pytest.param('{"type": "hello", "v": 1, "token": "wrong"}', 4401, id="wrong-token"),
        pytest.param('{"type": "hello", "v": 1}', 4401, id="hello-without-token"),
        pytest.param('{"type": "hello", "v": "1", "token": "t"}', 4401, id="garbage-hello"),
        pytest.param(
            '{"type": "hello", "v": 1, "token": "t", "batch": "yes"}', 4401, id="batch-not-a-bool"
        ),
        pytest.param('{"type": "ping"}', 4401, id="ping-first"),
        pytest.param("not json", 4400, id="not-json"),
        pytest.param('["hello"]', 4400, id="not-an-object"),
        pytest.param('{"type": 1}', 4400, id="type-not-a-string"),
        pytest.param('{"type": "dance"}', 4415, id="unknown-type-first"),
        pytest.param('{"type": "hello", "v": 2, "token": "t"}', 4426, id="version-2"),
        pytest.param(json.dumps({"type": "ping", "data": "x" * 600}), 4413, id="too-large"),
    ],
)
def test_a_bad_first_message_closes_the_socket(client: TestClient, first: str, code: int) -> None:
    with client.websocket_connect(PATH) as ws:
        ws.send_text(first)
        assert expect_close(ws, code) == []


@pytest.mark.parametrize(
    ("later", "code"),
    [
        pytest.param("{nope", 4400, id="malformed"),
        # Issue 11 item 6: nested past the JSON nesting limit (within the size limit): was a
        # RecursionError at ~1000 levels (a traceback, close 1000); now one limit, 32.
        pytest.param("[" * 200 + "]" * 200, 4400, id="nested-200-deep"),
        pytest.param('{"type": "ping", "data": ' + "[" * 33 + "]" * 33 + "}", 4400, id="nested-34"),
        pytest.param(json.dumps({"type": "ping", "data": "x" * 600}), 4413, id="too-large"),
    ],
)
def test_a_bad_later_message_closes_the_socket(
    client: TestClient, world: World, later: str, code: int
) -> None:
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        ws.send_text(later)
        expect_close(ws, code)


def test_the_issue_s_1000_deep_message_closes_with_4400(client: TestClient, world: World) -> None:
    # Issue 11 item 6: it raised RecursionError in the handler (a traceback, close 1000).
    set_limits(client, max_message_bytes=4096)
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        ws.send_text("[" * 1000 + "]" * 1000)
        expect_close(ws, 4400)


def test_parse_refuses_json_nested_past_the_one_limit() -> None:
    deep = '{"type": "ping", "data": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    with pytest.raises(protocol.ProtocolViolation) as refused:
        protocol.parse(deep, 4096)
    assert (refused.value.code, refused.value.close_code) == ("malformed_message", 4400)
    with pytest.raises(protocol.ProtocolViolation) as refused:
        protocol.parse("[" * 1000 + "]" * 1000, 4096)  # the issue's text, a first frame too
    assert refused.value.close_code == 4400
    fits = '{"type": "ping", "data": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    with pytest.raises(protocol.InvalidMessage):  # parsed, then refused by the schema
        protocol.parse(fits, 4096)


def test_hello_timeout(client: TestClient) -> None:
    set_limits(client, hello_timeout_s=0.1)
    with client.websocket_connect(PATH) as ws:
        assert expect_close(ws, protocol.CLOSE_CODES["hello_timeout"]) == []


def test_idle_timeout_and_a_ping_keeps_the_socket_open(client: TestClient, world: World) -> None:
    # Margins a loaded machine keeps: a ping every 0.3 s against a 1 s timeout.
    set_limits(client, idle_timeout_s=1.0)
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        for _ in range(4):  # 1.2 s in all, but never 1 s silent
            time.sleep(0.3)
            send(ws, {"type": "ping"})
            assert ws.receive_json()["type"] == "pong"
        expect_close(ws, protocol.CLOSE_CODES["idle_timeout"])


def test_too_many_connections(client: TestClient, world: World) -> None:
    with client.websocket_connect(PATH) as one, client.websocket_connect(PATH) as two:
        hello(one, world.reader.token)
        hello(two, world.reader.token)
        with client.websocket_connect(PATH) as three:
            send(three, {"type": "hello", "v": 1, "token": world.reader.token})
            expect_close(three, protocol.CLOSE_CODES["too_many_connections"])
    with client.websocket_connect(PATH) as again:  # the closed ones no longer count
        hello(again, world.reader.token)


def test_too_many_invalid_messages_in_a_row(client: TestClient, world: World) -> None:
    set_limits(client, max_invalid_messages=3)
    with client.websocket_connect(PATH) as ws:
        hello(ws, world.reader.token)
        for _ in range(3):  # a valid message in between resets the count
            send(ws, {"type": "stop"})
        send(ws, {"type": "ping"})
        receive_until(ws, of_type("pong"))
        for _ in range(4):
            send(ws, {"type": "stop"})
        seen = expect_close(ws, protocol.CLOSE_CODES["too_many_errors"])
        assert [m["code"] for m in seen] == ["invalid_message"] * 4


def test_close_codes_are_distinct_and_in_the_private_range_or_standard() -> None:
    codes = list(protocol.CLOSE_CODES.values())
    assert len(set(codes)) == len(codes)
    assert all(4000 <= c < 5000 or c in (1001, 1008) for c in codes)


# --- the spec and the code in step ------------------------------------------------------------


def doc_section(title: str) -> str:
    text = (REPO / "docs/stream-protocol.md").read_text()
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.MULTILINE)
    assert match, f"no section {title!r} in docs/stream-protocol.md"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, match.end())
    return text[match.end() : end.start() if end else len(text)]


def test_the_spec_lists_every_close_code() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{4}) \|", doc_section("Close codes"), re.MULTILINE)
    assert {name: int(code) for name, code in rows} == protocol.CLOSE_CODES
    assert len(rows) == len(protocol.CLOSE_CODES)


def test_the_spec_names_each_close_code_with_its_number_everywhere() -> None:
    """Wherever the spec says "`name` (code)" (the hello section's first-frame table, the
    limits), name and number are the code's; the hello section names the framing codes."""
    text = (REPO / "docs/stream-protocol.md").read_text()
    mentions = re.findall(r"`([a-z_]+)` \((\d{4})\)", text)
    assert {name for name, _ in mentions} >= {"message_too_large", "session_ended"}
    for name, code in mentions:
        assert protocol.CLOSE_CODES[name] == int(code), name
    first_frame = {
        name for name, _ in re.findall(r"`([a-z_]+)` \((\d{4})\)", doc_section("`hello`"))
    }
    assert first_frame >= {
        "message_too_large",
        "malformed_message",
        "unknown_message_type",
        "unauthenticated",
        "unsupported_version",
    }


def test_the_spec_lists_every_error_code() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \|", doc_section("Error codes"), re.MULTILINE)
    assert sorted(rows) == sorted(protocol.ERROR_CODES)


def test_the_spec_lists_every_state_reason() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \|", doc_section("State reasons"), re.MULTILINE)
    assert sorted(rows) == sorted(protocol.STATE_REASONS)


def test_the_spec_describes_every_client_message() -> None:
    names = re.findall(r"^### `([a-z]+)`", doc_section("Client messages"), re.MULTILINE)
    assert sorted(names) == sorted(protocol.KNOWN_TYPES)


def test_the_spec_describes_every_server_message() -> None:
    """Every message type the engine sends (read from its source) has its section, and no
    section describes a message the engine does not send."""
    streaming = REPO / "service" / "trickle" / "streaming"
    source = "".join(module.read_text() for module in sorted(streaming.glob("*.py")))
    sent = set(re.findall(r'"type": "([a-z]+)"', source)) | set(
        re.findall(r'\{"type":"([a-z]+)"', source)
    )
    names = re.findall(r"^### `([a-z]+)`", doc_section("Server messages"), re.MULTILINE)
    assert sorted(set(names)) == sorted(sent)


# --- the encodings of the hot path are the encoder's ------------------------------------------


def test_a_receipt_message_is_encoded_as_the_encoder_would(runtime: Runtime) -> None:
    signer = ReceiptSigner(runtime.key_ring.current.active)
    for seq, amount, total in [(1, 1, 1), (7, 166_666, 2_066_666_666), (10**6, 10**18, 2**63 - 1)]:
        sid = new_stream_id()
        claims = ReceiptClaims(
            iss=ISSUER,
            aud=BLOG,
            pay=ALICE,
            sid=sid,
            seq=seq,
            amount_minor=amount,
            total_minor=total,
            currency="USD",
            scale=9,
            issued_at=1_800_000_000,
            expires_at=1_800_000_300,
            binding=None,
        )
        token = signer.sign(claims)
        message = {
            "type": "receipt",
            "sid": sid,
            "seq": seq,
            "amt": str(amount),
            "tot": str(total),
            "receipt": token,
        }
        text = protocol.receipt_text(sid, seq, amount, total, token)
        assert text == protocol.dumps(message) == json.dumps(message, separators=(",", ":"))
        resent = protocol.resent_text(text)
        assert resent == protocol.dumps({**message, "resent": True})
        assert resent == text[:-1] + ',"resent":true}'  # the bytes the engine always sent


def test_a_batch_envelope_is_encoded_as_the_encoder_would() -> None:
    messages: list[dict[str, Any]] = [
        {"type": "receipt", "sid": "s1", "seq": 1, "amt": "5", "tot": "5", "receipt": "a.b.c"},
        {"type": "state", "sid": "s1", "state": "paused", "reason": "paused"},
        {"type": "error", "code": "invalid_message", "message": 'caf\u00e9 "quoted"'},
    ]
    for count in (1, 2, 3):
        texts = [protocol.dumps(m) for m in messages[:count]]
        envelope = {"type": "batch", "messages": messages[:count]}
        assert protocol.batch_text(texts) == protocol.dumps(envelope)
        assert protocol.dumps(envelope) == json.dumps(envelope, separators=(",", ":"))
