"""Site verification: a creator proves control of a site origin by serving a token at
``<origin>/.well-known/trickle.txt``, which the service fetches carefully (it is a request to an
address a user chose: http(s) only, public addresses only, pinned to the address it checked, no
redirects, 5 s in all, 4 KiB at most, a bounded number at once, and never while holding a
database connection).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hmac
import http.client
import io
import ipaddress
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trickle import payees
from trickle.db import transaction
from trickle.errors import SiteVerificationFailed, TooManySiteChecks, UnsafeUrl, ValidationFailed
from trickle.models import Payee, SiteVerification
from trickle.origins import normalize_origin

WELL_KNOWN_PATH = "/.well-known/trickle.txt"
TIMEOUT_S = 5.0
MAX_BODY_BYTES = 4096
MAX_HEADER_BYTES = 16 * 1024  # headers too: a response is never read past body + headers
USER_AGENT = "trickle-site-verifier/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- the domain -----------------------------------------------------------------------------


def token_url(origin: str) -> str:
    return origin + WELL_KNOWN_PATH


def site_origin(text: str, *, allow_private: bool) -> str:
    """The normalized origin; ``UnsafeUrl`` for another scheme than http(s) or for a literal
    address that is not public (names are resolved and checked when fetching)."""
    if text.isascii():  # anything else is not an origin: normalize_origin says so below
        try:
            scheme = urllib.parse.urlsplit(text).scheme.lower()
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise ValidationFailed(f"not an origin: {text[:60]!r}") from None
        if scheme not in ("http", "https"):
            raise UnsafeUrl(f"only http:// and https:// sites can be verified, got {text[:60]!r}")
    origin = normalize_origin(text)
    host = urllib.parse.urlsplit(origin).hostname or ""
    literal = _literal_address(host)
    if literal is not None and not allow_private:
        check_address(literal)
    return origin


def start(
    session: Session, payee: Payee, origin_text: str, *, allow_private: bool, now: dt.datetime
) -> SiteVerification:
    """Begin (or look up) the verification of an origin for a payee: its token stays the same
    until it is verified, so asking twice gives the same instructions."""
    origin = site_origin(origin_text, allow_private=allow_private)
    existing = _find(session, payee.id, origin)
    if existing is not None:
        return existing
    row = SiteVerification(
        payee_id=payee.id,
        origin=origin,
        token=f"trickle-site-verification={secrets.token_urlsafe(24)}",
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


@dataclasses.dataclass(frozen=True, slots=True)
class Challenge:
    """What a check reads from the database before it fetches: the row and the token it expects."""

    verification_id: int
    payee_id: int
    origin: str
    token: str


def challenge(
    session: Session, payee: Payee, origin_text: str, *, allow_private: bool
) -> Challenge:
    """The started verification of an origin for a payee; ``SiteVerificationFailed`` if none."""
    origin = site_origin(origin_text, allow_private=allow_private)
    row = _find(session, payee.id, origin)
    if row is None:
        raise SiteVerificationFailed(
            f"no verification was started for {origin} on this payee; start one first"
        )
    return Challenge(row.id, row.payee_id, row.origin, row.token)


def confirm(body: bytes, expected: Challenge) -> None:
    """``SiteVerificationFailed`` unless the fetched file holds the challenge's token."""
    if not _holds_token(body, expected.token):
        raise SiteVerificationFailed(
            f"{token_url(expected.origin)} does not contain this payee's token; serve it as a "
            "line of the file (several tokens may share the file, one per line)"
        )


def record(session: Session, proven: Challenge, now: dt.datetime) -> SiteVerification:
    """Mark the origin verified (once: a later check keeps the first time). The row is read
    again: ``SiteVerificationFailed`` if it is gone or now expects another token."""
    row = session.get(SiteVerification, proven.verification_id, with_for_update=True)
    if row is None or (row.payee_id, row.origin, row.token) != (
        proven.payee_id,
        proven.origin,
        proven.token,
    ):
        raise SiteVerificationFailed(
            f"the verification of {proven.origin} changed while its file was fetched; check again"
        )
    if row.verified_at is None:
        row.verified_at = now
        session.flush()
    return row


