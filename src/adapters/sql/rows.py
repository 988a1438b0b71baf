"""Rows and core objects, converted by each class's fields (the ORM maps nothing; see codec)."""

from __future__ import annotations

from typing import Any

from adapters.sql.codec import Part, RowCodec
from adapters.sql.codec import Row as Row
from adapters.sql.snapshots import idempotency_from as idempotency_from
from adapters.sql.snapshots import idempotency_values as idempotency_values
from core.model import (
    ApiKey,
    Customer,
    Invoice,
    Notification,
    NotificationType,
    Payment,
    PaymentEvent,
    Refund,
    WebhookDelivery,
)


def _notification_columns(notification: Notification) -> dict[str, Any]:
    """A delivery carries its notification in columns of its own (the outbox row is gone)."""
    return {
        "notification_id": notification.id,
        "notification_type": notification.type.value,
        "occurred_at": notification.occurred_at,
        "data": dict(notification.data),
    }


def _notification_of(row: Row) -> Notification:
    return Notification(
        id=row["notification_id"],
        environment_id=row["environment_id"],
        type=NotificationType(row["notification_type"]),
        occurred_at=row["occurred_at"],
        data=row["data"],
    )


API_KEYS = RowCodec(ApiKey)
CUSTOMERS = RowCodec(Customer)
INVOICES = RowCodec(Invoice)
PAYMENTS = RowCodec(Payment)
EVENTS = RowCodec(PaymentEvent)
REFUNDS = RowCodec(Refund)
NOTIFICATIONS = RowCodec(Notification)
DELIVERIES = RowCodec(
    WebhookDelivery, parts={"notification": Part(_notification_columns, _notification_of)}
)

api_key_values, api_key_from = API_KEYS.values, API_KEYS.from_row
customer_values, customer_from = CUSTOMERS.values, CUSTOMERS.from_row
invoice_values, invoice_from = INVOICES.values, INVOICES.from_row
payment_values, payment_from = PAYMENTS.values, PAYMENTS.from_row
event_values, event_from = EVENTS.values, EVENTS.from_row
refund_values, refund_from = REFUNDS.values, REFUNDS.from_row
notification_values, notification_from = NOTIFICATIONS.values, NOTIFICATIONS.from_row
webhook_delivery_values, webhook_delivery_from = DELIVERIES.values, DELIVERIES.from_row
