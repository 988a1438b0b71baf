"""Explicit conversion between rows and core objects (the ORM maps nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.sql.snapshots import idempotency_from as idempotency_from
from adapters.sql.snapshots import idempotency_values as idempotency_values
from adapters.sql.snapshots import json_converter
from core.model import (
    Actor,
    ApiKey,
    Customer,
    Failure,
    Invoice,
    InvoicePaymentStatus,
    InvoiceStatus,
    Notification,
    NotificationType,
    Payment,
    PaymentEvent,
    PaymentMethodType,
    PaymentStatus,
    Refund,
    RefundStatus,
    Role,
    WebhookDelivery,
)
from core.money import CURRENCIES, Currency, Money

Row = Mapping[str, Any]


def _money(units: int, currency: Currency) -> Money:
    return Money.from_minor_units(units, currency)


def _failure(value: Any) -> Failure | None:
    return Failure(**value) if value else None


def _failure_json(failure: Failure | None) -> dict[str, Any] | None:
    return json_converter.unstructure(failure) if failure else None


def api_key_values(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant_id": key.tenant_id,
        "key_hash": key.key_hash,
        "role": key.role.value,
        "environment_ids": sorted(key.environment_ids),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "version": key.version,
    }


def api_key_from(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        key_hash=row["key_hash"],
        role=Role(row["role"]),
        environment_ids=frozenset(row["environment_ids"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        version=row["version"],
    )


def customer_values(customer: Customer) -> dict[str, Any]:
    return {
        "environment_id": customer.environment_id,
        "id": customer.id,
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email,
        "gateway_customer_id": customer.gateway_customer_id,
        "created_at": customer.created_at,
        "version": customer.version,
    }


def customer_from(row: Row) -> Customer:
    return Customer(
        id=row["id"],
        environment_id=row["environment_id"],
        external_id=row["external_id"],
        name=row["name"],
        email=row["email"],
        gateway_customer_id=row["gateway_customer_id"],
        created_at=row["created_at"],
        version=row["version"],
    )


def invoice_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "environment_id": invoice.environment_id,
        "id": invoice.id,
        "customer_id": invoice.customer_id,
        "currency": invoice.currency.code,
        "amount_due": invoice.amount_due.to_minor_units(),
        "amount_paid": invoice.amount_paid.to_minor_units(),
        "amount_refunded": invoice.amount_refunded.to_minor_units(),
        "status": invoice.status.value,
        "payment_status": invoice.payment_status.value,
        "external_id": invoice.external_id,
        "created_at": invoice.created_at,
        "updated_at": invoice.updated_at,
        "finalized_at": invoice.finalized_at,
        "voided_at": invoice.voided_at,
        "paid_at": invoice.paid_at,
        "version": invoice.version,
    }


def invoice_from(row: Row) -> Invoice:
    currency = CURRENCIES[row["currency"]]
    return Invoice(
        id=row["id"],
        environment_id=row["environment_id"],
        customer_id=row["customer_id"],
        amount_due=_money(row["amount_due"], currency),
        amount_paid=_money(row["amount_paid"], currency),
        amount_refunded=_money(row["amount_refunded"], currency),
        status=InvoiceStatus(row["status"]),
        payment_status=InvoicePaymentStatus(row["payment_status"]),
        external_id=row["external_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finalized_at=row["finalized_at"],
        voided_at=row["voided_at"],
        paid_at=row["paid_at"],
        version=row["version"],
    )


def payment_values(payment: Payment) -> dict[str, Any]:
    return {
        "environment_id": payment.environment_id,
        "id": payment.id,
        "invoice_id": payment.invoice_id,
        "customer_id": payment.customer_id,
        "currency": payment.currency.code,
        "amount": payment.amount.to_minor_units(),
        "amount_refunded": payment.amount_refunded.to_minor_units(),
        "refund_reserved": payment.refund_reserved.to_minor_units(),
        "method_type": payment.method_type.value,
        "status": payment.status.value,
        "gateway": payment.gateway,
        "payment_method_id": payment.payment_method_id,
        "gateway_tracking_id": payment.gateway_tracking_id,
        "payment_url": payment.payment_url,
        "save_card_and_make_default": payment.save_card_and_make_default,
        "success_url": payment.success_url,
        "cancel_url": payment.cancel_url,
        "metadata": dict(payment.metadata),
        "card_brand": payment.card_brand,
        "card_last4": payment.card_last4,
        "failure": _failure_json(payment.failure),
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
        "succeeded_at": payment.succeeded_at,
        "failed_at": payment.failed_at,
        "refunded_at": payment.refunded_at,
        "version": payment.version,
        "event_count": payment.event_count,
    }


def payment_from(row: Row) -> Payment:
    currency = CURRENCIES[row["currency"]]
    return Payment(
        id=row["id"],
        environment_id=row["environment_id"],
        invoice_id=row["invoice_id"],
        customer_id=row["customer_id"],
        amount=_money(row["amount"], currency),
        amount_refunded=_money(row["amount_refunded"], currency),
        refund_reserved=_money(row["refund_reserved"], currency),
        method_type=PaymentMethodType(row["method_type"]),
        status=PaymentStatus(row["status"]),
        gateway=row["gateway"],
        payment_method_id=row["payment_method_id"],
        gateway_tracking_id=row["gateway_tracking_id"],
        payment_url=row["payment_url"],
        save_card_and_make_default=row["save_card_and_make_default"],
        success_url=row["success_url"],
        cancel_url=row["cancel_url"],
        metadata=row["metadata"],
        card_brand=row["card_brand"],
        card_last4=row["card_last4"],
        failure=_failure(row["failure"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        succeeded_at=row["succeeded_at"],
        failed_at=row["failed_at"],
        refunded_at=row["refunded_at"],
        version=row["version"],
        event_count=row["event_count"],
    )


def event_values(event: PaymentEvent) -> dict[str, Any]:
    return {
        "payment_id": event.payment_id,
        "sequence": event.sequence,
        "environment_id": event.environment_id,
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value,
        "reason": event.reason,
        "actor": event.actor.value,
        "occurred_at": event.occurred_at,
    }


def event_from(row: Row) -> PaymentEvent:
    return PaymentEvent(
        payment_id=row["payment_id"],
        environment_id=row["environment_id"],
        sequence=row["sequence"],
        from_status=PaymentStatus(row["from_status"]) if row["from_status"] else None,
        to_status=PaymentStatus(row["to_status"]),
        reason=row["reason"],
        actor=Actor(row["actor"]),
        occurred_at=row["occurred_at"],
    )


def refund_values(refund: Refund) -> dict[str, Any]:
    return {
        "environment_id": refund.environment_id,
        "id": refund.id,
        "payment_id": refund.payment_id,
        "invoice_id": refund.invoice_id,
        "currency": refund.amount.currency.code,
        "amount": refund.amount.to_minor_units(),
        "status": refund.status.value,
        "reason": refund.reason,
        "gateway_refund_id": refund.gateway_refund_id,
        "failure": _failure_json(refund.failure),
        "created_at": refund.created_at,
        "updated_at": refund.updated_at,
        "version": refund.version,
    }


def refund_from(row: Row) -> Refund:
    return Refund(
        id=row["id"],
        environment_id=row["environment_id"],
        payment_id=row["payment_id"],
        invoice_id=row["invoice_id"],
        amount=_money(row["amount"], CURRENCIES[row["currency"]]),
        status=RefundStatus(row["status"]),
        reason=row["reason"],
        gateway_refund_id=row["gateway_refund_id"],
        failure=_failure(row["failure"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def notification_values(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "environment_id": notification.environment_id,
        "type": notification.type.value,
        "occurred_at": notification.occurred_at,
        "data": dict(notification.data),
    }


def notification_from(row: Row) -> Notification:
    return Notification(
        id=row["id"],
        environment_id=row["environment_id"],
        type=NotificationType(row["type"]),
        occurred_at=row["occurred_at"],
        data=row["data"],
    )


def webhook_delivery_values(delivery: WebhookDelivery) -> dict[str, Any]:
    notification = delivery.notification
    return {
        "environment_id": delivery.environment_id,
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "notification_id": notification.id,
        "notification_type": notification.type.value,
        "occurred_at": notification.occurred_at,
        "data": dict(notification.data),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "first_attempt_at": delivery.first_attempt_at,
        "last_attempt_at": delivery.last_attempt_at,
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at,
        "failed_at": delivery.failed_at,
        "created_at": delivery.created_at,
        "version": delivery.version,
    }


def webhook_delivery_from(row: Row) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        environment_id=row["environment_id"],
        endpoint_id=row["endpoint_id"],
        notification=Notification(
            id=row["notification_id"],
            environment_id=row["environment_id"],
            type=NotificationType(row["notification_type"]),
            occurred_at=row["occurred_at"],
            data=row["data"],
        ),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        first_attempt_at=row["first_attempt_at"],
        last_attempt_at=row["last_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        failed_at=row["failed_at"],
        created_at=row["created_at"],
        version=row["version"],
    )
