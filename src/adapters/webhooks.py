"""`HttpWebhookSender`: each delivery POSTed as JSON, signed with its endpoint's secret.

The receiver checks `Card-Checkout-Signature: t=<timestamp>,v1=<hex>`, where the hex is the
HMAC-SHA256 of `<timestamp>.<body>` keyed with the endpoint's secret, and dedupes on
`Card-Checkout-Event-Id` (a retry carries the same id).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import httpx

from adapters.clock import SystemClock
from core.model import WebhookDelivery, WebhookEndpoint
from core.ports import Clock
from core.rules import address_literal, host_may_be_public, is_public_address

EVENT_ID_HEADER: Final = "Card-Checkout-Event-Id"
TIMESTAMP_HEADER: Final = "Card-Checkout-Timestamp"
SIGNATURE_HEADER: Final = "Card-Checkout-Signature"
# A subscriber that does not answer in this long is treated as down (and retried later).
DEFAULT_TIMEOUT_SECONDS: Final = 5.0
# The same for every refused address, so that a delivery's error reveals nothing about it.
ADDRESS_NOT_ALLOWED: Final = "The subscriber's address is not allowed."
# The addresses a host name resolves to, given its port.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


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


async def resolve_host(host: str, port: int) -> Sequence[str]:
    """Every address the system's resolver gives for `host` (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class HttpWebhookSender:
    """Sends over one pooled `httpx.AsyncClient`; redirects are not followed.

    Unless `allow_private_addresses`, the subscriber's host is resolved at each delivery, every
    address it gives must be public, and the request goes to the first of them (the name kept
    in `Host` and TLS): a name that now points inside (DNS rebinding) is refused unasked.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Clock | None = None,
        allow_private_addresses: bool = False,
        resolver: Resolver = resolve_host,
    ) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": "CardCheckout-Webhooks/1.0"},
        )
        self._clock = clock or SystemClock()
        self._allow_private_addresses = allow_private_addresses
        self._resolve = resolver

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
            raise WebhookNotAccepted(f"{type(error).__name__}: {error}".rstrip(": ")) from error
        if not 200 <= status < 300:
            raise WebhookNotAccepted(f"The endpoint answered HTTP {status}.")

    async def _public_address(self, url: httpx.URL) -> str:
        """The address to connect to; refused alike whatever listens there (a closed port
        and an open one must not be told apart)."""
        if not host_may_be_public(url.host):
            raise WebhookNotAccepted(ADDRESS_NOT_ALLOWED)
        literal = address_literal(url.host)
        if literal is not None:
            return str(literal)  # `0x7f.1` and the like connect as what they spell
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            answers = await self._resolve(url.raw_host.decode("ascii"), port)
        except OSError:
            raise WebhookNotAccepted("The subscriber's host name could not be resolved.") from None
        addresses = [ipaddress.ip_address(answer.partition("%")[0]) for answer in answers]
        if not addresses or not all(is_public_address(a) for a in addresses):
            raise WebhookNotAccepted(ADDRESS_NOT_ALLOWED)
        return str(addresses[0])

    async def aclose(self) -> None:
        await self._client.aclose()
