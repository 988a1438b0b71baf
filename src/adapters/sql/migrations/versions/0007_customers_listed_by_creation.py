"""customers: listed newest first within an environment

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEX = "ix_customers_environment_id_created_at_id"


def upgrade() -> None:
    op.create_index(INDEX, "customers", ["environment_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="customers")
