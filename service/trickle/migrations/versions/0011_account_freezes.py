"""account freezes: a reader's spending held after a card payment was taken back

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-14
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "account_freezes",
        sa.Column("id", big_id, nullable=False),
        sa.Column("user_id", big_id, nullable=False),
        sa.Column("topup_id", big_id, nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.Column("lifted_note", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_freezes_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["topup_id"], ["topups.id"], name=op.f("fk_account_freezes_topup_id_topups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_freezes")),
    )
    op.create_index(
        op.f("ix_account_freezes_user_id"), "account_freezes", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_account_freezes_user_id"), table_name="account_freezes")
    op.drop_table("account_freezes")
