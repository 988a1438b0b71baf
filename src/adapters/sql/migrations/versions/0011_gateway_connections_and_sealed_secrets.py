"""environments: test or live, a gateway connection of their own; endpoint secrets sealed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:00:00.000000

Secrets already stored stay readable as they are (a sealed value is told from a plain one
by its form): the service seals them when it starts, and `card-checkout secrets rotate`
reseals everything with the newest key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("mode", sa.String(8), nullable=False, server_default="test"))
        batch.add_column(sa.Column("gateway_provider", sa.String(16), nullable=True))
        batch.add_column(sa.Column("gateway_secret_key", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("connection_updated_at", sa.DateTime(timezone=True), nullable=True)
        )
    # A sealed secret is longer than the 255 characters a plain one was given. (On SQLite the
    # table is rebuilt, which `migrate` does with foreign keys checked at the end.)
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.alter_column("secret", type_=sa.Text(), existing_type=sa.String(255),
                           existing_nullable=False)  # fmt: skip


def downgrade() -> None:
    # The code before this revision reads secrets as stored: sealed ones would be taken for
    # the secrets themselves (wrong signatures everywhere), so they must go back first.
    sealed = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM webhook_endpoints WHERE secret LIKE :sealed"
                " UNION ALL SELECT count(*) FROM environments"
                " WHERE gateway_secret_key IS NOT NULL"
                " OR CAST(webhook_secrets AS TEXT) LIKE :sealed_in_list"
            ),
            {"sealed": "gAAAAA%", "sealed_in_list": '%"gAAAAA%'},
        )
        .scalars()
        .all()
    )
    if any(sealed):
        raise RuntimeError(
            "cannot downgrade below 0011: sealed secrets are stored, which older versions "
            "would take for the secrets themselves; and environments' own gateway "
            "connections would be lost. Upgrade again, or restore a backup taken before 0011."
        )
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.alter_column("secret", type_=sa.String(255), existing_type=sa.Text(),
                           existing_nullable=False)  # fmt: skip
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("connection_updated_at")
        batch.drop_column("gateway_secret_key")
        batch.drop_column("gateway_provider")
        batch.drop_column("mode")
