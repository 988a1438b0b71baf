"""payment events numbered 1..n per payment; deliveries paged by (created_at, id)

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-10 09:00:00.000000

An event was numbered by its payment's version, which also moves when a payment learns its
charge's details without changing status: the numbers had gaps. A payment now counts its
events (`event_count`) and numbers the next one after them; the stored events are renumbered
in their order. A webhook endpoint's deliveries are paged by (created_at, id), which their
index now holds whole.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD_DELIVERY_INDEX = "ix_webhook_deliveries_environment_id_endpoint_id_created_at"
DELIVERY_INDEX = "ix_webhook_deliveries_environment_id_endpoint_id_created_at_id"

# Each event that moves, with its number among its payment's events. Numbers only go down,
# and are first stored negated, so that no two events of a payment ever share one on the way
# (the primary key is checked row by row).
NUMBERED = """
CREATE TEMPORARY TABLE event_renumbering AS
SELECT payment_id, old_sequence, new_sequence FROM (
    SELECT payment_id, sequence AS old_sequence,
           ROW_NUMBER() OVER (PARTITION BY payment_id ORDER BY sequence) AS new_sequence
    FROM payment_events
) AS numbered
WHERE new_sequence <> old_sequence
"""
RENUMBERED_NEGATED = """
UPDATE payment_events SET sequence = -(
    SELECT r.new_sequence FROM event_renumbering r
    WHERE r.payment_id = payment_events.payment_id AND r.old_sequence = payment_events.sequence
)
WHERE EXISTS (
    SELECT 1 FROM event_renumbering r
    WHERE r.payment_id = payment_events.payment_id AND r.old_sequence = payment_events.sequence
)
"""
EVENTS_COUNTED = """
UPDATE payments SET event_count = (
    SELECT COUNT(*) FROM payment_events e
    WHERE e.payment_id = payments.id AND e.environment_id = payments.environment_id
)
"""


def upgrade() -> None:
    op.execute(NUMBERED)
    op.execute("CREATE INDEX ix_event_renumbering ON event_renumbering (payment_id, old_sequence)")
    op.execute(RENUMBERED_NEGATED)
    op.execute("UPDATE payment_events SET sequence = -sequence WHERE sequence < 0")
    op.execute("DROP TABLE event_renumbering")
    # Added in place (no table copy on SQLite): a default makes the existing rows valid.
    op.add_column(
        "payments", sa.Column("event_count", sa.Integer(), nullable=False, server_default="0")
    )
    op.execute(EVENTS_COUNTED)
    op.drop_index(OLD_DELIVERY_INDEX, table_name="webhook_deliveries")
    op.create_index(
        DELIVERY_INDEX, "webhook_deliveries", ["environment_id", "endpoint_id", "created_at", "id"]
    )


def downgrade() -> None:
    # The events keep their numbers: the versions the code before numbers new events by are
    # above them all.
    op.drop_index(DELIVERY_INDEX, table_name="webhook_deliveries")
    op.create_index(
        OLD_DELIVERY_INDEX, "webhook_deliveries", ["environment_id", "endpoint_id", "created_at"]
    )
    op.drop_column("payments", "event_count")  # in place, as it was added
