"""The response schemas of the OpenAPI document, as `wire` writes them.

Written by hand, as `wire` is; every enumeration comes from the enum it renders. Request
schemas are not here: they are derived from the body definitions in `entrypoints.bodies`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Final

from core.gateway import CheckoutSessionStatus
from core.model import (
    Actor,
    EnvironmentMode,
    GatewayProvider,
    InvoicePaymentStatus,
    InvoiceStatus,
    NotificationType,
    PaymentMethodType,
    PaymentStatus,
    RefundStatus,
    Role,
)
from core.rules import ALL_EVENTS
from entrypoints.bodies import DESTINATION_TYPES, PAYMENT_GATEWAYS
from entrypoints.http.errors import ERROR_TYPES, STATUS_FOR_CODE, error_type

Schema = dict[str, Any]


def enum_of(kind: type[Enum], *, nullable: bool = False) -> Schema:
    values: list[object] = [member.value for member in kind]
    return {"enum": [*values, None] if nullable else values}


def one_of(values: tuple[str, ...]) -> Schema:
    return {"const": values[0]} if len(values) == 1 else {"enum": list(values)}


_AMOUNT: Final = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["150.00"]}
_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT: Final = {"type": "string"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}
_FAILURE: Final = {
    "type": ["object", "null"],
    "properties": {"code": _TEXT, "message": _TEXT},
}


def _statuses_of_types() -> str:
    """Which statuses answer each error type (as `errors.error_type` decides)."""
    statuses: dict[str, set[int]] = {}
    for status in STATUS_FOR_CODE.values():
        statuses.setdefault(error_type(status), set()).add(status)
    return "; ".join(
        f"{kind}: {', '.join(map(str, sorted(statuses.get(kind, ()))))}" for kind in ERROR_TYPES
    )


_ERROR_DETAILS: Final = {
    "type": "object",
    "description": "What applies to the error: ids, field, expected, actual, next_action...",
    "properties": {
        "field": {"type": "string", "description": "The field, parameter or header at fault."},
        "fields": {
            "type": "array",
            "description": "A request body's every refused field, in order (the first is "
            "also `field`); a field that depends on a refused one is not read.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": _TEXT, "message": _TEXT},
            },
        },
    },
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "type", "message", "details", "request_id"],
                "properties": {
                    "code": {"type": "string", "enum": sorted(STATUS_FOR_CODE)},
                    "type": {
                        "enum": list(ERROR_TYPES),
                        "description": _statuses_of_types(),
                    },
                    "message": _TEXT,
                    "details": _ERROR_DETAILS,
                    "request_id": {
                        "type": "string",
                        "description": "The X-Request-ID of the request: quote it to support.",
                    },
                },
            }
        },
    },
    "Payment": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "object": {"const": "payment"},
            "payment_status": enum_of(PaymentStatus),
            "amount": _AMOUNT,
            "currency": _TEXT,
            "destination_type": one_of(DESTINATION_TYPES),
            "destination_id": _TEXT,
            "customer_id": _TEXT,
            "payment_method_type": enum_of(PaymentMethodType),
            "payment_method_id": _TEXT_OR_NULL,
            "payment_gateway": one_of(PAYMENT_GATEWAYS),
            "gateway_tracking_id": _TEXT_OR_NULL,
            "payment_url": _TEXT_OR_NULL,
            "amount_refunded": _AMOUNT,
            "error": _FAILURE,
            "metadata": {"type": "object", "additionalProperties": _TEXT_OR_NULL},
            "created_at": _TIME,
            "updated_at": _TIME,
            "succeeded_at": _TIME,
            "failed_at": _TIME,
            "refunded_at": _TIME,
        },
    },
    "Refund": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "object": {"const": "refund"},
            "payment_id": _TEXT,
            "amount": _AMOUNT,
            "currency": _TEXT,
            "status": enum_of(RefundStatus),
            "reason": _TEXT_OR_NULL,
            "gateway_refund_id": _TEXT_OR_NULL,
            "error": _FAILURE,
            "created_at": _TIME,
        },
    },
    "PaymentEvent": {
        "type": "object",
        "properties": {
            "payment_id": _TEXT,
            "sequence": {"type": "integer"},
            "from_status": enum_of(PaymentStatus, nullable=True),
            "to_status": enum_of(PaymentStatus),
            "reason": _TEXT,
            "actor": enum_of(Actor),
            "occurred_at": _TIME,
        },
    },
    "Customer": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "object": {"const": "customer"},
            "external_id": _TEXT,
            "name": _TEXT_OR_NULL,
            "email": _TEXT_OR_NULL,
            "gateway_customer_id": _TEXT_OR_NULL,
            "created_at": _TIME,
        },
    },
    "PaymentMethod": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "brand": _TEXT,
            "last4": _TEXT,
            "exp_month": {"type": "integer"},
            "exp_year": {"type": "integer"},
            "is_default": {"type": "boolean"},
        },
    },
    "CheckoutSession": {
        "type": "object",
        "properties": {"id": _TEXT, "url": _TEXT, "status": enum_of(CheckoutSessionStatus)},
    },
    "Invoice": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "object": {"const": "invoice"},
            "customer_id": _TEXT,
            "external_id": _TEXT_OR_NULL,
            "currency": _TEXT,
            "invoice_status": enum_of(InvoiceStatus),
            "payment_status": enum_of(InvoicePaymentStatus),
            "amount_due": _AMOUNT,
            "amount_paid": _AMOUNT,
            "amount_remaining": _AMOUNT,
            "amount_refunded": _AMOUNT,
            "created_at": _TIME,
            "updated_at": _TIME,
            "finalized_at": _TIME,
            "voided_at": _TIME,
            "paid_at": _TIME,
        },
    },
    "ApiKey": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "object": {"const": "api_key"},
            "role": enum_of(Role),
            "created_at": _TIME,
            "revoked_at": _TIME,
        },
    },
    "GatewayConnectionView": {
        "type": "object",
        "properties": {
            "object": {"const": "gateway_connection"},
            "environment_id": _TEXT,
            "mode": enum_of(EnvironmentMode),
            "provider": enum_of(GatewayProvider),
            "source": {
                "enum": ["environment", "default"],
                "description": "default: the environment has no connection of its own.",
            },
            "secret_key_last4": _TEXT_OR_NULL,
            "webhook_secrets_last4": {"type": "array", "items": _TEXT},
            "updated_at": _TIME,
        },
    },
    "WebhookEndpoint": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "object": {"const": "webhook_endpoint"},
            "url": {"type": "string", "format": "uri"},
            "events": {
                "type": "array",
                "items": {"enum": [ALL_EVENTS, *(kind.value for kind in NotificationType)]},
            },
            # Worked out by `wire.webhook_endpoint_json` from the endpoint's times.
            "status": {"enum": ["enabled", "disabled", "deleted"]},
            "secret": {
                "type": "string",
                "description": "Signs every delivery; in the answer that created it only.",
            },
            "created_at": _TIME,
            "disabled_at": _TIME,
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "properties": {
            "id": _TEXT,
            "object": {"const": "webhook_delivery"},
            "endpoint_id": _TEXT,
            "event_id": _TEXT,
            "event_type": enum_of(NotificationType),
            # Worked out by `wire.webhook_delivery_json` from the delivery's times.
            "status": {"enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer"},
            "next_attempt_at": _TIME,
            "first_attempt_at": _TIME,
            "last_attempt_at": _TIME,
            "last_error": _TEXT_OR_NULL,
            "delivered_at": _TIME,
            "failed_at": _TIME,
            "created_at": _TIME,
        },
    },
    "Health": {"type": "object", "properties": {"status": _TEXT}},
    "StripeEvent": {
        "type": "object",
        "required": ["id", "type", "created", "data"],
        "properties": {
            "id": _TEXT,
            "type": _TEXT,
            "created": {"type": "integer"},
            "data": {"type": "object"},
        },
    },
    "WebhookReceipt": {
        "type": "object",
        "properties": {"received": {"type": "boolean"}, "handled": {"type": "boolean"}},
    },
}


def ref(name: str) -> Schema:
    """A reference to a schema of this module (a misspelt name fails at import)."""
    if name not in SCHEMAS:
        raise KeyError(f"no response schema named {name!r}")
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(name: str) -> Schema:
    return {
        "type": "object",
        "required": ["items", "has_more"],
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "has_more": {"type": "boolean"},
        },
    }


ERROR: Final = ref("Error")
