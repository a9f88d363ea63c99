"""nginx (Debian's package) as the reverse proxy in front of several service nodes: a config
generated for the test, a temporary prefix, an unprivileged port, no daemon. It terminates the
clients' WebSockets and opens its own to a node; a node that refuses connections is skipped
(``proxy_next_upstream``), so after a node dies its clients land on another one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.prerequisites import unavailable
from tests.processes import ProcessFailed, terminate

NGINX = "/usr/sbin/nginx"

_CONFIG = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile {files};
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream trickle {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://trickle;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_connect_timeout 10s;
      proxy_read_timeout 120s;
      proxy_send_timeout 120s;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_buffering off;
    }}
  }}
}}
"""


def nginx_binary() -> str:
    """Debian's nginx; skips locally and fails in CI when it is not installed."""
    found = NGINX if os.access(NGINX, os.X_OK) else shutil.which("nginx")
    if found is None:
        unavailable("nginx", f"{NGINX} not found (Debian package nginx; .ci/run installs it)")
    return found


class Nginx:
    """nginx on 127.0.0.1:``port`` proxying to the nodes on ``upstream_ports`` (round robin)."""

    def __init__(
        self, prefix: Path, port: int, upstream_ports: list[int], connections: int = 4096
    ) -> None:
        self.prefix = prefix
        self.port = port
        self.upstream_ports = upstream_ports
        self.connections = connections
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/stream"

    def start(self, timeout_s: float = 15.0) -> None:
        binary = nginx_binary()
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"    server 127.0.0.1:{port} max_fails=0;"  # a refused connect: the next node
            for port in self.upstream_ports
        )
        config = self.prefix / "nginx.conf"
        config.write_text(
            _CONFIG.format(
                prefix=self.prefix,
                port=self.port,
                servers=servers,
                connections=self.connections,
                files=self.connections * 2 + 64,
            )
        )
        with (self.prefix / "stdout.log").open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "-p", str(self.prefix), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise ProcessFailed(f"nginx exited at start-up:\n{self.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessFailed(f"nginx did not listen on {self.port}:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, 10)

    def log(self) -> str:
        parts = []
        for name in ("stdout.log", "error.log"):
            path = self.prefix / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)
