"""monthly spend per reader

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monthly_spend",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("spent_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("spent_minor >= 0", name=op.f("ck_monthly_spend_spent_non_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_monthly_spend_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "month", name=op.f("pk_monthly_spend")),
    )


def downgrade() -> None:
    op.drop_table("monthly_spend")
