"""PublicKey and KeySet: loading a JWK Set from a mapping, text, a file and a URL (served by a
tiny local http.server), caching, rate-limited refresh, timeout and size limit."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from trickle_verifier import (
    InvalidJWKS,
    InvalidKey,
    JWKSFetchFailed,
    JWKSTooLarge,
    KeySet,
    KeySetError,
    PublicKey,
    ReceiptError,
    Verifier,
)

NOW = 1795000100


class JWKSServer:
    """Serves a JWK Set on 127.0.0.1 and counts the requests."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 200
        self.delay_s = 0.0
        self.send_length = True
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                with outer._lock:
                    outer.requests += 1
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=300")
                if outer.send_length:
                    self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                # The client may give up (timeout or size limit): that is the point.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(outer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks_server(vectors: dict[str, Any]) -> Iterator[JWKSServer]:
    server = JWKSServer(json.dumps(vectors["jwks"]).encode())
    yield server
    server.close()


def _verifier(vectors: dict[str, Any], keys: KeySet) -> Verifier:
    config = vectors["verifier"]
    return Verifier(
        issuer=config["issuer"], audience=config["audience"], payees=config["payees"], keys=keys
    )


# --- PublicKey ---


def test_public_key_checks_length_and_kid() -> None:
    with pytest.raises(InvalidKey):
        PublicKey("k1", bytes(31))
    with pytest.raises(InvalidKey):
        PublicKey("k1", bytes(33))
    with pytest.raises(InvalidKey):
        PublicKey("../k1", bytes(32))
    with pytest.raises(InvalidKey):
        PublicKey("k1", "x" * 32)  # type: ignore[arg-type]
    key = PublicKey("k1", bytes(range(32)))
    assert key.kid == "k1" and key.raw == bytes(range(32))


def test_public_key_never_prints_its_bytes(vectors: dict[str, Any]) -> None:
    jwk = vectors["jwks"]["keys"][0]
    key = PublicKey.from_jwk(jwk)
    for text in (repr(key), str(key), repr(KeySet([key]))):
        assert jwk["x"] not in text and "test-key-1" in text


def test_public_key_round_trips_to_jwk(vectors: dict[str, Any]) -> None:
    for jwk in vectors["jwks"]["keys"]:
        assert PublicKey.from_jwk(jwk).to_jwk() == jwk
    assert KeySet.from_jwks(vectors["jwks"]).to_jwks() == vectors["jwks"]


# --- from_jwks / from_file ---


def test_from_jwks_accepts_mapping_text_and_bytes(vectors: dict[str, Any]) -> None:
    text = json.dumps(vectors["jwks"])
    for doc in (vectors["jwks"], text, text.encode()):
        key_set = KeySet.from_jwks(doc)
        assert key_set.kids == ("test-key-1", "test-key-2")
        assert "test-key-1" in key_set and len(key_set) == 2
        assert key_set.get("test-key-3") is None


def test_from_jwks_skips_keys_that_are_not_ed25519_signing_keys(vectors: dict[str, Any]) -> None:
    good = vectors["jwks"]["keys"][0]
    others = [
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa-1"},
        {"kty": "OKP", "crv": "X25519", "x": good["x"], "kid": "x25519-1"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec-1"},
        dict(good, kid="enc-1", use="enc"),
        dict(good, kid="hs-1", alg="HS256"),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "oct-1"},
    ]
    key_set = KeySet.from_jwks({"keys": [*others, good]})
    assert key_set.kids == ("test-key-1",)


def test_from_jwks_accepts_keys_without_alg_and_use(vectors: dict[str, Any]) -> None:
    good = vectors["jwks"]["keys"][0]
    bare = {name: good[name] for name in ("kty", "crv", "x", "kid")}
    assert KeySet.from_jwks({"keys": [bare]}).kids == ("test-key-1",)


