"""docs/site-owners.md, followed literally: every code block is a part of one example site, the
same files the dashboard hands a creator (``trickle.dashboard.snippets``); written out as the doc
says, its setup block runs and its server serves pages, the bridge and both endpoints, crediting
signed receipts to the visitor whose cookie and binding they carry. (tests/e2e/
test_site_owner_doc.py runs the same site against a real service, the extension and Chromium.)
"""

from __future__ import annotations

import http.server
import json
import re
import runpy
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests import site_doc
from tests.verifier.conftest import load_generator, load_vectors
from trickle.dashboard import snippets
from trickle.settings import Settings

ORIGIN = "http://127.0.0.1:8000"  # what the doc says to use when trying it locally
PRICE_MINOR = 1_000_000
GUIDE_PRICE_MINOR = 50_000_000


def test_every_code_block_is_a_marked_part_of_the_example_site_in_order() -> None:
    found = site_doc.blocks()
    parts = [block.part for block in found if block.part is not None]
    assert parts == [part.id for part in snippets.PARTS]
    for block in found:
        if block.part is not None:
            assert block.text == snippets.part_text(block.part), (
                f"docs/site-owners.md:{block.line}: the block differs from "
                f"service/trickle/dashboard/site_example/{block.part}.txt; they are one site: "
                "change both"
            )
            language = {part.id: part.language for part in snippets.PARTS}[block.part]
            assert block.language == language, block.line
    assert [block.part for block in found if block.part is None] == [None]  # the diagram


def test_a_block_without_a_marker_is_refused() -> None:
    text = "Some text.\n\n```python\nprint('not run')\n```\n"
    with pytest.raises(AssertionError, match="a code block without a marker"):
        site_doc.blocks(text)
    marked = "<!-- site-example: run -->\n```sh\nuvicorn app:app --port 8000\n```\n"
    assert site_doc.blocks(marked)[0].part == "run"


def test_the_dashboard_hands_out_the_docs_files_with_the_payees_values() -> None:
    settings = Settings(public_url="https://pay.example.net")
    pointer = "https://pay.example.net/p/bob"
    handed = {s.id: s.text for s in snippets.for_payee(settings, pointer, ["https://bob.example"])}
    files = site_doc.site_files()
    personal = {
        path: snippets.personalize(
            text, issuer=settings.issuer, pointer=pointer, origin="https://bob.example"
        )
        for path, text in files.items()
    }
    assert handed == {
        "link": personal["link.html"],
        "setup": personal["setup.sh"],
        "server": personal["app.py"],
        "article": personal["templates/article.html"],
        "guide": personal["templates/guide.html"],
        "run": personal["run.sh"],
    }
    server = handed["server"]
    assert 'TRICKLE = "https://pay.example.net"  #' in server
    assert 'POINTER = "https://pay.example.net/p/bob"  #' in server
    assert 'ORIGIN = "https://bob.example"  #' in server
    assert "trickle.example" not in server and "alice" not in server
    assert handed["link"] == '<link rel="monetization" href="https://pay.example.net/p/bob">\n'
    compile(server, "app.py", "exec")
    # Without a verified site, a placeholder the creator must replace (and is told so).
    unverified = snippets.for_payee(settings, pointer, [])
    assert f'ORIGIN = "{snippets.EXAMPLE_ORIGIN}"' in unverified[2].text
    assert snippets.EXAMPLE_ORIGIN in unverified[2].note


# --- the site, run in-process ---------------------------------------------------------------


