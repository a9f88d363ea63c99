"""one-time payments

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "payments",
        sa.Column("id", big_id, nullable=False),
        sa.Column("user_id", big_id, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("payee_id", big_id, nullable=False),
        sa.Column("payment_pointer", sa.String(length=300), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("order_ref", sa.String(length=128), nullable=False),
        sa.Column("binding", sa.String(length=256), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("issued_at_s", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_s", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "fee_minor >= 0 AND fee_minor <= amount_minor", name=op.f("ck_payments_fee_in_range")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users")),
        sa.ForeignKeyConstraint(
            ["payee_id"], ["payees.id"], name=op.f("fk_payments_payee_id_payees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("sid", name=op.f("uq_payments_sid")),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_payments_idempotency"),
    )
    op.create_index(op.f("ix_payments_payee_id"), "payments", ["payee_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payments_payee_id"), table_name="payments")
    op.drop_table("payments")
