"""In-memory storage with the guarantees a database gives.

A unit of work stages its writes and applies them at commit, all at once, after checking
what a database's constraints would: versions not moved by another writer, at most one live
and one paid payment per invoice, unique idempotency keys, gateway event ids and customers.
Commit never awaits, so it is atomic under asyncio.
"""

from adapters.memory.notifications import (
    InMemoryGatewayEventLog,
    InMemoryIdempotencyRepository,
    InMemoryOutboxRepository,
    InMemoryWebhookDeliveryRepository,
    InMemoryWebhookEndpointRepository,
)
from adapters.memory.records import (
    InMemoryApiKeyRepository,
    InMemoryCustomerRepository,
    InMemoryEnvironmentRepository,
    InMemoryInvoiceRepository,
    InMemoryPaymentRepository,
    InMemoryRefundRepository,
)
from adapters.memory.table import InMemoryStore
from adapters.memory.uow import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory

__all__ = [
    "InMemoryApiKeyRepository",
    "InMemoryCustomerRepository",
    "InMemoryEnvironmentRepository",
    "InMemoryGatewayEventLog",
    "InMemoryIdempotencyRepository",
    "InMemoryInvoiceRepository",
    "InMemoryOutboxRepository",
    "InMemoryPaymentRepository",
    "InMemoryRefundRepository",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "InMemoryUnitOfWorkFactory",
    "InMemoryWebhookDeliveryRepository",
    "InMemoryWebhookEndpointRepository",
]
