"""Group commit, the streaming side: the engine's names for the ledger's group of charges.

Every ``interval`` the engine's due increments become ``Posting``s (``ledger.Charge``s), and
``stage`` posts them together in ONE transaction (``ledger.stage_charges``, which owns both
databases' statements). ``stage`` runs on the engine's event loop thread and returns ``finish``,
which the engine runs in its committer thread; receipts are signed only after ``finish`` (its
COMMIT) returns, i.e. after the commit is durable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from trickle import ledger

Posting = ledger.Charge  # one increment to commit, and (after the commit) its outcome
CommitResult = ledger.GroupResult  # what the readers' accounts and months hold after it


def stage(
    engine: Engine,
    sessions: sessionmaker[Session],
    postings: Sequence[Posting],
    now: dt.datetime,
    also: ledger.AlsoWrite | None = None,
) -> Callable[[], CommitResult]:
    """Prepare the group's transaction and return ``finish``: ``ledger.stage_charges``
    (``also``: the streams' positions, on PostgreSQL)."""
    return ledger.stage_charges(engine, sessions, postings, now, also)
