"""The ceiling: a bare Starlette endpoint that parses the same JSON body and answers a
payment-shaped JSON, served by the same uvicorn settings as the service."""

from __future__ import annotations

import json
from decimal import Decimal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def create_payment(request: Request) -> JSONResponse:
    body = json.loads(await request.body(), parse_float=Decimal)
    return JSONResponse(
        {
            "id": "pay_01K34HYZN03V6X8Q6V3T8X6G4F",
            "object": "payment",
            "payment_status": "succeeded",
            "amount": str(body["amount"]),
            "currency": body["currency"],
            "destination_type": "INVOICE",
            "destination_id": body["destination_id"],
            "customer_id": "cust_01K34HYZN03V6X8Q6V3T8X6G4F",
            "payment_method_type": "CARD",
            "payment_method_id": "pm_01K34HYZN03V6X8Q6V3T8X6G4F",
            "payment_gateway": "stripe",
            "gateway_tracking_id": "pi_01K34HYZN03V6X8Q6V3T8X6G4F",
            "amount_refunded": "0.00",
            "error": None,
            "metadata": {"card_last4": "4242", "card_brand": "visa"},
            "created_at": "2026-01-01T00:00:00Z",
        },
        status_code=201,
    )


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/v1/payments", create_payment, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
