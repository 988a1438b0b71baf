"""The SQL repositories, by concern; each reads through the session and stages its writes."""

from adapters.sql.repositories.access import SqlApiKeyRepository, SqlEnvironmentRepository
from adapters.sql.repositories.exactly_once import SqlGatewayEventLog, SqlIdempotencyRepository
from adapters.sql.repositories.invoicing import SqlCustomerRepository, SqlInvoiceRepository
from adapters.sql.repositories.notifications import (
    SqlOutboxRepository,
    SqlWebhookDeliveryRepository,
    SqlWebhookEndpointRepository,
)
from adapters.sql.repositories.payments import SqlPaymentRepository, SqlRefundRepository

__all__ = [
    "SqlApiKeyRepository",
    "SqlCustomerRepository",
    "SqlEnvironmentRepository",
    "SqlGatewayEventLog",
    "SqlIdempotencyRepository",
    "SqlInvoiceRepository",
    "SqlOutboxRepository",
    "SqlPaymentRepository",
    "SqlRefundRepository",
    "SqlWebhookDeliveryRepository",
    "SqlWebhookEndpointRepository",
]
