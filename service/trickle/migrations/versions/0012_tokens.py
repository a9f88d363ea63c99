"""private-payment tokens: token keys, issuances, spent tokens, private one-time payments

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A spent token stays spent: the database itself refuses UPDATE and DELETE on spent_tokens.
APPEND_ONLY_MESSAGE = "spent_tokens are append-only: a token pays once"


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "token_keys",
        sa.Column("id", big_id, nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("value_minor", sa.BigInteger(), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sealed_secret_key", sa.LargeBinary(length=128), nullable=False),
        sa.Column("issue_from", UTCDateTime(), nullable=False),
        sa.Column("issue_until", UTCDateTime(), nullable=False),
        sa.Column("spend_until", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("value_minor > 0", name=op.f("ck_token_keys_value_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_keys")),
        sa.UniqueConstraint("currency", "epoch", name="uq_token_keys_currency_epoch"),
    )
    op.create_table(
        "token_issuances",
        sa.Column("id", big_id, nullable=False),
        sa.Column("user_id", big_id, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("evaluated", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("count > 0", name=op.f("ck_token_issuances_count_positive")),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_token_issuances_amount_positive")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_token_issuances_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_issuances")),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_token_issuances_idempotency"),
    )
    op.create_table(
        "spent_tokens",
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("nullifier", sa.LargeBinary(length=32), nullable=False),
        sa.Column("use", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.CheckConstraint("use IN ('spend', 'refund')", name=op.f("ck_spent_tokens_use_known")),
        sa.PrimaryKeyConstraint("currency", "epoch", "nullifier", name="pk_spent_tokens"),
    )
    op.create_table(
        "private_payments",
        sa.Column("id", big_id, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("payee_id", big_id, nullable=False),
        sa.Column("payment_pointer", sa.String(length=300), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
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
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_private_payments_amount_positive")),
        sa.CheckConstraint(
            "paid_minor >= amount_minor", name=op.f("ck_private_payments_paid_covers_amount")
        ),
        sa.CheckConstraint(
            "fee_minor >= 0 AND fee_minor <= paid_minor",
            name=op.f("ck_private_payments_fee_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"], ["payees.id"], name=op.f("fk_private_payments_payee_id_payees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_private_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_private_payments_idempotency_key")),
        sa.UniqueConstraint("sid", name=op.f("uq_private_payments_sid")),
    )
    op.create_index(
        op.f("ix_private_payments_payee_id"), "private_payments", ["payee_id"], unique=False
    )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION spent_tokens_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER spent_tokens_append_only BEFORE UPDATE OR DELETE ON spent_tokens "
            "FOR EACH ROW EXECUTE FUNCTION spent_tokens_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER spent_tokens_no_{action.lower()} BEFORE {action} ON spent_tokens "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        )


def _drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS spent_tokens_append_only ON spent_tokens")
        op.execute("DROP FUNCTION IF EXISTS spent_tokens_append_only()")
        return
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS spent_tokens_no_{action}")


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_index(op.f("ix_private_payments_payee_id"), table_name="private_payments")
    op.drop_table("private_payments")
    op.drop_table("spent_tokens")
    op.drop_table("token_issuances")
    op.drop_table("token_keys")
