"""The Starlette application: routes, error rendering, and the background key reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from trickle import api, dashboard, keys
from trickle.api.openapi import openapi_json
from trickle.errors import MethodNotAllowed, NotFound, TrickleError
from trickle.runtime import Runtime
from trickle.settings import Settings
from trickle.streaming.engine import EngineLimits, StreamEngine
from trickle.streaming.socket import stream_socket

log = logging.getLogger("trickle")


def error_response(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def on_trickle_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrickleError)
    return error_response(exc.code, str(exc) or exc.code, exc.status)


async def on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound.code, "no such path", 404)
    if exc.status_code == 405:
        return error_response(MethodNotAllowed.code, "method not allowed on this path", 405)
    return error_response("http_error", str(exc.detail), exc.status_code)


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the operator's log, never to the client.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response("internal_error", "internal error; the operator has been told", 500)


def runtime_of(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


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


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _reload_keys_forever(runtime: Runtime) -> None:
    interval_s = runtime.settings.key_reload_interval_s
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(runtime.reload_keys)
        except Exception:  # keep signing with the ring we have; say why in the log
            log.exception("key reload failed; keeping the current key ring")


def engine_limits(settings: Settings) -> EngineLimits:
    return EngineLimits(
        interval_ms=settings.stream_interval_ms,
        max_message_bytes=settings.stream_max_message_bytes,
        max_streams_per_connection=settings.stream_max_streams_per_connection,
        max_connections_per_reader=settings.stream_max_connections_per_reader,
        idle_timeout_s=settings.stream_idle_timeout_s,
        resume_grace_s=settings.stream_resume_grace_s,
    )


def create_app(runtime: Runtime) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_reload_keys_forever(runtime))
        engine = StreamEngine(runtime, engine_limits(runtime.settings))
        app.state.engine = engine
        engine.start()
        try:
            yield
        finally:
            await engine.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        WebSocketRoute("/api/v1/stream", stream_socket),
    ]
    for router in api.routers():
        routes.extend(router.routes())
    routes.extend(dashboard.routes())  # the creator dashboard: /dashboard (and / redirects)
    app = Starlette(
        routes=routes,
        exception_handlers={
            TrickleError: on_trickle_error,
            HTTPException: on_http_error,
            Exception: on_unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
