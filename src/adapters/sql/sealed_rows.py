"""Rows that hold secrets: environments (their gateway connection and webhook secrets) and
webhook endpoints (their signing secret), sealed on the way in and opened on the way out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from adapters.secrets import NoEncryptionKey, Sealer, SecretsUnreadable
from core.errors import ServiceUnavailable
from core.model import (
    Environment,
    EnvironmentMode,
    GatewayConnection,
    GatewayProvider,
    NotificationType,
    WebhookEndpoint,
)

Row = Mapping[str, Any]
T = TypeVar("T")


def with_secrets(convert: Callable[[], T]) -> T:
    """A conversion that seals or opens secrets; a missing or wrong key is our own failure,
    told as such (nothing is stored), never a bug's 500."""
    try:
        return convert()
    except (NoEncryptionKey, SecretsUnreadable) as failure:
        raise ServiceUnavailable(f"Secrets cannot be used: {failure}.") from None


def environment_values(environment: Environment, box: Sealer) -> dict[str, Any]:
    connection = environment.connection
    key = connection.secret_key if connection else None
    return {
        "id": environment.id,
        "tenant_id": environment.tenant_id,
        "name": environment.name,
        "created_at": environment.created_at,
        "webhook_secrets": [box.seal(secret) for secret in environment.webhook_secrets],
        "version": environment.version,
        "mode": environment.mode.value,
        "gateway_provider": connection.provider.value if connection else None,
        "gateway_secret_key": box.seal(key) if key is not None else None,
        "connection_updated_at": connection.updated_at if connection else None,
    }


def environment_from(row: Row, box: Sealer) -> Environment:
    connection = None
    if row["gateway_provider"] is not None:
        key = row["gateway_secret_key"]
        connection = GatewayConnection(
            provider=GatewayProvider(row["gateway_provider"]),
            updated_at=row["connection_updated_at"],
            secret_key=box.open(key) if key is not None else None,
        )
    return Environment(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        created_at=row["created_at"],
        webhook_secrets=tuple(box.open(secret) for secret in row["webhook_secrets"] or ()),
        version=row["version"],
        mode=EnvironmentMode(row["mode"]),
        connection=connection,
    )


def webhook_endpoint_values(endpoint: WebhookEndpoint, box: Sealer) -> dict[str, Any]:
    return {
        "environment_id": endpoint.environment_id,
        "id": endpoint.id,
        "url": endpoint.url,
        "events": sorted(kind.value for kind in endpoint.events),
        "secret": box.seal(endpoint.secret),
        "created_at": endpoint.created_at,
        "disabled_at": endpoint.disabled_at,
        "deleted_at": endpoint.deleted_at,
        "failing_since": endpoint.failing_since,
        "version": endpoint.version,
    }


def webhook_endpoint_from(row: Row, box: Sealer) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        environment_id=row["environment_id"],
        url=row["url"],
        events=frozenset(NotificationType(kind) for kind in row["events"]),
        secret=box.open(row["secret"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        deleted_at=row["deleted_at"],
        failing_since=row["failing_since"],
        version=row["version"],
    )
