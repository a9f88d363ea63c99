"""The creator dashboard: server-rendered pages (Jinja2) under ``/dashboard/`` for signing in,
payees and their snippets, site verification, earnings, claims and payouts. Works without
JavaScript; ``static/dashboard.js`` only adds copy buttons and guards against double submits."""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from trickle.dashboard import views
from trickle.dashboard.web import HOME, PREFIX, page, static_file

__all__ = ["HOME", "PREFIX", "routes"]


class RootRedirect(BaseRoute):
    """``GET /`` sends people to the dashboard. Not a ``Route``: like the dashboard's mount it is
    a page for people, no API operation, so it stays out of ``/openapi.json``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["path"] != "/":
            return Match.NONE, {}
        return (Match.FULL if scope["method"] in ("GET", "HEAD") else Match.NONE), {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await RedirectResponse(HOME, status_code=307)(scope, receive, send)


def routes() -> list[BaseRoute]:
    get, post = ["GET"], ["POST"]
    pages = [
        Route("/static/{name}", static_file, methods=get),
        Route("/sign-in", page(views.sign_in_form, auth=False), methods=get),
        Route(
            "/sign-in", page(views.sign_in, auth=False, on_error=views.sign_in_failed), methods=post
        ),
        Route(
            "/sign-up", page(views.sign_up, auth=False, on_error=views.sign_in_failed), methods=post
        ),
        Route("/sign-out", page(views.sign_out), methods=post),
        Route("/", page(views.overview), methods=get),
        Route("/payees", page(views.create_payee, on_error=views.overview_failed), methods=post),
        Route("/payees/{name}", page(views.payee_page), methods=get),
        Route(
            "/payees/{name}/sites",
            page(views.start_site, on_error=views.payee_failed),
            methods=post,
        ),
        Route(
            "/payees/{name}/sites/check",
            page(views.check_site, on_error=views.payee_failed, own_transactions=True),
            methods=post,
        ),
        Route("/earnings", page(views.earnings_page), methods=get),
        Route("/earnings.csv", page(views.earnings_csv), methods=get),
        Route("/payouts", page(views.payouts_page), methods=get),
        Route("/claims", page(views.claim, on_error=views.payouts_failed), methods=post),
    ]
    return [RootRedirect(), Mount(PREFIX, routes=pages)]
