"""deploy/: the environment file names every setting and loads as valid production settings;
Debian's nginx accepts the site config (``nginx -t``), and with it in front of a real ``trickle
serve`` answers /readyz over TLS, carries a stream's WebSocket, passes its request id on, and cuts
what uvicorn cannot: a client that sends its headers slowly, and one whose headers are too large."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import Gauge
from websockets.asyncio.client import connect

from tests.prerequisites import unavailable
from tests.service.stream_client import ORIGIN, ServerProcess, free_port, new_kek, seed, server_env
from trickle.settings import Settings, env_name, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NGINX = os.environ.get("TRICKLE_TEST_NGINX", "/usr/sbin/nginx")


def _env_file() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "trickle.env").read_text().splitlines():
        match = re.fullmatch(r"(TRICKLE_[A-Z_]+)=(.*)", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def test_the_environment_file_lists_every_setting() -> None:
    text = (DEPLOY / "trickle.env").read_text()
    listed = re.findall(r"^#?(TRICKLE_[A-Z_]+)=", text, re.MULTILINE)
    assert len(listed) == len(set(listed)), "a setting is listed twice"
    assert set(listed) == {env_name(f.name) for f in dataclasses.fields(Settings)}


def test_the_environment_file_is_valid_production_settings(tmp_path: Path) -> None:
    values = _env_file()
    assert values["TRICKLE_ENV"] == "production"
    values["TRICKLE_KEY_ENCRYPTION_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    values["TRICKLE_DATA_DIR"] = str(tmp_path)
    settings = load_settings(values)
    assert settings.public_url.startswith("https://")
    assert settings.forwarded_allow_ips and settings.metrics_port


def test_the_systemd_unit_serves_with_the_environment_file() -> None:
    unit = (DEPLOY / "systemd" / "trickle.service").read_text()
    assert "EnvironmentFile=/etc/trickle/trickle.env" in unit
    assert re.search(r"^ExecStart=\S+/trickle serve$", unit, re.MULTILINE)
    assert "KillSignal=SIGTERM" in unit  # the graceful stop
    backup = (DEPLOY / "systemd" / "trickle-backup.service").read_text()
    assert "pg_dump --format=custom" in backup


# --- nginx ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Nginx:
    root: Path
    https_port: int
    http_port: int

    @property
    def conf(self) -> Path:
        return self.root / "nginx.conf"


def _nginx(tmp_path: Path, upstream_port: int) -> Nginx:
    """The site config as shipped, with only what a test machine must change: the node and
    listen addresses, the certificate (a fresh self-signed one), the log folder."""
    if not Path(NGINX).exists():
        unavailable("nginx", f"no executable at {NGINX} (Debian package nginx)")
    root = tmp_path / "nginx"
    root.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=trickle.example.com",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    nginx = Nginx(root, free_port(), free_port())
    site = (DEPLOY / "nginx" / "trickle.conf").read_text()
    site = re.sub(r"server 10\.0\.0\.1[12]:8420 [^;]*;", "", site)
    site = site.replace("least_conn;", f"least_conn;\n    server 127.0.0.1:{upstream_port};")
    site = site.replace("listen [::]:80;", "").replace("listen [::]:443 ssl http2;", "")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{nginx.http_port};")
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{nginx.https_port} ssl http2;")
    site = re.sub(r"/etc/letsencrypt/live/[^/]+/fullchain\.pem", str(root / "cert.pem"), site)
    site = re.sub(r"/etc/letsencrypt/live/[^/]+/privkey\.pem", str(root / "key.pem"), site)
    site = site.replace("/var/log/nginx/", f"{root}/")
    (root / "site.conf").write_text(site)
    temp = "\n".join(
        f"  {kind}_temp_path {root}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    nginx.conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\n"
        f"error_log {root}/error.log;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n{temp}\n  access_log {root}/access.log;\n  include {root}/site.conf;\n}}\n"
    )
    return nginx


def test_nginx_accepts_the_site_config(tmp_path: Path) -> None:
    nginx = _nginx(tmp_path, free_port())
    checked = subprocess.run(
        [
            NGINX,
            "-t",
            "-c",
            str(nginx.conf),
            "-p",
            str(nginx.root),
            "-e",
            str(nginx.root / "e.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _https_get(port: int, path: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        _tls().wrap_socket(raw, server_hostname="trickle.example.com") as tls,
    ):
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: trickle.example.com\r\n{headers}"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), fields, body


def _slow_headers_cut_after_s(port: int) -> float:
    """Send half a request head, then nothing: seconds until nginx closes the connection."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        _tls().wrap_socket(raw, server_hostname="trickle.example.com") as tls,
    ):
        started = time.monotonic()
        tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: trickle.example.com\r\nX-Slow: ")
        try:
            while tls.recv(65536):
                pass
        except (ConnectionResetError, ssl.SSLError):
            pass
        return time.monotonic() - started


