"""GET /metrics: what waits (read from storage at each scrape) and what the background passes
did (counted from their reports), scraped and parsed as Prometheus reads them."""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from adapters.addresses import StaticAddressResolver
from adapters.clock import ManualClock
from adapters.notifiers import RecordingNotifier
from core.errors import ServiceUnavailable
from core.model import WebhookDelivery, WebhookEndpoint
from core.model.webhooks import DeliveryError, WebhookNotAccepted
from core.usecases import ReconcileReport, WebhookReport
from core.usecases.reconciliation import ItemError, NeedsAttention
from entrypoints.bootstrap import CardCheckout, bootstrap
from entrypoints.http import create_app
from entrypoints.http.observability import Metrics
from tests.helpers import (
    DECLINED,
    ENV,
    PUBLIC_ADDRESS,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
)
from tests.reconcile_doubles import FailingStorage, HookedFaults, stuck_payments

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
RECONCILIATION = {"pass": "reconciliation"}
BACKLOG_GAUGES = (
    "card_checkout_outbox_notifications",
    "card_checkout_outbox_oldest_age_seconds",
    "card_checkout_webhook_deliveries_pending",
    "card_checkout_payments_processing",
)
LAST_SUCCESS = "card_checkout_background_pass_last_success_timestamp_seconds"


