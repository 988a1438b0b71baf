"""Who uses the service: environments (the tenants' isolated spaces), API keys, customers."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Final

import attrs

from core.errors import GatewayNotConnected, ValidationError


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


class EnvironmentMode(StrEnum):
    """Whether an environment moves real money (live) or plays (test)."""

    TEST = "test"
    LIVE = "live"


class GatewayProvider(StrEnum):
    STRIPE = "stripe"
    SANDBOX = "sandbox"


# Stripe's secret and restricted keys, the prefixes of their live kinds, and its webhook
# signing secrets, as Stripe spells them (so a placeholder such as sk_live_... is refused).
STRIPE_KEY: Final = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9_]{1,240}")
LIVE_KEY_PREFIXES: Final = ("sk_live_", "rk_live_")
WEBHOOK_SECRET: Final = re.compile(r"whsec_[A-Za-z0-9+/=_-]{1,240}")


@attrs.frozen
class GatewayConnection:
    """The gateway account an environment charges through (its secret key, when Stripe)."""

    provider: GatewayProvider
    updated_at: datetime
    secret_key: str | None = None

    def check_for(self, mode: EnvironmentMode) -> None:
        """Refuse a connection the environment must not use: the sandbox or a test key in
        a live environment, a live key in a test one, a Stripe connection without a key."""
        key = self.secret_key
        if self.provider is GatewayProvider.SANDBOX:
            if key is not None:
                raise ValidationError("The sandbox takes no secret key.", field="secret_key")
            if mode is EnvironmentMode.LIVE:
                raise ValidationError("A live environment cannot use the sandbox.",
                                      field="provider")  # fmt: skip
            return
        if key is None or not STRIPE_KEY.fullmatch(key):
            raise ValidationError("A Stripe connection needs its secret key (sk_... or rk_...).",
                                  field="secret_key")  # fmt: skip
        if key.startswith(LIVE_KEY_PREFIXES) != (mode is EnvironmentMode.LIVE):
            raise ValidationError(
                f"A {mode.value} environment needs a {mode.value}-mode Stripe key.",
                field="secret_key",
            )


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
    mode: EnvironmentMode = EnvironmentMode.TEST
    # None: the service's default gateway (STRIPE_SECRET_KEY's account, else the sandbox).
    connection: GatewayConnection | None = None

    def with_webhook_secrets(self, secrets: tuple[str, ...]) -> Environment:
        for secret in secrets:
            if not WEBHOOK_SECRET.fullmatch(secret):
                raise ValidationError("A webhook secret starts with whsec_.",
                                      field="webhook_secrets")  # fmt: skip
        return attrs.evolve(self, webhook_secrets=secrets, version=self.version + 1)

    def connected(
        self, connection: GatewayConnection, webhook_secrets: tuple[str, ...]
    ) -> Environment:
        """The environment charging through `connection`, its webhooks signed by those secrets."""
        connection.check_for(self.mode)
        changed = self.with_webhook_secrets(webhook_secrets)
        return attrs.evolve(changed, connection=connection)

    def connection_or(self, default: GatewayConnection) -> GatewayConnection:
        """What this environment charges through: its own connection (checked when it was
        set), else the service's `default`, which a live environment takes only if it is a
        live Stripe key (`GatewayNotConnected` otherwise: never test cards in live)."""
        if self.connection is not None:
            return self.connection
        if self.mode is EnvironmentMode.LIVE:
            key = default.secret_key
            if (
                default.provider is GatewayProvider.SANDBOX
                or not key
                or not key.startswith(LIVE_KEY_PREFIXES)
            ):
                raise GatewayNotConnected(environment_id=self.id)
        return default


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
