"""Webhook endpoints in memory: who gets which event, retries with backoff, giving up, leases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs
import pytest

from adapters.addresses import StaticAddressResolver
from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWorkFactory
from core.errors import NotFound, ValidationError
from core.model import Notification, NotificationType, WebhookDelivery, WebhookEndpoint
from core.model.webhooks import DeliveryError, WebhookNotAccepted
from core.ports import DeliveryQuery
from core.usecases import Deps, WebhookPolicy, outbox, webhook_delivery, webhook_endpoints
from entrypoints.bootstrap import CardCheckout, bootstrap
from tests.helpers import (
    DECLINED,
    ENV,
    OTHER_ENV,
    PUBLIC_ADDRESS,
    VISA,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
)

POLICY = WebhookPolicy()


@attrs.frozen
class Call:
    at: datetime
    endpoint_id: str
    notification: Notification


@attrs.define
class RecordingSender:
    """Records each send; raises for the deliveries `fails` picks (all of them by default)."""

    clock: ManualClock
    fails: Callable[[WebhookDelivery], bool] = lambda delivery: False
    calls: list[Call] = attrs.Factory(list)

    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
        self.calls.append(Call(self.clock.now(), endpoint.id, delivery.notification))
        if self.fails(delivery):
            raise WebhookNotAccepted(DeliveryError.HTTP_STATUS, status=500)

    def to(self, endpoint: WebhookEndpoint) -> list[Call]:
        return [c for c in self.calls if c.endpoint_id == endpoint.id]


@pytest.fixture
def sender(checkout: CardCheckout, clock: ManualClock) -> RecordingSender:
    recording = RecordingSender(clock)
    checkout.webhook_sender = recording
    return recording


async def declined_payment(checkout: CardCheckout, env: str = ENV) -> str:
    """A card payment that fails: created, processing and failed events. Returns its id."""
    customer = await customer_with_card(checkout, DECLINED, env=env)
    invoice = await finalized_invoice(checkout, customer, env=env)
    error = await error_of(checkout.create_payment(env, card_payment(invoice)))
    return str(error.details["payment_id"])


async def endpoint_for(checkout: CardCheckout, *events: str, env: str = ENV) -> WebhookEndpoint:
    return await checkout.create_webhook_endpoint(
        env, {"url": "https://example.com/hooks", "events": list(events)}
    )


async def oldest_delivery(checkout: CardCheckout, endpoint: WebhookEndpoint) -> WebhookDelivery:
    deliveries = await checkout.webhook_deliveries(endpoint.environment_id, endpoint.id)
    return min(deliveries, key=lambda d: (d.created_at, d.id))


async def only_delivery(checkout: CardCheckout, endpoint: WebhookEndpoint) -> WebhookDelivery:
    [delivery] = await checkout.webhook_deliveries(endpoint.environment_id, endpoint.id)
    return delivery


# Endpoints ---------------------------------------------------------------------------------


async def test_an_endpoint_gets_a_signing_secret_and_all_events_unless_it_names_some(
    checkout: CardCheckout,
) -> None:
    every = await endpoint_for(checkout)
    star = await endpoint_for(checkout, "*")
    some = await endpoint_for(checkout, "payment.failed", "invoice.paid")
    assert every.secret.startswith("whsec_")
    assert len(every.secret) > 40
    assert every.secret != star.secret
    assert every.events == star.events == frozenset()
    assert some.events == {NotificationType.PAYMENT_FAILED, NotificationType.INVOICE_PAID}
    assert all(every.wants(kind) for kind in NotificationType)
    assert not some.wants(NotificationType.PAYMENT_CREATED)
    listed = await checkout.list_webhook_endpoints(ENV)
    assert [e.id for e in listed] == [every.id, star.id, some.id]
    assert not await checkout.list_webhook_endpoints(OTHER_ENV)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hooks"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "example.com/hooks"}, "url"),
        ({"url": "https://example.com/" + "x" * 2048}, "url"),
        ({}, "url"),
        ({"url": "https://example.com", "events": ["payment.nope"]}, "events"),
        ({"url": "https://example.com", "events": "payment.failed"}, "events"),
        ({"url": "https://example.com", "events": ["*", "payment.failed"]}, "events"),
        ({"url": "https://example.com", "secret": "mine"}, "secret"),
    ],
)
async def test_a_bad_endpoint_is_refused_naming_the_field(
    checkout: CardCheckout, body: dict[str, object], field: str
) -> None:
    error = await error_of(checkout.create_webhook_endpoint(ENV, body))
    assert isinstance(error, ValidationError)
    assert error.field == field
    assert not await checkout.list_webhook_endpoints(ENV)


async def test_the_service_checks_url_and_events_itself(checkout: CardCheckout) -> None:
    with pytest.raises(ValidationError) as caught:
        await webhook_endpoints.create_webhook_endpoint(
            checkout.deps, ENV, "https://example.com", ["nope"]
        )
    assert caught.value.field == "events"
    with pytest.raises(ValidationError) as caught:
        await webhook_endpoints.create_webhook_endpoint(checkout.deps, ENV, "javascript:alert(1)")
    assert caught.value.field == "url"


async def test_another_environments_endpoint_is_not_found_and_not_deleted(
    checkout: CardCheckout,
) -> None:
    theirs = await endpoint_for(checkout, env=OTHER_ENV)
    for call in (
        checkout.delete_webhook_endpoint(ENV, theirs.id),
        checkout.get_webhook_endpoint(ENV, theirs.id),
        checkout.webhook_deliveries(ENV, theirs.id),
    ):
        error = await error_of(call)
        assert isinstance(error, NotFound)
        assert error.code == "not_found"
    assert await checkout.get_webhook_endpoint(OTHER_ENV, theirs.id) == theirs


# Fan-out -----------------------------------------------------------------------------------


async def test_each_event_is_queued_once_for_each_endpoint_that_wants_it(
    checkout: CardCheckout, sender: RecordingSender
) -> None:
    every = await endpoint_for(checkout)
    failures = await endpoint_for(checkout, "payment.failed")
    paid = await endpoint_for(checkout, "invoice.paid")
    elsewhere = await endpoint_for(checkout, env=OTHER_ENV)
    payment_id = await declined_payment(checkout)
    kinds = {
        e.id: [d.notification.type.value for d in await checkout.webhook_deliveries(ENV, e.id)]
        for e in (every, failures, paid)
    }
    assert sorted(kinds[every.id]) == ["payment.created", "payment.failed", "payment.processing"]
    assert kinds[failures.id] == ["payment.failed"]
    assert kinds[paid.id] == []
    assert not await checkout.webhook_deliveries(OTHER_ENV, elsewhere.id)

    report = await checkout.send_webhooks()
    assert (report.delivered, report.failed, report.given_up) == (4, 0, 0)
    assert [c.notification.type.value for c in sender.to(every)] == [
        "payment.created", "payment.processing", "payment.failed",
    ]  # fmt: skip
    [customer_notification] = sender.to(failures)
    assert customer_notification.notification.data["payment_id"] == payment_id
    assert customer_notification.notification.data["error_code"] == "card_declined"
    assert customer_notification.notification.data["customer_id"]
    # Delivered once: the next pass has nothing to send.
    assert (await checkout.send_webhooks()).delivered == 0
    assert len(sender.calls) == 4
    delivered = await only_delivery(checkout, failures)
    assert (delivered.attempts, delivered.delivered_at, delivered.last_error) == (
        1, delivered.first_attempt_at, None,
    )  # fmt: skip


async def test_a_paid_invoice_is_an_event_too(
    checkout: CardCheckout, sender: RecordingSender
) -> None:
    paid = await endpoint_for(checkout, "invoice.paid", "payment.succeeded")
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    await checkout.create_payment(ENV, card_payment(invoice))
    await checkout.send_webhooks()
    assert sorted(c.notification.type.value for c in sender.to(paid)) == [
        "invoice.paid", "payment.succeeded",
    ]  # fmt: skip


async def test_two_dispatchers_queue_a_notification_once_per_endpoint(
    clock: ManualClock,
) -> None:
    checkout = bootstrap(
        uow=InMemoryUnitOfWorkFactory(),
        clock=clock,
        dispatch_inline=False,
        address_resolver=StaticAddressResolver(default=[PUBLIC_ADDRESS]),
    )
    every = await endpoint_for(checkout)
    await declined_payment(checkout)

    class YieldingNotifier:
        async def notify(self, notification: Notification) -> None:
            await asyncio.sleep(0)

    counts = await asyncio.gather(
        outbox.deliver_notifications(checkout.deps, YieldingNotifier()),
        outbox.deliver_notifications(checkout.deps, YieldingNotifier()),
    )
    assert sorted(counts) == [0, 3]
    deliveries = await checkout.webhook_deliveries(ENV, every.id)
    assert len({d.notification.id for d in deliveries}) == len(deliveries) == 3
    assert await outbox.deliver_notifications(checkout.deps, YieldingNotifier()) == 0


# Retries -----------------------------------------------------------------------------------


def test_the_retry_delay_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [POLICY.retry_delay(n).total_seconds() for n in range(1, 16)]
    assert delays[:9] == [30, 60, 120, 240, 480, 960, 1920, 3840, 7680]
    assert delays[9:] == [4 * 3600] * 6
    assert POLICY.retry_delay(10_000) == POLICY.retry_cap


async def test_a_failing_endpoint_is_retried_with_backoff_then_given_up_and_disabled(
    checkout: CardCheckout, sender: RecordingSender, clock: ManualClock
) -> None:
    sender.fails = lambda delivery: True
    every = await endpoint_for(checkout)
    await declined_payment(checkout)
    disabled: tuple[str, ...] = ()
    for _ in range(POLICY.max_attempts):
        report = await checkout.send_webhooks()
        disabled += report.disabled
        head = await oldest_delivery(checkout, every)
        if head.pending:
            # Not before its time: a pass a second early sends nothing.
            clock.current = head.next_attempt_at - timedelta(seconds=1)
            assert (await checkout.send_webhooks()).failed == 0
            clock.current = head.next_attempt_at
    # Only the oldest delivery was tried: the endpoint's others waited behind it.
    assert {c.notification.type for c in sender.calls} == {NotificationType.PAYMENT_CREATED}
    gaps = [
        (b.at - a.at).total_seconds() for a, b in zip(sender.calls, sender.calls[1:], strict=False)
    ]
    assert gaps == [POLICY.retry_delay(n).total_seconds() for n in range(1, 15)]
    assert sender.calls[-1].at - sender.calls[0].at >= POLICY.give_up_after
    assert head.attempts == POLICY.max_attempts
    assert head.failed_at == sender.calls[-1].at
    assert head.last_error == "http_status_500"
    assert disabled == (every.id,)
    endpoint = await checkout.get_webhook_endpoint(ENV, every.id)
    assert endpoint.disabled_at == head.failed_at
    # Its waiting deliveries are given up unsent, and it gets no new ones.
    report = await checkout.send_webhooks()
    assert (report.given_up, report.delivered) == (2, 0)
    deliveries = await checkout.webhook_deliveries(ENV, every.id)
    assert all(d.failed_at is not None for d in deliveries)
    await declined_payment(checkout)
    assert len(await checkout.webhook_deliveries(ENV, every.id)) == 3
    assert len(sender.calls) == POLICY.max_attempts


async def test_an_endpoint_that_comes_back_gets_everything_in_order(
    checkout: CardCheckout, sender: RecordingSender, clock: ManualClock
) -> None:
    every = await endpoint_for(checkout)
    sender.fails = lambda delivery: len(sender.calls) <= 3
    await declined_payment(checkout)
    for _ in range(4):
        await checkout.send_webhooks()
        clock.advance(POLICY.retry_cap)
    kinds = [c.notification.type.value for c in sender.calls]
    assert kinds == ["payment.created"] * 4 + ["payment.processing", "payment.failed"]
    head = await oldest_delivery(checkout, every)
    assert (head.attempts, head.last_error, head.delivered_at is not None) == (4, None, True)
    assert (await checkout.get_webhook_endpoint(ENV, every.id)).failing_since is None


async def test_an_endpoint_that_answers_other_deliveries_is_not_disabled(
    checkout: CardCheckout, sender: RecordingSender, clock: ManualClock
) -> None:
    every = await endpoint_for(checkout, "payment.failed")
    await declined_payment(checkout)
    stubborn = (await only_delivery(checkout, every)).notification.id
    sender.fails = lambda delivery: delivery.notification.id == stubborn
    report = None
    for attempt in range(1, POLICY.max_attempts + 1):
        report = await checkout.send_webhooks()
        if attempt == 3:
            await declined_payment(checkout)  # a new event, due before the stubborn one
            assert (await checkout.send_webhooks()).delivered == 1
        clock.advance(POLICY.retry_delay(attempt))
    assert report is not None
    assert (report.given_up, report.disabled) == (1, ())
    assert (await checkout.get_webhook_endpoint(ENV, every.id)).disabled_at is None


async def test_a_failing_endpoint_does_not_hold_up_another(
    checkout: CardCheckout, sender: RecordingSender
) -> None:
    down = await endpoint_for(checkout)
    up = await endpoint_for(checkout)
    sender.fails = lambda delivery: delivery.endpoint_id == down.id
    await declined_payment(checkout)
    report = await checkout.send_webhooks()
    assert (report.delivered, report.failed) == (3, 1)
    assert (len(sender.to(up)), len(sender.to(down))) == (3, 1)
    waiting = await checkout.webhook_deliveries(ENV, down.id)
    assert {d.next_attempt_at for d in waiting} == {waiting[0].next_attempt_at}


async def test_deleting_an_endpoint_gives_up_what_was_pending_for_it(
    checkout: CardCheckout, sender: RecordingSender
) -> None:
    gone = await endpoint_for(checkout)
    await declined_payment(checkout)
    deleted = await checkout.delete_webhook_endpoint(ENV, gone.id)
    assert deleted.deleted_at is not None
    assert not await checkout.list_webhook_endpoints(ENV)
    assert isinstance(await error_of(checkout.get_webhook_endpoint(ENV, gone.id)), NotFound)
    assert isinstance(await error_of(checkout.delete_webhook_endpoint(ENV, gone.id)), NotFound)
    report = await checkout.send_webhooks()
    assert (report.given_up, report.delivered, sender.calls) == (3, 0, [])
    async with checkout.deps.uow() as uow:
        left = await uow.webhook_deliveries.list(DeliveryQuery(ENV, gone.id))
    assert {d.last_error for d in left} == {"endpoint_deleted"}


# Leases ------------------------------------------------------------------------------------


async def test_a_delivery_in_flight_is_not_sent_twice_and_a_crash_only_delays_it(
    checkout: CardCheckout, sender: RecordingSender, clock: ManualClock
) -> None:
    await endpoint_for(checkout, "payment.failed")
    await declined_payment(checkout)
    started, never = asyncio.Event(), asyncio.Event()

    class StuckSender:
        async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
            started.set()
            await never.wait()

    stuck = asyncio.create_task(webhook_delivery.send_webhooks(checkout.deps, StuckSender()))
    await started.wait()
    assert (await checkout.send_webhooks()).delivered == 0  # another dispatcher: leased
    stuck.cancel()  # the first dispatcher dies mid-send
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert (await checkout.send_webhooks()).delivered == 0
    clock.advance(POLICY.lease)
    assert (await checkout.send_webhooks()).delivered == 1
    assert len(sender.calls) == 1


async def test_without_a_sender_deliveries_wait(checkout: CardCheckout) -> None:
    every = await endpoint_for(checkout)
    await declined_payment(checkout)
    assert (await checkout.send_webhooks()).delivered == 0
    assert all(d.pending for d in await checkout.webhook_deliveries(ENV, every.id))


async def test_an_outcome_that_cannot_be_recorded_fails_the_pass_alone_and_plainly(
    checkout: CardCheckout, sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = await endpoint_for(checkout, "payment.failed")
    fine = await endpoint_for(checkout, "payment.failed")
    await declined_payment(checkout)
    record = webhook_delivery.record_sent

    async def record_unless_broken(deps: Deps, delivery: WebhookDelivery) -> None:
        if delivery.endpoint_id == broken.id:
            await asyncio.sleep(0)  # the other endpoint's send is under way meanwhile
            raise OSError("the database went away")
        await asyncio.sleep(0.01)  # still sending when the broken one fails
        await record(deps, delivery)

    monkeypatch.setattr(webhook_delivery, "record_sent", record_unless_broken)
    with pytest.raises(OSError, match="the database went away"):  # not an ExceptionGroup
        await webhook_delivery.send_webhooks(checkout.deps, sender)
    assert (await only_delivery(checkout, fine)).delivered_at is not None  # not cancelled
    assert (await only_delivery(checkout, broken)).delivered_at is None  # sent again later
