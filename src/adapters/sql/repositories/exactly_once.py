"""What makes work happen once: idempotency keys, and the gateway events already handled."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from adapters.sql import rows, tables
from adapters.sql.session import SqlSession
from adapters.sql.statements import (
    GATEWAY_EVENT_SEEN,
    IDEMPOTENCY,
    IDEMPOTENCY_IN_PROGRESS_FOR,
    IDEMPOTENCY_RENEW,
)
from core.errors import IdempotencyKeyInUse
from core.ports import IdempotencyRecord


class SqlIdempotencyRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def get(self, environment_id: str, key: str) -> IdempotencyRecord | None:
        row = await self._session.one(IDEMPOTENCY.get, IDEMPOTENCY.key(environment_id, key))
        return rows.idempotency_from(row) if row else None

    async def put(self, record: IdempotencyRecord) -> None:
        values = rows.idempotency_values(record)
        if record.version == 1:
            self._session.stage_insert(IDEMPOTENCY, values, IdempotencyKeyInUse())
        else:  # another request took the key since it was read
            self._session.stage_update(IDEMPOTENCY, values, stale=IdempotencyKeyInUse())

    async def renew(self, environment_id: str, key: str, version: int, until: datetime) -> None:
        params = {**IDEMPOTENCY.key(environment_id, key), "match_version": version}
        await self._session.execute(IDEMPOTENCY_RENEW, {**params, "until": until})

    async def in_progress_for(
        self, environment_id: str, resource_id: str
    ) -> Sequence[IdempotencyRecord]:
        params = {"environment_id": environment_id, "resource_id": resource_id}
        result = await self._session.execute(IDEMPOTENCY_IN_PROGRESS_FOR, params)
        return [rows.idempotency_from(row) for row in result.records]


class SqlGatewayEventLog:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def seen(self, environment_id: str, event_id: str) -> bool:
        params = {"environment_id": environment_id, "event_id": event_id}
        result = await self._session.execute(GATEWAY_EVENT_SEEN, params)
        return result.first() is not None

    async def add(self, environment_id: str, event_id: str, event_type: str, at: datetime) -> None:
        values = {"environment_id": environment_id, "id": event_id, "type": event_type,
                  "processed_at": at}  # fmt: skip
        self._session.stage_append(tables.gateway_events, (environment_id, event_id), values)
