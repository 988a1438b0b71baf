"""idempotency_records: what the request recorded, and its claim's lease

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:40:00.000000

Claims from before have neither: without a lease a claim is held until the key expires, as
before (an instance of the earlier version may still be working on it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = "idempotency_records"
INDEX = "ix_idempotency_records_environment_id_resource_id"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("resource_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(INDEX, TABLE, ["environment_id", "resource_id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("resource_id")
