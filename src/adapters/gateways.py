"""Which gateway serves each environment: the connection it stores, else the default one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import attrs

from adapters.remembered import Remembered
from core.model import Environment, GatewayConnection, GatewayProvider
from core.ports import Clock, PaymentGateway, UnitOfWorkFactory

# How long a Stripe client no longer used may still be finishing calls before it is closed.
RETIRED_CLIENT_GRACE_SECONDS = 120.0


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
    # Stripe clients kept open, the least recently used closed beyond that: keys an admin
    # replaced, or cycled through, are not held (with their connections) forever.
    max_stripe_clients: int = 64
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

    async def own_connection(self, environment_id: str) -> GatewayConnection | None:
        environment = await self._environment(environment_id)
        return environment.connection if environment is not None else None

    def gateway_of(self, connection: GatewayConnection) -> PaymentGateway:
        default = self.default_connection
        if (connection.provider, connection.secret_key) == (default.provider, default.secret_key):
            return self.default_gateway
        if connection.provider is GatewayProvider.SANDBOX:
            return self.sandbox
        key = connection.secret_key
        assert key is not None, "a Stripe connection has its key"
        client = self._stripe_clients.pop(key, None) or self.stripe(key)
        self._stripe_clients[key] = client  # the most recently used last
        if len(self._stripe_clients) > self.max_stripe_clients:
            oldest = next(iter(self._stripe_clients))
            retired = self._stripe_clients.pop(oldest)
            # Closed once the calls it may still be making are done.
            asyncio.get_running_loop().call_later(
                RETIRED_CLIENT_GRACE_SECONDS, lambda: asyncio.ensure_future(_close(retired))
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
