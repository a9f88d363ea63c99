"""Prometheus metrics (prometheus-client): what the service counts, and how they are served.

A leaf: the streaming engine, the API and the runtime record into the metrics declared here;
``app.py`` serves them at ``/metrics`` for a bearer token, ``cli.py`` on a port of their own.
With ``trickle serve --workers N`` every worker writes its values to files in
``Settings.resolved_metrics_dir`` (prometheus-client's multiprocess mode: ``cli.py`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start) and a scrape adds them up.

Amounts here are a monitoring view (a float counter is exact to 2^53 minor units); the ledger is
the record of money, and ``trickle ledger check`` its proof.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from sqlalchemy import Engine, event

from trickle.settings import Settings

ReceiptKind = Literal["stream", "payment"]
Surface = Literal["http", "stream", "ledger"]
PoolName = Literal["service", "commit"]

RECEIPTS_ISSUED = Counter(
    "trickle_receipts_issued",
    "Receipts signed and sent (stream increments, one-time payments)",
    ["kind"],
)
MONEY_MOVED = Counter(
    "trickle_money_moved_minor",
    "Minor units paid by readers (streams and one-time payments), by asset code",
    ["currency", "kind"],
)
OPEN_SOCKETS = Gauge("trickle_open_sockets", "Stream WebSockets open", multiprocess_mode="livesum")
ACTIVE_STREAMS = Gauge(
    "trickle_active_streams", "Streams in state active (accruing)", multiprocess_mode="livesum"
)
COMMIT_GROUP_SIZE = Histogram(
    "trickle_commit_group_size",
    "Increments in one group commit",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
COMMIT_LATENCY = Histogram(
    "trickle_commit_latency_seconds",
    "From a group's staging to its COMMIT's return",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REFUSALS = Counter(
    "trickle_refusals", "Stream increments the ledger refused, by reason", ["reason"]
)
ERRORS = Counter(
    "trickle_errors",
    "Errors answered (HTTP: by error code; stream: by protocol error code; ledger: failed "
    "group commits)",
    ["surface", "code"],
)
DB_POOL_CHECKED_OUT = Gauge(
    "trickle_db_pool_checked_out",
    "Database connections in use, by pool",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "trickle_db_pool_size",
    "Database connections a pool keeps (its overflow comes on top)",
    ["pool"],
    multiprocess_mode="livesum",
)
KEY_AGE = Gauge(
    "trickle_signing_key_age_seconds",
    "How long the active signing key has signed",
    multiprocess_mode="livemax",
)


def error(surface: Surface, code: str) -> None:
    ERRORS.labels(surface=surface, code=code).inc()


def receipts(kind: ReceiptKind, count: int, amount_minor: int, currency: str) -> None:
    if count:
        RECEIPTS_ISSUED.labels(kind=kind).inc(count)
    if amount_minor:
        MONEY_MOVED.labels(currency=currency, kind=kind).inc(amount_minor)


def key_age(active_since: dt.datetime | None, now: dt.datetime) -> None:
    if active_since is None:
        return
    if active_since.tzinfo is None:  # SQLite gives naive UTC
        active_since = active_since.replace(tzinfo=dt.UTC)
    KEY_AGE.set(max(0.0, (now - active_since).total_seconds()))


def watch_pool(engine: Engine, pool: PoolName) -> None:
    """Count the engine's connections in use (checkout/checkin), and its size."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        DB_POOL_SIZE.labels(pool=pool).inc(size())
    checked_out = DB_POOL_CHECKED_OUT.labels(pool=pool)

    def on_checkout(*_args: Any) -> None:
        checked_out.inc()

    def on_checkin(*_args: Any) -> None:
        checked_out.dec()

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)


def unwatch_pool(engine: Engine, pool: PoolName) -> None:
    """The engine is disposed: its size no longer counts."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        DB_POOL_SIZE.labels(pool=pool).dec(size())


# --- serving ---------------------------------------------------------------------------------


def multiprocess_mode(settings: Settings) -> bool:
    return settings.workers > 1


def registry(settings: Settings) -> CollectorRegistry:
    """What a scrape reads: this process's metrics, or (``--workers N``) every worker's files."""
    if not multiprocess_mode(settings):
        return REGISTRY
    collected = CollectorRegistry()
    collected.register(_WorkersCollector(settings.resolved_metrics_dir))
    return collected


_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


class _WorkersCollector(multiprocess.MultiProcessCollector):
    """prometheus-client's collector over the workers' files, which first forgets the live
    gauges (open sockets, streams, pools) of workers that are gone: one killed (kill -9, or
    uvicorn's supervisor restarting a worker that stopped answering) never said so itself."""

    def __init__(self, folder: Path) -> None:
        super().__init__(None, path=str(folder))  # type: ignore[no-untyped-call]
        self._folder = folder

    def collect(self) -> Iterable[Any]:
        for name in os.listdir(self._folder):
            match = _LIVE_FILE.fullmatch(name)
            if match is not None and not _alive(int(match.group(1))):
                multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                    int(match.group(1)), str(self._folder)
                )
        return super().collect()  # type: ignore[no-any-return,no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def exposition(settings: Settings) -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    return generate_latest(registry(settings)), CONTENT_TYPE_LATEST


def prepare_multiprocess_dir(settings: Settings) -> str:
    """Empty the workers' metrics folder (prometheus-client: wipe it between runs) and return
    it, for ``PROMETHEUS_MULTIPROC_DIR``."""
    folder = settings.resolved_metrics_dir
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(mode=0o700, parents=True)
    return str(folder)


def process_stopped(settings: Settings, pid: int) -> None:
    """A worker stops: its live gauges (sockets, streams, pools) stop counting."""
    if multiprocess_mode(settings):
        path = str(settings.resolved_metrics_dir)
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def serve_port(settings: Settings) -> threading.Thread:
    """The metrics on a port of their own (``TRICKLE_METRICS_PORT``), served by a daemon thread
    of this process: the ``trickle serve`` process itself, which with ``--workers N`` streams
    nothing and adds up its workers' files."""
    _server, thread = start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=registry(settings)
    )
    return thread
