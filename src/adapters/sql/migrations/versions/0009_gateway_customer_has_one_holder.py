"""customers: a gateway customer is linked by one customer, so by one environment

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "ux_customers_gateway_customer_id"
LINKED = "gateway_customer_id IS NOT NULL"


def upgrade() -> None:
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT gateway_customer_id, count(*) FROM customers"
                f" WHERE {LINKED} GROUP BY gateway_customer_id HAVING count(*) > 1"
            )
        )
        .all()
    )
    if shared:
        # Which customer owns a gateway customer is a decision for a person, not a migration.
        named = ", ".join(f"{row[0]} ({row[1]} customers)" for row in shared[:10])
        raise RuntimeError(
            "cannot migrate: these gateway customers are linked by more than one customer; "
            f"unlink all but their owner (set gateway_customer_id to NULL) and run again: {named}"
        )
    op.create_index(
        INDEX,
        "customers",
        ["gateway_customer_id"],
        unique=True,
        sqlite_where=sa.text(LINKED),
        postgresql_where=sa.text(LINKED),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="customers")