def parsed(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


async def scrape(app: Starlette) -> Samples:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return parsed(response.text)


async def run_passes_until(app: Starlette, done: Callable[[Samples], bool]) -> Samples:
    """Run the app's background passes until a scrape shows `done`; the scrape after."""
    async with app.router.lifespan_context(app):
        for _ in range(500):
            if done(await scrape(app)):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the passes did not get there in 5 s")
    return await scrape(app)


class SubscriberDown:
    """Takes every delivery but those to the endpoint `down_id`."""

    down_id = ""

    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
        if endpoint.id == self.down_id:
            raise WebhookNotAccepted(DeliveryError.HTTP_STATUS, status=503)


def checkout_of(
    clock: ManualClock, faults: HookedFaults | None = None, **overrides: object
) -> CardCheckout:
    return bootstrap(
        clock=clock,
        notifier=RecordingNotifier(),
        sandbox_faults=faults or HookedFaults(),
        address_resolver=StaticAddressResolver(default=[PUBLIC_ADDRESS]),
        **overrides,  # type: ignore[arg-type]
    )


async def declined_payment(checkout: CardCheckout) -> None:
    """Three notifications: payment.created, payment.processing, payment.failed."""
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    await error_of(checkout.create_payment(ENV, card_payment(invoice)))


async def test_the_backlog_is_read_at_each_scrape() -> None:
    clock, faults = ManualClock(), HookedFaults()
    checkout = checkout_of(clock, faults, dispatch_inline=False)
    await checkout.create_environment("t", "test", environment_id=ENV)
    await checkout.create_webhook_endpoint(ENV, {"url": "https://hooks.example.com/h"})
    await declined_payment(checkout)
    await stuck_payments(checkout, faults, 1)  # payment.created, payment.processing
    clock.advance(timedelta(seconds=90))
    app = create_app(checkout, notify_every=None)

    before = await scrape(app)
    await checkout.deliver_notifications()  # what the delivery pass does
    after = await scrape(app)

    assert value(before, "card_checkout_outbox_notifications") == 5
    assert value(before, "card_checkout_outbox_oldest_age_seconds") == 90
    assert value(before, "card_checkout_webhook_deliveries_pending") == 0
    assert value(before, "card_checkout_payments_processing") == 1
    assert value(after, "card_checkout_outbox_notifications") == 0
    assert value(after, "card_checkout_outbox_oldest_age_seconds") == 0
    assert value(after, "card_checkout_webhook_deliveries_pending") == 5  # one per notification
    assert value(after, "card_checkout_payments_processing") == 1


async def test_a_backlog_that_cannot_be_read_is_unknown_and_the_rest_still_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def outage(storage: object) -> None:
        raise ServiceUnavailable("the database is not answering")

    app = create_app(checkout_of(ManualClock()), notify_every=None)
    known = await scrape(app)
    # The module (the package's `operations` is its table of routes).
    operations = importlib.import_module("entrypoints.http.routes.operations")
    monkeypatch.setattr(operations, "read_backlog", outage)

    samples = await scrape(app)

    assert value(known, "card_checkout_outbox_notifications") == 0
    for gauge in BACKLOG_GAUGES:
        assert math.isnan(value(samples, gauge)), gauge
    assert value(samples, "card_checkout_webhook_deliveries_total", outcome="delivered") == 0


async def test_a_storage_the_gauges_cannot_read_leaves_them_unknown() -> None:
    app = create_app(checkout_of(ManualClock(), uow=FailingStorage()), notify_every=None)

    samples = await scrape(app)

    assert all(math.isnan(value(samples, gauge)) for gauge in BACKLOG_GAUGES)


async def test_delivery_and_webhook_passes_are_counted_by_outcome() -> None:
    clock, sender = ManualClock(), SubscriberDown()
    checkout = checkout_of(clock, dispatch_inline=False, webhook_sender=sender)
    await checkout.create_environment("t", "test", environment_id=ENV)
    await checkout.create_webhook_endpoint(ENV, {"url": "https://up.example.com/h"})
    down = await checkout.create_webhook_endpoint(ENV, {"url": "https://down.example.com/h"})
    sender.down_id = down.id
    await declined_payment(checkout)
    app = create_app(checkout, notify_every=0.01, close_checkout=False)

    def settled(samples: Samples) -> bool:
        attempts = ("delivered", "failed", "given_up")
        return (
            sum(
                value(samples, "card_checkout_webhook_deliveries_total", outcome=outcome)
                for outcome in attempts
            )
            >= 4
            and value(samples, "card_checkout_webhook_deliveries_pending") == 3
        )

    # The up endpoint takes all three; the down one fails its first and holds the other two.
    first = await run_passes_until(app, settled)
    # A day later the down endpoint's retry fails again: it is given up, and so are the two
    # held behind it, as the endpoint is disabled.
    clock.advance(timedelta(hours=25))
    later = await run_passes_until(
        app, lambda s: value(s, "card_checkout_webhook_deliveries_pending") == 0
    )

    assert value(first, "card_checkout_notifications_delivered_total") == 3
    assert value(first, "card_checkout_outbox_notifications") == 0
    assert value(first, "card_checkout_webhook_deliveries_total", outcome="delivered") == 3
    assert value(first, "card_checkout_webhook_deliveries_total", outcome="failed") == 1
    assert value(first, "card_checkout_webhook_deliveries_total", outcome="given_up") == 0
    assert value(later, "card_checkout_webhook_deliveries_total", outcome="delivered") == 3
    assert value(later, "card_checkout_webhook_deliveries_total", outcome="failed") == 1
    assert value(later, "card_checkout_webhook_deliveries_total", outcome="given_up") == 3
    assert value(later, "card_checkout_webhook_endpoints_disabled_total") == 1
    passes, last = "card_checkout_background_passes_total", LAST_SUCCESS
    for name in ("delivery", "webhook"):
        assert value(later, passes, outcome="ok", **{"pass": name}) >= 2
        assert value(later, passes, outcome="failed", **{"pass": name}) == 0
        assert value(later, last, **{"pass": name}) > 0
    assert value(later, last, **RECONCILIATION) == 0  # never ran


async def test_reconciliation_passes_are_counted_by_result_and_settle_payments_in_flight() -> None:
    clock, faults = ManualClock(), HookedFaults()
    checkout = checkout_of(clock, faults)
    await checkout.create_environment("t", "test", environment_id=ENV)
    customer = await customer_with_card(checkout)
    faults.down.update({"charge", "find_charge"})  # unreachable: the payment stays processing
    await checkout.create_payment(ENV, card_payment(await finalized_invoice(checkout, customer)))
    clock.advance(timedelta(seconds=1))
    app = create_app(
        checkout, notify_every=None, reconcile_every=0.01, reconcile_older_than=0,
        close_checkout=False,
    )  # fmt: skip
    items = "card_checkout_reconciliation_items_total"
    passes = "card_checkout_background_passes_total"

    unknown = await run_passes_until(app, lambda s: value(s, items, result="unknown") >= 2)
    faults.down.clear()
    settled = await run_passes_until(app, lambda s: value(s, items, result="succeeded") == 1)

    assert value(unknown, "card_checkout_payments_processing") == 1
    assert value(unknown, items, result="succeeded") == 0
    assert value(unknown, items, result="unknown") == value(
        unknown, passes, outcome="ok", **RECONCILIATION
    )  # one per pass
    assert value(settled, "card_checkout_payments_processing") == 0
    assert value(settled, items, result="succeeded") == 1
    assert value(settled, items, result="error") == 0
    assert value(settled, passes, outcome="failed", **RECONCILIATION) == 0


def test_every_field_of_a_report_has_its_series() -> None:
    metrics = Metrics()
    metrics.count_reconciliation(
        ReconcileReport(
            examined=9, succeeded=1, failed=2, refunds_settled=3, already_settled=4,
            unresolved=("pay_a", "pay_b"),
            needs_attention=(NeedsAttention("pay_a", ENV, timedelta(hours=2)),),
            errors=(ItemError("pay_c", ENV, "boom"),),
        )
    )  # fmt: skip
    metrics.count_webhooks(WebhookReport(delivered=5, failed=6, given_up=7, disabled=("we_1",)))
    metrics.count_pass("reconciliation", "stopped")

    samples = parsed(generate_latest(metrics.registry).decode())

    items = "card_checkout_reconciliation_items_total"
    assert {labels[0][1]: v for (name, labels), v in samples.items() if name == items} == {
        "succeeded": 1, "failed": 2, "refund_settled": 3, "already_settled": 4,
        "unknown": 2, "error": 1,
    }  # fmt: skip
    assert value(samples, "card_checkout_reconciliation_needs_attention") == 1
    webhooks = "card_checkout_webhook_deliveries_total"
    assert [value(samples, webhooks, outcome=o) for o in ("delivered", "failed", "given_up")] == [
        5, 6, 7,
    ]  # fmt: skip
    assert value(samples, "card_checkout_webhook_endpoints_disabled_total") == 1
    passes = "card_checkout_background_passes_total"
    assert value(samples, passes, outcome="stopped", **RECONCILIATION) == 1
    # No label takes an id: every series is one of a fixed few.
    assert all(
        not any(v.startswith(("pay_", "env_", "we_", "evt_")) for _, v in labels)
        for _, labels in samples
    )