@pytest.mark.parametrize(
    "change",
    [
        {"kid": "../../etc/passwd"},
        {"kid": "https://evil.example/jwks"},
        {"kid": ""},
        {"kid": 1},
        {"kid": None},
        {"x": "AAAA"},
        {"x": 5},
        {"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
        {"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp"},  # non-canonical last char
        {"d": "private"},
    ],
    ids=repr,
)
def test_from_jwks_rejects_a_malformed_ed25519_key(
    vectors: dict[str, Any], change: dict[str, Any]
) -> None:
    jwk = dict(vectors["jwks"]["keys"][0], **change)
    with pytest.raises(InvalidJWKS):
        KeySet.from_jwks({"keys": [jwk]})


@pytest.mark.parametrize(
    "doc",
    [
        "[]",
        "not json",
        '{"keys": {}}',
        "{}",
        '{"keys": []}',
        '{"keys": [1]}',
        '{"keys": [], "keys": []}',
        b"\xff",
        42,
    ],
    ids=repr,
)
def test_from_jwks_rejects_a_malformed_document(doc: Any) -> None:
    with pytest.raises(InvalidJWKS) as caught:
        KeySet.from_jwks(doc)
    assert caught.value.code == "invalid_jwks"
    assert isinstance(caught.value, KeySetError)


def test_from_jwks_rejects_duplicate_kids(vectors: dict[str, Any]) -> None:
    first, second = vectors["jwks"]["keys"]
    with pytest.raises(InvalidJWKS):
        KeySet.from_jwks({"keys": [first, dict(second, kid=first["kid"])]})


def test_from_file(vectors: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(vectors["jwks"]))
    assert KeySet.from_file(path).kids == ("test-key-1", "test-key-2")
    assert KeySet.from_file(str(path)).kids == ("test-key-1", "test-key-2")
    with pytest.raises(JWKSFetchFailed):
        KeySet.from_file(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"keys": vectors["jwks"]["keys"], "pad": "x" * 70000}))
    with pytest.raises(JWKSTooLarge):
        KeySet.from_file(big)


# --- from_url ---


def test_from_url_fetches_once_and_caches(vectors: dict[str, Any], jwks_server: JWKSServer) -> None:
    key_set = KeySet.from_url(jwks_server.url)
    assert jwks_server.requests == 1 and key_set.fetch_count == 1
    verifier = _verifier(vectors, key_set)
    for vector in vectors["valid"]:
        verifier.verify(vector["token"], binding=vector["binding"], now=vector["now"] or NOW)
    assert jwks_server.requests == 1


def test_forged_kids_refresh_at_most_once_per_interval(
    vectors: dict[str, Any], jwks_server: JWKSServer, generator: ModuleType
) -> None:
    clock = FakeMonotonic()
    key_set = KeySet.from_url(jwks_server.url, refresh_interval_s=300.0, monotonic=clock)
    verifier = _verifier(vectors, key_set)
    clock.now += 301  # the cache is stale: the first unknown kid may refresh it
    for index in range(50):
        forged = generator.token(generator.header(kid=f"forged-{index}"))
        with pytest.raises(ReceiptError) as caught:
            verifier.verify(forged, now=NOW)
        assert caught.value.code == "unknown_kid"
    assert jwks_server.requests <= 2  # the first fetch plus at most one refresh
    clock.now += 100
    for index in range(50):
        assert key_set.get(f"forged-again-{index}") is None
    assert jwks_server.requests <= 2


