"""The dashboard's request plumbing: HTML forms in, Jinja2 pages out, the cookie session with a
CSRF token in every form, a transaction each request owns, errors as friendly pages with their
stable code, and the security headers every dashboard response carries. The rules it shares
with the JSON API (the context, the transaction, signing in with a session token, CSRF, body size,
cookies) are ``trickle.requests``'s.

Views are plain functions ``(ctx) -> Response`` that call domain functions and render.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from trickle import metrics, money, sessions
from trickle.errors import (
    CsrfFailed,
    NotFound,
    TrickleError,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from trickle.requests import (
    SESSION_COOKIE,
    RequestContext,
    media_type,
    read_body,
    run_request,
)

PREFIX = "/dashboard"
HOME = f"{PREFIX}/"
SIGN_IN_PATH = f"{PREFIX}/sign-in"
# The CSRF token of the dashboard's session, for the server to put into forms. HttpOnly: page
# scripts never read it (they read the form field, as a form submit would).
CSRF_COOKIE = "trickle_dashboard_csrf"
# Sign-in has no session yet: a random value in a cookie and in the form proves that the form
# came from our page (login CSRF).
LOGIN_COOKIE = "trickle_dashboard_login"
LOGIN_COOKIE_MAX_AGE_S = 3600
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 50
FORM_TYPE = "application/x-www-form-urlencoded"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

templates = jinja2.Environment(
    loader=jinja2.PackageLoader("trickle.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def sentence(text: object) -> str:
    """An error's message as a sentence for people: a capital first letter and a full stop
    (the domain's messages are lower-case clauses, "wrong email or password")."""
    words = str(text).strip()
    if not words:
        return words
    words = words[0].upper() + words[1:]
    return words if words.endswith((".", "!", "?")) else words + "."


templates.filters["sentence"] = sentence


@dataclasses.dataclass
class Ctx(RequestContext):
    """What a view gets (``RequestContext``), the form's fields, and the session's CSRF token for
    the forms it renders."""

    form: dict[str, str] = dataclasses.field(default_factory=dict)
    csrf_token: str | None = None

    def field(self, name: str, *, required: bool = True) -> str:
        value = self.form.get(name, "").strip()
        if required and not value:
            raise ValidationFailed(f"the field {name!r} is required")
        return value


View = Callable[[Ctx], Response]
ErrorView = Callable[[Ctx, TrickleError], Response]


# --- rendering ------------------------------------------------------------------------------


def _amount_helpers(scale: int, currency: str) -> dict[str, Callable[[int], object]]:
    """The templates' amounts: ``amount`` for people with the exact value as its title (HTML),
    ``amount_text`` for people in plain text (titles, SVG text), ``money`` the bare decimal (form
    fields: what a creator types back)."""

    def amount(minor: int) -> Markup:
        return Markup('<span class="amount" title="{}">{}</span>').format(
            money.format_exact(minor, scale, currency), money.format_money(minor, scale, currency)
        )

    return {
        "amount": amount,
        "amount_text": lambda minor: money.format_money(minor, scale, currency),
        "money": functools.partial(money.format_minor, scale=scale),
    }


def render(ctx: Ctx | None, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    settings = ctx.settings if ctx is not None else None
    scale = settings.asset_scale if settings is not None else 0
    values.setdefault("error", None)
    values.setdefault("notice", None)
    values.setdefault("nav", "")
    page = templates.get_template(template).render(
        prefix=PREFIX,
        home=HOME,
        user=ctx.user if ctx is not None else None,
        csrf_token=ctx.csrf_token if ctx is not None else None,
        currency=settings.currency if settings is not None else "",
        **_amount_helpers(scale, settings.currency if settings is not None else ""),
        **values,
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def error_page(error: TrickleError, ctx: Ctx | None = None) -> HTMLResponse:
    return render(ctx, "error.html", status=error.status, error=error)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def login_nonce(ctx: Ctx) -> str:
    """The sign-in form's anti-forgery value: the browser's current one, or a new one."""
    current = ctx.cookies.get(LOGIN_COOKIE, "")
    return current if 20 <= len(current) <= 64 else secrets.token_urlsafe(24)


def check_login_nonce(ctx: Ctx) -> None:
    cookie = ctx.cookies.get(LOGIN_COOKIE, "")
    sent = ctx.form.get("login_nonce", "")
    if not cookie or not secrets.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfFailed("the sign-in form expired or came from another site; reload and retry")


# --- running a request ----------------------------------------------------------------------


def page(
    view: View,
    *,
    auth: bool = True,
    on_error: ErrorView | None = None,
    own_transactions: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for a view. ``on_error``: a failed change rolls back, then the page
    is shown again with the error (otherwise an error page says what went wrong).
    ``own_transactions``: the view waits on the network, so it opens its own short transactions
    (``ctx.runtime.sessions``); only authentication runs in the request's."""

    async def endpoint(request: Request) -> Response:
        try:
            form = await _read_form(request) if request.method == "POST" else {}
        except TrickleError as error:
            metrics.error("http", error.code)
            return secured(error_page(error))
        response = await run_in_threadpool(
            _run, request, view, form, auth=auth, on_error=on_error, own=own_transactions
        )
        return secured(response)

    return endpoint


def _run(
    request: Request,
    view: View,
    form: dict[str, str],
    *,
    auth: bool,
    on_error: ErrorView | None,
    own: bool,
) -> Response:
    def open_context(session: Session) -> Ctx:
        ctx = Ctx.of(request, session)
        ctx.form = form
        if auth:
            _authenticate(ctx)
        return ctx

    try:
        return run_request(request, open_context, view, own_transactions=own)
    except Unauthenticated:
        return redirect(SIGN_IN_PATH)
    except TrickleError as error:
        metrics.error("http", error.code)
        if on_error is None or isinstance(error, CsrfFailed):
            return error_page(error)
        return _show_error(request, open_context, on_error, error)


def _show_error(
    request: Request,
    open_context: Callable[[Session], Ctx],
    on_error: ErrorView,
    error: TrickleError,
) -> Response:
    """The page again with the error, in a fresh transaction (the failed one rolled back)."""
    try:
        response = run_request(request, open_context, lambda ctx: on_error(ctx, error))
    except Unauthenticated:
        return redirect(SIGN_IN_PATH)
    except TrickleError:  # the page itself cannot be shown (e.g. no such payee): say why
        return error_page(error)
    response.status_code = error.status
    return response


def _authenticate(ctx: Ctx) -> None:
    auth_session = ctx.sign_in(ctx.cookies.get(SESSION_COOKIE))
    csrf_token = ctx.cookies.get(CSRF_COOKIE)
    if not sessions.csrf_matches(auth_session, csrf_token):
        # A session opened elsewhere (the extension, the API): its CSRF token was shown to that
        # client only, so the dashboard cannot build forms with it. Sign in here instead.
        raise Unauthenticated("sign in to the dashboard")
    ctx.check_csrf(
        ctx.form.get("csrf_token"), "the form's security token is missing or wrong; reload the page"
    )
    ctx.csrf_token = csrf_token


async def _read_form(request: Request) -> dict[str, str]:
    sent = media_type(request)
    raw = await read_body(request, MAX_FORM_BYTES, what="a form")
    if sent != FORM_TYPE and (sent or raw):  # no body at all: an empty form
        raise UnsupportedMediaType(f"expected a form ({FORM_TYPE}), got {sent or 'nothing'}")
    try:
        pairs = urllib.parse.parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed("the form is not valid UTF-8 form data") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise ValidationFailed(f"the field {name[:40]!r} was sent twice")
        form[name] = value
    return form


# --- static files ---------------------------------------------------------------------------


@functools.cache
def _static_files() -> dict[str, tuple[bytes, str]]:
    """The static files (name -> content, type), read once: only these are served."""
    folder = importlib.resources.files("trickle.dashboard") / "static"
    found = {}
    for entry in folder.iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if suffix in STATIC_TYPES:
            found[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return found


async def static_file(request: Request) -> Response:
    found = _static_files().get(str(request.path_params["name"]))
    if found is None:
        return secured(error_page(NotFound("no such file")))
    content, media_type = found
    response = Response(
        content, media_type=media_type, headers={"Cache-Control": "public, max-age=300"}
    )
    return secured(response)
