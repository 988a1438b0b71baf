"""`HttpWebhookSender`: each delivery POSTed as JSON, signed with its endpoint's secret.

The receiver checks `Card-Checkout-Signature: t=<timestamp>,v1=<hex>`, where the hex is the
HMAC-SHA256 of `<timestamp>.<body>` keyed with the endpoint's secret, and dedupes on
`Card-Checkout-Event-Id` (a retry carries the same id).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import ssl
from typing import Any, Final

import httpx

from adapters.addresses import SystemAddressResolver
from adapters.clock import SystemClock
from core.model import WebhookDelivery, WebhookEndpoint
from core.model.webhooks import DeliveryError, WebhookNotAccepted
from core.ports import AddressResolver, Clock
from core.rules import address_literal, are_public_addresses, host_may_be_public

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "HttpWebhookSender",
    "WebhookNotAccepted",  # the core's, raised here
    "failure_kind",
    "signature",
    "webhook_body",
    "webhook_payload",
]

EVENT_ID_HEADER: Final = "Card-Checkout-Event-Id"
TIMESTAMP_HEADER: Final = "Card-Checkout-Timestamp"
SIGNATURE_HEADER: Final = "Card-Checkout-Signature"
# A subscriber that does not answer in this long is treated as down (and retried later).
DEFAULT_TIMEOUT_SECONDS: Final = 5.0

_log = logging.getLogger(__name__)


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
    """Sends over one `httpx.AsyncClient`; redirects are not followed.

    Unless `allow_private_addresses`, the subscriber's host is resolved at each delivery, every
    address it gives must be public, and the request goes to the first of them (the name kept
    in `Host`, and in TLS for the certificate's check): a name that now points inside (DNS
    rebinding) is refused unasked. A failure raises `WebhookNotAccepted` with a kind only; the
    network's own words (addresses, ports, errnos) go to the service's log.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Clock | None = None,
        allow_private_addresses: bool = False,
        resolver: AddressResolver | None = None,
    ) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": "CardCheckout-Webhooks/1.0"},
            # No connection kept between deliveries: the pool knows a connection by address
            # only, and one whose certificate was checked for another name sharing that
            # address must not carry this name's delivery.
            limits=httpx.Limits(max_keepalive_connections=0),
            # Straight to the checked address: a proxy from the environment would connect
            # on its own, to wherever the name points then.
            trust_env=False,
        )
        self._clock = clock or SystemClock()
        self._allow_private_addresses = allow_private_addresses
        self._resolver = resolver or SystemAddressResolver()

    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
        body = webhook_body(delivery)
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: delivery.notification.id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(endpoint.secret, timestamp, body),
        }
        url = httpx.URL(endpoint.url)
        extensions: dict[str, Any] = {}
        if not self._allow_private_addresses:
            address = await self._public_address(url)
            if address != url.host:
                headers["Host"] = url.netloc.decode("ascii")
                extensions["sni_hostname"] = url.raw_host.decode("ascii")
                url = url.copy_with(host=address)
        try:
            # Streamed so that a receiver's answer is never read: only its status counts.
            async with self._client.stream(
                "POST", url, content=body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.HTTPError as error:
            _log.info("Webhook delivery %s to endpoint %s failed: %r", delivery.id,
                      endpoint.id, error)  # fmt: skip
            raise WebhookNotAccepted(failure_kind(error)) from error
        except Exception as error:
            _log.exception("Webhook delivery %s to endpoint %s broke", delivery.id, endpoint.id)
            raise WebhookNotAccepted(DeliveryError.FAILED) from error
        if not 200 <= status < 300:
            raise WebhookNotAccepted(DeliveryError.HTTP_STATUS, status=status)

    async def _public_address(self, url: httpx.URL) -> str:
        """The address to connect to. Refused alike whatever listens there, and whether the
        name has no address or an inside one (which inside names exist is not to be told)."""
        if not host_may_be_public(url.host):
            raise WebhookNotAccepted(DeliveryError.ADDRESS_NOT_ALLOWED)
        literal = address_literal(url.host)
        if literal is not None:
            return str(literal)  # `0x7f.1` and the like connect as what they spell
        answers = await self._resolver.resolve(url.raw_host.decode("ascii"))
        if not are_public_addresses(answers):
            raise WebhookNotAccepted(DeliveryError.ADDRESS_NOT_ALLOWED)
        return str(ipaddress.ip_address(answers[0].partition("%")[0]))

    async def aclose(self) -> None:
        await self._client.aclose()


def failure_kind(error: httpx.HTTPError) -> DeliveryError:
    """A transport failure as a kind: a closed port, a reset and an unreachable host alike."""
    if isinstance(error, httpx.TimeoutException):
        return DeliveryError.TIMEOUT
    cause: BaseException | None = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):  # certificate checks' failures included
            return DeliveryError.TLS_ERROR
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return DeliveryError.CONNECTION_FAILED
