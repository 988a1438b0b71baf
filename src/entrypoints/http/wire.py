"""The wire format: core objects as the JSON the contract shows, and request bodies parsed.

Amounts leave as strings with the currency's exponent, currencies in lowercase, statuses as the
contract spells them, times in ISO 8601 UTC.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.errors import CheckoutError, InvalidJson
from core.gateway import CheckoutSession, GatewayPaymentMethod
from core.model import (
    ApiKey,
    Customer,
    Failure,
    Invoice,
    Payment,
    PaymentEvent,
    PaymentMethodType,
    Refund,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.ports import Page
from core.usecases.connections import ConnectionView

Json = dict[str, Any]


def parse_json_object(body: bytes) -> Json:
    """A request body as a JSON object with exact decimals; `invalid_json` otherwise."""
    if not body.strip():
        raise InvalidJson("The request body is empty; send a JSON object.")
    try:
        parsed = json.loads(
            body, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_once_each
        )
    except _DuplicateName as duplicate:
        raise InvalidJson(f"The request body names {duplicate} twice.") from None
    except (ValueError, RecursionError):
        raise InvalidJson("The request body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise InvalidJson()
    return parsed


class _DuplicateName(ValueError):
    pass


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose names are all different: with one named twice, readers disagree on
    which value counts (a proxy may check the first, json the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        counts = Counter(name for name, _ in pairs)
        raise _DuplicateName(json.dumps(next(name for name, n in counts.items() if n > 1)))
    return obj


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def when(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _error_json(failure: Failure | None) -> Json | None:
    """Why a payment or refund failed, as the contract shows it."""
    return {"code": failure.code, "message": failure.message} if failure else None


def payment_json(payment: Payment) -> Json:
    metadata: dict[str, str | None] = dict(payment.metadata)
    metadata.update(
        stripe_payment_intent_id=(
            # A payment link tracks its checkout session until a PaymentIntent pays it.
            payment.gateway_tracking_id
            if payment.gateway_tracking_id and payment.gateway_tracking_id.startswith("pi_")
            else None
        ),
        card_last4=payment.card_last4,
        card_brand=payment.card_brand,
    )
    body: Json = {
        "id": payment.id,
        "object": "payment",
        "payment_status": payment.status.value,
        "amount": str(payment.amount),
        "currency": payment.currency.code,
        "destination_type": "INVOICE",
        "destination_id": payment.invoice_id,
        "customer_id": payment.customer_id,
        "payment_method_type": payment.method_type.value,
        "payment_method_id": payment.payment_method_id,
        "payment_gateway": payment.gateway,
        "gateway_tracking_id": payment.gateway_tracking_id,
        "amount_refunded": str(payment.amount_refunded),
        "error": _error_json(payment.failure),
        "metadata": metadata,
        "created_at": when(payment.created_at),
        "updated_at": when(payment.updated_at),
        "succeeded_at": when(payment.succeeded_at),
        "failed_at": when(payment.failed_at),
        "refunded_at": when(payment.refunded_at),
    }
    if payment.method_type is PaymentMethodType.PAYMENT_LINK:
        body["payment_url"] = payment.payment_url
    return body


def invoice_json(invoice: Invoice) -> Json:
    return {
        "id": invoice.id,
        "object": "invoice",
        "customer_id": invoice.customer_id,
        "external_id": invoice.external_id,
        "currency": invoice.currency.code,
        "invoice_status": invoice.status.value,
        "payment_status": invoice.payment_status.value,
        "amount_due": str(invoice.amount_due),
        "amount_paid": str(invoice.amount_paid),
        "amount_remaining": str(invoice.amount_remaining),
        "amount_refunded": str(invoice.amount_refunded),
        "created_at": when(invoice.created_at),
        "updated_at": when(invoice.updated_at),
        "finalized_at": when(invoice.finalized_at),
        "voided_at": when(invoice.voided_at),
        "paid_at": when(invoice.paid_at),
    }


def customer_json(customer: Customer) -> Json:
    return {
        "id": customer.id,
        "object": "customer",
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email,
        "gateway_customer_id": customer.gateway_customer_id,
        "created_at": when(customer.created_at),
    }


def refund_json(refund: Refund) -> Json:
    return {
        "id": refund.id,
        "object": "refund",
        "payment_id": refund.payment_id,
        "amount": str(refund.amount),
        "currency": refund.amount.currency.code,
        "status": refund.status.value,
        "reason": refund.reason,
        "gateway_refund_id": refund.gateway_refund_id,
        "error": _error_json(refund.failure),
        "created_at": when(refund.created_at),
    }


def event_json(event: PaymentEvent) -> Json:
    return {
        "payment_id": event.payment_id,
        "sequence": event.sequence,
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value,
        "reason": event.reason,
        "actor": event.actor.value,
        "occurred_at": when(event.occurred_at),
    }


def payment_method_json(card: GatewayPaymentMethod) -> Json:
    return {
        "id": card.id,
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "is_default": card.is_default,
    }


def checkout_session_json(session: CheckoutSession) -> Json:
    return {"id": session.id, "url": session.url, "status": session.status.value}


def api_key_json(key: ApiKey) -> Json:
    """A key as an admin sees it: never the key nor its hash, nor the other environments
    it may use."""
    return {
        "id": key.id,
        "object": "api_key",
        "role": key.role.value,
        "created_at": when(key.created_at),
        "revoked_at": when(key.revoked_at),
    }


def connection_json(view: ConnectionView) -> Json:
    return {
        "object": "gateway_connection",
        "environment_id": view.environment_id,
        "mode": view.mode.value,
        "provider": view.provider.value,
        "source": "environment" if view.own else "default",
        "secret_key_last4": view.secret_key_last4,
        "webhook_secrets_last4": list(view.webhook_secrets_last4),
        "updated_at": when(view.updated_at),
    }


def webhook_endpoint_json(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> Json:
    """An endpoint; its secret only in the answer that created it."""
    status = "enabled"
    if endpoint.deleted_at is not None:
        status = "deleted"
    elif endpoint.disabled_at is not None:
        status = "disabled"
    body: Json = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "events": sorted(kind.value for kind in endpoint.events) or ["*"],
        "status": status,
        "created_at": when(endpoint.created_at),
        "disabled_at": when(endpoint.disabled_at),
    }
    if with_secret:
        body["secret"] = endpoint.secret
    return body


def webhook_delivery_json(delivery: WebhookDelivery) -> Json:
    status = "pending"
    if delivery.delivered_at is not None:
        status = "delivered"
    elif delivery.failed_at is not None:
        status = "failed"
    return {
        "id": delivery.id,
        "object": "webhook_delivery",
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.notification.id,
        "event_type": delivery.notification.type.value,
        "status": status,
        "attempts": delivery.attempts,
        "next_attempt_at": when(delivery.next_attempt_at) if delivery.pending else None,
        "first_attempt_at": when(delivery.first_attempt_at),
        "last_attempt_at": when(delivery.last_attempt_at),
        "last_error": delivery.last_error,
        "delivered_at": when(delivery.delivered_at),
        "failed_at": when(delivery.failed_at),
        "created_at": when(delivery.created_at),
    }


def page_json(page: Page[Any], render: Any) -> Json:
    return {"items": [render(item) for item in page.items], "has_more": page.has_more}


def error_json(error: CheckoutError, *, error_type: str, request_id: str) -> Json:
    """The one error body: `type` is the kind of error its status says, `request_id` the
    X-Request-ID of the request it answers."""
    return {
        "error": {
            "code": error.code,
            "type": error_type,
            "message": error.message,
            "details": _plain(error.details),
            "request_id": request_id,
        }
    }


def _plain(details: Mapping[str, object]) -> dict[str, object]:
    return {
        k: (v if isinstance(v, (str, int, bool, list)) or v is None else str(v))
        for k, v in details.items()
    }
