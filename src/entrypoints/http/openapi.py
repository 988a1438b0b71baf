"""The OpenAPI 3.1 document, built from the app's own route list (a test keeps them equal)."""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.model import NotificationType
from entrypoints.http.errors import STATUS_FOR_CODE

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_AMOUNT: Final = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["150.00"]}
_AMOUNT_IN: Final = {
    "oneOf": [{"type": "number"}, {"type": "string"}],
    "description": "A decimal, parsed exactly (never as a float).",
}
_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}
_FAILURE: Final = {
    "type": ["object", "null"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string", "enum": sorted(STATUS_FOR_CODE)},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    },
    "CreatePayment": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "destination_type",
            "destination_id",
            "payment_method_type",
            "payment_gateway",
            "amount",
            "currency",
            "process_payment",
        ],
        "properties": {
            "destination_type": {"const": "INVOICE"},
            "destination_id": {"type": "string"},
            "payment_method_type": {"enum": ["CARD", "PAYMENT_LINK"]},
            "payment_gateway": {"const": "stripe"},
            "amount": _AMOUNT_IN,
            "currency": {"type": "string", "minLength": 3, "maxLength": 3},
            "process_payment": {"type": "boolean"},
            "payment_method_id": {"type": "string"},
            "save_card_and_make_default": {"type": "boolean"},
            "success_url": {"type": "string", "format": "uri"},
            "cancel_url": {"type": "string", "format": "uri"},
            "metadata": {
                "type": "object",
                "maxProperties": 50,
                "additionalProperties": {"type": "string"},
            },
        },
    },
    "Payment": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "payment"},
            "payment_status": {
                "enum": [
                    "initiated",
                    "processing",
                    "succeeded",
                    "partially_refunded",
                    "refunded",
                    "failed",
                ]
            },
            "amount": _AMOUNT,
            "currency": {"type": "string"},
            "destination_type": {"const": "INVOICE"},
            "destination_id": {"type": "string"},
            "customer_id": {"type": "string"},
            "payment_method_type": {"enum": ["CARD", "PAYMENT_LINK"]},
            "payment_method_id": _TEXT_OR_NULL,
            "payment_gateway": {"const": "stripe"},
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
            "id": {"type": "string"},
            "object": {"const": "refund"},
            "payment_id": {"type": "string"},
            "amount": _AMOUNT,
            "currency": {"type": "string"},
            "status": {"enum": ["pending", "succeeded", "failed"]},
            "reason": _TEXT_OR_NULL,
            "gateway_refund_id": _TEXT_OR_NULL,
            "error": _FAILURE,
            "created_at": _TIME,
        },
    },
    "CreateRefund": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"amount": _AMOUNT_IN, "reason": {"type": "string"}},
    },
    "PaymentEvent": {
        "type": "object",
        "properties": {
            "payment_id": {"type": "string"},
            "sequence": {"type": "integer"},
            "from_status": _TEXT_OR_NULL,
            "to_status": {"type": "string"},
            "reason": {"type": "string"},
            "actor": {"type": "string"},
            "occurred_at": _TIME,
        },
    },
    "Customer": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "customer"},
            "external_id": {"type": "string"},
            "name": _TEXT_OR_NULL,
            "email": _TEXT_OR_NULL,
            "gateway_customer_id": _TEXT_OR_NULL,
            "created_at": _TIME,
        },
    },
    "CreateCustomer": {
        "type": "object",
        "additionalProperties": False,
        "required": ["external_id"],
        "properties": {
            "external_id": {"type": "string"},
            "name": {"type": "string"},
            "email": {"type": "string"},
            "gateway_customer_id": {"type": "string"},
        },
    },
    "PaymentMethod": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "brand": {"type": "string"},
            "last4": {"type": "string"},
            "exp_month": {"type": "integer"},
            "exp_year": {"type": "integer"},
            "is_default": {"type": "boolean"},
        },
    },
    "CardSetup": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"success_url": {"type": "string"}, "cancel_url": {"type": "string"}},
    },
    "CheckoutSession": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "status": {"type": "string"},
        },
    },
    "Invoice": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "invoice"},
            "customer_id": {"type": "string"},
            "external_id": _TEXT_OR_NULL,
            "currency": {"type": "string"},
            "invoice_status": {"enum": ["DRAFT", "FINALIZED", "VOIDED"]},
            "payment_status": {
                "enum": [
                    "pending",
                    "processing",
                    "succeeded",
                    "failed",
                    "partially_refunded",
                    "refunded",
                ]
            },
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
    "CreateInvoice": {
        "type": "object",
        "additionalProperties": False,
        "required": ["customer_id", "currency", "amount_due"],
        "properties": {
            "customer_id": {"type": "string"},
            "currency": {"type": "string"},
            "amount_due": _AMOUNT_IN,
            "external_id": {"type": "string"},
            "status": {"enum": ["DRAFT", "FINALIZED"]},
        },
    },
    "WebhookEndpoint": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "webhook_endpoint"},
            "url": {"type": "string", "format": "uri"},
            "events": {"type": "array", "items": {"type": "string"}},
            "status": {"enum": ["enabled", "disabled", "deleted"]},
            "secret": {
                "type": "string",
                "description": "Signs every delivery; in the answer that created it only.",
            },
            "created_at": _TIME,
            "disabled_at": _TIME,
        },
    },
    "CreateWebhookEndpoint": {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "format": "uri", "maxLength": 2048},
            "events": {
                "type": "array",
                "items": {"enum": ["*", *(kind.value for kind in NotificationType)]},
                "description": 'The event types to send; none, or ["*"], means all.',
            },
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "webhook_delivery"},
            "endpoint_id": {"type": "string"},
            "event_id": {"type": "string"},
            "event_type": {"type": "string"},
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
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    "StripeEvent": {
        "type": "object",
        "required": ["id", "type", "created", "data"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "created": {"type": "integer"},
            "data": {"type": "object"},
        },
    },
    "WebhookReceipt": {
        "type": "object",
        "properties": {"received": {"type": "boolean"}, "handled": {"type": "boolean"}},
    },
}


