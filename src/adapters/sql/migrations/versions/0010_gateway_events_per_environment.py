"""gateway_events: an event is recorded per environment, keyed (environment_id, id)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:00:00.000000

One Stripe account's event may reach several environments' URLs, and each handles it as its
own: what one environment has seen must not stop another from applying it.

The rows from before name no environment, and which one handled each cannot be told: they are
kept under the environment '' (no environment has that id), and the service still counts them
as seen by every environment, as they were. So a duplicate delivery of an event handled before
the upgrade (Stripe retries for up to 3 days, and may send an event twice) is not applied
again: applied again, a card setup completed before a newer one would make the older card the
default once more. Once those rows are older than any event Stripe could still deliver, they
could be deleted.

The downgrade keeps one row per event id: an event seen by any environment is seen by all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLE = "gateway_events"
PRIMARY_KEY = "pk_gateway_events"
BEFORE_ENVIRONMENTS = ""


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        # A default fills the rows already there (on PostgreSQL without rewriting them).
        batch.add_column(
            sa.Column(
                "environment_id",
                sa.String(64),
                nullable=False,
                server_default=BEFORE_ENVIRONMENTS,
            )
        )
        batch.drop_constraint(PRIMARY_KEY, type_="primary")
        batch.create_primary_key(PRIMARY_KEY, ["environment_id", "id"])
    with op.batch_alter_table(TABLE) as batch:  # every new row names its environment
        batch.alter_column("environment_id", existing_type=sa.String(64), server_default=None)


def downgrade() -> None:
    op.execute(
        f"DELETE FROM {TABLE} WHERE environment_id > "
        f"(SELECT min(other.environment_id) FROM {TABLE} AS other WHERE other.id = {TABLE}.id)"
    )
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(PRIMARY_KEY, type_="primary")
        batch.drop_column("environment_id")
        batch.create_primary_key(PRIMARY_KEY, ["id"])
