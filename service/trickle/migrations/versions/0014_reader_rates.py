"""reader rates: a reader's streaming allowance, shared by every node (the hard rate cap)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reader_rates",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("allowance", sa.BigInteger(), nullable=False),
        sa.Column("as_of_ms", sa.BigInteger(), nullable=False),
        sa.Column("rate_per_hour_minor", sa.BigInteger(), nullable=False),
        sa.Column("burst_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("allowance >= 0", name=op.f("ck_reader_rates_allowance_non_negative")),
        sa.CheckConstraint("as_of_ms >= 0", name=op.f("ck_reader_rates_as_of_non_negative")),
        sa.CheckConstraint(
            "rate_per_hour_minor >= 0", name=op.f("ck_reader_rates_rate_non_negative")
        ),
        sa.CheckConstraint("burst_ms >= 0", name=op.f("ck_reader_rates_burst_non_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_reader_rates_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_reader_rates")),
    )


def downgrade() -> None:
    op.drop_table("reader_rates")