def _list_of(name: str) -> Schema:
    return {
        "type": "object",
        "required": ["items", "has_more"],
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "has_more": {"type": "boolean"},
        },
    }


# (method, path) -> summary, request schema, {status: response schema}
OPERATIONS: Final[dict[tuple[str, str], tuple[str, str | None, dict[int, Schema]]]] = {
    ("POST", "/api/v1/payments"): (
        "Create (and charge) a payment for an invoice",
        "CreatePayment",
        {201: _ref("Payment"), 202: _ref("Payment")},
    ),
    ("GET", "/api/v1/payments"): ("List payments, newest first", None, {200: _list_of("Payment")}),
    ("GET", "/api/v1/payments/{payment_id}"): ("Get a payment", None, {200: _ref("Payment")}),
    ("POST", "/api/v1/payments/{payment_id}/process"): (
        "Charge an initiated payment",
        None,
        {201: _ref("Payment"), 202: _ref("Payment")},
    ),
    ("POST", "/api/v1/payments/{payment_id}/refunds"): (
        "Refund all or part of a payment",
        "CreateRefund",
        {201: _ref("Refund")},
    ),
    ("GET", "/api/v1/payments/{payment_id}/refunds"): (
        "A payment's refunds",
        None,
        {200: _list_of("Refund")},
    ),
    ("GET", "/api/v1/payments/{payment_id}/events"): (
        "A payment's transitions, oldest first",
        None,
        {200: _list_of("PaymentEvent")},
    ),
    ("POST", "/api/v1/customers"): (
        "Create a customer (and at the gateway)",
        "CreateCustomer",
        {201: _ref("Customer")},
    ),
    ("GET", "/api/v1/customers/{customer_id}"): ("Get a customer", None, {200: _ref("Customer")}),
    ("GET", "/api/v1/customers/{customer_id}/payment_methods"): (
        "The customer's saved cards",
        None,
        {200: _list_of("PaymentMethod")},
    ),
    ("POST", "/api/v1/customers/{customer_id}/payment_methods/setup"): (
        "A hosted page that saves a card as the default",
        "CardSetup",
        {201: _ref("CheckoutSession")},
    ),
    ("POST", "/api/v1/invoices"): ("Create an invoice", "CreateInvoice", {201: _ref("Invoice")}),
    ("GET", "/api/v1/invoices"): ("List invoices, newest first", None, {200: _list_of("Invoice")}),
    ("GET", "/api/v1/invoices/{invoice_id}"): ("Get an invoice", None, {200: _ref("Invoice")}),
    ("POST", "/api/v1/invoices/{invoice_id}/finalize"): (
        "Finalize a draft invoice",
        None,
        {200: _ref("Invoice")},
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/void"): (
        "Void an unpaid invoice",
        None,
        {200: _ref("Invoice")},
    ),
    ("POST", "/api/v1/webhook_endpoints"): (
        "Send the environment's events to a URL, signed (admin keys)",
        "CreateWebhookEndpoint",
        {201: _ref("WebhookEndpoint")},
    ),
    ("GET", "/api/v1/webhook_endpoints"): (
        "The environment's webhook endpoints (admin keys)",
        None,
        {200: _list_of("WebhookEndpoint")},
    ),
    ("GET", "/api/v1/webhook_endpoints/{endpoint_id}"): (
        "Get a webhook endpoint (admin keys)",
        None,
        {200: _ref("WebhookEndpoint")},
    ),
    ("DELETE", "/api/v1/webhook_endpoints/{endpoint_id}"): (
        "Stop sending to a webhook endpoint (admin keys)",
        None,
        {200: _ref("WebhookEndpoint")},
    ),
    ("GET", "/api/v1/webhook_endpoints/{endpoint_id}/deliveries"): (
        "A webhook endpoint's deliveries with their attempts, newest first (admin keys)",
        None,
        {200: _list_of("WebhookDelivery")},
    ),
    ("POST", "/api/v1/webhooks/stripe/{environment_id}"): (
        "Stripe's events for an environment, signed (Stripe-Signature)",
        "StripeEvent",
        {200: _ref("WebhookReceipt")},
    ),
    ("GET", "/healthz"): ("The process is alive", None, {200: _ref("Health")}),
    ("GET", "/readyz"): (
        "The database is reachable",
        None,
        {200: _ref("Health"), 503: _ref("Health")},
    ),
    ("GET", "/metrics"): ("Prometheus metrics", None, {200: {"type": "string"}}),
    ("GET", "/openapi.json"): ("This document", None, {200: {"type": "object"}}),
}