def test_forged_kids_from_many_threads_refresh_at_most_once(jwks_server: JWKSServer) -> None:
    clock = FakeMonotonic()
    key_set = KeySet.from_url(jwks_server.url, refresh_interval_s=300.0, monotonic=clock)
    clock.now += 301
    barrier = threading.Barrier(20)

    def look_up(index: int) -> None:
        barrier.wait()
        for attempt in range(10):
            assert key_set.get(f"forged-{index}-{attempt}") is None

    threads = [threading.Thread(target=look_up, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert jwks_server.requests == 2


def test_a_new_key_is_picked_up_after_the_interval(
    vectors: dict[str, Any], jwks_server: JWKSServer, generator: ModuleType
) -> None:
    clock = FakeMonotonic()
    key_set = KeySet.from_url(jwks_server.url, refresh_interval_s=300.0, monotonic=clock)
    verifier = _verifier(vectors, key_set)
    rotated = generator.token(generator.header(kid="test-key-3"), key=generator.OUTSIDER)
    jwks_server.body = json.dumps(
        {"keys": [*vectors["jwks"]["keys"], generator.jwk("test-key-3", generator.OUTSIDER)]}
    ).encode()
    with pytest.raises(ReceiptError, match=r"^unknown_kid"):
        verifier.verify(rotated, now=NOW)  # within the interval: no fetch
    assert jwks_server.requests == 1
    clock.now += 300
    assert verifier.verify(rotated, now=NOW).kid == "test-key-3"
    assert jwks_server.requests == 2


def test_a_retired_key_drops_out_after_the_interval(
    vectors: dict[str, Any], jwks_server: JWKSServer
) -> None:
    clock = FakeMonotonic()
    key_set = KeySet.from_url(jwks_server.url, refresh_interval_s=300.0, monotonic=clock)
    jwks_server.body = json.dumps({"keys": vectors["jwks"]["keys"][1:]}).encode()
    assert key_set.get("test-key-1") is not None
    clock.now += 300
    assert key_set.get("test-key-1") is None
    assert key_set.kids == ("test-key-2",)


def test_a_failed_refresh_keeps_the_cached_keys(
    jwks_server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeMonotonic()
    key_set = KeySet.from_url(jwks_server.url, refresh_interval_s=300.0, monotonic=clock)
    jwks_server.status = 503
    clock.now += 300
    assert key_set.get("test-key-1") is not None
    assert key_set.get("unknown") is None
    assert jwks_server.requests == 2
    assert "JWKS refresh failed" in caplog.text
    assert key_set.kids == ("test-key-1", "test-key-2")


def test_from_url_timeout(jwks_server: JWKSServer) -> None:
    jwks_server.delay_s = 2.0
    started = time.monotonic()
    with pytest.raises(JWKSFetchFailed) as caught:
        KeySet.from_url(jwks_server.url, timeout_s=0.3)
    assert time.monotonic() - started < 1.5
    assert caught.value.code == "jwks_fetch_failed"


@pytest.mark.parametrize("send_length", [True, False])
def test_from_url_rejects_an_oversized_jwks(
    vectors: dict[str, Any], jwks_server: JWKSServer, send_length: bool
) -> None:
    jwks_server.body = json.dumps({"keys": vectors["jwks"]["keys"], "pad": "x" * 100_000}).encode()
    jwks_server.send_length = send_length
    with pytest.raises(JWKSTooLarge) as caught:
        KeySet.from_url(jwks_server.url)
    assert isinstance(caught.value, KeySetError) and caught.value.code == "jwks_too_large"


def test_from_url_size_limit_is_configurable(jwks_server: JWKSServer) -> None:
    with pytest.raises(JWKSTooLarge):
        KeySet.from_url(jwks_server.url, max_bytes=100)


def test_from_url_rejects_an_error_status(jwks_server: JWKSServer) -> None:
    jwks_server.status = 404
    with pytest.raises(JWKSFetchFailed):
        KeySet.from_url(jwks_server.url)


def test_from_url_rejects_an_invalid_document(jwks_server: JWKSServer) -> None:
    jwks_server.body = b"<html>not a jwks</html>"
    with pytest.raises(InvalidJWKS):
        KeySet.from_url(jwks_server.url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.test/jwks", "jwks.json"])
def test_from_url_only_fetches_http_urls(url: str) -> None:
    with pytest.raises(JWKSFetchFailed):
        KeySet.from_url(url)


def test_from_url_connection_refused() -> None:
    server = JWKSServer(b"{}")
    url = server.url
    server.close()
    with pytest.raises(JWKSFetchFailed):
        KeySet.from_url(url, timeout_s=1.0)
