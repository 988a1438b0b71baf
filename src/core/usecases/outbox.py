"""The outbox: notifications written with each change, delivered at least once."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import ConcurrentUpdate
from core.model import Notification, WebhookDelivery, WebhookEndpoint
from core.ports import Notifier, UnitOfWork
from core.usecases.common import Deps


async def deliver_notifications(deps: Deps, notifier: Notifier, *, limit: int = 100) -> int:
    """Deliver what the outbox holds, at least once; returns how many were delivered.

    The transaction that removes delivered notifications also queues one webhook delivery
    per endpoint that wants each, so no event is lost between the two.
    """
    async with deps.uow(read_only=True) as uow:
        pending = await uow.outbox.undelivered(limit)
    delivered: list[Notification] = []
    for notification in pending:
        try:
            await notifier.notify(notification)
        except Exception:  # noqa: BLE001 - a failing notifier is retried on the next pass
            break
        delivered.append(notification)
    if not delivered:
        return 0
    try:
        async with deps.uow() as uow:
            await uow.outbox.remove_delivered([n.id for n in delivered])
            await _queue_webhooks(deps, uow, delivered)
            await uow.commit()
    except ConcurrentUpdate:
        # Another dispatcher delivered (some of) them first; the next pass sees the rest.
        return 0
    return len(delivered)


async def _queue_webhooks(
    deps: Deps, uow: UnitOfWork, notifications: Sequence[Notification]
) -> None:
    endpoints: dict[str, Sequence[WebhookEndpoint]] = {}
    now = deps.clock.now()
    for notification in notifications:
        environment_id = notification.environment_id
        if environment_id not in endpoints:
            endpoints[environment_id] = await uow.webhook_endpoints.list(environment_id)
        for endpoint in endpoints[environment_id]:
            if endpoint.wants(notification.type):
                await uow.webhook_deliveries.add(
                    WebhookDelivery(
                        id=deps.ids.new_id("whd"),
                        environment_id=environment_id,
                        endpoint_id=endpoint.id,
                        notification=notification,
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
