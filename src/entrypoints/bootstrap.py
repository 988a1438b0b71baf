"""The composition root: builds Card Checkout from settings or explicit adapters.

`bootstrap()` with no arguments gives in-memory storage and the sandbox gateway. Nothing is
built at import time. The settings live in `entrypoints.settings` (re-exported here).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import make_url

from adapters.addresses import SystemAddressResolver
from adapters.api_keys import CachedApiKeyLookup
from adapters.clock import SystemClock
from adapters.gateways import ConnectedGateways
from adapters.ids import UlidIdGenerator
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import (
    InMemorySandboxStore,
    SandboxFaults,
    SandboxPaymentGateway,
    SandboxStore,
)
from adapters.secrets import SecretBox, key_file_beside
from adapters.sql import SqlSandboxStore, SqlUnitOfWorkFactory, create_engine_from_url
from adapters.sql.engine import sqlite_file
from adapters.stripe_gateway import StripePaymentGateway
from core.model import GatewayConnection, GatewayProvider
from core.ports import (
    AddressResolver,
    Clock,
    IdGenerator,
    Notifier,
    PaymentGateway,
    UnitOfWorkFactory,
    WebhookSender,
)
from core.usecases import Deps, Policies, WebhookPolicy
from entrypoints.library import CardCheckout
from entrypoints.settings import DEFAULT_DATABASE_URL, Settings, SettingsError

__all__ = [
    "DEFAULT_DATABASE_URL", "CardCheckout", "Settings", "SettingsError", "bootstrap",
]  # fmt: skip


def secret_box(settings: Settings) -> SecretBox | None:
    """What seals the stored secrets: the configured keys, else the key file beside a SQLite
    file (created on first use); PostgreSQL without keys can seal nothing. None: storage
    that does not outlive the process, which needs no lasting key."""
    if settings.encryption_keys:
        return SecretBox(settings.encryption_keys)
    url = settings.database_url
    if url is None:
        return None
    database = sqlite_file(url)
    if database is not None:
        return key_file_beside(database)
    return SecretBox(()) if make_url(url).get_backend_name() != "sqlite" else None


def bootstrap(
    settings: Settings | None = None,
    *,
    uow: UnitOfWorkFactory | None = None,
    gateway: PaymentGateway | None = None,
    notifier: Notifier | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    sandbox_faults: SandboxFaults | None = None,
    dispatch_inline: bool = True,
    webhook_sender: WebhookSender | None = None,
    address_resolver: AddressResolver | None = None,
) -> CardCheckout:
    """Wire Card Checkout. Explicit adapters win over what `settings` would build."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    ids = ids or UlidIdGenerator()
    engine = None
    storage: UnitOfWorkFactory
    sandbox_store: SandboxStore
    if uow is not None:
        storage, sandbox_store = uow, InMemorySandboxStore()
    elif settings.database_url is not None:
        engine = create_engine_from_url(
            settings.database_url,
            pool_size=settings.database_pool_size,
            statement_timeout_ms=settings.database_statement_timeout_ms,
            lock_timeout_ms=settings.database_lock_timeout_ms,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
        storage = SqlUnitOfWorkFactory(
            engine, executor=settings.database_executor, secrets=secret_box(settings)
        )
        sandbox_store = SqlSandboxStore(engine)
    else:
        storage, sandbox_store = InMemoryUnitOfWorkFactory(), InMemorySandboxStore()
    sandbox_engine = None
    if settings.sandbox_database_url == "memory":
        sandbox_store = InMemorySandboxStore()
    elif settings.sandbox_database_url is not None:
        sandbox_engine = create_engine_from_url(
            settings.sandbox_database_url,
            pool_size=4,
            statement_timeout_ms=settings.database_statement_timeout_ms,
            lock_timeout_ms=settings.database_lock_timeout_ms,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
        sandbox_store = SqlSandboxStore(sandbox_engine)
    sandbox = (
        gateway
        if isinstance(gateway, SandboxPaymentGateway)
        else SandboxPaymentGateway(
            clock=clock,
            ids=ids,
            store=sandbox_store,
            faults=sandbox_faults
            or SandboxFaults.parse(
                settings.sandbox_faults, settings.sandbox_latency_ms, settings.sandbox_latency_on
            ),
            base_url=settings.public_base_url,
            emit_charge_events=settings.sandbox_charge_events,
        )
    )

    def stripe(secret_key: str) -> PaymentGateway:
        return StripePaymentGateway.create(
            secret_key,
            api_base=settings.stripe_api_base,
            default_return_url=settings.public_base_url,
        )

    default = GatewayConnection(GatewayProvider.SANDBOX, clock.now())
    if settings.stripe_secret_key is not None:
        default = GatewayConnection(GatewayProvider.STRIPE, clock.now(), settings.stripe_secret_key)
        gateway = gateway or stripe(settings.stripe_secret_key)
    gateways = ConnectedGateways(
        uow=storage,
        clock=clock,
        default_connection=default,
        default_gateway=gateway or sandbox,
        sandbox=sandbox,
        stripe=stripe,
        ttl=timedelta(seconds=settings.connection_cache_seconds),
    )
    deps = Deps(
        uow=storage,
        gateways=gateways,
        clock=clock,
        ids=ids,
        api_keys=CachedApiKeyLookup(
            storage, clock, ttl=timedelta(seconds=settings.api_key_cache_seconds)
        ),
        policies=Policies(
            webhooks=WebhookPolicy(
                retry_base=timedelta(seconds=settings.webhook_retry_base),
                allow_private_urls=settings.webhook_allow_private_urls,
            )
        ),
        addresses=address_resolver or SystemAddressResolver(),
    )
    checkout = CardCheckout(
        deps=deps,
        notifier=notifier or RecordingNotifier(),
        dispatch_inline=dispatch_inline,
        engine=engine,
        sandbox_engine=sandbox_engine,
        webhook_sender=webhook_sender,
    )
    if sandbox.event_sink is None:
        # The sandbox's hosted pages report completion the way Stripe's webhooks do.
        sandbox.event_sink = checkout.handle_gateway_event
    return checkout
