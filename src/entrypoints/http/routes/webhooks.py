"""Gateway webhooks: Stripe's events, verified, applied once, acknowledged."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.stripe_gateway.webhooks import parse_event, verify_signature
from core.errors import (
    CheckoutError,
    ConcurrentUpdate,
    GatewayError,
    GatewayNotConnected,
    InvalidJson,
    PayloadTooLarge,
    ServiceUnavailable,
)
from entrypoints.http.body import MAX_WEBHOOK_BYTES, raw_body
from entrypoints.http.routing import Access, Context, Routes, Tag
from entrypoints.http.schemas import ref

logger = logging.getLogger("card_checkout.http")
webhooks = Routes(Tag("Gateway webhooks", "What the gateway tells us, signed."))


@webhooks.route(
    "POST",
    "/webhooks/stripe/{environment_id}",
    "receiveStripeEvent",
    "Stripe's events for an environment, signed (Stripe-Signature)",
    {200: ref("WebhookReceipt")},
    body="StripeEvent",
    access=Access.STRIPE_SIGNATURE,
    # 400: a bad or stale signature, or a signed event that does not parse; the others are
    # failures Stripe retries.
    errors=(
        InvalidJson,
        PayloadTooLarge,
        ConcurrentUpdate,
        GatewayError,
        GatewayNotConnected,
        ServiceUnavailable,
    ),
)
async def stripe_webhook(request: Request, context: Context) -> Response:
    """Verified, applied once, acknowledged; a failure answers 5xx so Stripe retries."""
    checkout = context.checkout
    environment_id = request.path_params["environment_id"]
    payload = await raw_body(request, limit=MAX_WEBHOOK_BYTES)
    secrets = await checkout.webhook_secrets(environment_id, context.webhook_secrets)
    signature = request.headers.get("stripe-signature")
    verify_signature(payload, signature, secrets)
    try:
        event = parse_event(payload)
    except CheckoutError as error:
        # Signed, so Stripe sent it: worth a line, as retrying it would not help.
        logger.warning("signed webhook event for %r does not parse: %s (%s)", environment_id,
                       error.code, error.details.get("field"))  # fmt: skip
        raise
    if event is None:
        return JSONResponse({"received": True, "handled": False})
    named = event.metadata.get("environment_id")
    if named is not None and named != environment_id:
        logger.warning("webhook %s names environment %r, not %r", event.id, named,
                       environment_id)  # fmt: skip
        return JSONResponse({"received": True, "handled": False})
    known = await checkout.handle_gateway_event(event, environment_id=environment_id)
    if not known:
        logger.info("gateway event %s (%s) names nothing known here; acknowledged",
                    event.id, event.type.value)  # fmt: skip
    return JSONResponse({"received": True, "handled": known})
