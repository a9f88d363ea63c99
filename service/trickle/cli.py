"""The ``trickle`` command: serve, migrate the database, manage signing keys."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trickle import (
    cli_payouts,
    cli_tokens,
    cli_topups,
    funding,
    keys,
    ledger,
    logs,
    metrics,
    migrate,
    money,
    tokens,
)
from trickle.db import make_engine, make_sessionmaker, transaction
from trickle.errors import ConfigError, TrickleError
from trickle.runtime import bootstrap, utc_now
from trickle.settings import Settings, load_settings, to_environment

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from trickle_publisher.server import PublisherThread

Command = Callable[[argparse.Namespace, Settings], int]
log = logging.getLogger("trickle")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data folder (TRICKLE_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (TRICKLE_DATABASE_URL)")


def _add_serving(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--host", help="address to listen on (TRICKLE_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (TRICKLE_PORT)")
    parser.add_argument("--public-url", help="the service's public URL (TRICKLE_PUBLIC_URL)")
    parser.add_argument("--workers", type=int, help="processes on the port (TRICKLE_WORKERS)")


def _add_keys(sub: Any) -> None:
    key = sub.add_parser("keys", help="receipt-signing keys")
    key_sub = key.add_subparsers(dest="keys_command", required=True)
    rotate = key_sub.add_parser(
        "rotate", help="publish a new key now; it signs once every site can have fetched it"
    )
    _add_common(rotate)
    rotate.set_defaults(handler=cmd_keys_rotate)
    reseal = key_sub.add_parser(
        "reseal",
        help="seal every signing key with a new key-encryption key (read from a file, never "
        "from the command line)",
    )
    reseal.add_argument(
        "--new-key-file",
        type=Path,
        required=True,
        help="a file (mode 0600) holding the new key-encryption key: base64 of 32 bytes",
    )
    _add_common(reseal)
    reseal.set_defaults(handler=cmd_keys_reseal)
    listing = key_sub.add_parser(
        "list", help="keys: state (next, active, retiring, expired) and when each signs"
    )
    _add_common(listing)
    listing.set_defaults(handler=cmd_keys_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trickle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (migrates the database first)")
    _add_serving(serve)
    serve.set_defaults(handler=cmd_serve)

    demo = sub.add_parser("demo", help="seed a funded demo reader, a creator and a payee; serve")
    _add_serving(demo)
    demo.add_argument("--no-serve", action="store_true", help="only seed the demo data")
    demo.add_argument(
        "--publisher-port",
        type=int,
        default=8421,
        help="port of the demo publisher site served next to the service (0: none)",
    )
    demo.set_defaults(handler=cmd_demo)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate to a revision (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    _add_common(up)
    up.set_defaults(handler=cmd_db_upgrade)
    down = db_sub.add_parser("downgrade", help="migrate down to a revision (e.g. base, -1)")
    down.add_argument("revision")
    _add_common(down)
    down.set_defaults(handler=cmd_db_downgrade)
    current = db_sub.add_parser("current", help="print the database's revision")
    _add_common(current)
    current.set_defaults(handler=cmd_db_current)

    _add_keys(sub)

    vouchers = sub.add_parser("vouchers", help="prepaid voucher codes")
    vouchers_sub = vouchers.add_subparsers(dest="vouchers_command", required=True)
    mint = vouchers_sub.add_parser("create", help="mint codes (printed once, stored hashed)")
    mint.add_argument("--amount", required=True, help="value of each code, e.g. 5.00")
    mint.add_argument("--count", type=int, default=1, help="how many codes (1..10000)")
    mint.add_argument("--currency", help="asset code (default: TRICKLE_CURRENCY)")
    mint.add_argument("--output", type=Path, help="write the codes to this file (0600)")
    _add_common(mint)
    mint.set_defaults(handler=cmd_vouchers_create)

    ledger_parser = sub.add_parser("ledger", help="the double-entry ledger")
    ledger_sub = ledger_parser.add_subparsers(dest="ledger_command", required=True)
    check = ledger_sub.add_parser("check", help="recompute balances, check every invariant")
    _add_common(check)
    check.set_defaults(handler=cmd_ledger_check)
    cli_payouts.register(sub)
    cli_topups.register(sub)
    cli_tokens.register(sub)
    return parser


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # trickle.logs: JSON lines with the request id, secrets redacted; the access events are
        # its middleware's (uvicorn's access log would write query strings)
        "log_config": logs.config(settings),
        "access_log": False,
        # uvicorn's websockets-sansio, closing a message over the limit with 4413, not 1009
        "ws": "trickle.streaming.transport:StreamTransport",
        # a little above the protocol's limit: a message just over it reaches the engine, which
        # says by how much; the transport refuses the rest by their header, unread
        "ws_max_size": settings.stream_max_message_bytes + 1024,
        # Receipts are mostly base64 of random bytes: compressing them costs a fifth of the event
        # loop's time and ~60 KiB per connection, and saves little.
        "ws_per_message_deflate": False,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        # Behind a reverse proxy (TRICKLE_FORWARDED_ALLOW_IPS) the client address and scheme
        # are the proxy's X-Forwarded-For and -Proto: the login and sign-up limits count it.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or None,
    }


# A serving process holds a few hundred thousand long-lived objects (5,000 streams' state) and
# makes short-lived ones at every receipt. With Python's default schedule (a young collection
# every 700 allocations) the objects of receipts in flight are promoted before they die, and
# every few seconds a full collection walks the whole heap with the event loop stopped: ~200 ms
# at 5,000 streams, the p99 of bench/streams.py's latency scenario (bench/README.md, 12-06).
YOUNG_COLLECTION_EVERY = 10_000


def collect_for_serving() -> None:
    """The garbage collector's schedule of a serving process, once its start-up is done: what
    start-up made is set aside (never walked again), and a young collection runs every
    ``YOUNG_COLLECTION_EVERY`` allocations (a receipt's objects are gone by then), so full
    collections become rare. Only serving processes: the tests and commands keep the default."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)


def app_from_environment() -> Starlette:
    """The app of one worker process of ``trickle serve --workers N``: the parent migrated the
    database and made the first key; each worker builds its own runtime from the environment."""
    from trickle.app import create_app

    app = create_app(bootstrap(load_settings()))
    collect_for_serving()
    return app


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from trickle.app import create_app

    if settings.workers > 1:
        # prometheus-client's multiprocess mode: the workers (started afresh by uvicorn) write
        # their metrics to files here; a scrape adds them up. Emptied on every start.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics.prepare_multiprocess_dir(settings)
    if settings.metrics_port:
        metrics.serve_port(settings)
        log.info(
            "metrics served",
            extra={"fields": {"url": f"http://{settings.metrics_host}:{settings.metrics_port}"}},
        )
    runtime = bootstrap(settings)  # migrate and make the first key once, before any worker
    starting = {
        "url": f"http://{settings.host}:{settings.port}",
        "issuer": settings.issuer,
        "database": _redacted(settings.resolved_database_url),
        "signing_key": runtime.key_ring.current.active.kid,
        "workers": settings.workers,
    }
    log.info("trickle serving", extra={"fields": starting})
    if settings.workers > 1:
        runtime.close()
        os.environ.update(to_environment(settings))  # the workers rebuild the same settings
        uvicorn.run(
            "trickle.cli:app_from_environment",
            factory=True,
            workers=settings.workers,
            # uvicorn's supervisor kills a worker that does not answer its health ping within
            # this many seconds (5 by default); a worker starting up on a busy host (imports,
            # the key rings, the private stream's check process) can take longer than that
            timeout_worker_healthcheck=30,
            **_uvicorn_options(settings),
        )
        return 0
    app = create_app(runtime)
    collect_for_serving()
    uvicorn.run(app, **_uvicorn_options(settings))
    runtime.close()
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from trickle import demo

    runtime = bootstrap(settings)
    try:
        seeded = demo.seed(runtime)
    finally:
        runtime.close()
    balance = money.format_minor(seeded.reader_balance_minor, settings.asset_scale)
    print(
        f"trickle demo: reader  {seeded.reader_email} / {seeded.password} ({balance} "
        f"{settings.currency})"
    )
    print(f"trickle demo: creator {seeded.creator_email} / {seeded.password}")
    print(
        f'trickle demo: a site pays it with <link rel="monetization" '
        f'href="{seeded.payment_pointer}">'
    )
    if args.no_serve:
        return 0
    publisher = None
    if args.publisher_port:
        publisher = start_demo_publisher(settings, seeded.payment_pointer, args.publisher_port)
    try:
        return cmd_serve(args, settings)
    finally:
        if publisher is not None:
            publisher.stop()


def start_demo_publisher(
    settings: Settings, payment_pointer: str, port: int
) -> PublisherThread | None:
    """Start the demo publisher site (publisher/, a package of its own that the service does not
    need) on ``port``; if it cannot start, say why and what to do, and serve without it."""
    try:
        from trickle_publisher.server import start_publisher
    except ModuleNotFoundError as exc:  # the publisher, or the verifier it needs, is missing
        package = (exc.name or "its package").partition(".")[0]
        _publisher_not_served(
            f"{package} is not installed. From a checkout, `make setup` (or "
            "`pip install -e ./verifier -e ./publisher`) installs it"
        )
        return None
    try:
        publisher = start_publisher(settings, payment_pointer, port)
    except FileNotFoundError as exc:  # no page bridge to serve
        _publisher_not_served(str(exc))
        return None
    print(f"trickle demo: publisher site on {publisher.origin} (premium and for-sale articles)")
    return publisher


def _publisher_not_served(reason: str) -> None:
    print(
        f"trickle demo: the demo publisher site is not served: {reason}. "
        "--publisher-port 0 leaves it out.",
        file=sys.stderr,
    )


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    migrate.upgrade(settings.resolved_database_url, args.revision)
    return cmd_db_current(args, settings)


def cmd_db_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    migrate.downgrade(settings.resolved_database_url, args.revision)
    return cmd_db_current(args, settings)


def cmd_db_current(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.resolved_database_url)
    try:
        print(f"revision: {migrate.current_revision(engine) or 'base'}")
    finally:
        engine.dispose()
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            now = utc_now()
            rotation = keys.rotate(session, runtime.kek, settings, now)
    finally:
        runtime.close()
    signs_from = _when(rotation.activates_at)
    if not rotation.created:
        print(f"key {rotation.kid} is already waiting: it signs from {signs_from}; no new key made")
        return 0
    delay_s = int(keys.activation_delay(settings).total_seconds())
    print(f"new key {rotation.kid}: published now, signs from {signs_from} (in {delay_s} s)")
    print(
        f"  = key reload {settings.key_reload_interval_s} s + key set max-age "
        f"{settings.jwks_max_age_s} s + leeway {settings.key_activation_leeway_s} s, so every "
        "site that refetches the key set as its Cache-Control allows has it by then"
    )
    return 0


def cmd_keys_reseal(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.new_key_file
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} must be readable by its owner only (mode 0600)")
    new = keys.load_kek(dataclasses.replace(settings, key_encryption_key=path.read_text().strip()))
    old = keys.load_kek(settings)
    migrate.upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            count = keys.reseal(session, old, new)
            token_count = tokens.reseal(session, old, new)
    finally:
        engine.dispose()
    print(
        f"{count} signing keys and {token_count} token keys resealed with the new "
        "key-encryption key."
    )
    print(
        "  Now set TRICKLE_KEY_ENCRYPTION_KEY to it on every node and restart them: until then "
        "their key reloads fail and they sign on with the key ring they hold "
        "(docs/deploy.md#rotating-keys)."
    )
    return 0


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    migrate.upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            infos = keys.list_keys(session, settings, utc_now())
    finally:
        engine.dispose()
    columns = f"{'kid':<20} {'state':<9} {'signs from':<20} {'signs until':<20} published until"
    print(columns)
    for info in infos:
        print(
            f"{info.kid:<20} {info.state:<9} {_when(info.activates_at):<20} "
            f"{_when(info.retired_at):<20} {_when(info.published_until)}"
        )
    return 0


def _when(moment: dt.datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def cmd_vouchers_create(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.count <= 10_000:
        raise ConfigError(f"--count must be 1..10000, got {args.count}")
    currency = args.currency or settings.currency
    if currency != settings.currency:
        raise ConfigError(f"this service runs in {settings.currency}, not {currency}")
    amount_minor = money.parse_decimal(args.amount, settings.asset_scale)
    runtime = bootstrap(settings)
    try:
        with transaction(runtime.sessions) as session:
            codes = funding.create_vouchers(
                session,
                amount_minor=amount_minor,
                currency=currency,
                count=args.count,
                now=utc_now(),
            )
    finally:
        runtime.close()
    text = "".join(f"{code}\n" for code in codes)
    if args.output is None:
        print(text, end="")
    else:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        print(f"{len(codes)} codes of {args.amount} {currency} written to {args.output}")
    return 0


def cmd_ledger_check(args: argparse.Namespace, settings: Settings) -> int:
    migrate.upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            violations = ledger.check(session)
            accounts, transfers = ledger.counts(session)
    finally:
        engine.dispose()
    for violation in violations:
        print(f"VIOLATION {violation}")
    if violations:
        print(f"ledger check FAILED: {len(violations)} violation(s)")
        return 1
    print(f"ledger check passed: {accounts} accounts, {transfers} transfers, every invariant holds")
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    overrides = {
        name: getattr(args, name, None)
        for name in ("host", "port", "workers", "data_dir", "database_url", "public_url")
    }
    handler: Command = args.handler
    try:
        settings = load_settings(**overrides)
        if args.command in ("serve", "demo"):
            logs.configure(settings)
        return handler(args, settings)
    except TrickleError as exc:
        print(f"trickle: error: {exc} ({exc.code})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
