"""``SiteReceipts``: forwarded receipts verified against the shared vectors, credited to visitor
sessions with the per-``sid`` increase rule in every store, and the framework-neutral endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.verifier.signing import NOW, make_site, receipt
from tests.verifier.stores import store_fixture
from trickle_verifier import (
    SITE_ERRORS,
    MemorySiteStore,
    ReceiptResult,
    SiteReceipts,
    SQLAlchemySiteStore,
    SQLiteSiteStore,
    Verifier,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


make_store = store_fixture(MemorySiteStore, SQLiteSiteStore, SQLAlchemySiteStore)


# --- the shared vectors -------------------------------------------------------------------


def test_every_invalid_vector_credits_nothing_and_reports_its_code(
    vectors: dict[str, Any], make_verifier: Callable[..., Verifier]
) -> None:
    site = make_site(make_verifier, MemorySiteStore(), key=None)
    for vector in vectors["invalid"]:
        result = site.forward(
            "visitor-1", [vector["token"]], binding=vector["binding"], now=vector["now"]
        )
        (one,) = result.results
        assert one.code == vector["code"], vector["name"]
        assert one.credited_minor == 0 and one.receipt is None
        assert one.to_json() == {"code": vector["code"], "message": one.message}
        assert one.message, vector["name"]
    assert site.paid_minor("visitor-1") == 0


def test_every_valid_vector_is_credited_or_refused_for_its_asset(
    vectors: dict[str, Any], make_verifier: Callable[..., Verifier]
) -> None:
    for vector in vectors["valid"]:
        site = make_site(make_verifier, MemorySiteStore(), key=None)
        (one,) = site.forward(
            "visitor-1", [vector["token"]], binding=vector["binding"], now=vector["now"]
        ).results
        claims = vector["claims"]
        if (claims["cur"], claims["scale"]) == ("USD", 9):
            assert one.code == "ok", vector["name"]
            assert one.credited_minor == int(claims["tot"])
            assert site.paid_minor("visitor-1") == int(claims["tot"])
        else:
            assert one.code == "wrong_asset", vector["name"]
            assert one.credited_minor == 0 and site.paid_minor("visitor-1") == 0


def test_credit_vectors_in_one_session(
    vectors: dict[str, Any], make_verifier: Callable[..., Verifier]
) -> None:
    for sequence in vectors["credit"]:
        site = make_site(make_verifier, MemorySiteStore(), key=None)
        expected_total = 0
        for step in sequence["steps"]:
            (one,) = site.forward("visitor-1", [step["token"]]).results
            assert one.to_json() == {"code": "ok", "credited": step["credited"]}, sequence["name"]
            expected_total += int(step["credited"])
        assert site.paid_minor("visitor-1") == expected_total


# --- crediting visitor sessions, in every store ------------------------------------------


def test_forward_credits_increases_and_answers_the_wire_shape(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    site = make_site(make_verifier, make_store())
    bnd = site.binding_for("visitor-1")
    tokens = [
        receipt(generator, "S1", 1, 100, bnd=bnd),
        receipt(generator, "S1", 2, 250, bnd=bnd),
        receipt(generator, "S1", 2, 250, bnd=bnd),  # replayed
        receipt(generator, "S1", 1, 100, bnd=bnd),  # older
        receipt(generator, "S2", 1, 40, bnd=bnd),
    ]
    result = site.forward("visitor-1", tokens)
    assert result.to_json() == {
        "results": [
            {"code": "ok", "credited": "100"},
            {"code": "ok", "credited": "150"},
            {"code": "ok", "credited": "0"},
            {"code": "ok", "credited": "0"},
            {"code": "ok", "credited": "40"},
        ],
        "paid": {"total": "290", "currency": "USD", "scale": 9},
    }
    assert result.credited_minor == 290
    # The same batch again (the bridge resends when an answer is lost): nothing more.
    again = site.forward("visitor-1", tokens)
    assert [r.credited_minor for r in again.results] == [0] * 5
    assert again.paid_minor == 290
    assert site.has_paid("visitor-1", 290) and not site.has_paid("visitor-1", 291)
    assert site.paid_minor("visitor-2") == 0 and not site.has_paid("visitor-2", 1)
    assert site.has_paid("visitor-2", 0)


def test_forged_foreign_expired_and_mismatched_receipts_credit_nothing(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    site = make_site(make_verifier, make_store())
    mine, theirs = site.binding_for("visitor-1"), site.binding_for("visitor-2")
    cases = {
        "bad_signature": receipt(generator, "F1", 1, 500, bnd=mine, key=generator.OUTSIDER),
        "wrong_audience": receipt(generator, "F2", 1, 500, bnd=mine, aud="https://other.example"),
        "wrong_payee": receipt(generator, "F3", 1, 500, bnd=mine, pay="https://trickle.test/p/eve"),
        "wrong_issuer": receipt(generator, "F4", 1, 500, bnd=mine, iss="https://evil.example"),
        "expired": receipt(generator, "F5", 1, 500, bnd=mine, iat=NOW - 1000, exp=NOW - 100),
        "binding_mismatch": receipt(generator, "F6", 1, 500, bnd=theirs),
        "wrong_asset": receipt(generator, "F8", 1, 500, bnd=mine, cur="EUR"),
    }
    unbound = receipt(generator, "F7", 1, 500)
    result = site.forward("visitor-1", [*cases.values(), unbound, 42])
    codes = [one.code for one in result.results]
    assert codes == [*cases, "binding_mismatch", "malformed_jws"]
    assert all(one.credited_minor == 0 for one in result.results)
    assert result.paid_minor == 0
    # The receipt bound to visitor-2 still credits visitor-2 (nothing was consumed).
    (one,) = site.forward("visitor-2", [cases["binding_mismatch"]]).results
    assert one.to_json() == {"code": "ok", "credited": "500"}
    assert site.paid_minor("visitor-1") == 0 and site.paid_minor("visitor-2") == 500


def test_without_binding_a_stream_stays_with_the_first_session(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    site = make_site(make_verifier, make_store(), key=None)
    first = receipt(generator, "U1", 1, 100)
    later = receipt(generator, "U1", 2, 300)
    assert site.forward("visitor-1", [first]).results[0].credited_minor == 100
    (copied,) = site.forward("visitor-2", [later]).results
    assert copied.code == "session_mismatch" and copied.credited_minor == 0
    assert copied.to_json()["message"] == SITE_ERRORS["session_mismatch"][1]
    assert site.forward("visitor-1", [later]).results[0].credited_minor == 200
    assert (site.paid_minor("visitor-1"), site.paid_minor("visitor-2")) == (300, 0)


def test_has_paid_within_a_window(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    now = [float(NOW)]
    site = make_site(make_verifier, make_store(), clock=lambda: now[0])
    bnd = site.binding_for("visitor-1")
    site.forward("visitor-1", [receipt(generator, "W1", 1, 100, bnd=bnd)])
    now[0] += 100
    site.forward("visitor-1", [receipt(generator, "W1", 2, 250, bnd=bnd)])
    assert site.paid_minor("visitor-1") == 250
    assert site.paid_minor("visitor-1", within_s=50) == 150
    assert site.paid_minor("visitor-1", within_s=100) == 250
    assert site.has_paid("visitor-1", 150, within_s=50)
    assert not site.has_paid("visitor-1", 151, within_s=50)
    assert site.has_paid("visitor-1", 250, within_s=30, now=NOW + 60) is False
    assert site.has_paid("visitor-1", 100, within_s=1, now=NOW)


def test_sessions_share_one_database(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    one, two = make_site(make_verifier, make_store()), make_site(make_verifier, make_store())
    bnd = one.binding_for("visitor-1")
    assert two.binding_for("visitor-1") == bnd
    one.forward("visitor-1", [receipt(generator, "D1", 1, 70, bnd=bnd)])
    (again,) = two.forward("visitor-1", [receipt(generator, "D1", 1, 70, bnd=bnd)]).results
    assert again.credited_minor == 0
    assert two.paid_minor("visitor-1") == 70


def test_concurrent_forwards_credit_each_stream_once(
    make_store: Callable[[], Any], make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    sites = [make_site(make_verifier, make_store()) for _ in range(4)]
    bnd = sites[0].binding_for("visitor-1")
    tokens = [receipt(generator, sid, seq, seq * 10, bnd=bnd) for sid in "AB" for seq in (1, 2, 3)]
    credited: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(sites))

    def run(site: SiteReceipts) -> None:
        barrier.wait()
        for _ in range(3):
            result = site.forward("visitor-1", tokens)
            with lock:
                credited.extend(one.credited_minor for one in result.results)

    threads = [threading.Thread(target=run, args=(site,)) for site in sites]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(credited) == 4 * 3 * len(tokens)
    assert sum(credited) == 30 + 30
    assert sites[0].paid_minor("visitor-1") == 60


# --- the framework-neutral endpoint --------------------------------------------------------


def test_handle_forward_answers_and_refuses(
    make_verifier: Callable[..., Verifier], generator: ModuleType
) -> None:
    site = make_site(make_verifier, MemorySiteStore())
    bnd = site.binding_for("visitor-1")
    body = json.dumps({"receipts": [receipt(generator, "H1", 1, 9, bnd=bnd)]}).encode()
    ct = "application/json"
    assert site.handle_forward("visitor-1", body, content_type="application/json; charset=utf-8")[
        1
    ] == {
        "results": [{"code": "ok", "credited": "9"}],
        "paid": {"total": "9", "currency": "USD", "scale": 9},
    }
    assert site.handle_forward("visitor-1", b'{"receipts": []}', content_type=ct) == (
        200,
        {"results": [], "paid": {"total": "9", "currency": "USD", "scale": 9}},
    )
    refusals: list[tuple[dict[str, Any], int]] = [
        (dict(session_id="visitor-1", body=body, content_type=ct, method="GET"), 405),
        (dict(session_id="visitor-1", body=body, content_type="text/plain"), 415),
        (dict(session_id="visitor-1", body=body, content_type=None), 415),
        (dict(session_id=None, body=body, content_type=ct), 401),
        (dict(session_id="has space", body=body, content_type=ct), 401),
        (dict(session_id="visitor-1", body=body, content_type=ct, max_body_bytes=10), 413),
        (dict(session_id="visitor-1", body=b"{", content_type=ct), 400),
        (dict(session_id="visitor-1", body=b"\xff", content_type=ct), 400),
        (dict(session_id="visitor-1", body=b"[]", content_type=ct), 422),
        (dict(session_id="visitor-1", body=b'{"receipts": "x"}', content_type=ct), 422),
        (dict(session_id="visitor-1", body=b'{"receipts": [1]}', content_type=ct), 422),
        (dict(session_id="visitor-1", body=b'{"receipts": [], "x": 1}', content_type=ct), 422),
        (
            dict(
                session_id="visitor-1",
                body=json.dumps({"receipts": ["a"] * 101}).encode(),
                content_type=ct,
            ),
            422,
        ),
    ]
    for kwargs, status in refusals:
        session_id, raw = kwargs.pop("session_id"), kwargs.pop("body")
        got_status, document = site.handle_forward(session_id, raw, **kwargs)
        assert got_status == status, (kwargs, document)
        code = document["error"]["code"]
        assert SITE_ERRORS[code][0] == status and document["error"]["message"]
    assert site.paid_minor("visitor-1") == 9


def test_handle_forward_hides_store_failures(
    make_verifier: Callable[..., Verifier], generator: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(MemorySiteStore):
        def credit(self, session_id: str, receipt: Any, at_ms: int) -> int | None:
            raise RuntimeError("database is down: secret connection string")

    site = make_site(make_verifier, BrokenStore())
    token = receipt(generator, "B1", 1, 9, bnd=site.binding_for("visitor-1"))
    status, document = site.handle_forward(
        "visitor-1", json.dumps({"receipts": [token]}).encode(), content_type="application/json"
    )
    assert status == 500 and document["error"]["code"] == "internal_error"
    assert "secret" not in json.dumps(document)
    assert "crediting forwarded receipts failed" in caplog.text


def test_binding_values(make_verifier: Callable[..., Verifier]) -> None:
    site = make_site(make_verifier, MemorySiteStore())
    first, second = site.binding_for("visitor-1"), site.binding_for("visitor-2")
    assert first != second and first == site.binding_for("visitor-1")
    assert first.startswith("b1-") and len(first) == 35 and first.isascii()
    other = make_site(make_verifier, MemorySiteStore(), key=b"another-key-of-32-bytes-xxxxxxxx")
    assert other.binding_for("visitor-1") != first
    with pytest.raises(ValueError, match="binding_key"):
        make_site(make_verifier, MemorySiteStore(), key=None).binding_for("visitor-1")
    with pytest.raises(ValueError, match="16"):
        make_site(make_verifier, MemorySiteStore(), key=b"short")
    with pytest.raises(ValueError, match="session id"):
        site.binding_for("")
    with pytest.raises(ValueError, match="at_least_minor"):
        site.has_paid("visitor-1", -1)
    with pytest.raises(TypeError):
        SiteReceipts(object(), MemorySiteStore())  # type: ignore[arg-type]


def test_receipt_result_json() -> None:
    assert ReceiptResult("ok", 5).to_json() == {"code": "ok", "credited": "5"}
    assert ReceiptResult("expired", message="too late").to_json() == {
        "code": "expired",
        "message": "too late",
    }


def test_import_needs_neither_sqlalchemy_nor_starlette() -> None:
    script = """
import sys
sys.modules["sqlalchemy"] = None
sys.modules["starlette"] = None
import trickle_verifier as tv
site = tv.SiteReceipts.__name__
assert not {"sqlalchemy", "starlette"} & {n for n in sys.modules if sys.modules[n] is not None}
try:
    import trickle_verifier.asgi
except ImportError:
    print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
