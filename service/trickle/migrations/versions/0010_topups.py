"""card top-ups (Stripe Checkout) and the Stripe events applied

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "topups",
        sa.Column("id", big_id, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", big_id, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("provider_amount", sa.BigInteger(), nullable=False),
        sa.Column("provider_currency", sa.String(length=12), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("failure_reason", sa.String(length=200), nullable=True),
        sa.Column("credited_at", UTCDateTime(), nullable=True),
        sa.Column("credited_event_id", sa.String(length=255), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("dispute_id", sa.String(length=255), nullable=True),
        sa.Column("dispute_status", sa.String(length=32), nullable=True),
        sa.Column("disputed_minor", sa.BigInteger(), nullable=False),
        sa.Column("dispute_reader_minor", sa.BigInteger(), nullable=False),
        sa.Column("dispute_loss_minor", sa.BigInteger(), nullable=False),
        sa.Column("loss_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_topups_amount_positive")),
        sa.CheckConstraint("provider_amount > 0", name=op.f("ck_topups_provider_amount_positive")),
        sa.CheckConstraint(
            "state IN ('pending', 'credited', 'failed', 'refunded', 'disputed')",
            name=op.f("ck_topups_state_known"),
        ),
        sa.CheckConstraint(
            "refunded_minor >= 0 AND disputed_minor >= 0 "
            "AND refunded_minor + disputed_minor <= amount_minor",
            name=op.f("ck_topups_taken_back_in_range"),
        ),
        sa.CheckConstraint(
            "dispute_reader_minor >= 0 AND dispute_loss_minor >= 0 AND loss_minor >= 0",
            name=op.f("ck_topups_parts_non_negative"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_topups_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topups")),
        sa.UniqueConstraint("public_id", name=op.f("uq_topups_public_id")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_topups_checkout_session_id")),
        sa.UniqueConstraint("payment_intent_id", name=op.f("uq_topups_payment_intent_id")),
    )
    op.create_index(op.f("ix_topups_user_id"), "topups", ["user_id"], unique=False)
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("topup_id", big_id, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["topup_id"], ["topups.id"], name=op.f("fk_stripe_events_topup_id_topups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(op.f("ix_stripe_events_topup_id"), "stripe_events", ["topup_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stripe_events_topup_id"), table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_index(op.f("ix_topups_user_id"), table_name="topups")
    op.drop_table("topups")
