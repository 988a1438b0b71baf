"""The composition root: builds Card Checkout from settings or explicit adapters.

`bootstrap()` with no arguments gives in-memory storage and the sandbox gateway. Nothing is
built at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

import attrs
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
from adapters.sql.engine import (
    LOCK_TIMEOUT_MS,
    POOL_TIMEOUT_SECONDS,
    STATEMENT_TIMEOUT_MS,
    sqlite_file,
)
from adapters.stripe_gateway import StripePaymentGateway
from adapters.webhooks import DEFAULT_TIMEOUT_SECONDS
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

__all__ = ["DEFAULT_DATABASE_URL", "CardCheckout", "Settings", "bootstrap"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///card-checkout.sqlite3"


@attrs.frozen
class Settings:
    """Everything that can be configured, with the embedded defaults."""

    # None: in-memory storage (the library's default). The CLI defaults to a SQLite file.
    database_url: str | None = None
    database_pool_size: int = 10
    # How SQL runs: "sqlalchemy" (the reference) or "asyncpg" (PostgreSQL only); None: asyncpg
    # on PostgreSQL, SQLAlchemy elsewhere.
    database_executor: str | None = None
    # PostgreSQL: a statement running longer, or waiting longer for a lock, fails (503)
    # instead of stalling its request (0: no limit); how long a request waits for a pooled
    # connection.
    database_statement_timeout_ms: int = STATEMENT_TIMEOUT_MS
    database_lock_timeout_ms: int = LOCK_TIMEOUT_MS
    database_pool_timeout_seconds: float = POOL_TIMEOUT_SECONDS
    # How long a live API key is trusted without reading it again (0: read on every request).
    api_key_cache_seconds: float = 5.0
    stripe_secret_key: str | None = None
    stripe_api_base: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    # Secrets that sign Stripe's webhooks (more than one while they rotate).
    stripe_webhook_secrets: tuple[str, ...] = ()
    # Seconds between reconciliation passes inside `serve` (0: never).
    reconcile_every: float = 60.0
    # Only payments untouched this long are asked about (younger ones may still be answered).
    reconcile_older_than: float = 30.0
    # The sandbox's injected latency and faults (tests, drills, benchmarks).
    sandbox_latency_ms: float = 0.0
    sandbox_latency_on: str = ""
    sandbox_faults: str = ""
    # The sandbox announces each charge by event too, as Stripe's webhooks do.
    sandbox_charge_events: bool = False
    # Where the sandbox keeps its state: None (beside ours), another database URL, or "memory".
    # Apart from ours, benchmarks count only the service's own commits.
    sandbox_database_url: str | None = None
    # Seconds between deliveries of the outbox inside `serve` (0: never).
    notify_every: float = 1.0
    # Seconds before a failed outbound webhook is tried again (doubling each time, to 4 hours),
    # and how long a subscriber has to answer one.
    webhook_retry_base: float = 30.0
    webhook_timeout: float = DEFAULT_TIMEOUT_SECONDS
    # Outbound webhooks may go to loopback, private and link-local addresses (local development
    # and tests only: in production they would let a subscriber probe the inside network).
    webhook_allow_private_urls: bool = False
    # Keys that seal stored secrets (Fernet keys; the first seals, all open). None given: a
    # SQLite file gets a key file beside it, PostgreSQL stores no secret until keys are set.
    encryption_keys: tuple[str, ...] = ()
    # How long an environment's gateway connection is trusted without reading it again.
    connection_cache_seconds: float = 5.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            database_pool_size=int(env.get("DATABASE_POOL_SIZE", "10")),
            database_executor=env.get("DATABASE_EXECUTOR") or None,
            database_statement_timeout_ms=int(
                env.get("DATABASE_STATEMENT_TIMEOUT_MS", str(STATEMENT_TIMEOUT_MS))
            ),
            database_lock_timeout_ms=int(env.get("DATABASE_LOCK_TIMEOUT_MS", str(LOCK_TIMEOUT_MS))),
            database_pool_timeout_seconds=float(
                env.get("DATABASE_POOL_TIMEOUT_SECONDS", str(POOL_TIMEOUT_SECONDS))
            ),
            api_key_cache_seconds=float(env.get("API_KEY_CACHE_SECONDS", "5")),
            stripe_secret_key=env.get("STRIPE_SECRET_KEY") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
            stripe_webhook_secrets=_listed(env.get("STRIPE_WEBHOOK_SECRET", "")),
            reconcile_every=float(env.get("RECONCILE_EVERY_SECONDS", "60")),
            reconcile_older_than=float(env.get("RECONCILE_OLDER_THAN_SECONDS", "30")),
            sandbox_latency_ms=float(env.get("SANDBOX_LATENCY_MS", "0")),
            sandbox_latency_on=env.get("SANDBOX_LATENCY_ON", ""),
            notify_every=float(env.get("NOTIFY_EVERY_SECONDS", "1")),
            sandbox_faults=env.get("SANDBOX_FAULTS", ""),
            sandbox_charge_events=env.get("SANDBOX_CHARGE_EVENTS", "") in ("1", "true", "yes"),
            sandbox_database_url=env.get("SANDBOX_DATABASE_URL") or None,
            webhook_retry_base=float(env.get("WEBHOOK_RETRY_BASE_SECONDS", "30")),
            webhook_timeout=float(env.get("WEBHOOK_TIMEOUT_SECONDS", str(DEFAULT_TIMEOUT_SECONDS))),
            webhook_allow_private_urls=env.get("WEBHOOK_ALLOW_PRIVATE_URLS", "")
            in ("1", "true", "yes"),
            encryption_keys=_listed(env.get("CARD_CHECKOUT_ENCRYPTION_KEYS", "")),
            connection_cache_seconds=float(env.get("CONNECTION_CACHE_SECONDS", "5")),
        )


def _listed(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


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
        return SecretBox([key_file_beside(database)])
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
