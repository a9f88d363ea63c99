"""The service's Prometheus metrics during a benchmark run, drawn as the panels of
deploy/grafana-dashboard.json (Grafana is not packaged for Debian, so no dashboard screenshot).

Starts ``trickle serve --workers 2`` with its metrics port on a fresh SQLite database (or
``--database-url``), opens stream connections in steps (so sockets, streams and receipts/s climb),
lets one reader run out of funds (refusals), sends a few invalid messages and unauthenticated
requests (errors), scrapes the metrics port every second, and writes
``docs/images/metrics-bench.png``.

    .venv/bin/python bench/metrics_plot.py [--seconds 40] [--out docs/images/metrics-bench.png]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the stream client and the factories live in the tests package

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.service.stream_client import (  # noqa: E402
    ServerProcess,
    StreamClient,
    free_port,
    new_kek,
    seed,
    server_env,
)

INTERVAL_MS = 250
STREAMS_PER_CONNECTION = 10
Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Sample:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out: Sample = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(sample: Sample, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, have), v in sample.items() if n == name and wanted <= set(have))


def label_values(samples: list[Sample], name: str, label: str) -> list[str]:
    found = {dict(have).get(label) for s in samples for (n, have) in s if n == name}
    return sorted(v for v in found if v is not None)


def quantile(sample: Sample, name: str, q: float) -> float:
    """A histogram's quantile from its cumulative buckets (as histogram_quantile does)."""
    buckets = sorted(
        (float(dict(have)["le"]), v) for (n, have), v in sample.items() if n == f"{name}_bucket"
    )
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / width if width else 0
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def window(a: Sample, b: Sample) -> Sample:
    """The increase between two scrapes of the histograms (what rate(...[window]) sees)."""
    return {key: b[key] - a.get(key, 0.0) for key in b}


async def load(
    server: ServerProcess, tokens: list[str], poor: str, payee: str, seconds: float
) -> None:
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    steps = len(tokens)
    step_s = seconds * 0.6 / steps
    for i, token in enumerate(tokens):  # ramp up: one more connection every step
        client = StreamClient(server.ws_url, token, interval_ms=INTERVAL_MS, keep_every=0)
        starts = [(f"c{i}s{j}", payee) for j in range(STREAMS_PER_CONNECTION)]
        tasks.append(asyncio.create_task(client.run(starts, stop)))
        if i == steps // 2:  # a reader with almost nothing: refusals
            broke = StreamClient(server.ws_url, poor, interval_ms=INTERVAL_MS, keep_every=0)
            tasks.append(asyncio.create_task(broke.run([("p0", payee), ("p1", payee)], stop)))
        if i == steps // 3:  # a few errors: unauthenticated requests
            for _ in range(5):
                with contextlib.suppress(urllib.error.HTTPError):
                    urllib.request.urlopen(f"{server.http_url}/api/v1/me", timeout=5)
        await asyncio.sleep(step_s)
    await asyncio.sleep(seconds * 0.25)
    stop.set()  # then every connection closes: sockets and streams fall to zero
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


def run(seconds: float, connections: int, database_url: str | None) -> list[tuple[float, Sample]]:
    root = Path(tempfile.mkdtemp(prefix="trickle-metrics-"))
    url = database_url or f"sqlite:///{root / 'trickle.db'}"
    kek = new_kek()
    rich = seed(url, root / "seed", kek, readers=connections, funded_minor=10**13)
    poor = seed(url, root / "seed2", kek, readers=1, funded_minor=50_000)
    port = free_port()
    env = server_env(url, root / "data", kek, INTERVAL_MS, workers=2, metrics_port=port)
    server = ServerProcess(env, root / "logs")
    server.start()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    series: list[tuple[float, Sample]] = []
    try:
        deadline = time.monotonic() + 60
        while total(scrape(metrics_url), "trickle_db_pool_size", pool="service") < 10:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.2)

        async def scrape_while(task: asyncio.Task[None]) -> None:
            started = time.monotonic()
            while not task.done() or time.monotonic() - started < seconds + 5:
                series.append(
                    (time.monotonic() - started, await asyncio.to_thread(scrape, metrics_url))
                )
                await asyncio.sleep(1.0)
                if task.done() and time.monotonic() - started > seconds + 5:
                    break

        async def main() -> None:
            task = asyncio.create_task(
                load(server, rich.tokens, poor.tokens[0], rich.payees[0], seconds)
            )
            await scrape_while(task)
            await task

        asyncio.run(main())
    finally:
        server.stop()
    return series


