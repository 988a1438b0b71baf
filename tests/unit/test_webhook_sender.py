"""`HttpWebhookSender` over a mock transport: the body, the headers, the signature, failures."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import httpx
import pytest

from adapters.clock import ManualClock
from adapters.webhooks import HttpWebhookSender, WebhookNotAccepted
from core.model import Notification, NotificationType, WebhookDelivery, WebhookEndpoint
from tests.storage_contract import T0

ENDPOINT = WebhookEndpoint(
    id="we_1",
    environment_id="env_a",
    url="https://subscriber.example/hooks?src=cc",
    events=frozenset(),
    secret="whsec_test_secret",
    created_at=T0,
)
DELIVERY = WebhookDelivery(
    id="whd_1",
    environment_id="env_a",
    endpoint_id="we_1",
    notification=Notification(
        "evt_1", "env_a", NotificationType.PAYMENT_FAILED, T0,
        {"payment_id": "pay_1", "error_code": "card_declined", "failure": None},
    ),
    created_at=T0,
    next_attempt_at=T0,
)  # fmt: skip


def _sender(handler: httpx.MockTransport, clock: ManualClock) -> HttpWebhookSender:
    # The subscriber's name is not resolved: these tests are about the request, not its address.
    return HttpWebhookSender(
        httpx.AsyncClient(transport=handler), clock=clock, allow_private_addresses=True
    )


async def test_a_delivery_is_posted_as_json_with_a_signature_the_receiver_can_check() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    clock = ManualClock(T0 + timedelta(minutes=3))
    await _sender(httpx.MockTransport(handler), clock).send(ENDPOINT, DELIVERY)
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", ENDPOINT.url)
    assert request.headers["content-type"] == "application/json"
    body = request.content
    assert json.loads(body) == {
        "id": "evt_1",
        "object": "event",
        "type": "payment.failed",
        "created": "2026-01-01T00:00:00Z",
        "environment_id": "env_a",
        "data": {"payment_id": "pay_1", "error_code": "card_declined", "failure": None},
    }
    timestamp = int((T0 + timedelta(minutes=3)).timestamp())
    assert request.headers["card-checkout-event-id"] == "evt_1"
    assert request.headers["card-checkout-timestamp"] == str(timestamp)
    expected = hmac.new(
        b"whsec_test_secret", f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert request.headers["card-checkout-signature"] == f"t={timestamp},v1={expected}"


@pytest.mark.parametrize("status", [301, 400, 404, 410, 500, 503])
async def test_anything_but_2xx_is_a_failure(status: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    with pytest.raises(WebhookNotAccepted) as refused:
        await _sender(transport, ManualClock()).send(ENDPOINT, DELIVERY)
    assert refused.value.recorded == f"http_status_{status}"


async def test_no_answer_is_a_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with pytest.raises(WebhookNotAccepted) as refused:
        await _sender(httpx.MockTransport(handler), ManualClock()).send(ENDPOINT, DELIVERY)
    assert refused.value.recorded == "timeout"


def test_the_secret_is_not_in_an_endpoints_repr() -> None:
    assert ENDPOINT.secret not in repr(ENDPOINT)
