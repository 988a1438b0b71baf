"""card_checkout_expect_rows: a versioned write that matched no row fails its statement

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# A transaction's writes go to PostgreSQL as one statement; each versioned UPDATE in it is
# counted by this function, which fails the whole statement (serialization_failure, so the
# work is re-run on fresh reads) when the row was not at the version it was read at.
EXPECT_ROWS = """
CREATE OR REPLACE FUNCTION card_checkout_expect_rows(matched bigint, expected integer)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    IF matched IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'a row changed since it was read (% of % matched)', matched, expected
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN expected;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EXPECT_ROWS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS card_checkout_expect_rows(bigint, integer)")
