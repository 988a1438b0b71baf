"""Gateway connections: the account each environment charges through, and the secrets that
sign its gateway's webhooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import attrs

from core.commands import ConnectGateway
from core.model import Environment, EnvironmentMode, GatewayConnection, GatewayProvider
from core.ports import UnitOfWork
from core.usecases.common import Deps, environment_of, transaction


@attrs.frozen
class ConnectionView:
    """A connection as an admin may see it: its secrets only by their last four characters."""

    environment_id: str
    mode: EnvironmentMode
    provider: GatewayProvider
    # False: the environment has none of its own and the service's default applies.
    own: bool
    secret_key_last4: str | None
    webhook_secrets_last4: tuple[str, ...]
    updated_at: datetime | None = None

    @classmethod
    def of(cls, environment: Environment, default: GatewayConnection) -> ConnectionView:
        connection = environment.connection or default
        # The service's own key is the operator's: not even its end is shown to a tenant.
        key = connection.secret_key if environment.connection else None
        return cls(
            environment_id=environment.id,
            mode=environment.mode,
            provider=connection.provider,
            own=environment.connection is not None,
            secret_key_last4=key[-4:] if key else None,
            webhook_secrets_last4=tuple(secret[-4:] for secret in environment.webhook_secrets),
            updated_at=environment.connection.updated_at if environment.connection else None,
        )


async def connect_gateway(
    deps: Deps, environment_id: str, command: ConnectGateway
) -> ConnectionView:
    """Connect the environment to the sandbox or a Stripe account (replacing what it had)."""
    connection = GatewayConnection(command.provider, deps.clock.now(), command.secret_key)
    changed = await _change(
        deps, environment_id, lambda found: found.connected(connection, command.webhook_secrets)
    )
    return ConnectionView.of(changed, deps.gateways.default)


async def describe_connection(deps: Deps, environment_id: str) -> ConnectionView:
    async with deps.uow(read_only=True) as uow:
        environment = await environment_of(uow, environment_id)
    return ConnectionView.of(environment, deps.gateways.default)


async def set_webhook_secrets(
    deps: Deps, environment_id: str, secrets: Sequence[str]
) -> Environment:
    """The secrets that sign the gateway's webhooks for this environment (empty: none)."""
    cleaned = tuple(secret.strip() for secret in secrets if secret.strip())
    return await _change(deps, environment_id, lambda found: found.with_webhook_secrets(cleaned))


async def _change(
    deps: Deps, environment_id: str, change: Callable[[Environment], Environment]
) -> Environment:
    async def store(uow: UnitOfWork) -> Environment:
        changed = change(await environment_of(uow, environment_id))
        await uow.environments.update(changed)
        await uow.commit()
        return changed

    changed = await transaction(deps, store)
    deps.gateways.forget(environment_id)
    return changed
