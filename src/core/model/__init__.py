"""The aggregates: payments with their state machine, invoices, refunds, tenancy, webhooks.

Entities are frozen: every change returns a new value with the next `version`, which the
storage uses to refuse a lost update.
"""

from core.model.invoice import (
    PAYMENT_STATUS_TRANSITIONS,
    Invoice,
    InvoicePaymentStatus,
    InvoiceStatus,
)
from core.model.payment import (
    LIVE_STATUSES,
    PAID_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Actor,
    ChargeDetails,
    Failure,
    Payment,
    PaymentEvent,
    PaymentMethodType,
    PaymentStatus,
    can_transition,
)
from core.model.refund import Refund, RefundStatus
from core.model.tenancy import (
    ApiKey,
    Customer,
    Environment,
    EnvironmentMode,
    GatewayConnection,
    GatewayProvider,
    Role,
)
from core.model.webhooks import (
    NOTIFICATION_FOR_STATUS,
    Notification,
    NotificationType,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "LIVE_STATUSES",
    "NOTIFICATION_FOR_STATUS",
    "PAID_STATUSES",
    "PAYMENT_STATUS_TRANSITIONS",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "Actor",
    "ApiKey",
    "ChargeDetails",
    "Customer",
    "Environment",
    "EnvironmentMode",
    "Failure",
    "GatewayConnection",
    "GatewayProvider",
    "Invoice",
    "InvoicePaymentStatus",
    "InvoiceStatus",
    "Notification",
    "NotificationType",
    "Payment",
    "PaymentEvent",
    "PaymentMethodType",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "Role",
    "WebhookDelivery",
    "WebhookEndpoint",
    "can_transition",
]
