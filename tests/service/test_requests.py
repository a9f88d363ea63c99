"""What every HTTP request shares (``trickle.requests``), driven through tiny inline apps: the
transaction a request gets, signing in with a session token, the CSRF rule, the body limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.factories import create_user
from trickle import sessions
from trickle.db import transaction
from trickle.errors import TrickleError, ValidationFailed
from trickle.models import User
from trickle.requests import SESSION_COOKIE, RequestContext, read_body, run_request
from trickle.runtime import Runtime

Handler = Callable[[RequestContext], Response]


def _app(runtime: Runtime, handler: Handler, *, auth: bool, own: bool = False) -> TestClient:
    def open_context(request: Request, session: Session) -> RequestContext:
        ctx = RequestContext.of(request, session)
        if auth:
            ctx.sign_in(ctx.cookies.get(SESSION_COOKIE))
            ctx.check_csrf(ctx.headers.get("x-csrf-token"), "csrf refused")
        return ctx

    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(
            run_request,
            request,
            lambda session: open_context(request, session),
            handler,
            own_transactions=own,
        )

    async def body(request: Request) -> Response:
        return PlainTextResponse(await read_body(request, 10, what="the probe"))

    async def on_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TrickleError)
        return JSONResponse({"code": exc.code, "message": str(exc)}, status_code=exc.status)

    app = Starlette(
        routes=[
            Route("/probe", endpoint, methods=["GET", "POST"]),
            Route("/body", body, methods=["POST"]),
        ],
        exception_handlers={TrickleError: on_error},
    )
    app.state.runtime = runtime
    return TestClient(app)


def _users(runtime: Runtime, email: str) -> int:
    with transaction(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).where(User.email == email)) or 0)


def _add_user(email: str, *, then_fail: bool) -> Handler:
    def handler(ctx: RequestContext) -> Response:
        ctx.session.add(User(email=email, password_hash="!", created_at=ctx.now))
        ctx.session.flush()
        if then_fail:
            raise ValidationFailed("changed my mind")
        return PlainTextResponse("added")

    return handler


def test_the_handler_runs_in_the_requests_transaction(runtime: Runtime) -> None:
    with _app(runtime, _add_user("kept@example.test", then_fail=False), auth=False) as client:
        assert client.post("/probe").text == "added"
    with _app(runtime, _add_user("gone@example.test", then_fail=True), auth=False) as client:
        assert client.post("/probe").json()["code"] == "validation_failed"
    assert _users(runtime, "kept@example.test") == 1
    assert _users(runtime, "gone@example.test") == 0


def test_own_transactions_hold_no_connection_and_no_usable_session(runtime: Runtime) -> None:
    seen: list[object] = []

    def handler(ctx: RequestContext) -> Response:
        seen.append(runtime.engine.pool.checkedout())  # type: ignore[attr-defined]
        with pytest.raises(UnboundExecutionError):
            ctx.session.scalar(select(func.count()).select_from(User))
        with transaction(ctx.runtime.sessions) as session:  # a short one of its own
            seen.append(session.scalar(select(func.count()).select_from(User)))
        return PlainTextResponse(ctx.user.email if ctx.user else "")

    user = create_user(runtime)
    with _app(runtime, handler, auth=True, own=True) as client:
        client.cookies.set(SESSION_COOKIE, user.token)
        response = client.get("/probe")
    assert response.text == user.email  # signed in within the request's transaction
    assert seen == [0, 1]


def test_a_change_by_cookie_needs_the_sessions_csrf_token(runtime: Runtime) -> None:
    user = create_user(runtime)
    with transaction(runtime.sessions) as session:  # a session with a CSRF token we know
        issued = sessions.create(session, user.id, runtime.clock(), dt.timedelta(days=1))

    def handler(ctx: RequestContext) -> Response:
        return PlainTextResponse(str(ctx.user_id))

    with _app(runtime, handler, auth=True) as client:
        client.cookies.set(SESSION_COOKIE, issued.token)
        assert client.get("/probe").text == str(user.id)  # a read needs no token
        refused = client.post("/probe", headers={"x-csrf-token": "not-it"})
        assert (refused.status_code, refused.json()) == (
            403,
            {"code": "csrf_failed", "message": "csrf refused"},
        )
        accepted = client.post("/probe", headers={"x-csrf-token": issued.csrf_token})
        assert accepted.text == str(user.id)
        client.cookies.clear()
        unsigned = client.get("/probe")
        assert (unsigned.status_code, unsigned.json()["code"]) == (401, "unauthenticated")


def test_a_body_past_the_limit_is_refused_declared_or_streamed(runtime: Runtime) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"12345"
        yield b"678901"

    with _app(runtime, _add_user("unused@example.test", then_fail=True), auth=False) as client:
        assert client.post("/body", content=b"1234567890").text == "1234567890"
        declared = client.post("/body", content=b"12345678901")
        assert (declared.status_code, declared.json()["message"]) == (
            413,
            "the probe may be at most 10 bytes, got 11",
        )
        streamed = client.post("/body", content=chunks())  # no Content-Length: chunked
        assert (streamed.status_code, streamed.json()["message"]) == (
            413,
            "the probe may be at most 10 bytes",
        )
