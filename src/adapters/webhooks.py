"""`HttpWebhookSender`: each delivery POSTed as JSON, signed with its endpoint's secret.

The receiver checks `Card-Checkout-Signature: t=<timestamp>,v1=<hex>`, where the hex is the
HMAC-SHA256 of `<timestamp>.<body>` keyed with the endpoint's secret, and dedupes on
`Card-Checkout-Event-Id` (a retry carries the same id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Final

import httpx

from adapters.clock import SystemClock
from core.model import WebhookDelivery, WebhookEndpoint
from core.ports import Clock

EVENT_ID_HEADER: Final = "Card-Checkout-Event-Id"
TIMESTAMP_HEADER: Final = "Card-Checkout-Timestamp"
SIGNATURE_HEADER: Final = "Card-Checkout-Signature"
# A subscriber that does not answer in this long is treated as down (and retried later).
DEFAULT_TIMEOUT_SECONDS: Final = 5.0


class WebhookNotAccepted(Exception):
    """The endpoint did not take the delivery: an error status, or no answer at all."""


def webhook_payload(delivery: WebhookDelivery) -> dict[str, Any]:
    notification = delivery.notification
    return {
        "id": notification.id,
        "object": "event",
        "type": notification.type.value,
        "created": notification.occurred_at.isoformat().replace("+00:00", "Z"),
        "environment_id": notification.environment_id,
        "data": dict(notification.data),
    }


def webhook_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(webhook_payload(delivery), separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (Unix seconds)."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class HttpWebhookSender:
    """Sends over one pooled `httpx.AsyncClient`; redirects are not followed."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": "CardCheckout-Webhooks/1.0"},
        )
        self._clock = clock or SystemClock()

    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
        body = webhook_body(delivery)
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: delivery.notification.id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(endpoint.secret, timestamp, body),
        }
        try:
            # Streamed so that a receiver's answer is never read: only its status counts.
            async with self._client.stream(
                "POST", endpoint.url, content=body, headers=headers
            ) as response:
                status = response.status_code
        except httpx.HTTPError as error:
            raise WebhookNotAccepted(f"{type(error).__name__}: {error}".rstrip(": ")) from error
        if not 200 <= status < 300:
            raise WebhookNotAccepted(f"The endpoint answered HTTP {status}.")

    async def aclose(self) -> None:
        await self._client.aclose()