class _Keys(http.server.BaseHTTPRequestHandler):
    """The service's /.well-known/jwks.json, with the shared vectors' keys."""

    jwks = json.dumps(load_vectors()["jwks"]).encode()

    def do_GET(self) -> None:
        if self.path != "/.well-known/jwks.json":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.jwks)))
        self.end_headers()
        self.wfile.write(self.jwks)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def app(tmp_path: Path, issuer: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    pointer = f"{issuer}/p/alice-blog"
    folder = site_doc.write_site(tmp_path, issuer=issuer, pointer=pointer, origin=ORIGIN)
    monkeypatch.chdir(folder)  # the doc's paths are relative to the site's folder
    return runpy.run_path(str(folder / "app.py"), run_name="app")["app"]


def _receipt(issuer: str, binding: str, amount_minor: int, **changes: Any) -> str:
    generator = load_generator()
    now = int(time.time())
    sid = secrets.token_urlsafe(16)
    claims = generator.claims(
        iss=issuer,
        aud=ORIGIN,
        pay=f"{issuer}/p/alice-blog",
        sid=sid,
        jti=sid,
        amt=str(amount_minor),
        tot=str(amount_minor),
        iat=now,
        exp=now + 300,
        bnd=binding,
        **changes,
    )
    return str(generator.token(body=claims))


def _binding(page: str) -> str:
    found = re.search(
        r'<link rel="monetization" href="([^"]+)" data-trickle-binding="([^"]+)">', page
    )
    assert found, page
    return found.group(2)


def test_the_docs_site_credits_a_visitors_own_receipts_and_unlocks_for_it_alone(
    app: Any, issuer: str
) -> None:
    with TestClient(app, base_url=ORIGIN) as visitor, TestClient(app, base_url=ORIGIN) as other:
        first = visitor.get("/")
        assert first.status_code == 200
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("visitor=") and "HttpOnly" in cookie and "Secure" not in cookie
        assert first.headers["cache-control"] == "no-store"
        assert 'id="locked"' in first.text and 'id="premium"' not in first.text
        assert f'href="{issuer}/p/alice-blog"' in first.text
        binding = _binding(first.text)
        assert visitor.cookies["visitor"] not in first.text  # only the binding is shown
        for name in ("bridge.js", "bridge-forwarding.js", "bridge-payments.js", "bridge-shared.js"):
            served = visitor.get(f"/sdk/{name}")
            assert served.status_code == 200, name
            assert served.headers["content-type"].startswith("text/javascript"), name

        receipt = _receipt(issuer, binding, PRICE_MINOR)
        copied = other.post("/trickle/receipts", json={"receipts": [receipt]})
        assert copied.status_code == 401  # no visitor session yet: nothing to credit
        other.get("/")
        copied = other.post("/trickle/receipts", json={"receipts": [receipt]})
        assert copied.json()["results"][0]["code"] == "binding_mismatch"

        forwarded = visitor.post("/trickle/receipts", json={"receipts": [receipt]})
        assert forwarded.status_code == 200
        assert forwarded.json() == {
            "results": [{"code": "ok", "credited": str(PRICE_MINOR)}],
            "paid": {"total": str(PRICE_MINOR), "currency": "USD", "scale": 9},
        }
        assert 'id="premium"' in visitor.get("/").text
        assert 'id="locked"' in other.get("/").text


def test_the_docs_site_sells_the_guide_for_a_one_time_receipt(app: Any, issuer: str) -> None:
    with TestClient(app, base_url=ORIGIN) as visitor:
        page = visitor.get("/guide")
        assert 'id="buy"' in page.text and 'id="bought"' not in page.text
        binding = _binding(page.text)
        too_low = _receipt(issuer, binding, GUIDE_PRICE_MINOR - 1, otp=True, ord="field-guide")
        refused = visitor.post(
            "/trickle/purchase", json={"receipt": too_low, "order_ref": "field-guide"}
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "amount_too_low")
        paid = _receipt(issuer, binding, GUIDE_PRICE_MINOR, otp=True, ord="field-guide")
        bought = visitor.post(
            "/trickle/purchase", json={"receipt": paid, "order_ref": "field-guide"}
        )
        assert bought.status_code == 200
        assert bought.json() == {
            "code": "ok",
            "order_ref": "field-guide",
            "amount_minor": str(GUIDE_PRICE_MINOR),
            "currency": "USD",
            "scale": 9,
        }
        assert 'id="bought"' in visitor.get("/guide").text
    with TestClient(app, base_url=ORIGIN) as new_browser:  # the same reader, another browser
        assert 'id="buy"' in new_browser.get("/guide").text


def test_the_binding_key_is_made_once_private_and_kept(app: Any) -> None:
    key = Path("binding.key")
    assert len(key.read_bytes()) == 32
    assert key.stat().st_mode & 0o077 == 0
    before = key.read_bytes()
    runpy.run_path("app.py", run_name="app")  # a restart
    assert key.read_bytes() == before