def check(
    sessions: sessionmaker[Session],
    slots: CheckSlots,
    *,
    user_id: int,
    payee_name: str,
    origin_text: str,
    allow_private: bool,
    clock: Callable[[], dt.datetime],
) -> SiteVerification:
    """Fetch the origin's token file; mark the origin verified if it holds the payee's token.

    Runs its own two short transactions and the fetch between them, with no database connection
    held while the site answers (or does not): on SQLite a transaction holds the write lock of
    the whole database, on PostgreSQL a connection of a small pool. The user must own the payee
    in both. ``TooManySiteChecks`` when ``slots`` has no room (nothing is fetched);
    ``PayeeNotFound``, ``UnsafeUrl`` or ``SiteVerificationFailed`` (saying what was wrong).
    """
    with slots.hold(user_id):
        with transaction(sessions) as session:
            payee = payees.owned(session, user_id, payee_name)
            expected = challenge(session, payee, origin_text, allow_private=allow_private)
        confirm(fetch_token_file(expected.origin, allow_private=allow_private), expected)
    with transaction(sessions) as session:
        payees.owned(session, user_id, payee_name)
        return record(session, expected, clock())


class CheckSlots:
    """How many site checks may fetch at once in this process: in all and per user. A check
    holds a slot for its whole fetch (at most ``TIMEOUT_S`` after the name resolved); one that
    finds no slot is refused at once (``TooManySiteChecks``) rather than queued, so slow or
    silent sites can tie up neither the request threads nor the database."""

    def __init__(self, max_checks: int, max_checks_per_user: int) -> None:
        self.max_checks = max_checks
        self.max_checks_per_user = max_checks_per_user
        self._lock = threading.Lock()
        self._running: dict[int, int] = {}  # user id -> checks running

    @property
    def running(self) -> int:
        with self._lock:
            return sum(self._running.values())

    @contextlib.contextmanager
    def hold(self, user_id: int) -> Iterator[None]:
        with self._lock:
            mine = self._running.get(user_id, 0)
            if mine >= self.max_checks_per_user:
                raise TooManySiteChecks(
                    f"you have {mine} site checks running (at most {self.max_checks_per_user} "
                    f"at once); try again when one has finished (within {TIMEOUT_S:g} s)"
                )
            if sum(self._running.values()) >= self.max_checks:
                raise TooManySiteChecks(
                    f"the service is running its most site checks at once "
                    f"({self.max_checks}); try again in a few seconds"
                )
            self._running[user_id] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[user_id] - 1
                if left:
                    self._running[user_id] = left
                else:
                    del self._running[user_id]


def _find(session: Session, payee_id: int, origin: str) -> SiteVerification | None:
    return session.scalars(
        select(SiteVerification).where(
            SiteVerification.payee_id == payee_id, SiteVerification.origin == origin
        )
    ).first()


def _holds_token(body: bytes, token: str) -> bool:
    expected = token.encode()
    # Compare every line (no early exit on a match) in constant time per line.
    found = False
    for line in body.splitlines():
        found |= hmac.compare_digest(line.strip(), expected)
    return found