def plot(series: list[tuple[float, Sample]], out: Path, title: str) -> None:
    times = [t for t, _ in series]
    samples = [s for _, s in series]

    def rate(name: str, **labels: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for (t0, a), (t1, b) in itertools.pairwise(series):
            xs.append(t1)
            ys.append((total(b, name, **labels) - total(a, name, **labels)) / (t1 - t0))
        return xs, ys

    def windowed_quantile(name: str, q: float, span: int = 5) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for i in range(span, len(series)):
            xs.append(times[i])
            ys.append(quantile(window(samples[i - span], samples[i]), name, q))
        return xs, ys

    fig, axes = plt.subplots(4, 2, figsize=(13, 13), constrained_layout=True)
    fig.suptitle(title)
    panels = axes.flatten()

    ax = panels[0]
    for kind in label_values(samples, "trickle_receipts_issued_total", "kind"):
        ax.plot(*rate("trickle_receipts_issued_total", kind=kind), label=kind)
    ax.set_title("Receipts issued / s (trickle_receipts_issued_total)")
    ax.legend()

    ax = panels[1]
    for currency in label_values(samples, "trickle_money_moved_minor_total", "currency"):
        xs, ys = rate("trickle_money_moved_minor_total", currency=currency)
        ax.plot(xs, [y / 1e9 for y in ys], label=currency)  # scale 9: units of the currency
    ax.set_title("Money moved / s, in currency units (trickle_money_moved_minor_total)")
    ax.legend()

    ax = panels[2]
    ax.plot(times, [total(s, "trickle_open_sockets") for s in samples], label="open sockets")
    ax.plot(times, [total(s, "trickle_active_streams") for s in samples], label="active streams")
    ax.set_title("Open sockets, active streams (both workers)")
    ax.legend()

    ax = panels[3]
    for q in (0.5, 0.99):
        xs, ys = windowed_quantile("trickle_commit_latency_seconds", q)
        ax.plot(xs, [y * 1000 for y in ys], label=f"p{int(q * 100)}")
    ax.set_title("Commit latency, ms (trickle_commit_latency_seconds, 5 s window)")
    ax.legend()

    ax = panels[4]
    for q in (0.5, 0.99):
        ax.plot(*windowed_quantile("trickle_commit_group_size", q), label=f"p{int(q * 100)}")
    ax.set_title("Group size, increments (trickle_commit_group_size, 5 s window)")
    ax.legend()

    ax = panels[5]
    for reason in label_values(samples, "trickle_refusals_total", "reason"):
        ax.plot(*rate("trickle_refusals_total", reason=reason), label=f"refused: {reason}")
    for surface in ("http", "stream", "ledger"):
        for code in label_values(samples, "trickle_errors_total", "code"):
            xs, ys = rate("trickle_errors_total", surface=surface, code=code)
            if any(ys):
                ax.plot(xs, ys, label=f"error {surface}: {code}")
    ax.set_title("Refusals and errors / s")
    ax.legend(fontsize="small")

    ax = panels[6]
    for pool in ("service", "commit"):
        ax.plot(
            times,
            [total(s, "trickle_db_pool_checked_out", pool=pool) for s in samples],
            label=f"{pool}: in use",
        )
        ax.plot(
            times,
            [total(s, "trickle_db_pool_size", pool=pool) for s in samples],
            "--",
            label=f"{pool}: size",
        )
    ax.set_title("Database pools (trickle_db_pool_*)")
    ax.legend(fontsize="small")

    ax = panels[7]
    ax.plot(times, [total(s, "trickle_signing_key_age_seconds") for s in samples])
    ax.set_title("Signing key age, s (trickle_signing_key_age_seconds)")

    for ax in panels:
        ax.set_xlabel("seconds into the run")
        ax.grid(alpha=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--database-url", help="a migrated, empty database (default: SQLite)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "metrics-bench.png")
    parser.add_argument("--series", type=Path, help="also write the scraped series as JSON here")
    args = parser.parse_args()
    series = run(args.seconds, args.connections, args.database_url)
    if args.series:
        args.series.write_text(
            json.dumps([[t, {f"{n}{dict(k)}": v for (n, k), v in s.items()}] for t, s in series])
        )
    streams = args.connections * STREAMS_PER_CONNECTION
    title = (
        f"trickle serve --workers 2, {streams} streams on {args.connections} connections "
        f"ramped up, {INTERVAL_MS} ms interval; scraped each second from TRICKLE_METRICS_PORT"
    )
    plot(series, args.out, title)
    last = series[-1][1]
    print(
        f"{len(series)} scrapes; receipts {total(last, 'trickle_receipts_issued_total'):.0f}, "
        f"groups {total(last, 'trickle_commit_group_size_count'):.0f}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
