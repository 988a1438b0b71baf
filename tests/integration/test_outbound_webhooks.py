"""Outbound webhooks to a real HTTP receiver on 127.0.0.1, from SQLite and PostgreSQL.

The receiver checks nothing itself: it records what arrives (and fails the first requests when
told to); the tests check the signatures with `hmac`, as a subscriber would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest

from adapters.webhooks import HttpWebhookSender
from core.model import WebhookDelivery, WebhookEndpoint
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from entrypoints.http import create_app
from tests.helpers import (
    DECLINED,
    ENV,
    TEST_ENCRYPTION_KEY,
    VISA,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
)
from tests.integration.http_server import free_port

PAID_EVENTS = ["invoice.paid", "payment.created", "payment.processing", "payment.succeeded"]
WAIT_SECONDS = 15.0


@attrs.frozen
class Received:
    at: float  # time.monotonic()
    headers: dict[str, str]  # lowercase names
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    """A threaded HTTP server on loopback that records each POST and answers 200, or 500 to
    the first `fail_first` requests."""

    def __init__(self, port: int = 0, fail_first: int = 0) -> None:
        self.received: list[Received] = []
        self.fail_first = fail_first
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with lock:
                    received.append(Received(time.monotonic(), headers, body))
                    failing = len(received) <= fail_first
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answered(self) -> list[Received]:
        """What was received past the failures (each answered 200)."""
        return self.received[self.fail_first :]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _checkout(database_url: str, retry_base: float = 0.2, **kwargs: Any) -> CardCheckout:
    # The receiver listens on 127.0.0.1: private addresses allowed, explicitly.
    settings = Settings(
        database_url=database_url,
        webhook_retry_base=retry_base,
        webhook_allow_private_urls=True,
        encryption_keys=(TEST_ENCRYPTION_KEY,),
    )
    sender = HttpWebhookSender(timeout=2.0, allow_private_addresses=True)
    return bootstrap(settings, webhook_sender=sender, **kwargs)


def _verified(received: Received, secret: str) -> dict[str, Any]:
    """The event, once its signature checks out as a subscriber would check it."""
    timestamp = received.headers["card-checkout-timestamp"]
    assert abs(int(timestamp) - time.time()) < 300  # recent: not a replay
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256
    ).hexdigest()
    scheme = dict(
        part.split("=", 1) for part in received.headers["card-checkout-signature"].split(",")
    )
    assert scheme["t"] == timestamp
    assert hmac.compare_digest(scheme["v1"], expected)
    event = received.event
    assert received.headers["card-checkout-event-id"] == event["id"]
    assert received.headers["content-type"] == "application/json"
    return event


async def _paid(checkout: CardCheckout) -> str:
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    return (await checkout.create_payment(ENV, card_payment(invoice))).id


async def _until(condition: Any, work: Any = None, every: float = 0.02) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        if work is not None:
            await work()
        await asyncio.sleep(every)


async def test_each_event_arrives_signed_with_the_endpoints_secret(
    database_url: str, receiver: Receiver
) -> None:
    checkout = _checkout(database_url)
    assert checkout.engine is not None
    pool: Any = checkout.engine.sync_engine.pool  # a QueuePool: it counts checkouts
    held: list[int] = []
    assert isinstance(checkout.webhook_sender, HttpWebhookSender)
    sender: HttpWebhookSender = checkout.webhook_sender

    class Watched:
        """Notes the database connections checked out while the subscriber is called."""

        async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
            held.append(pool.checkedout())
            await sender.send(endpoint, delivery)

    checkout.webhook_sender = Watched()
    try:
        endpoint = await checkout.create_webhook_endpoint(ENV, {"url": receiver.url})
        other = await checkout.create_webhook_endpoint(ENV, {"url": receiver.url + "/other"})
        await checkout.delete_webhook_endpoint(ENV, other.id)
        payment_id = await _paid(checkout)
        report = await checkout.send_webhooks()
        assert (report.delivered, report.failed) == (4, 0)
        events = [_verified(r, endpoint.secret) for r in receiver.received]
        assert sorted(e["type"] for e in events) == PAID_EVENTS
        assert {e["data"]["payment_id"] for e in events} == {payment_id}
        assert {e["environment_id"] for e in events} == {ENV}
        assert held == [0, 0, 0, 0]  # no transaction open while the subscriber answers
        with pytest.raises(AssertionError):
            _verified(receiver.received[0], other.secret)
        deliveries = await checkout.webhook_deliveries(ENV, endpoint.id)
        assert {d.notification.id for d in deliveries} == {e["id"] for e in events}
        assert all(d.attempts == 1 and d.delivered_at is not None for d in deliveries)
        assert (await checkout.send_webhooks()).delivered == 0
        assert len(receiver.received) == 4
    finally:
        await checkout.aclose()
        await sender.aclose()


async def test_a_failing_receiver_gets_retries_further_and_further_apart(
    database_url: str,
) -> None:
    receiver = Receiver(fail_first=3)
    checkout = _checkout(database_url, retry_base=0.2)
    try:
        endpoint = await checkout.create_webhook_endpoint(
            ENV, {"url": receiver.url, "events": ["payment.failed"]}
        )
        customer = await customer_with_card(checkout, DECLINED)
        invoice = await finalized_invoice(checkout, customer)
        declined = await error_of(checkout.create_payment(ENV, card_payment(invoice)))
        assert declined.code == "card_declined"
        seen: list[WebhookDelivery] = []

        async def pass_and_look() -> None:
            await checkout.send_webhooks()
            [delivery] = await checkout.webhook_deliveries(ENV, endpoint.id)
            if not seen or seen[-1].attempts != delivery.attempts:
                seen.append(delivery)

        await _until(lambda: len(receiver.received) >= 4, pass_and_look, every=0.01)
        ids = {_verified(r, endpoint.secret)["id"] for r in receiver.received}
        assert len(ids) == 1  # every retry is the same event
        assert receiver.answered()[0].event["type"] == "payment.failed"
        # The waits the service set, doubling from the base, and kept: no retry came sooner.
        # (How much later one came is the machine's load and this loop's, not the service's.)
        waits = [d.next_attempt_at - d.last_attempt_at for d in seen[:3] if d.last_attempt_at]
        assert waits == [timedelta(seconds=0.2), timedelta(seconds=0.4), timedelta(seconds=0.8)]
        gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
        for gap, wait in zip(gaps, waits, strict=True):
            assert gap >= wait.total_seconds() * 0.95, gaps
        assert [(d.attempts, d.last_error) for d in seen[:3]] == [
            (1, "http_status_500"),
            (2, "http_status_500"),
            (3, "http_status_500"),
        ]
        [delivered] = await checkout.webhook_deliveries(ENV, endpoint.id)
        assert (delivered.attempts, delivered.last_error) == (4, None)
        assert delivered.delivered_at is not None
        assert len(receiver.received) == 4
    finally:
        await checkout.aclose()
        receiver.close()


async def test_a_restart_loses_no_undelivered_event(database_url: str) -> None:
    """Events queued for a subscriber that was down, and events still in the outbox, all
    arrive once the service is started again: through the server's background loop."""
    port = free_port()
    before = _checkout(database_url, retry_base=0.05, dispatch_inline=False)
    endpoint = await before.create_webhook_endpoint(ENV, {"url": f"http://127.0.0.1:{port}/hooks"})
    first = await _paid(before)
    assert await before.deliver_notifications() >= 4  # queued for the endpoint...
    report = await before.send_webhooks()  # ...which is down: nothing listens on the port
    assert (report.delivered, report.failed) == (0, 1)
    [tried] = [d for d in await before.webhook_deliveries(ENV, endpoint.id) if d.attempts]
    assert tried.last_error == "connection_failed"  # no address, port or errno
    second = await _paid(before)  # its events stay in the outbox
    await before.aclose()

    receiver = Receiver(port=port)
    after = _checkout(database_url, retry_base=0.05, dispatch_inline=False)
    app = create_app(after, notify_every=0.05)
    try:
        async with app.router.lifespan_context(app):
            deliveries: list[WebhookDelivery] = []

            async def look() -> None:
                deliveries[:] = await after.webhook_deliveries(ENV, endpoint.id)

            def all_recorded() -> bool:
                return len(deliveries) == 8 and all(d.delivered_at for d in deliveries)

            await _until(all_recorded, look)
            events = [_verified(r, endpoint.secret) for r in receiver.received]
    finally:
        receiver.close()
    assert Counter(e["type"] for e in events) == Counter(PAID_EVENTS * 2)
    assert {e["data"]["payment_id"] for e in events} == {first, second}
    assert len(events) == 8  # each once: nothing was sent twice
    assert len(deliveries) == 8
    assert all(d.delivered_at is not None for d in deliveries)
    assert {d.notification.id for d in deliveries} == {e["id"] for e in events}
