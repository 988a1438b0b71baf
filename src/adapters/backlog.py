"""`read_backlog`: what waits in storage, for the service's gauges (not a use case: an
operator's reading, across every environment)."""

from __future__ import annotations

from datetime import datetime

import attrs

from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.sql import SqlUnitOfWorkFactory
from adapters.sql import backlog as sql_backlog
from core.model import PaymentStatus
from core.ports import UnitOfWorkFactory


@attrs.frozen
class Backlog:
    outbox_notifications: int  # written, not yet delivered to the notifier
    oldest_notification_at: datetime | None
    webhook_deliveries_pending: int  # neither delivered nor given up
    payments_processing: int  # charged, their outcome not known yet


async def read_backlog(storage: UnitOfWorkFactory) -> Backlog | None:
    """The backlog of the storage; None for a storage this does not know how to read."""
    if isinstance(storage, SqlUnitOfWorkFactory):
        return Backlog(*await sql_backlog.read_backlog(storage.engine))
    if isinstance(storage, InMemoryUnitOfWorkFactory):
        store = storage.store
        return Backlog(
            outbox_notifications=len(store.outbox),
            oldest_notification_at=min(
                (n.occurred_at for n in store.outbox.values()), default=None
            ),
            webhook_deliveries_pending=sum(d.pending for d in store.webhook_deliveries.values()),
            payments_processing=sum(
                p.status is PaymentStatus.PROCESSING for p in store.payments.values()
            ),
        )
    return None
