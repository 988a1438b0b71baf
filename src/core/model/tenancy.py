"""Who uses the service: environments (the tenants' isolated spaces), API keys, customers."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

import attrs


@attrs.frozen
class Customer:
    id: str
    environment_id: str
    external_id: str
    created_at: datetime
    name: str | None = None
    email: str | None = None
    gateway_customer_id: str | None = None
    version: int = 1


class Role(StrEnum):
    """What an API key may do: read (GET only), write (all but key management), admin."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@attrs.frozen
class Environment:
    """An isolated space of data (live, test, a customer's staging...) of one tenant."""

    id: str
    tenant_id: str
    name: str
    created_at: datetime
    # Secrets that sign the gateway's webhooks for this environment (several while rotating);
    # empty: the service-wide secret applies.
    webhook_secrets: tuple[str, ...] = ()
    version: int = 1

    def with_webhook_secrets(self, secrets: tuple[str, ...]) -> Environment:
        return attrs.evolve(self, webhook_secrets=secrets, version=self.version + 1)


@attrs.frozen
class ApiKey:
    """An API key as stored: its SHA-256 hash only, never the key itself."""

    id: str
    tenant_id: str
    key_hash: str
    role: Role
    environment_ids: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None = None
    version: int = 1

    @staticmethod
    def hash(raw_key: str) -> str:
        # Keys are long random tokens: a plain SHA-256 cannot be brute-forced back.
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_use(self, environment_id: str) -> bool:
        return self.active and environment_id in self.environment_ids

    def revoked(self, at: datetime) -> ApiKey:
        return attrs.evolve(self, revoked_at=at, version=self.version + 1)
