"""Site verification: the token file fetched from a tiny local server, and every refusal of the
careful fetch (non-public addresses, redirects, size, time). Nothing here leaves 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select, text
from starlette.testclient import TestClient

from tests import factories
from tests.factories import create_payee, create_user
from trickle import siteverify
from trickle.db import make_engine, transaction
from trickle.errors import SiteVerificationFailed, TooManySiteChecks, UnsafeUrl
from trickle.models import SiteVerification
from trickle.runtime import Runtime

# --- a tiny site ----------------------------------------------------------------------------


@dataclasses.dataclass
class Site:
    port: int = 0
    scheme: str = "http"
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    requests: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requests.append((self.path, self.headers.get("Host")))
            self.send_response(site.status)
            for name, value in site.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(site.body)))
            self.end_headers()
            self.wfile.write(site.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Site]:
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        site.scheme = "https"
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    with serving() as s:
        yield s


@dataclasses.dataclass
class HeldSite:
    """A site that answers only once ``release`` is set (a slow or silent site), counting the
    requests it holds at once."""

    port: int = 0
    body: bytes = b""
    release: threading.Event = dataclasses.field(default_factory=threading.Event)
    requests: int = 0
    holding: int = 0
    most_held: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_requests(self, count: int, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.requests < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def _held_handler(site: HeldSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with site.lock:
                site.requests += 1
                site.holding += 1
                site.most_held = max(site.most_held, site.holding)
            try:
                site.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)
            except OSError:
                pass  # the checker gave up (its deadline passed) and hung up
            finally:
                with site.lock:
                    site.holding -= 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def holding() -> Iterator[HeldSite]:
    site = HeldSite()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _held_handler(site))
    server.request_queue_size = 128
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield site
    finally:
        site.release.set()
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def held_site() -> Iterator[HeldSite]:
    with holding() as s:
        yield s


@pytest.fixture
def fast_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(siteverify, "TIMEOUT_S", 0.5)
    return 0.5


def _allow_private(runtime: Runtime) -> None:
    # The test server is on 127.0.0.1: the development-only setting lets the service fetch it.
    runtime.settings = dataclasses.replace(runtime.settings, allow_private_site_urls=True)


def _start(client: TestClient, user: factories.TestUser, payee: str, origin: str) -> Any:
    return client.post(f"/api/v1/payees/{payee}/sites", json={"origin": origin}, headers=user.auth)


def _check(client: TestClient, user: factories.TestUser, payee: str, origin: str) -> Any:
    return client.post(
        f"/api/v1/payees/{payee}/sites/check", json={"origin": origin}, headers=user.auth
    )


# --- through the API ------------------------------------------------------------------------


def test_a_site_serving_the_token_is_verified(
    runtime: Runtime, client: TestClient, site: Site
) -> None:
    _allow_private(runtime)
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "verify-me")
    started = _start(client, creator, "verify-me", site.origin + "/")
    assert started.status_code == 200
    challenge = started.json()
    assert challenge["origin"] == site.origin
    assert challenge["url"] == f"{site.origin}/.well-known/trickle.txt"
    assert challenge["token"].startswith("trickle-site-verification=")
    assert challenge["verified"] is False
    again = _start(client, creator, "verify-me", site.origin).json()
    assert again["token"] == challenge["token"]  # asking twice gives the same instructions

    site.body = f"# tokens\nsomeone-else\n  {challenge['token']}  \n".encode()
    checked = _check(client, creator, "verify-me", site.origin)
    assert checked.status_code == 200, checked.json()
    assert checked.json()["verified"] is True
    assert site.requests == [("/.well-known/trickle.txt", f"127.0.0.1:{site.port}")]

    public = client.get("/p/verify-me").json()
    assert public["verified_origins"] == [site.origin]
    (listed,) = client.get("/api/v1/payees", headers=creator.auth).json()["payees"]
    assert listed["sites"][0]["verified"] is True


@pytest.mark.parametrize(
    ("status", "body", "headers", "message"),
    [
        (200, b"trickle-site-verification=not-yours\n", {}, "does not contain this payee's token"),
        (404, b"nope", {}, "answered 404"),
        (500, b"", {}, "answered 500"),
        (302, b"", {"Location": "http://127.0.0.1:1/elsewhere"}, "redirects are not followed"),
        (200, b"x" * 5000, {}, "larger than 4096 bytes"),
        (200, b"", {f"X-Filler-{i}": "y" * 900 for i in range(30)}, "too large"),
    ],
)
def test_a_site_that_does_not_prove_it_is_refused_with_a_reason(
    runtime: Runtime,
    client: TestClient,
    site: Site,
    status: int,
    body: bytes,
    headers: dict[str, str],
    message: str,
) -> None:
    _allow_private(runtime)
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "not-proven")
    assert _start(client, creator, "not-proven", site.origin).status_code == 200
    site.status, site.body, site.headers = status, body, headers
    response = _check(client, creator, "not-proven", site.origin)
    assert response.status_code == 409  # the site's state, not the request, is what is wrong
    error = response.json()["error"]
    assert error["code"] == "site_verification_failed"
    assert message in error["message"]
    assert len(site.requests) == 1  # a redirect is not followed
    assert client.get("/p/not-proven").json()["verified_origins"] == []


def test_checking_needs_a_started_verification(
    runtime: Runtime, client: TestClient, site: Site
) -> None:
    _allow_private(runtime)
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "unstarted")
    response = _check(client, creator, "unstarted", site.origin)
    assert response.status_code == 409
    assert "no verification was started" in response.json()["error"]["message"]
    assert site.requests == []


def test_private_addresses_are_refused_by_default(
    runtime: Runtime, client: TestClient, site: Site
) -> None:
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "ssrf-probe")
    refused = _start(client, creator, "ssrf-probe", site.origin)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "unsafe_url"
    # A name is resolved when fetching: it may start, and the check refuses it.
    by_name = f"http://localhost:{site.port}"
    assert _start(client, creator, "ssrf-probe", by_name).status_code == 200
    response = _check(client, creator, "ssrf-probe", by_name)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsafe_url"
    assert site.requests == []


@pytest.mark.parametrize(
    ("origin", "code"),
    [
        ("ftp://example.com", "unsafe_url"),
        ("file:///etc/passwd", "unsafe_url"),
        ("javascript:alert(1)", "unsafe_url"),
        ("https://example.com/some/path", "validation_failed"),
        ("https://user:pw@example.com", "validation_failed"),
        ("http://[::1", "validation_failed"),
        ("https://bücher.example", "validation_failed"),
    ],
)
def test_only_http_origins_can_be_started(
    runtime: Runtime, client: TestClient, origin: str, code: str
) -> None:
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "schemes")
    response = _start(client, creator, "schemes", origin)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_only_the_owner_may_verify_a_payees_sites(runtime: Runtime, client: TestClient) -> None:
    owner, stranger = create_user(runtime), create_user(runtime)
    create_payee(runtime, owner.id, "owned-sites")
    for call in (_start, _check):
        response = call(client, stranger, "owned-sites", "https://example.com")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "payee_not_found"


# --- while the site answers: no database connection held, a bounded number at once ---------


def write_at_once(database_url: str) -> float:
    """Seconds a write transaction took from another engine that waits at most 1 s for a lock
    (on SQLite, ``BEGIN IMMEDIATE`` needs the database's write lock)."""
    engine = make_engine(database_url, lock_wait_s=1.0)
    try:
        started = time.monotonic()
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM rate_limit_hits WHERE window_start < 0"))
        return time.monotonic() - started
    finally:
        engine.dispose()


def test_a_check_holds_no_database_connection_while_the_site_answers(
    runtime: Runtime, client: TestClient, held_site: HeldSite
) -> None:
    _allow_private(runtime)
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "patient")
    token = _start(client, creator, "patient", held_site.origin).json()["token"]
    held_site.body = f"{token}\n".encode()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        checking = pool.submit(_check, client, creator, "patient", held_site.origin)
        try:
            assert held_site.wait_for_requests(1)
            # The site holds the check's fetch: the database must be free meanwhile.
            assert runtime.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            assert write_at_once(runtime.settings.database_url) < 1.0
        finally:
            held_site.release.set()
        response = checking.result(timeout=30)
    assert response.status_code == 200, response.json()
    assert response.json()["verified"] is True