# --- addresses ------------------------------------------------------------------------------


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_address(address: IPAddress) -> IPAddress:
    """The address if it is a public unicast one; ``UnsafeUrl`` for loopback, private,
    link-local, shared (CGNAT), multicast, reserved and unspecified addresses, IPv4-mapped
    IPv6 ones included."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        check_address(address.ipv4_mapped)
    unsafe = (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )
    if unsafe:
        raise UnsafeUrl(f"refusing to fetch from a non-public address ({address})")
    return address


def resolve(host: str, port: int, *, allow_private: bool) -> IPAddress:
    """The address to connect to: every address the name resolves to must be safe (a name
    with one private record among public ones is refused), and the first one is used."""
    literal = _literal_address(host)
    if literal is not None:
        return literal if allow_private else check_address(literal)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SiteVerificationFailed(f"the site's host {host!r} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise SiteVerificationFailed(f"the site's host {host!r} has no address")
    if not allow_private:
        for address in addresses:
            check_address(address)
    return addresses[0]


# --- fetching -------------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side with one deadline for the whole response and a byte budget:
    ``http.client`` parses, this bounds how long and how much it may read."""

    def __init__(self, sock: socket.socket, deadline: float, budget_bytes: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._budget = budget_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        remaining_s = self._deadline - time.monotonic()
        if remaining_s <= 0:
            raise TimeoutError("the deadline passed")
        if self._budget <= 0:
            raise _TooLarge
        self._sock.settimeout(remaining_s)
        view = memoryview(buffer).cast("B")[: self._budget]
        count = self._sock.recv_into(view)
        self._budget -= count
        return count


class _ResponseSource:
    """What ``http.client.HTTPResponse`` needs of a socket: ``makefile``."""

    def __init__(self, reader: _DeadlineReader) -> None:
        self._reader = reader

    def makefile(self, _mode: str) -> io.BufferedReader:
        return io.BufferedReader(self._reader)


def fetch_token_file(origin: str, *, allow_private: bool) -> bytes:
    """GET ``<origin>/.well-known/trickle.txt`` from the address the name was checked at."""
    url = urllib.parse.urlsplit(origin)
    host = url.hostname or ""
    default_port = 443 if url.scheme == "https" else 80
    port = url.port or default_port
    deadline = time.monotonic() + TIMEOUT_S
    address = resolve(host, port, allow_private=allow_private)
    where = token_url(origin)
    try:
        sock = _connect(address, port, deadline)
        try:
            if url.scheme == "https":
                sock = _tls(sock, host, deadline)
            return _exchange(sock, url.netloc, deadline, where)
        finally:
            sock.close()
    except TimeoutError:
        raise SiteVerificationFailed(f"{where} did not answer within {TIMEOUT_S:g} s") from None
    except ssl.SSLError as exc:
        raise SiteVerificationFailed(f"TLS with {host} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise SiteVerificationFailed(f"could not fetch {where}: {exc.strerror or exc}") from None


def _connect(address: IPAddress, port: int, deadline: float) -> socket.socket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect((str(address), port))
    except BaseException:
        sock.close()
        raise
    return sock


def _tls(sock: socket.socket, host: str, deadline: float) -> socket.socket:
    # Connected to the checked address; the certificate is checked against the site's name.
    context = ssl.create_default_context()
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    return context.wrap_socket(sock, server_hostname=host)


def _exchange(sock: socket.socket, netloc: str, deadline: float, where: str) -> bytes:
    request = (
        f"GET {WELL_KNOWN_PATH} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: text/plain\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    )
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendall(request.encode("ascii"))
    reader = _DeadlineReader(sock, deadline, MAX_HEADER_BYTES + MAX_BODY_BYTES)
    # HTTPResponse only calls makefile("rb") on what it is given.
    response = http.client.HTTPResponse(cast(socket.socket, _ResponseSource(reader)), method="GET")
    try:
        response.begin()
        if response.status != 200:
            raise SiteVerificationFailed(_status_message(response, where))
        body = response.read(MAX_BODY_BYTES + 1)
    except _TooLarge:
        raise SiteVerificationFailed(
            f"the answer from {where} is too large (headers and a file of at most "
            f"{MAX_BODY_BYTES} bytes, which holds tokens only)"
        ) from None
    except http.client.HTTPException as exc:
        raise SiteVerificationFailed(
            f"{where} did not answer with valid HTTP ({type(exc).__name__})"
        ) from None
    finally:
        response.close()
    if len(body) > MAX_BODY_BYTES:
        raise SiteVerificationFailed(
            f"{where} is larger than {MAX_BODY_BYTES} bytes; the file holds tokens only"
        )
    return body


def _status_message(response: http.client.HTTPResponse, where: str) -> str:
    if 300 <= response.status < 400:
        return (
            f"{where} answered {response.status} (a redirect); redirects are not followed: "
            "serve the file at exactly this address"
        )
    return f"{where} answered {response.status} {response.reason}, expected 200 with the token"
