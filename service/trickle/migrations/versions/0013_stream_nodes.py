"""stream nodes: several service processes on one PostgreSQL (stream positions, presence)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "stream_nodes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_nodes")),
    )
    op.create_table(
        "stream_positions",
        sa.Column("sid", sa.String(length=32), nullable=False),
        sa.Column("user_id", big_id, nullable=False),
        sa.Column("node", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("pointer", sa.String(length=300), nullable=False),
        sa.Column("binding", sa.String(length=256), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.Column("ended", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_stream_positions")),
    )
    op.create_table(
        "reader_presence",
        sa.Column("user_id", big_id, nullable=False),
        sa.Column("node", sa.Integer(), nullable=False),
        sa.Column("connections", sa.Integer(), nullable=False),
        sa.Column("active_streams", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "node", name=op.f("pk_reader_presence")),
    )


def downgrade() -> None:
    op.drop_table("reader_presence")
    op.drop_table("stream_positions")
    op.drop_table("stream_nodes")
