"""What every HTTP request the service handles has in common, in the JSON API (``api.base``) and
the dashboard (``dashboard.web``) alike: its context, the transaction it gets, how a session token
signs it in, the CSRF rule for changes made by cookie, the session cookie, and how large a body
may be. What differs (JSON or HTML; a bearer token or a form's CSRF field) stays in each stack.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from typing import Self, TypeVar

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from trickle import sessions
from trickle.db import transaction
from trickle.errors import BodyTooLarge, CsrfFailed, Unauthenticated
from trickle.models import AuthSession, User
from trickle.runtime import Runtime
from trickle.settings import Settings

# The one session cookie: the API's log-in (``cookie: true``) and the dashboard's sign-in set
# it, on path /, so a session opened in either works in both.
SESSION_COOKIE = "trickle_session"
# Requests that change nothing: the only ones a cookie-signed-in client may send without the
# session's CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD"})
# A client's Idempotency-Key (docs/api.md): also the dashboard's claim form keys.
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{8,200}$")


def runtime_of(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


@dataclasses.dataclass
class RequestContext:
    """What a handler gets: the request's database session (its transaction), the runtime, the
    clock reading for this request, what the request sent, and the signed-in user (None on
    public endpoints and pages). Each stack extends it with what only it has."""

    session: Session
    runtime: Runtime
    now: dt.datetime
    client_ip: str
    method: str
    headers: dict[str, str]  # names in lower case
    cookies: dict[str, str]
    path_params: dict[str, str]
    query_params: dict[str, str]
    user: User | None = None
    auth_session: AuthSession | None = None

    @classmethod
    def of(cls, request: Request, session: Session) -> Self:
        runtime = runtime_of(request)
        return cls(
            session=session,
            runtime=runtime,
            now=runtime.clock(),
            client_ip=request.client.host if request.client else "unknown",
            method=request.method,
            headers={k.lower(): v for k, v in request.headers.items()},
            cookies=dict(request.cookies),
            path_params={k: str(v) for k, v in request.path_params.items()},
            query_params=dict(request.query_params),
        )

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def user_id(self) -> int:
        if self.user is None:
            raise Unauthenticated("this endpoint needs a signed-in user")
        return self.user.id

    @property
    def is_change(self) -> bool:
        return self.method not in SAFE_METHODS

    def sign_in(self, token: str | None) -> AuthSession:
        """Sign the request in with a session token (bearer or cookie): the session's user, or
        ``Unauthenticated`` (none sent; unknown, expired or revoked)."""
        if not token:
            raise Unauthenticated("sign in first: no session token was sent")
        self.user, self.auth_session = sessions.authenticate(self.session, token, self.now)
        return self.auth_session

    def check_csrf(self, sent: str | None, refusal: str) -> None:
        """A change made with the session cookie carries the session's CSRF token (a header in
        the API, a form field in the dashboard): another site's page cannot know it. Reads need
        none. ``CsrfFailed(refusal)`` otherwise."""
        assert self.auth_session is not None  # signed in first
        if self.is_change and not sessions.csrf_matches(self.auth_session, sent):
            raise CsrfFailed(refusal)


Context = TypeVar("Context", bound=RequestContext)
Result = TypeVar("Result")


def run_request(
    request: Request,
    open_context: Callable[[Session], Context],
    handler: Callable[[Context], Result],
    *,
    own_transactions: bool = False,
) -> Result:
    """The transaction a request gets. ``open_context`` builds (and signs in) the request's
    context in it; the handler runs in it too, so everything the request changes commits when
    the handler returns and rolls back when it raises. With ``own_transactions`` (the handler
    waits on the network) the handler runs after that transaction ended: it opens short ones of
    its own through ``ctx.runtime.sessions``, and ``ctx.session`` is bound to no database, so a
    mistaken use fails loudly instead of quietly holding a connection (on SQLite, the write
    lock) while the handler waits."""
    with transaction(runtime_of(request).sessions) as session:
        ctx = open_context(session)
        if not own_transactions:
            return handler(ctx)
    ctx.session = Session(bind=None)
    return handler(ctx)


def media_type(request: Request) -> str:
    """The body's declared media type, without parameters, in lower case ("" if none)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, max_bytes: int, *, what: str) -> bytes:
    """The whole body, or ``BodyTooLarge`` once it is past ``max_bytes``: at once when its
    declared length says so, else when the bytes read pass it (a length may be left out)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"{what} may be at most {max_bytes} bytes, got {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"{what} may be at most {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# --- cookies --------------------------------------------------------------------------------


def cookie_is_secure(settings: Settings) -> bool:
    # A Secure cookie never travels over plain http: only a local http service may go without.
    return settings.env == "production" or settings.issuer.startswith("https://")


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, *, path: str, max_age: int
) -> None:
    """Every cookie the service sets: HttpOnly (no page script reads it), SameSite=Strict (no
    other site's request carries it), Secure unless served over plain http."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=cookie_is_secure(settings),
        httponly=True,
        samesite="strict",
    )


def delete_cookie(response: Response, settings: Settings, name: str, *, path: str) -> None:
    response.delete_cookie(
        name, path=path, secure=cookie_is_secure(settings), httponly=True, samesite="strict"
    )