async def _one_receipt_through_nginx(port: int, token: str, pointer: str) -> dict[str, object]:
    async with connect(
        f"wss://127.0.0.1:{port}/api/v1/stream", ssl=_tls(), server_hostname="trickle.example.com"
    ) as ws:
        await ws.send(json.dumps({"type": "hello", "v": 1, "token": token}))
        start = {"type": "start", "ref": "r1", "origin": ORIGIN, "pointer": pointer}
        await ws.send(json.dumps(start))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "receipt":
                return dict(message)


def test_nginx_in_front_of_a_node(tmp_path: Path) -> None:
    kek = new_kek()
    database_url = f"sqlite:///{tmp_path / 'trickle.db'}"
    seeded = seed(database_url, tmp_path / "seed", kek, readers=1, funded_minor=10**12)
    server = ServerProcess(
        server_env(
            database_url,
            tmp_path / "data",
            kek,
            100,
            forwarded_allow_ips="127.0.0.1",
            log_level="info",
        ),
        tmp_path / "logs",
    )
    server.start()
    nginx = _nginx(tmp_path, server.port)
    process = subprocess.Popen(
        [NGINX, "-c", str(nginx.conf), "-p", str(nginx.root), "-e", str(nginx.root / "e.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, headers, body = _https_get(nginx.https_port, "/readyz")
                break
            except OSError:
                assert process.poll() is None, (nginx.root / "e.log").read_text()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)
        assert status == 200, body
        assert json.loads(body)["status"] == "ready"
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])  # nginx's $request_id
        assert headers["strict-transport-security"] == "max-age=63072000"

        receipt = asyncio.run(
            _one_receipt_through_nginx(nginx.https_port, seeded.tokens[0], seeded.payees[0])
        )
        assert receipt["seq"] == 1

        # Metrics never reach the public side; an oversized header is refused by nginx.
        assert _https_get(nginx.https_port, "/metrics")[0] == 404
        assert _https_get(nginx.https_port, "/readyz", f"X-Big: {'a' * 9000}\r\n")[0] == 400
        # uvicorn would wait for the rest of these headers for ever; nginx cuts at 10 s.
        cut_after_s = _slow_headers_cut_after_s(nginx.https_port)
        assert 9 <= cut_after_s <= 20, cut_after_s
    finally:
        process.terminate()
        process.wait(timeout=30)
        server.stop()
    # The service logged nginx's request id: one id across both logs.
    service_log = server.log_path.read_text()
    assert headers["x-request-id"] in service_log
    access_log = (nginx.root / "trickle.access.log").read_text()
    assert f"rid={headers['x-request-id']}" in access_log
    assert shutil.which("openssl")


# --- the Grafana dashboard and the metrics table ------------------------------------------


def _service_metrics() -> set[str]:
    """The names scrapes show for the metrics trickle.metrics declares."""
    from prometheus_client import Counter, Histogram

    from trickle import metrics

    names = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names.add(f"{value._name}_total")
        elif isinstance(value, Histogram | Gauge):
            names.add(value._name)
    return names


def test_the_dashboard_and_the_docs_show_every_metric_and_no_other() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = set(re.findall(r"\b(trickle_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[{\[ )])", queries))
    declared = _service_metrics()
    assert used == declared
    table = (REPO / "docs" / "deploy.md").read_text()
    assert set(re.findall(r"^\| `(trickle_[a-z_]+)` \|", table, re.MULTILINE)) == declared
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


# --- the client address behind a proxy ----------------------------------------------------


def _sign_up(base_url: str, email: str, forwarded_for: str) -> int:
    body = json.dumps({"email": email, "password": "correct horse battery"}).encode()
    request = urllib.request.Request(
        f"{base_url}/api/v1/accounts",
        data=body,
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize("trusted", [True, False])
def test_the_sign_up_limit_counts_the_address_the_proxy_names(
    tmp_path: Path, trusted: bool
) -> None:
    """With TRICKLE_FORWARDED_ALLOW_IPS naming the proxy, each client behind it has its own
    sign-up limit (X-Forwarded-For); without it, the header is ignored (a client could name any
    address) and everyone behind the proxy shares the proxy's."""
    settings: dict[str, object] = {"signup_max_per_address": 2, "log_level": "info"}
    if trusted:
        settings["forwarded_allow_ips"] = "127.0.0.1"
    database_url = f"sqlite:///{tmp_path / 'trickle.db'}"
    server = ServerProcess(
        server_env(database_url, tmp_path / "data", new_kek(), 1000, **settings),
        tmp_path / "logs",
    )
    server.start()
    try:
        first = [_sign_up(server.http_url, f"a{i}@example.com", "198.51.100.1") for i in range(3)]
        second = [_sign_up(server.http_url, f"b{i}@example.com", "198.51.100.2") for i in range(2)]
    finally:
        server.stop()
    assert first == [201, 201, 429]
    assert second == ([201, 201] if trusted else [429, 429])
    clients = {
        event.get("client")
        for event in map(json.loads, server.log_path.read_text().splitlines())
        if event.get("path") == "/api/v1/accounts"
    }
    assert clients == ({"198.51.100.1", "198.51.100.2"} if trusted else {"127.0.0.1"})