def test_a_verification_that_changed_during_the_fetch_is_not_recorded(
    runtime: Runtime, client: TestClient, held_site: HeldSite
) -> None:
    _allow_private(runtime)
    creator = create_user(runtime)
    create_payee(runtime, creator.id, "moving")
    token = _start(client, creator, "moving", held_site.origin).json()["token"]
    held_site.body = f"{token}\n".encode()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        checking = pool.submit(_check, client, creator, "moving", held_site.origin)
        try:
            assert held_site.wait_for_requests(1)
            with transaction(runtime.sessions) as session:
                row = session.scalars(select(SiteVerification)).one()
                row.token = "trickle-site-verification=a-new-one"
        finally:
            held_site.release.set()
        response = checking.result(timeout=30)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "site_verification_failed"
    assert "changed while its file was fetched" in response.json()["error"]["message"]
    with transaction(runtime.sessions) as session:
        assert session.scalars(select(SiteVerification.verified_at)).one() is None


def test_checks_beyond_the_limits_are_refused_at_once(
    runtime: Runtime, client: TestClient, held_site: HeldSite
) -> None:
    _allow_private(runtime)
    runtime.site_checks = siteverify.CheckSlots(max_checks=2, max_checks_per_user=1)
    users = [create_user(runtime) for _ in range(3)]
    for index, user in enumerate(users):
        create_payee(runtime, user.id, f"limited-{index}")
        assert _start(client, user, f"limited-{index}", held_site.origin).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(_check, client, users[0], "limited-0", held_site.origin)
        assert held_site.wait_for_requests(1)
        try:
            again = _check(client, users[0], "limited-0", held_site.origin)  # per user
            assert again.status_code == 429
            assert again.json()["error"]["code"] == "too_many_site_checks"
            second = pool.submit(_check, client, users[1], "limited-1", held_site.origin)
            assert held_site.wait_for_requests(2)
            third = _check(client, users[2], "limited-2", held_site.origin)  # per process
            assert third.status_code == 429
            assert third.json()["error"]["code"] == "too_many_site_checks"
            assert held_site.requests == 2  # a refused check fetches nothing
        finally:
            held_site.release.set()
        # The site answered without the tokens: failed checks give their slots back too.
        assert first.result(timeout=30).status_code == 409
        assert second.result(timeout=30).status_code == 409
    assert runtime.site_checks.running == 0
    assert _check(client, users[2], "limited-2", held_site.origin).status_code == 409
    assert held_site.requests == 3


