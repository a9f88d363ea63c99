"""the double-entry ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("may_go_negative", sa.Boolean(), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "may_go_negative OR balance_minor >= 0", name=op.f("ck_ledger_accounts_no_overdraft")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint(
            "kind", "owner", "currency", name="uq_ledger_accounts_kind_owner_currency"
        ),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "debit_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credit_account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_transfers_distinct_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_transfers_credit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_transfers_debit_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint(
            "debit_account_id",
            "credit_account_id",
            "kind",
            "idempotency_key",
            name="uq_transfers_idempotency",
        ),
    )
    op.create_index(op.f("ix_transfers_created_at"), "transfers", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_transfers_credit_account_id"), "transfers", ["credit_account_id"], unique=False
    )
    op.create_index(
        op.f("ix_transfers_debit_account_id"), "transfers", ["debit_account_id"], unique=False
    )
    _create_append_only_triggers()


# Transfers are immutable: the database itself refuses UPDATE and DELETE on them.
APPEND_ONLY_MESSAGE = "transfers are append-only: post a reversing transfer instead"


def _create_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION transfers_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers "
            "FOR EACH ROW EXECUTE FUNCTION transfers_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER transfers_no_{action.lower()} BEFORE {action} ON transfers "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        )


def _drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transfers_append_only ON transfers")
        op.execute("DROP FUNCTION IF EXISTS transfers_append_only()")
        return
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS transfers_no_{action}")


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_index(op.f("ix_transfers_debit_account_id"), table_name="transfers")
    op.drop_index(op.f("ix_transfers_credit_account_id"), table_name="transfers")
    op.drop_index(op.f("ix_transfers_created_at"), table_name="transfers")
    op.drop_table("transfers")
    op.drop_table("ledger_accounts")
