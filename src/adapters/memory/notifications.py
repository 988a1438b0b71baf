"""Repositories of idempotency keys, gateway events seen, the outbox and outbound webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from adapters.memory.table import InMemoryStore, Table, page
from core.errors import ConcurrentUpdate, IdempotencyKeyInUse
from core.model import Notification, WebhookDelivery, WebhookEndpoint
from core.ports import DeliveryQuery, IdempotencyRecord, IdempotencyState, Page


class InMemoryIdempotencyRepository:
    def __init__(self, table: Table[tuple[str, str], IdempotencyRecord]) -> None:
        self.table = table
        # Leases to extend at commit: (key, version claimed, until).
        self.renewals: list[tuple[tuple[str, str], int, datetime]] = []

    async def get(self, environment_id: str, key: str) -> IdempotencyRecord | None:
        return self.table.get((environment_id, key))

    async def put(self, record: IdempotencyRecord) -> None:
        key = (record.environment_id, record.key)
        if record.version == 1:
            self.table.add(key, record)
            return
        try:
            self.table.update(key, record)
        except ConcurrentUpdate:  # another request took the key since it was read
            raise IdempotencyKeyInUse() from None

    async def renew(self, environment_id: str, key: str, version: int, until: datetime) -> None:
        self.renewals.append(((environment_id, key), version, until))

    async def in_progress_for(
        self, environment_id: str, resource_id: str
    ) -> Sequence[IdempotencyRecord]:
        return [
            r
            for r in self.table.rows()
            if r.resource_id == resource_id
            and r.environment_id == environment_id
            and r.state is IdempotencyState.IN_PROGRESS
        ]

    def apply_renewals(self) -> None:
        """Extend the leases of claims still at the version renewed (under the commit's
        check, like every write here)."""
        committed = self.table.committed
        for key, version, until in self.renewals:
            record = committed.get(key)
            if record is None or record.version != version:
                continue  # finished, or taken over
            if record.state is IdempotencyState.IN_PROGRESS:
                committed[key] = attrs.evolve(record, lease_expires_at=until)


class InMemoryOutboxRepository:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.added: list[Notification] = []
        self.delivered: list[str] = []

    async def add(self, notification: Notification) -> None:
        self.added.append(notification)

    async def undelivered(self, limit: int) -> Sequence[Notification]:
        pending = iter(self._store.outbox.values())
        return [n for _, n in zip(range(limit), pending, strict=False)]

    async def remove_delivered(self, notification_ids: Sequence[str]) -> None:
        self.delivered.extend(notification_ids)


class InMemoryGatewayEventLog:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        # (environment id, event id) -> event type
        self.added: dict[tuple[str, str], str] = {}

    async def seen(self, environment_id: str, event_id: str) -> bool:
        key = (environment_id, event_id)
        return key in self._store.gateway_events or key in self.added

    async def add(self, environment_id: str, event_id: str, event_type: str, at: datetime) -> None:
        self.added[(environment_id, event_id)] = event_type


class InMemoryWebhookEndpointRepository:
    def __init__(self, table: Table[tuple[str, str], WebhookEndpoint]) -> None:
        self.table = table

    async def add(self, endpoint: WebhookEndpoint) -> None:
        self.table.add((endpoint.environment_id, endpoint.id), endpoint)

    async def get(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        return self.table.get((environment_id, endpoint_id))

    async def list(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        found = [e for e in self.table.rows() if e.environment_id == environment_id]
        return sorted(found, key=lambda e: (e.created_at, e.id))

    async def update(self, endpoint: WebhookEndpoint) -> None:
        self.table.update((endpoint.environment_id, endpoint.id), endpoint)


class InMemoryWebhookDeliveryRepository:
    def __init__(self, table: Table[tuple[str, str], WebhookDelivery]) -> None:
        self.table = table

    async def add(self, delivery: WebhookDelivery) -> None:
        self.table.add((delivery.environment_id, delivery.id), delivery)

    async def get(self, environment_id: str, delivery_id: str) -> WebhookDelivery | None:
        return self.table.get((environment_id, delivery_id))

    async def due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        found = [d for d in self.table.rows() if d.pending and d.next_attempt_at <= now]
        return sorted(found, key=lambda d: (d.next_attempt_at, d.created_at, d.id))[:limit]

    async def update(self, delivery: WebhookDelivery) -> None:
        self.table.update((delivery.environment_id, delivery.id), delivery)

    async def list(self, query: DeliveryQuery) -> Page[WebhookDelivery]:
        rows = (
            d
            for d in self.table.rows()
            if d.environment_id == query.environment_id and d.endpoint_id == query.endpoint_id
        )
        return page(rows, lambda _: True, query.window, lambda d: (d.created_at, d.id))
