"""Which gateway serves each environment: the connection it stores, else the default one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import attrs

from adapters.remembered import Remembered
from core.model import Environment, GatewayConnection, GatewayProvider
from core.ports import Clock, PaymentGateway, UnitOfWorkFactory


@attrs.define
class ConnectedGateways:
    """A `GatewayDirectory` over stored connections.

    An environment's connection is read from storage and remembered for `ttl`: a change made
    through this process applies at once, one made through another process within `ttl`.
    One Stripe client is kept per secret key; the sandbox is shared by every environment
    connected to it (its objects carry their environment in their metadata).
    """

    uow: UnitOfWorkFactory
    clock: Clock
    default_connection: GatewayConnection
    # Serves the default connection (Stripe with STRIPE_SECRET_KEY, or the sandbox).
    default_gateway: PaymentGateway
    sandbox: PaymentGateway
    # Builds the gateway of a Stripe account from its secret key.
    stripe: Callable[[str], PaymentGateway]
    ttl: timedelta = timedelta(seconds=5)
    _environments: Remembered[str, Environment | None] = attrs.field(init=False)
    _stripe_clients: dict[str, PaymentGateway] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self._environments = Remembered(self.ttl)

    @property
    def default(self) -> GatewayConnection:
        return self.default_connection

    async def for_environment(self, environment_id: str) -> PaymentGateway:
        environment = await self._environment(environment_id)
        if environment is None:  # only the sandbox's own events can name no stored one
            return self.default_gateway
        return self.gateway_of(environment.connection_or(self.default_connection))

    def gateway_of(self, connection: GatewayConnection) -> PaymentGateway:
        default = self.default_connection
        if (connection.provider, connection.secret_key) == (default.provider, default.secret_key):
            return self.default_gateway
        if connection.provider is GatewayProvider.SANDBOX:
            return self.sandbox
        assert connection.secret_key is not None, "a Stripe connection has its key"
        client = self._stripe_clients.get(connection.secret_key)
        if client is None:
            client = self._stripe_clients[connection.secret_key] = self.stripe(
                connection.secret_key
            )
        return client

    def forget(self, environment_id: str) -> None:
        self._environments.forget(environment_id)

    async def aclose(self) -> None:
        """Close the Stripe clients this directory opened (the default is its owner's)."""
        clients = [client for client in self._stripe_clients.values()
                   if client is not self.default_gateway]  # fmt: skip
        self._stripe_clients.clear()
        await asyncio.gather(*(_close(client) for client in clients))

    async def _environment(self, environment_id: str) -> Environment | None:
        now = self.clock.now()
        if remembered := self._environments.get(environment_id, now):
            return remembered[0]
        async with self.uow(read_only=True) as uow:
            environment = await uow.environments.get(environment_id)
        self._environments.put(environment_id, environment, now)
        return environment


async def _close(client: PaymentGateway) -> None:
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()
