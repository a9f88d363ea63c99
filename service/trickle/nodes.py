"""Several service nodes on one PostgreSQL: which nodes are alive, what a stream needs to resume
on any of them, and each reader's connections and active streams on every node.

PostgreSQL only (on SQLite one process holds everything in memory, as before). Its own tools:

- **Liveness is an advisory lock.** A node holds ``pg_advisory_lock(NODE_LOCK_CLASS, id)`` on
  its listener connection for as long as it runs; the lock goes when its connection does (a
  ``kill -9`` included, as soon as PostgreSQL sees the socket close). ``stream_nodes.seen_at``
  is its heartbeat: a dead node's streams are resumable for the grace period after it.
- **A stream's position is written with its increments.** ``write_positions`` runs in the
  group commit's transaction: ``seq``, ``tot`` and the claims of the latest receipt are durable
  exactly when the ledger's transfers are. ``claim`` moves a stream to another node (row lock,
  ``epoch`` + 1), so a late ``release`` or ``end`` from the node that held it changes nothing.
- **Presence rows** (``reader_presence``) count a reader's connections (checked and added
  under a per-reader advisory lock: the socket cap holds across nodes) and active streams
  (published with ``NOTIFY`` on ``CHANNEL``: the rate is shared across nodes).

Times are the database's ``now()``: the nodes' clocks need not agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from trickle.db import DriverCursor

NODE_LOCK_CLASS = 0x54524B4C  # "TRKL": advisory lock (class, node id) = the node is alive
READER_LOCK_CLASS = 0x54524B52  # "TRKR": (class, user id) while a hello counts connections
CHANNEL = "trickle_nodes"
_INT4_MAX = 2**31 - 1

# The nodes alive now: those holding their lock in this database.
_LIVE = (
    "SELECT objid::bigint AS node FROM pg_locks WHERE locktype = 'advisory' "
    f"AND classid = {NODE_LOCK_CLASS}::oid AND objsubid = 2 AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class ClaimRefused(Exception):
    """A ``resume`` cannot take this stream over. ``retry``: it is still held by a live node's
    connection, which may be closing right now (try again shortly)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class ConnectionCapReached(Exception):
    """The reader has the maximum of connections open, counted on every live node."""


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """A stream as the database holds it, after a claim: who reads it, where it pays, and its
    latest committed receipt's claims (``seq`` 0: none yet)."""

    sid: str
    user_id: int
    epoch: int
    origin: str
    pointer: str
    binding: str | None
    seq: int
    total_minor: int
    amount_minor: int
    issued_at: int
    expires_at: int
    kid: str
    jti: str


class PositionRow(NamedTuple):
    """One stream's position after an increment of the group commit (in the statement's
    column order)."""

    sid: str
    user_id: int
    epoch: int
    origin: str
    pointer: str
    binding: str | None
    seq: int
    total_minor: int
    amount_minor: int
    issued_at: int
    expires_at: int
    kid: str
    jti: str


# --- nodes (on the node's own listener connection: a psycopg connection in autocommit) --------


def register(connection: Any) -> int:
    """Take a fresh node id (its advisory lock, held until ``connection`` closes), record it,
    and forget dead nodes' presence rows."""
    while True:
        node = secrets.randbelow(_INT4_MAX - 1) + 1
        locked = connection.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (NODE_LOCK_CLASS, node)
        ).fetchone()
        if locked is not None and locked[0]:
            break
    connection.execute(
        "INSERT INTO stream_nodes (id, started_at, seen_at) VALUES (%s, now(), now()) "
        "ON CONFLICT (id) DO UPDATE SET started_at = now(), seen_at = now()",
        (node,),
    )
    connection.execute(f"DELETE FROM reader_presence WHERE node NOT IN ({_LIVE})")
    return node


def heartbeat(connection: Any, node: int) -> None:
    connection.execute("UPDATE stream_nodes SET seen_at = now() WHERE id = %s", (node,))


def prune(connection: Any, keep_s: float) -> None:
    """Forget what no resume can use any more: ended streams, streams released or on a node not
    seen for ``keep_s``, dead nodes' presence rows, nodes not seen for ``keep_s``."""
    keep = dt.timedelta(seconds=keep_s)
    connection.execute(
        "DELETE FROM stream_positions p WHERE p.ended OR p.released_at < now() - %s "
        "OR NOT EXISTS (SELECT 1 FROM stream_nodes n WHERE n.id = p.node "
        "AND n.seen_at > now() - %s)",
        (keep, keep),
    )
    connection.execute(f"DELETE FROM reader_presence WHERE node NOT IN ({_LIVE})")
    connection.execute(
        f"DELETE FROM stream_nodes WHERE seen_at < now() - %s AND id NOT IN ({_LIVE})", (keep,)
    )


# --- stream positions -------------------------------------------------------------------------