_PUBLIC: Final = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/api/v1/webhooks/stripe/{environment_id}",
}
_LIST_QUERY: Final = {
    "/api/v1/payments": [
        "destination_id",
        "customer_id",
        "payment_status",
        "created_gte",
        "created_lt",
        "limit",
        "starting_after",
    ],
    "/api/v1/invoices": ["customer_id", "invoice_status", "limit", "starting_after"],
    "/api/v1/webhook_endpoints/{endpoint_id}/deliveries": ["limit"],
}
# POST routes that take no Idempotency-Key (creating an endpoint twice is seen and undone).
_NOT_IDEMPOTENT: Final = {"/api/v1/webhook_endpoints"}


def _operation(method: str, path: str) -> Schema:
    summary, request, responses = OPERATIONS[(method, path)]
    operation: Schema = {
        "operationId": method.lower() + path.replace("/", "_").replace("{", "").replace("}", ""),
        "summary": summary,
        "responses": {
            str(status): {
                "description": summary,
                "content": {
                    "text/plain" if path == "/metrics" else "application/json": {"schema": schema}
                },
            }
            for status, schema in responses.items()
        },
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in (part[1:-1] for part in path.split("/") if part.startswith("{"))
    ]
    if method == "GET":
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in _LIST_QUERY.get(path, [])
        ]
    if method == "POST" and "/webhooks/" in path:
        parameters.append(
            {"name": "Stripe-Signature", "in": "header", "required": True,
             "schema": {"type": "string"}}
        )  # fmt: skip
    elif method == "POST" and path not in _NOT_IDEMPOTENT:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if request is not None:
        operation["requestBody"] = {
            "required": method == "POST"
            and request
            in {"CreatePayment", "CreateCustomer", "CreateInvoice", "CreateWebhookEndpoint"},
            "content": {"application/json": {"schema": _ref(request)}},
        }
    if "/webhooks/" in path:
        operation["responses"]["default"] = {
            "description": "A bad or stale signature (400), or a failure to retry (5xx)",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    if path not in _PUBLIC:
        operation["security"] = [
            {"bearer": [], "environment": []},
            {"apiKey": [], "environment": []},
        ]
        operation["responses"]["default"] = {
            "description": "An error, in the one error shape",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return operation


def openapi_document(routes: list[BaseRoute]) -> Schema:
    paths: dict[str, Schema] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(method, route.path)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Card Checkout",
            "version": "1.0.0",
            "description": "Charge a customer's saved card off-session to pay an invoice.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "environment": {"type": "apiKey", "in": "header", "name": "X-Environment-ID"},
            },
        },
    }


def openapi_route(routes: list[BaseRoute]) -> Route:
    document: Schema = {}

    async def openapi(request: Request) -> Response:
        if not document:
            document.update(openapi_document(request.app.routes))
        return JSONResponse(document)

    return Route("/openapi.json", openapi, methods=["GET"])
