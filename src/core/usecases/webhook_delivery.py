"""Sending outbound webhooks: lease what is due, send with no transaction open, record each
outcome; back off, give up, and disable endpoints that never answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import attrs

from core.errors import ConcurrentUpdate
from core.model import WebhookDelivery, WebhookEndpoint
from core.model.webhooks import DeliveryError, WebhookNotAccepted
from core.ports import UnitOfWork, WebhookSender
from core.usecases.common import Deps, transaction

Leased = list[tuple[WebhookDelivery, WebhookEndpoint]]


@attrs.frozen
class WebhookReport:
    """What a pass of webhook sending did."""

    delivered: int = 0
    failed: int = 0  # attempts that failed and will be tried again
    given_up: int = 0  # deliveries that will not be tried again
    disabled: tuple[str, ...] = ()  # endpoints disabled by this pass

    def __add__(self, other: WebhookReport) -> WebhookReport:
        return WebhookReport(
            self.delivered + other.delivered,
            self.failed + other.failed,
            self.given_up + other.given_up,
            self.disabled + other.disabled,
        )


async def send_webhooks(deps: Deps, sender: WebhookSender, *, limit: int = 100) -> WebhookReport:
    """Send the deliveries that are due, each at least once.

    An endpoint that fails gets nothing more in this pass: its other deliveries wait for the
    failed one's retry.
    """
    try:
        leased, report = await transaction(deps, lambda uow: _lease_due(deps, uow, limit))
    except ConcurrentUpdate:
        return WebhookReport()  # other dispatchers hold them; the next pass tries again
    by_endpoint: dict[tuple[str, str], list[WebhookDelivery]] = {}
    endpoints: dict[tuple[str, str], WebhookEndpoint] = {}
    for delivery, endpoint in leased:
        key = (endpoint.environment_id, endpoint.id)
        by_endpoint.setdefault(key, []).append(delivery)
        endpoints[key] = endpoint
    gate = asyncio.Semaphore(deps.policies.webhooks.parallel_endpoints)

    async def to_endpoint(key: tuple[str, str]) -> WebhookReport:
        async with gate:
            return await _send_to_endpoint(deps, sender, endpoints[key], by_endpoint[key])

    # Not a TaskGroup: one endpoint's failure to record must not cancel the others' sends
    # half-way, and the caller gets the error itself, not a group.
    outcomes = await asyncio.gather(
        *(to_endpoint(key) for key in by_endpoint), return_exceptions=True
    )
    errors: list[BaseException] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            errors.append(outcome)
        else:
            report += outcome
    if errors:
        if len(errors) > 1:
            errors[0].add_note(f"{len(errors) - 1} other endpoint(s) failed in this pass too")
        raise errors[0]
    return report


async def _lease_due(deps: Deps, uow: UnitOfWork, limit: int) -> tuple[Leased, WebhookReport]:
    now = deps.clock.now()
    endpoints: dict[tuple[str, str], WebhookEndpoint | None] = {}
    leased: Leased = []
    given_up = 0
    for delivery in await uow.webhook_deliveries.due(now, limit):
        key = (delivery.environment_id, delivery.endpoint_id)
        if key not in endpoints:
            endpoints[key] = await uow.webhook_endpoints.get(*key)
        endpoint = endpoints[key]
        if endpoint is None or not endpoint.active:
            gone = endpoint is None or endpoint.deleted_at is not None
            why = DeliveryError.ENDPOINT_DELETED if gone else DeliveryError.ENDPOINT_DISABLED
            await uow.webhook_deliveries.update(delivery.abandoned(now, why.value))
            given_up += 1
            continue
        held = delivery.rescheduled(now + deps.policies.webhooks.lease)
        await uow.webhook_deliveries.update(held)
        leased.append((held, endpoint))
    await uow.commit()
    return leased, WebhookReport(given_up=given_up)


async def _send_to_endpoint(
    deps: Deps, sender: WebhookSender, endpoint: WebhookEndpoint, deliveries: list[WebhookDelivery]
) -> WebhookReport:
    report = WebhookReport()
    for index, delivery in enumerate(deliveries):
        try:
            await sender.send(endpoint, delivery)
        except Exception as error:  # noqa: BLE001 - any failure is recorded and retried
            return report + await record_failure(
                deps, delivery, _kind_of(error), waiting=deliveries[index + 1 :]
            )
        await record_sent(deps, delivery)
        report += WebhookReport(delivered=1)
    return report


def _kind_of(error: Exception) -> str:
    """What a failed attempt records: a kind, never the exception's words (they may name
    the addresses and ports the sender tried)."""
    if isinstance(error, WebhookNotAccepted):
        return error.recorded
    return DeliveryError.FAILED.value


async def record_sent(deps: Deps, delivery: WebhookDelivery) -> None:
    async def record(uow: UnitOfWork) -> None:
        current = await uow.webhook_deliveries.get(delivery.environment_id, delivery.id)
        if current is None or current.version != delivery.version:
            return  # its lease ran out and another dispatcher took it over
        await uow.webhook_deliveries.update(current.succeeded(deps.clock.now()))
        endpoint = await uow.webhook_endpoints.get(delivery.environment_id, delivery.endpoint_id)
        if endpoint is not None and (healthy := endpoint.answered()) is not endpoint:
            await uow.webhook_endpoints.update(healthy)
        await uow.commit()

    await transaction(deps, record)


async def record_failure(
    deps: Deps, delivery: WebhookDelivery, reason: str, *, waiting: Sequence[WebhookDelivery]
) -> WebhookReport:
    """Back off (or give up), and hold the endpoint's `waiting` deliveries until then."""
    policy = deps.policies.webhooks

    async def record(uow: UnitOfWork) -> WebhookReport:
        current = await uow.webhook_deliveries.get(delivery.environment_id, delivery.id)
        if current is None or current.version != delivery.version:
            return WebhookReport()  # another dispatcher took it over
        now = deps.clock.now()
        first = current.first_attempt_at or now
        failures = current.attempts + 1
        gives_up = failures >= policy.max_attempts or now - first >= policy.give_up_after
        retry_at = None if gives_up else now + policy.retry_delay(failures)
        await uow.webhook_deliveries.update(current.attempt_failed(now, reason, retry_at=retry_at))
        disabled: tuple[str, ...] = ()
        endpoint = await uow.webhook_endpoints.get(delivery.environment_id, delivery.endpoint_id)
        if endpoint is not None:
            # Failing for all of this delivery's tries, not one answer: the endpoint is off.
            silent = (endpoint.failing_since or now) <= first
            failed = endpoint.failed(now, disable=gives_up and silent)
            if failed is not endpoint:
                await uow.webhook_endpoints.update(failed)
            if endpoint.active and not failed.active:
                disabled = (endpoint.id,)
        for held in waiting:
            other = await uow.webhook_deliveries.get(held.environment_id, held.id)
            if other is not None and other.version == held.version:
                await uow.webhook_deliveries.update(other.rescheduled(retry_at or now))
        await uow.commit()
        if gives_up:
            return WebhookReport(given_up=1, disabled=disabled)
        return WebhookReport(failed=1)

    return await transaction(deps, record)
