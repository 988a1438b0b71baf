"""The composition root: builds Card Checkout from settings or explicit adapters.

`bootstrap()` with no arguments gives in-memory storage and the sandbox gateway. Nothing is
built at import time.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import attrs
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clock import SystemClock
from adapters.ids import UlidIdGenerator
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import (
    InMemorySandboxStore,
    SandboxFaults,
    SandboxPaymentGateway,
    SandboxStore,
)
from adapters.sql import SqlSandboxStore, SqlUnitOfWorkFactory, create_engine_from_url
from adapters.sql.migrate import migrate
from adapters.stripe_gateway import StripePaymentGateway
from adapters.webhooks import DEFAULT_TIMEOUT_SECONDS, HttpWebhookSender
from core.commands import CreateCustomer, CreateInvoice, CreatePayment, RefundPayment
from core.errors import NotFound, ValidationError
from core.gateway import CheckoutSession, GatewayEvent, GatewayPaymentMethod
from core.model import (
    ApiKey,
    Customer,
    Environment,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    Role,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.ports import (
    Clock,
    IdGenerator,
    InvoiceQuery,
    Notifier,
    Page,
    PaymentGateway,
    PaymentQuery,
    UnitOfWorkFactory,
    WebhookSender,
)
from core.rules import (
    parse_create_customer,
    parse_create_invoice,
    parse_create_payment,
    parse_create_webhook_endpoint,
    parse_refund,
    parse_setup_card,
)
from core.service import (
    ApiKeyCache,
    CheckoutService,
    ReconcileReport,
    WebhookPolicy,
    WebhookReport,
)

T = TypeVar("T")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///card-checkout.sqlite3"
# Notifications delivered per transaction.
NOTIFICATION_BATCH = 100
Body = Mapping[str, object]


@attrs.frozen
class Settings:
    """Everything that can be configured, with the embedded defaults."""

    # None: in-memory storage (the library's default). The CLI defaults to a SQLite file.
    database_url: str | None = None
    database_pool_size: int = 10
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

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            database_pool_size=int(env.get("DATABASE_POOL_SIZE", "10")),
            api_key_cache_seconds=float(env.get("API_KEY_CACHE_SECONDS", "5")),
            stripe_secret_key=env.get("STRIPE_SECRET_KEY") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
            stripe_webhook_secrets=tuple(
                secret.strip()
                for secret in env.get("STRIPE_WEBHOOK_SECRET", "").split(",")
                if secret.strip()
            ),
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
        )


def _parsed(body: T | Body, parse: Callable[[object], T], kind: type[T]) -> T:
    return body if isinstance(body, kind) else parse(body)


def _limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise ValidationError("limit must be between 1 and 100.", field="limit")
    return limit


def _payment_statuses(status: str | None) -> frozenset[PaymentStatus] | None:
    if status is None:
        return None
    try:
        return frozenset({PaymentStatus(status.lower())})
    except ValueError:
        raise ValidationError(
            f"payment_status must be one of {', '.join(s.value for s in PaymentStatus)}.",
            field="payment_status",
        ) from None


@attrs.define
class CardCheckout:
    """The in-process library: each async method is one route of the HTTP API.

    Bodies may be plain mappings (as parsed from JSON, with Decimal numbers) or commands.
    Errors are the core's exceptions, each with the contract's `code`.
    """

    service: CheckoutService
    gateway: PaymentGateway
    notifier: Notifier
    # Deliver outbound notifications right after each change (the library's default; the
    # server runs a dispatcher instead).
    dispatch_inline: bool = True
    engine: AsyncEngine | None = None
    sandbox_engine: AsyncEngine | None = None
    # Sends the outbound webhooks that are due (None: they wait in the database).
    webhook_sender: WebhookSender | None = None

    @property
    def sandbox(self) -> SandboxPaymentGateway | None:
        return self.gateway if isinstance(self.gateway, SandboxPaymentGateway) else None

    async def _changed(self, work: Awaitable[T]) -> T:
        try:
            return await work
        finally:
            if self.dispatch_inline:
                await self.deliver_notifications()

    # Environments and API keys

    async def create_environment(
        self, tenant_id: str, name: str, *, environment_id: str | None = None
    ) -> Environment:
        return await self.service.create_environment(tenant_id, name, environment_id=environment_id)

    async def get_environment(self, environment_id: str) -> Environment:
        return await self.service.get_environment(environment_id)

    async def set_webhook_secrets(self, environment_id: str, secrets: Sequence[str]) -> Environment:
        return await self.service.set_webhook_secrets(environment_id, secrets)

    async def webhook_secrets(self, environment_id: str, fallback: Sequence[str]) -> list[str]:
        """The environment's own webhook secrets, or `fallback` when it has none."""
        try:
            own = (await self.service.get_environment(environment_id)).webhook_secrets
        except NotFound:
            own = ()
        return list(own or fallback)

    async def create_api_key(
        self, tenant_id: str, environment_ids: Sequence[str], role: str | Role
    ) -> tuple[ApiKey, str]:
        """A new key: returns what is stored and the key itself, which is never shown again."""
        try:
            parsed = Role(role)
        except ValueError:
            raise ValidationError("role must be read, write or admin.", field="role") from None
        return await self.service.create_api_key(tenant_id, environment_ids, parsed)

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        return await self.service.revoke_api_key(key_id)

    async def authorize(
        self, raw_key: str | None, environment_id: str | None, needs: Role
    ) -> ApiKey:
        return await self.service.authorize(raw_key, environment_id, needs)

    # Customers

    async def create_customer(
        self,
        environment_id: str,
        body: CreateCustomer | Body,
        *,
        idempotency_key: str | None = None,
    ) -> Customer:
        command = _parsed(body, parse_create_customer, CreateCustomer)
        return await self.service.create_customer(
            environment_id, command, idempotency_key=idempotency_key
        )

    async def get_customer(self, environment_id: str, customer_id: str) -> Customer:
        return await self.service.get_customer(environment_id, customer_id)

    async def list_payment_methods(
        self, environment_id: str, customer_id: str
    ) -> Sequence[GatewayPaymentMethod]:
        return await self.service.list_payment_methods(environment_id, customer_id)

    async def setup_card(
        self,
        environment_id: str,
        customer_id: str,
        body: Body | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> CheckoutSession:
        command = parse_setup_card(customer_id, body)
        return await self.service.setup_card(
            environment_id, command, idempotency_key=idempotency_key
        )

    # Invoices

    async def create_invoice(
        self, environment_id: str, body: CreateInvoice | Body, *, idempotency_key: str | None = None
    ) -> Invoice:
        command = _parsed(body, parse_create_invoice, CreateInvoice)
        return await self.service.create_invoice(
            environment_id, command, idempotency_key=idempotency_key
        )

    async def finalize_invoice(
        self, environment_id: str, invoice_id: str, *, idempotency_key: str | None = None
    ) -> Invoice:
        return await self.service.finalize_invoice(
            environment_id, invoice_id, idempotency_key=idempotency_key
        )

    async def void_invoice(
        self, environment_id: str, invoice_id: str, *, idempotency_key: str | None = None
    ) -> Invoice:
        return await self.service.void_invoice(
            environment_id, invoice_id, idempotency_key=idempotency_key
        )

    async def get_invoice(self, environment_id: str, invoice_id: str) -> Invoice:
        return await self.service.get_invoice(environment_id, invoice_id)

    async def list_invoices(
        self,
        environment_id: str,
        *,
        customer_id: str | None = None,
        invoice_status: str | None = None,
        limit: int = 20,
        starting_after: str | None = None,
    ) -> Page[Invoice]:
        statuses = None
        if invoice_status is not None:
            try:
                statuses = frozenset({InvoiceStatus(invoice_status.upper())})
            except ValueError:
                raise ValidationError(
                    "invoice_status must be DRAFT, FINALIZED or VOIDED.", field="invoice_status"
                ) from None
        return await self.service.list_invoices(
            InvoiceQuery(
                environment_id=environment_id,
                customer_id=customer_id,
                statuses=statuses,
                limit=_limit(limit),
                starting_after=starting_after,
            )
        )

    # Payments

    async def create_payment(
        self, environment_id: str, body: CreatePayment | Body, *, idempotency_key: str | None = None
    ) -> Payment:
        command = _parsed(body, parse_create_payment, CreatePayment)
        return await self._changed(
            self.service.create_payment(environment_id, command, idempotency_key=idempotency_key)
        )

    async def process_payment(
        self, environment_id: str, payment_id: str, *, idempotency_key: str | None = None
    ) -> Payment:
        return await self._changed(
            self.service.process_payment(
                environment_id, payment_id, idempotency_key=idempotency_key
            )
        )

    async def get_payment(self, environment_id: str, payment_id: str) -> Payment:
        return await self.service.get_payment(environment_id, payment_id)

    async def list_payments(
        self,
        environment_id: str,
        *,
        destination_id: str | None = None,
        customer_id: str | None = None,
        payment_status: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
        limit: int = 20,
        starting_after: str | None = None,
    ) -> Page[Payment]:
        return await self.service.list_payments(
            PaymentQuery(
                environment_id=environment_id,
                invoice_id=destination_id,
                customer_id=customer_id,
                statuses=_payment_statuses(payment_status),
                created_gte=created_gte,
                created_lt=created_lt,
                limit=_limit(limit),
                starting_after=starting_after,
            )
        )

    async def payment_events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]:
        return await self.service.payment_events(environment_id, payment_id)

    async def refund_payment(
        self,
        environment_id: str,
        payment_id: str,
        body: RefundPayment | Body | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund:
        command = body if isinstance(body, RefundPayment) else parse_refund(payment_id, body)
        return await self._changed(
            self.service.refund_payment(environment_id, command, idempotency_key=idempotency_key)
        )

    async def list_refunds(self, environment_id: str, payment_id: str) -> Sequence[Refund]:
        return await self.service.list_refunds(environment_id, payment_id)

    # Gateway events, reconciliation, notifications

    async def handle_gateway_event(self, event: GatewayEvent) -> bool:
        """Apply a verified gateway event; False when it names nothing known here."""
        return await self._changed(self.service.handle_gateway_event(event))

    async def reconcile(
        self, *, older_than: timedelta = timedelta(seconds=30), limit: int = 100
    ) -> ReconcileReport:
        return await self._changed(self.service.reconcile(older_than=older_than, limit=limit))

    async def deliver_notifications(self) -> int:
        delivered = 0
        while True:
            batch = await self.service.deliver_notifications(
                self.notifier, limit=NOTIFICATION_BATCH
            )
            delivered += batch
            # A short batch emptied the outbox (or met a failing notifier): no second look,
            # which was one more transaction after every change.
            if batch < NOTIFICATION_BATCH:
                return delivered

    # Webhook endpoints

    async def create_webhook_endpoint(self, environment_id: str, body: Body) -> WebhookEndpoint:
        """A new endpoint (`url`, `events`); its `secret` is shown to the caller here only."""
        url, events = parse_create_webhook_endpoint(body)
        return await self.service.create_webhook_endpoint(environment_id, url, events)

    async def list_webhook_endpoints(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        return await self.service.list_webhook_endpoints(environment_id)

    async def get_webhook_endpoint(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint:
        return await self.service.get_webhook_endpoint(environment_id, endpoint_id)

    async def delete_webhook_endpoint(
        self, environment_id: str, endpoint_id: str
    ) -> WebhookEndpoint:
        return await self.service.delete_webhook_endpoint(environment_id, endpoint_id)

    async def webhook_deliveries(
        self, environment_id: str, endpoint_id: str, *, limit: int = 20
    ) -> Sequence[WebhookDelivery]:
        return await self.service.webhook_deliveries(
            environment_id, endpoint_id, limit=_limit(limit)
        )

    async def send_webhooks(self, *, limit: int = 100) -> WebhookReport:
        """One pass over the webhook deliveries that are due (none without a sender)."""
        if self.webhook_sender is None:
            return WebhookReport()
        return await self.service.send_webhooks(self.webhook_sender, limit=limit)

    async def complete_sandbox_checkout(self, session_id: str, card_number: str) -> GatewayEvent:
        """Play a customer typing `card_number` on a sandbox hosted page."""
        if self.sandbox is None:
            raise ValidationError("Hosted pages are completed by the customer at Stripe.")
        return await self.sandbox.complete_checkout_session(session_id, card_number)

    async def ping(self) -> None:
        """Raise unless the storage answers."""
        if self.engine is not None:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the database to the newest schema (nothing to do in memory)."""
        for engine in (self.engine, self.sandbox_engine):
            if engine is not None:
                await migrate(engine)

    async def aclose(self) -> None:
        """Release what the adapters hold (connections, clients)."""
        if self.sandbox is not None:
            await self.sandbox.drain_events()
        if isinstance(self.gateway, StripePaymentGateway):
            await self.gateway.aclose()
        if isinstance(self.webhook_sender, HttpWebhookSender):
            await self.webhook_sender.aclose()
        for engine in (self.engine, self.sandbox_engine):
            if engine is not None:
                await engine.dispose()


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
            settings.database_url, pool_size=settings.database_pool_size
        )
        storage, sandbox_store = SqlUnitOfWorkFactory(engine), SqlSandboxStore(engine)
    else:
        storage, sandbox_store = InMemoryUnitOfWorkFactory(), InMemorySandboxStore()
    sandbox_engine = None
    if settings.sandbox_database_url == "memory":
        sandbox_store = InMemorySandboxStore()
    elif settings.sandbox_database_url is not None:
        sandbox_engine = create_engine_from_url(settings.sandbox_database_url, pool_size=4)
        sandbox_store = SqlSandboxStore(sandbox_engine)
    if gateway is None and settings.stripe_secret_key is not None:
        gateway = StripePaymentGateway.create(
            settings.stripe_secret_key,
            api_base=settings.stripe_api_base,
            default_return_url=settings.public_base_url,
        )
    if gateway is None:
        gateway = SandboxPaymentGateway(
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
    webhooks = WebhookPolicy(retry_base=timedelta(seconds=settings.webhook_retry_base))
    checkout = CardCheckout(
        service=CheckoutService(
            uow=storage,
            gateway=gateway,
            clock=clock,
            ids=ids,
            webhooks=webhooks,
            api_keys=ApiKeyCache(ttl=timedelta(seconds=settings.api_key_cache_seconds)),
        ),
        gateway=gateway,
        notifier=notifier or RecordingNotifier(),
        dispatch_inline=dispatch_inline,
        engine=engine,
        sandbox_engine=sandbox_engine,
        webhook_sender=webhook_sender,
    )
    if isinstance(gateway, SandboxPaymentGateway) and gateway.event_sink is None:
        # The sandbox's hosted pages report completion the way Stripe's webhooks do.
        gateway.event_sink = checkout.handle_gateway_event
    return checkout
