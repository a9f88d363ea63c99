"""Running the demo publisher next to the service (``trickle demo``): a uvicorn server in a
background thread that first waits for the service's public keys, as a real site would fetch
them. It reads the settings ``trickle demo`` runs with through ``ServiceSettings``, so it
imports nothing of the service."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from trickle_publisher.app import PublisherConfig, create_publisher_app, find_sdk_dir
from trickle_verifier import (
    KeySet,
    KeySetError,
    SiteReceipts,
    SQLitePurchaseStore,
    SQLiteSiteStore,
    Verifier,
)

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("trickle_publisher")

KEYS_WAIT_S = 60.0


class ServiceSettings(Protocol):
    """What the publisher reads of the service's settings (``trickle.settings.Settings`` has
    it all): the issuer it trusts, the host it listens on, the folder of its SQLite file, the
    asset it counts in, and the log level."""

    @property
    def issuer(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def currency(self) -> str: ...

    @property
    def asset_scale(self) -> int: ...

    @property
    def log_level(self) -> str: ...


def publisher_origin(settings: ServiceSettings, port: int) -> str:
    """The origin readers open the publisher at (receipts' ``aud`` must equal it)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class PublisherThread(threading.Thread):
    """Serves the publisher until ``stop()``; a daemon, so it never keeps the process alive.
    ``FileNotFoundError`` (from ``find_sdk_dir``) when there is no page bridge to serve."""

    def __init__(self, settings: ServiceSettings, payment_pointer: str, port: int) -> None:
        super().__init__(name="trickle-publisher", daemon=True)
        self.settings = settings
        self.payment_pointer = payment_pointer
        self.port = port
        self.origin = publisher_origin(settings, port)
        self.store_path = Path(settings.data_dir) / "publisher.sqlite3"
        self.sdk_dir = find_sdk_dir()
        self._server: uvicorn.Server | None = None
        self._stopping = threading.Event()

    def _keys(self) -> KeySet | None:
        url = f"{self.settings.issuer}/.well-known/jwks.json"
        deadline = time.monotonic() + KEYS_WAIT_S
        while not self._stopping.is_set():
            try:
                return KeySet.from_url(url, timeout_s=2.0)
            except KeySetError as exc:
                if time.monotonic() > deadline:
                    log.error("publisher: no keys from %s (%s); not serving", url, exc.code)
                    return None
            self._stopping.wait(0.5)
        return None

    def run(self) -> None:
        import uvicorn

        keys = self._keys()
        if keys is None:
            return
        verifier = Verifier(
            issuer=self.settings.issuer,
            audience=self.origin,
            payees=[self.payment_pointer],
            keys=keys,
        )
        site = SiteReceipts(
            verifier,
            SQLiteSiteStore(self.store_path),
            binding_key=secrets.token_bytes(32),
            currency=self.settings.currency,
            scale=self.settings.asset_scale,
        )
        app = create_publisher_app(
            site,
            PublisherConfig(payment_pointer=self.payment_pointer, sdk_dir=self.sdk_dir),
            purchase_store=SQLitePurchaseStore(self.store_path),  # the credits' file
        )
        host = self.origin.split("//", 1)[1].rsplit(":", 1)[0].strip("[]")
        server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=self.port, log_level=self.settings.log_level, lifespan="off"
            )
        )
        self._server = server
        if not self._stopping.is_set():
            server.run()  # not the main thread: uvicorn leaves the signal handlers alone

    def stop(self) -> None:
        self._stopping.set()
        server = self._server
        if server is not None:
            server.should_exit = True


def start_publisher(settings: ServiceSettings, payment_pointer: str, port: int) -> PublisherThread:
    """Start the demo publisher on ``port`` in a background thread."""
    thread = PublisherThread(settings, payment_pointer, port)
    thread.start()
    return thread