def test_slots_count_per_user_and_in_all() -> None:
    slots = siteverify.CheckSlots(max_checks=3, max_checks_per_user=2)
    with slots.hold(1), slots.hold(1):
        with pytest.raises(TooManySiteChecks, match="at most 2"), slots.hold(1):
            pass
        with slots.hold(2):
            assert slots.running == 3
            with pytest.raises(TooManySiteChecks, match="most site checks at once"), slots.hold(3):
                pass
    with pytest.raises(RuntimeError), slots.hold(1):
        raise RuntimeError("a failed check")
    assert slots.running == 0


# --- the fetch itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1",
        "http://127.0.0.2:8080",
        "http://10.1.2.3",
        "http://172.16.0.1",
        "http://192.168.1.1",
        "http://169.254.169.254",
        "http://100.64.0.1",
        "http://0.0.0.0",
        "http://224.0.0.1",
        "http://240.0.0.1",
        "http://[::1]",
        "http://[::]",
        "http://[::ffff:127.0.0.1]",
        "http://[::ffff:169.254.169.254]",
        "http://[fe80::1]",
        "http://[fc00::1]",
        "http://[ff02::1]",
        "https://2130706433",  # 127.0.0.1 as one number
        "http://127.1",
    ],
)
def test_non_public_addresses_are_refused(origin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(siteverify, "_connect", _must_not_connect)
    with pytest.raises(UnsafeUrl, match="non-public address"):
        siteverify.fetch_token_file(origin, allow_private=False)


def _must_not_connect(*_args: object) -> socket.socket:
    raise AssertionError("connected to a refused address")


def test_a_name_resolving_to_loopback_is_refused(site: Site) -> None:
    with pytest.raises(UnsafeUrl):
        siteverify.fetch_token_file(f"http://localhost:{site.port}", allow_private=False)
    assert site.requests == []


def test_a_name_with_one_private_address_among_public_ones_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def getaddrinfo(host: str, port: int, **_kwargs: object) -> list[Any]:
        assert host == "mixed.test"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(siteverify, "_connect", _must_not_connect)
    with pytest.raises(UnsafeUrl, match=r"10\.0\.0\.7"):
        siteverify.fetch_token_file("https://mixed.test", allow_private=False)


def test_the_name_is_resolved_once_and_that_address_is_used(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: a second lookup could answer differently; there is no second lookup.
    calls: list[str] = []

    def getaddrinfo(host: str, port: int, **_kwargs: object) -> list[Any]:
        calls.append(host)
        address = "127.0.0.1" if len(calls) == 1 else "192.0.2.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    site.body = b"token"
    body = siteverify.fetch_token_file(f"http://rebind.test:{site.port}", allow_private=True)
    assert body == b"token"
    assert calls == ["rebind.test"]
    assert site.requests == [("/.well-known/trickle.txt", f"rebind.test:{site.port}")]


def test_a_server_that_never_answers_times_out(fast_timeout: float) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts the connection; nobody ever answers
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(SiteVerificationFailed, match=r"did not answer within 0\.5 s"):
            siteverify.fetch_token_file(f"http://127.0.0.1:{port}", allow_private=True)
    assert time.monotonic() - started < fast_timeout + 1.0


def test_a_server_dripping_bytes_is_cut_off_at_the_total_deadline(fast_timeout: float) -> None:
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def drip() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.wait(0.05):
                    try:
                        connection.sendall(b"X")
                    except OSError:
                        return

        thread = threading.Thread(target=drip)
        thread.start()
        started = time.monotonic()
        try:
            with pytest.raises(SiteVerificationFailed, match="did not answer within"):
                siteverify.fetch_token_file(f"http://127.0.0.1:{port}", allow_private=True)
        finally:
            stop.set()
            thread.join()
    assert time.monotonic() - started < fast_timeout + 1.0


def test_a_closed_port_is_a_clear_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SiteVerificationFailed, match="could not fetch"):
        siteverify.fetch_token_file(f"http://127.0.0.1:{port}", allow_private=True)


def test_garbage_instead_of_http_is_a_clear_failure(fast_timeout: float) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def garbage() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

        thread = threading.Thread(target=garbage)
        thread.start()
        try:
            with pytest.raises(SiteVerificationFailed, match="valid HTTP"):
                siteverify.fetch_token_file(f"http://127.0.0.1:{port}", allow_private=True)
        finally:
            thread.join()


# --- https: connect to the checked address, check the certificate against the name --------


@dataclasses.dataclass(frozen=True)
class Tls:
    ca_file: Path
    server: ssl.SSLContext


def _certificate_for(name: str, folder: Path) -> Tls:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trickle test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return Tls(ca_file, server)


@pytest.fixture
def tls_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    tls = _certificate_for("site.test", tmp_path)
    default_context = ssl.create_default_context

    def trusting_the_test_ca() -> ssl.SSLContext:
        return default_context(cafile=str(tls.ca_file))

    def getaddrinfo(host: str, port: int, **_kwargs: object) -> list[Any]:
        assert host.endswith(".test"), host  # nothing else may be looked up here
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(ssl, "create_default_context", trusting_the_test_ca)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with serving(tls.server) as s:
        yield s


def test_https_connects_to_the_address_and_checks_the_sites_name(tls_site: Site) -> None:
    tls_site.body = b"the-token\n"
    origin = f"https://site.test:{tls_site.port}"
    assert siteverify.fetch_token_file(origin, allow_private=True) == b"the-token\n"
    assert tls_site.requests == [("/.well-known/trickle.txt", f"site.test:{tls_site.port}")]


def test_https_with_a_certificate_for_another_name_fails(tls_site: Site) -> None:
    with pytest.raises(SiteVerificationFailed, match="TLS"):
        siteverify.fetch_token_file(f"https://other.test:{tls_site.port}", allow_private=True)
    assert tls_site.requests == []


def test_https_to_a_plain_http_server_fails_clearly(site: Site) -> None:
    with pytest.raises(SiteVerificationFailed, match="TLS"):
        siteverify.fetch_token_file(f"https://127.0.0.1:{site.port}", allow_private=True)
