"""What goes out: the outbox of notifications, webhook endpoints and their deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from adapters.secrets import KeepsStoredForm, SecretBox
from adapters.sql import rows, sealed_rows, tables
from adapters.sql.repositories.pages import page
from adapters.sql.sealed_rows import with_secrets
from adapters.sql.session import SqlSession
from adapters.sql.statements import (
    ENDPOINTS_OF_ENVIRONMENT,
    UNDELIVERED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
)
from core.model import Notification, WebhookDelivery, WebhookEndpoint
from core.ports import DeliveryQuery, Page


class SqlOutboxRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def add(self, notification: Notification) -> None:
        values = rows.notification_values(notification)
        self._session.stage_append(tables.outbox, notification.id, values)

    async def undelivered(self, limit: int) -> Sequence[Notification]:
        result = await self._session.execute(UNDELIVERED, {"limit": limit})
        return [rows.notification_from(row) for row in result.records]

    async def remove_delivered(self, notification_ids: Sequence[str]) -> None:
        self._session.stage_delete(tables.outbox, "id", notification_ids)


class SqlWebhookEndpointRepository:
    def __init__(self, session: SqlSession, box: SecretBox) -> None:
        self._session = session
        self._box = KeepsStoredForm(box)

    async def add(self, endpoint: WebhookEndpoint) -> None:
        values = with_secrets(lambda: sealed_rows.webhook_endpoint_values(endpoint, self._box))
        self._session.stage_insert(WEBHOOK_ENDPOINTS, values)

    async def get(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        row = await self._session.one(
            WEBHOOK_ENDPOINTS.get, WEBHOOK_ENDPOINTS.key(environment_id, endpoint_id)
        )
        return (
            with_secrets(lambda: sealed_rows.webhook_endpoint_from(row, self._box)) if row else None
        )

    async def list(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        result = await self._session.execute(
            ENDPOINTS_OF_ENVIRONMENT, {"environment_id": environment_id}
        )
        return with_secrets(
            lambda: [sealed_rows.webhook_endpoint_from(row, self._box) for row in result.records]
        )

    async def update(self, endpoint: WebhookEndpoint) -> None:
        values = with_secrets(lambda: sealed_rows.webhook_endpoint_values(endpoint, self._box))
        self._session.stage_update(WEBHOOK_ENDPOINTS, values)


class SqlWebhookDeliveryRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def add(self, delivery: WebhookDelivery) -> None:
        # A second delivery of one notification to one endpoint: `ConcurrentUpdate`.
        self._session.stage_insert(WEBHOOK_DELIVERIES, rows.webhook_delivery_values(delivery))

    async def get(self, environment_id: str, delivery_id: str) -> WebhookDelivery | None:
        row = await self._session.one(
            WEBHOOK_DELIVERIES.get, WEBHOOK_DELIVERIES.key(environment_id, delivery_id)
        )
        return rows.webhook_delivery_from(row) if row else None

    async def due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        t = tables.webhook_deliveries
        result = await self._session.execute(
            select(t)
            .where(t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.created_at, t.c.id)
            .limit(limit)
        )
        return [rows.webhook_delivery_from(row) for row in result.records]

    async def update(self, delivery: WebhookDelivery) -> None:
        self._session.stage_update(WEBHOOK_DELIVERIES, rows.webhook_delivery_values(delivery))

    async def list(self, query: DeliveryQuery) -> Page[WebhookDelivery]:
        t = tables.webhook_deliveries
        of_endpoint = [
            t.c.environment_id == query.environment_id,
            t.c.endpoint_id == query.endpoint_id,
        ]
        statement = select(t).where(*of_endpoint)
        return await page(
            self._session, t, statement, query.window, of_endpoint, rows.webhook_delivery_from
        )