_INSERT_POSITIONS = """
INSERT INTO stream_positions (sid, user_id, node, epoch, origin, pointer, binding, seq,
                              total_minor, amount_minor, issued_at, expires_at, kid, jti, ended)
SELECT v.sid, v.user_id, %s, v.epoch, v.origin, v.pointer, v.binding, v.seq, v.tot, v.amt,
       v.iat, v.exp, v.kid, v.jti, false
FROM unnest(%s::varchar[], %s::bigint[], %s::int[], %s::varchar[], %s::varchar[], %s::varchar[],
            %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[],
            %s::varchar[])
  AS v(sid, user_id, epoch, origin, pointer, binding, seq, tot, amt, iat, exp, kid, jti)
"""
_WRITE_POSITIONS = (
    _INSERT_POSITIONS
    + """ON CONFLICT (sid) DO UPDATE SET seq = EXCLUDED.seq, total_minor = EXCLUDED.total_minor,
  amount_minor = EXCLUDED.amount_minor, issued_at = EXCLUDED.issued_at,
  expires_at = EXCLUDED.expires_at, kid = EXCLUDED.kid, jti = EXCLUDED.jti
"""
)
_OPEN_POSITIONS = _INSERT_POSITIONS + "ON CONFLICT (sid) DO NOTHING"


def positions_statement(node: int, rows: Sequence[PositionRow]) -> tuple[str, list[Any]]:
    """The statement that writes the streams' positions after their increments (in the group
    commit's transaction: ``ledger.AlsoWrite``), and its parameters. A new stream's row names
    ``node`` as its holder; a claim, never this, moves it."""
    return _WRITE_POSITIONS, [node, *_columns(rows)]


def _columns(rows: Sequence[PositionRow]) -> list[list[Any]]:
    """The rows as arrays, in ``sid`` order: two transactions writing some of the same new
    streams (a group commit, and the batch of streams started meanwhile) lock their rows in
    the same order, so they wait for each other instead of deadlocking."""
    ordered = sorted(rows)
    return [list(column) for column in zip(*ordered, strict=True)] or [
        [] for _ in PositionRow._fields
    ]


def write_positions(cursor: DriverCursor, node: int, rows: Sequence[PositionRow]) -> None:
    """``positions_statement``, run on its own."""
    if rows:
        cursor.execute(*positions_statement(node, rows))


def open_streams(session: Session, node: int, rows: Sequence[PositionRow]) -> None:
    """New streams of ``node`` (``seq`` 0): resumable elsewhere before their first increment.
    Their first increment's position may have been written already (another thread)."""
    if not rows:
        return
    session.connection().exec_driver_sql(_OPEN_POSITIONS, (node, *_columns(rows)))


