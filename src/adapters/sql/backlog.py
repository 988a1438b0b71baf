"""What waits in a SQL database: counted in one statement, each count on an index or on a
table that holds only what waits (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import tables

_BACKLOG: Final = select(
    select(func.count()).select_from(tables.outbox).scalar_subquery(),
    select(func.min(tables.outbox.c.occurred_at)).scalar_subquery(),
    select(func.count())
    .select_from(tables.webhook_deliveries)
    .where(text(tables.PENDING_DELIVERY))  # the partial index ix_webhook_deliveries_due
    .scalar_subquery(),
    select(func.count())
    .select_from(tables.payments)
    # Spelled as the partial index ix_payments_processing is (a bound value would not use it).
    .where(text("status = 'processing'"))
    .scalar_subquery(),
)


async def read_backlog(engine: AsyncEngine) -> tuple[int, datetime | None, int, int]:
    """Notifications in the outbox, the oldest one's time, webhook deliveries pending and
    payments processing, in every environment."""
    async with engine.connect() as connection:
        outbox, oldest, deliveries, processing = (await connection.execute(_BACKLOG)).one()
    return int(outbox), oldest, int(deliveries), int(processing)
