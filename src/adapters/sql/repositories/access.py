"""Environments and API keys."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.secrets import KeepsStoredForm, SecretBox
from adapters.sql import rows, sealed_rows
from adapters.sql.sealed_rows import with_secrets
from adapters.sql.session import SqlSession
from adapters.sql.statements import API_KEY_BY_HASH, API_KEYS, API_KEYS_OF_TENANT, ENVIRONMENTS
from core.model import ApiKey, Environment


class SqlEnvironmentRepository:
    def __init__(self, session: SqlSession, box: SecretBox) -> None:
        self._session = session
        self._box = KeepsStoredForm(box)

    async def add(self, environment: Environment) -> None:
        values = with_secrets(lambda: sealed_rows.environment_values(environment, self._box))
        self._session.stage_insert(ENVIRONMENTS, values)

    async def get(self, environment_id: str) -> Environment | None:
        row = await self._session.one(ENVIRONMENTS.get, ENVIRONMENTS.key(environment_id))
        return with_secrets(lambda: sealed_rows.environment_from(row, self._box)) if row else None

    async def update(self, environment: Environment) -> None:
        values = with_secrets(lambda: sealed_rows.environment_values(environment, self._box))
        self._session.stage_update(ENVIRONMENTS, values)


class SqlApiKeyRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def add(self, key: ApiKey) -> None:
        self._session.stage_insert(API_KEYS, rows.api_key_values(key))

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self._session.one(API_KEYS.get, API_KEYS.key(key_id))
        return rows.api_key_from(row) if row else None

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._session.one(API_KEY_BY_HASH, {"key_hash": key_hash})
        return rows.api_key_from(row) if row else None

    async def update(self, key: ApiKey) -> None:
        self._session.stage_update(API_KEYS, rows.api_key_values(key))

    async def of_tenant(self, tenant_id: str) -> Sequence[ApiKey]:
        result = await self._session.execute(API_KEYS_OF_TENANT, {"tenant_id": tenant_id})
        return [rows.api_key_from(row) for row in result.records]