def claim(
    session: Session, sid: str, user_id: int, node: int, grace_s: float, *, held_here: bool
) -> Position | None:
    """Take the stream over for ``node``: None if the database has no position for it (no
    increment committed yet: only the node that started it knows it). ``held_here``: this node
    holds it, dropped (its own memory decides). ``ClaimRefused`` if it is another reader's,
    ended, its grace period is over, or it is on a live connection of another node."""
    row = (
        session.execute(
            text(
                "SELECT p.user_id, p.node, p.ended, p.released_at, n.seen_at, now() AS db_now, "
                f"p.node IN ({_LIVE}) AS live "
                "FROM stream_positions p LEFT JOIN stream_nodes n ON n.id = p.node "
                "WHERE p.sid = :sid FOR UPDATE OF p"
            ),
            {"sid": sid},
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    if row["user_id"] != user_id or row["ended"]:
        raise ClaimRefused("not a stream of this reader, or it ended")
    since = row["db_now"] - dt.timedelta(seconds=grace_s)
    if row["node"] == node:
        if not held_here:
            raise ClaimRefused("this node holds the stream on a live connection, or forgot it")
    elif row["released_at"] is not None:
        if row["released_at"] <= since:
            raise ClaimRefused("the stream's grace period is over")
    elif row["live"]:
        raise ClaimRefused("the stream is on a live connection of another node", retry=True)
    elif row["seen_at"] is None or row["seen_at"] <= since:
        raise ClaimRefused("the stream's node stopped more than the grace period ago")
    claimed = (
        session.execute(
            text(
                "UPDATE stream_positions SET node = :node, epoch = epoch + 1, released_at = NULL "
                "WHERE sid = :sid RETURNING sid, user_id, epoch, origin, pointer, binding, seq, "
                "total_minor, amount_minor, issued_at, expires_at, kid, jti"
            ),
            {"sid": sid, "node": node},
        )
        .mappings()
        .one()
    )
    return Position(**claimed)


def release(session: Session, node: int, streams: Sequence[tuple[str, int]]) -> None:
    """The (sid, epoch) streams' connection dropped: each may be resumed on any node for the
    grace period from now (unless another node claimed it meanwhile)."""
    _mark(session, node, streams, "released_at = now()")


def end(session: Session, node: int, streams: Sequence[tuple[str, int]]) -> None:
    """The (sid, epoch) streams ended for good: no node resumes them."""
    _mark(session, node, streams, "ended = true")


def _mark(session: Session, node: int, streams: Sequence[tuple[str, int]], change: str) -> None:
    if not streams:
        return
    sids, epochs = zip(*streams, strict=True)
    session.execute(
        text(
            f"UPDATE stream_positions AS p SET {change} "
            "FROM unnest(CAST(:sids AS varchar[]), CAST(:epochs AS int[])) AS v(sid, epoch) "
            "WHERE p.sid = v.sid AND p.node = :node AND p.epoch = v.epoch"
        ),
        {"sids": list(sids), "epochs": list(epochs), "node": node},
    )


def release_all(session: Session, node: int) -> None:
    """The node stops: every stream it holds may be resumed elsewhere from now."""
    session.execute(
        text(
            "UPDATE stream_positions SET released_at = now() "
            "WHERE node = :node AND released_at IS NULL AND NOT ended"
        ),
        {"node": node},
    )


# --- presence: connections and active streams per reader and node -------------------------


def admit(session: Session, user_id: int, node: int, max_connections: int) -> dict[int, int]:
    """Count one more connection of the reader on ``node``, unless they have
    ``max_connections`` open on the live nodes together (``ConnectionCapReached``); under the
    reader's advisory lock, so two nodes' hellos cannot both take the last place. Returns the
    reader's active streams on each other live node."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(:class, :key)"),
        {"class": READER_LOCK_CLASS, "key": user_id % _INT4_MAX},
    )
    rows = session.execute(
        text(
            "SELECT node, connections, active_streams FROM reader_presence "
            f"WHERE user_id = :user AND (node = :node OR node IN ({_LIVE}))"
        ),
        {"user": user_id, "node": node},
    ).all()
    if sum(connections for _, connections, _ in rows) >= max_connections:
        raise ConnectionCapReached(f"at most {max_connections} connections per reader")
    session.execute(
        text(
            "INSERT INTO reader_presence (user_id, node, connections, active_streams) "
            "VALUES (:user, :node, 1, 0) ON CONFLICT (user_id, node) "
            "DO UPDATE SET connections = reader_presence.connections + 1"
        ),
        {"user": user_id, "node": node},
    )
    return {other: active for other, _, active in rows if other != node and active}


def leave(session: Session, user_id: int, node: int) -> None:
    """One connection of the reader on ``node`` closed (or was not admitted after all)."""
    session.execute(
        text(
            "UPDATE reader_presence SET connections = connections - 1 "
            "WHERE user_id = :user AND node = :node AND connections > 0"
        ),
        {"user": user_id, "node": node},
    )


def publish(session: Session, node: int, actives: Sequence[tuple[int, int]]) -> None:
    """The (user id, active streams) of readers on ``node``, recorded and announced to every
    node (``NOTIFY``, delivered at commit: ``node:user:active``)."""
    if not actives:
        return
    users, counts = zip(*actives, strict=True)
    params = {"users": list(users), "counts": list(counts), "node": node}
    session.execute(
        text(
            "INSERT INTO reader_presence (user_id, node, connections, active_streams) "
            "SELECT u, :node, 0, c FROM unnest(CAST(:users AS bigint[]), CAST(:counts AS int[])) "
            "AS v(u, c) ON CONFLICT (user_id, node) "
            "DO UPDATE SET active_streams = EXCLUDED.active_streams"
        ),
        params,
    )
    session.execute(
        text(
            f"SELECT pg_notify('{CHANNEL}', :node || ':' || u || ':' || c) "
            "FROM unnest(CAST(:users AS bigint[]), CAST(:counts AS int[])) AS v(u, c)"
        ),
        params,
    )


def leave_all(session: Session, node: int) -> None:
    """The node stops: its presence rows go, and every node hears it (``gone:node``)."""
    session.execute(text("DELETE FROM reader_presence WHERE node = :node"), {"node": node})
    session.execute(text(f"SELECT pg_notify('{CHANNEL}', 'gone:' || :node)"), {"node": node})


def remote_actives(
    session: Session, node: int, user_ids: Sequence[int]
) -> dict[int, dict[int, int]]:
    """Each reader's active streams on every other live node: user id -> {node: count}."""
    if not user_ids:
        return {}
    rows = session.execute(
        text(
            "SELECT user_id, node, active_streams FROM reader_presence "
            "WHERE user_id = ANY(CAST(:users AS bigint[])) AND node <> :node "
            f"AND active_streams > 0 AND node IN ({_LIVE})"
        ),
        {"users": list(user_ids), "node": node},
    ).all()
    result: dict[int, dict[int, int]] = {}
    for user_id, other, active in rows:
        result.setdefault(user_id, {})[other] = active
    return result


def parse_notice(payload: str) -> tuple[int, int | None, int]:
    """A ``CHANNEL`` payload: (node, user id, active streams), or (node, None, 0) for a node
    that stopped."""
    if payload.startswith("gone:"):
        return int(payload[5:]), None, 0
    node, user_id, active = payload.split(":")
    return int(node), int(user_id), int(active)
