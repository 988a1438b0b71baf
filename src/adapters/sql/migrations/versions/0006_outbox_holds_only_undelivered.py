"""outbox: a delivered notification is deleted, not marked

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Marking a row delivered wrote a new version of it and of each of its index entries (its
# column is in an index's predicate, so never in place): 4 per payment. A delete writes
# none, and the table stays as small as what is left to deliver.


def upgrade() -> None:
    op.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_undelivered")
        batch.drop_column("delivered_at")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(
            "ix_outbox_undelivered",
            ["sequence"],
            sqlite_where=sa.text("delivered_at IS NULL"),
            postgresql_where=sa.text("delivered_at IS NULL"),
        )
