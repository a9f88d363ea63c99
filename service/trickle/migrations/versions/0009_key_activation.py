"""signing keys: when a key starts signing (a new key is published before it signs)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trickle.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("signing_keys", sa.Column("activates_at", UTCDateTime(), nullable=True))
    # Every existing key signed from its creation.
    op.execute("UPDATE signing_keys SET activates_at = created_at")
    with op.batch_alter_table("signing_keys") as batch:
        batch.alter_column("activates_at", existing_type=UTCDateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("activates_at")
