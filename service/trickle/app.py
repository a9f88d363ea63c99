"""The Starlette application: routes, error rendering, the background key reload, and the
graceful stop of the streaming engine."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from trickle import api, dashboard, health, keys, logs, metrics
from trickle.api import tokens as tokens_api
from trickle.api import topups as topups_api
from trickle.api.base import error_body, error_response
from trickle.api.openapi import openapi_json
from trickle.errors import MethodNotAllowed, NotFound, NotReady, TrickleError, Unauthenticated
from trickle.requests import runtime_of
from trickle.runtime import Runtime
from trickle.streaming.engine import StreamEngine
from trickle.streaming.private.engine import PrivateStreams
from trickle.streaming.private.socket import private_stream_socket
from trickle.streaming.socket import stream_socket

log = logging.getLogger("trickle")


def _error_response(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


async def on_trickle_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrickleError)
    return error_response(exc)


async def on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error_response(NotFound.code, "no such path", 404)
    if exc.status_code == 405:  # Starlette's headers name the path's methods (Allow)
        response = _error_response(MethodNotAllowed.code, "method not allowed on this path", 405)
        response.headers.update(exc.headers or {})
        return response
    return _error_response("http_error", str(exc.detail), exc.status_code)


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the operator's log, never to the client.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response("internal_error", "internal error; the operator has been told", 500)


async def jwks(request: Request) -> Response:
    runtime = runtime_of(request)
    return JSONResponse(
        runtime.key_ring.current.jwks,
        headers={
            "Cache-Control": keys.jwks_cache_control(runtime.settings),
            "Access-Control-Allow-Origin": "*",
        },
        media_type="application/jwk-set+json",
    )


async def alive(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Whether a load balancer should send this process traffic (``trickle.health``)."""
    runtime = runtime_of(request)
    engine: StreamEngine | None = getattr(request.app.state, "engine", None)  # set at start-up
    try:
        checks = await asyncio.wait_for(
            asyncio.to_thread(health.database_checks, runtime.engine), health.CHECK_TIMEOUT_S
        )
    except TimeoutError:
        checks = [
            health.Check("database", False, f"no answer within {health.CHECK_TIMEOUT_S} s"),
            health.Check("migrations", False, "unknown"),
        ]
    checks.append(health.key_check(runtime.key_ring.current, runtime.settings, runtime.clock()))
    checks.append(
        health.stopping_check(started=engine is not None, draining=bool(engine and engine.draining))
    )
    if not all(check.ok for check in checks):
        raise NotReady(health.not_ready_message(checks))
    return JSONResponse({"status": "ready", "checks": {check.name: "ok" for check in checks}})


async def metrics_text(request: Request) -> Response:
    """Prometheus metrics on the service's port, for ``Authorization: Bearer
    <TRICKLE_METRICS_TOKEN>``; without a token configured there is no such path."""
    settings = runtime_of(request).settings
    if not settings.metrics_token:
        raise NotFound("no such path")
    sent = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(sent, f"Bearer {settings.metrics_token}".encode()):
        raise Unauthenticated("metrics need Authorization: Bearer <TRICKLE_METRICS_TOKEN>")
    body, content_type = await asyncio.to_thread(metrics.exposition, settings)
    return Response(body, media_type=content_type)


SAMPLE_INTERVAL_S = 1.0


async def _sample_forever(runtime: Runtime, engine: StreamEngine) -> None:
    """The gauges that are a count of what the process holds, sampled (no hook on the hot path)."""
    while True:
        metrics.OPEN_SOCKETS.set(len(engine.connections))
        metrics.ACTIVE_STREAMS.set(engine.active_stream_count())
        ring = runtime.key_ring.current
        metrics.key_age(ring.active_since, runtime.clock())
        await asyncio.sleep(SAMPLE_INTERVAL_S)


async def _reload_keys_forever(runtime: Runtime) -> None:
    interval_s = runtime.settings.key_reload_interval_s
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(runtime.reload_keys)
        except Exception:  # keep signing with the ring we have; say why in the log
            log.exception("key reload failed; keeping the current key ring")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def drain_before_stop_signals(drain: Callable[[], Coroutine[Any, Any, None]]) -> Iterator[None]:
    """uvicorn answers SIGTERM or SIGINT by closing every WebSocket at once (code 1012), and
    runs the lifespan's shutdown only after that: too late to deliver the receipts of the
    increments in flight. So the engines hear the signal first: they drain (``drain``, i.e.
    ``StreamEngine.drain`` and ``PrivateStreams.drain``: accrual stops, the last increments and
    spends commit, their receipts go out, the sockets close with 1001), and only then is the
    signal passed on to the server's own handler. A second signal is passed on at once (a
    second Ctrl+C forces uvicorn out)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread gets signals (a test client runs the app in another)
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    signalled: list[signal.Signals] = []

    def restore(sig: signal.Signals) -> None:
        handler = previous[sig]
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def pass_on(sig: signal.Signals) -> None:
        handler = previous[sig]
        if callable(handler):
            handler(sig, None)
        else:  # nobody else handles it (SIG_DFL, SIG_IGN): as if we had not been here
            restore(sig)
            signal.raise_signal(sig)

    def after_drain(sig: signal.Signals, drained: asyncio.Task[None]) -> None:
        if not drained.cancelled() and drained.exception() is not None:
            log.error("graceful stop failed", exc_info=drained.exception())
        pass_on(sig)

    def begin_drain(sig: signal.Signals) -> None:
        drained = loop.create_task(drain())
        drained.add_done_callback(lambda task: after_drain(sig, task))

    def on_signal(number: int, _frame: FrameType | None) -> None:
        sig = signal.Signals(number)
        if signalled:
            pass_on(sig)
            return
        signalled.append(sig)
        loop.call_soon_threadsafe(begin_drain, sig)  # a signal handler must not touch the loop

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is on_signal:
                restore(sig)


def create_app(runtime: Runtime) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = StreamEngine(runtime)
        tasks = [
            asyncio.create_task(_reload_keys_forever(runtime)),
            asyncio.create_task(_sample_forever(runtime, engine)),
        ]
        app.state.engine = engine
        private = PrivateStreams(runtime, engine.limits, engine.payees)
        app.state.private_streams = private

        async def drain() -> None:
            await asyncio.gather(engine.drain(), private.drain())

        engine.start()
        private.start()
        try:
            with drain_before_stop_signals(drain):
                yield
        finally:
            await asyncio.gather(engine.stop(), private.stop())
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            metrics.process_stopped(runtime.settings, os.getpid())

    routes = [
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/healthz", alive, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        WebSocketRoute("/api/v1/stream", stream_socket),
        WebSocketRoute("/api/v1/private-stream", private_stream_socket),
    ]
    for router in api.routers():
        routes.extend(router.routes())
    routes.extend(topups_api.routes())  # Stripe's webhook, the page after Checkout
    routes.extend(tokens_api.routes())  # the published token keys
    routes.extend(dashboard.routes())  # the creator dashboard: /dashboard (and / redirects)
    app = Starlette(
        routes=routes,
        exception_handlers={
            TrickleError: on_trickle_error,
            HTTPException: on_http_error,
            Exception: on_unexpected_error,
        },
        lifespan=lifespan,
        middleware=[Middleware(logs.RequestIds)],
    )
    app.state.runtime = runtime
    return app
