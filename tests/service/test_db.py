"""``trickle.db``: what every statement's parameters pass on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from trickle.db import DriverCursor, transaction
from trickle.errors import ValidationFailed
from trickle.models import Payee, User
from trickle.runtime import Runtime


@pytest.mark.parametrize(
    "statement",
    [
        lambda: select(User.id).where(User.email == "ann\x00@example.com"),
        lambda: select(Payee.id).where(Payee.name.in_(["ok", "n\x00t-ok"])),
        lambda: text("SELECT :value").bindparams(value="\x00"),
    ],
)
def test_text_with_a_nul_character_never_reaches_either_database(
    runtime: Runtime, statement: object
) -> None:
    # PostgreSQL cannot store U+0000 and failed the statement (a 500); SQLite stored it.
    with pytest.raises(ValidationFailed), transaction(runtime.sessions) as session:
        session.execute(statement())  # type: ignore[operator]
    with transaction(runtime.sessions) as session:  # the connection is fine afterwards
        assert session.scalar(select(User.id).where(User.email == "ann@example.com")) is None


def test_a_nul_in_a_written_row_is_refused_too(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed), transaction(runtime.sessions) as session:
        session.add(
            User(email="ann@example.com\x00", password_hash="!", created_at=runtime.clock())
        )
        session.flush()
    with transaction(runtime.sessions) as session:
        assert session.scalars(select(User)).all() == []


def test_the_driver_cursor_runs_each_driver_s_own_statement_untouched(runtime: Runtime) -> None:
    # Before: every ``?`` became ``%s`` on PostgreSQL, a literal question mark too, and the
    # statement failed (more placeholders than parameters). Now each database's statements are
    # written in its driver's own style: sqlite3 ``?``, psycopg ``%s`` and ``%%`` for ``%``.
    postgres = runtime.engine.dialect.name == "postgresql"
    statement = "SELECT 'why?', '100%%', %s" if postgres else "SELECT 'why?', '100%', ?"
    with runtime.engine.connect() as connection:
        rows = DriverCursor(connection).execute(statement, ["ok?"])
    assert rows == [("why?", "100%", "ok?")]
