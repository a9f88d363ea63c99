"""payees, site verification and payouts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payees",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payees_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payees")),
        sa.UniqueConstraint("name", name=op.f("uq_payees_name")),
    )
    op.create_index(op.f("ix_payees_user_id"), "payees", ["user_id"], unique=False)
    op.create_table(
        "payouts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("external_reference", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("settled_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payouts_amount_positive")),
        sa.ForeignKeyConstraint(
            ["payee_id"], ["payees.id"], name=op.f("fk_payouts_payee_id_payees")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payouts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("payee_id", "idempotency_key", name="uq_payouts_idempotency"),
    )
    op.create_index(op.f("ix_payouts_payee_id"), "payouts", ["payee_id"], unique=False)
    op.create_index(op.f("ix_payouts_user_id"), "payouts", ["user_id"], unique=False)
    op.create_table(
        "site_verifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["payee_id"], ["payees.id"], name=op.f("fk_site_verifications_payee_id_payees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_verifications")),
        sa.UniqueConstraint("payee_id", "origin", name="uq_site_verifications_origin"),
    )
    op.create_index(
        op.f("ix_site_verifications_payee_id"), "site_verifications", ["payee_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_site_verifications_payee_id"), table_name="site_verifications")
    op.drop_table("site_verifications")
    op.drop_index(op.f("ix_payouts_user_id"), table_name="payouts")
    op.drop_index(op.f("ix_payouts_payee_id"), table_name="payouts")
    op.drop_table("payouts")
    op.drop_index(op.f("ix_payees_user_id"), table_name="payees")
    op.drop_table("payees")
