"""The one facade: `CardCheckout`, whose async methods are the routes of the HTTP API.

Both the in-process library and the HTTP routes call it. It parses bodies (plain mappings as
parsed from JSON, or commands), calls the use case, and delivers notifications inline when
asked. Errors are the core's exceptions, each with the contract's `code`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import TypeVar, Unpack

import attrs
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.gateways import ConnectedGateways
from adapters.sandbox import SandboxPaymentGateway
from adapters.sql import SqlUnitOfWorkFactory
from adapters.sql.migrate import SchemaState, head_revision, migrate, schemas_state
from adapters.sql.sealing import SealingReport, reseal
from adapters.stripe_gateway import StripePaymentGateway
from adapters.webhooks import HttpWebhookSender
from core.commands import (
    ConnectGateway,
    CreateCustomer,
    CreateInvoice,
    CreatePayment,
    RefundPayment,
)
from core.errors import NotFound, ServiceUnavailable, ValidationError
from core.gateway import CheckoutSession, GatewayEvent, GatewayPaymentMethod
from core.lists import Window
from core.model import (
    ApiKey,
    Customer,
    Invoice,
    Payment,
    PaymentEvent,
    Refund,
    Role,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.ports import (
    Notifier,
    Page,
    PaymentGateway,
    WebhookSender,
)
from core.usecases import (
    Answer,
    Deps,
    ReconcileReport,
    WebhookReport,
    access,
    connections,
    customers,
    gateway_events,
    invoices,
    outbox,
    payments,
    reconciliation,
    refunds,
    webhook_delivery,
    webhook_endpoints,
)
from core.usecases.connections import ConnectionView
from entrypoints.bodies import (
    parse_connect_gateway,
    parse_create_customer,
    parse_create_invoice,
    parse_create_payment,
    parse_create_webhook_endpoint,
    parse_refund,
    parse_setup_card,
    queries,
)
from entrypoints.bodies.queries import PageArgs
from entrypoints.methods import Body, listing_of, parsed, use_case, value_of

_log = logging.getLogger(__name__)

T = TypeVar("T")
# Notifications delivered per transaction.
NOTIFICATION_BATCH = 100


@attrs.define
class CardCheckout:
    """The in-process library: each async method is one route of the HTTP API.

    Methods named `..._answer` take an idempotency key and answer whether they replayed the
    key's stored answer; the same method without the suffix gives the value alone.
    """

    deps: Deps
    notifier: Notifier
    # Deliver outbound notifications right after each change (the library's default; the
    # server runs a dispatcher instead).
    dispatch_inline: bool = True
    engine: AsyncEngine | None = None
    sandbox_engine: AsyncEngine | None = None
    # Sends the outbound webhooks that are due (None: they wait in the database).
    webhook_sender: WebhookSender | None = None

    @property
    def gateways(self) -> ConnectedGateways:
        assert isinstance(self.deps.gateways, ConnectedGateways), "wired by bootstrap"
        return self.deps.gateways

    @property
    def gateway(self) -> PaymentGateway:
        """The gateway of environments without a connection of their own."""
        return self.gateways.default_gateway

    @property
    def sandbox(self) -> SandboxPaymentGateway | None:
        """The sandbox, when it may serve: by default, or to environments connected to it."""
        sandbox = self.gateways.sandbox
        return sandbox if isinstance(sandbox, SandboxPaymentGateway) else None

    async def _changed(self, work: Awaitable[T]) -> T:
        try:
            return await work
        finally:
            if self.dispatch_inline:
                await self._deliver_inline()

    async def _deliver_inline(self) -> None:
        # The outbox keeps what could not be sent; the dispatcher sends it later, so an outage
        # here must not replace the answer of the work that was already recorded.
        try:
            await self.deliver_notifications()
        except ServiceUnavailable as error:
            _log.warning("notifications left in the outbox: %s", error)

    # Environments and API keys

    create_environment = use_case(access.create_environment)
    get_environment = use_case(access.get_environment)
    set_webhook_secrets = use_case(connections.set_webhook_secrets)
    get_connection = use_case(connections.describe_connection)

    async def connect_gateway(
        self, environment_id: str, body: ConnectGateway | Body
    ) -> ConnectionView:
        command = parsed(body, parse_connect_gateway, ConnectGateway)
        return await connections.connect_gateway(self.deps, environment_id, command)

    async def webhook_secrets(self, environment_id: str, fallback: Sequence[str]) -> list[str]:
        """The environment's own webhook secrets, or `fallback` when it has none."""
        try:
            own = (await access.get_environment(self.deps, environment_id)).webhook_secrets
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
        return await access.create_api_key(self.deps, tenant_id, environment_ids, parsed)

    async def list_api_keys(self, environment_id: str, **page: Unpack[PageArgs]) -> Page[ApiKey]:
        """The keys that may use the environment, newest first; revoked ones too."""
        return await access.list_api_keys(self.deps, environment_id, Window(**page))

    revoke_api_key = use_case(access.revoke_api_key)

    async def authorize(
        self, raw_key: str | None, environment_id: str | None, needs: Role
    ) -> ApiKey:
        return await access.authorize(self.deps, raw_key, environment_id, needs)

    # Customers

    async def create_customer_answer(
        self, environment_id: str, body: CreateCustomer | Body, *,
        idempotency_key: str | None = None,
    ) -> Answer[Customer]:  # fmt: skip
        command = parsed(body, parse_create_customer, CreateCustomer)
        return await customers.create_customer(self.deps, environment_id, command, idempotency_key)

    create_customer = value_of(create_customer_answer)

    get_customer = use_case(customers.get_customer)
    list_customers = listing_of(queries.customer_query, customers.list_customers)

    async def list_payment_methods(
        self, environment_id: str, customer_id: str, **page: Unpack[PageArgs]
    ) -> Page[GatewayPaymentMethod]:
        window = Window(**page)
        return await customers.list_payment_methods(self.deps, environment_id, customer_id, window)

    async def setup_card(
        self,
        environment_id: str,
        customer_id: str,
        body: Body | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> CheckoutSession:
        command = parse_setup_card(customer_id, body)
        return await customers.setup_card(self.deps, environment_id, command, idempotency_key)

    # Invoices

    async def create_invoice_answer(
        self, environment_id: str, body: CreateInvoice | Body, *, idempotency_key: str | None = None
    ) -> Answer[Invoice]:
        command = parsed(body, parse_create_invoice, CreateInvoice)
        return await invoices.create_invoice(self.deps, environment_id, command, idempotency_key)

    create_invoice = value_of(create_invoice_answer)

    finalize_invoice_answer = use_case(invoices.finalize_invoice)
    finalize_invoice = value_of(finalize_invoice_answer)
    void_invoice_answer = use_case(invoices.void_invoice)
    void_invoice = value_of(void_invoice_answer)
    get_invoice = use_case(invoices.get_invoice)
    list_invoices = listing_of(queries.invoice_query, invoices.list_invoices)

    # Payments

    async def create_payment_answer(
        self, environment_id: str, body: CreatePayment | Body, *, idempotency_key: str | None = None
    ) -> Answer[Payment]:
        command = parsed(body, parse_create_payment, CreatePayment)
        return await self._changed(
            payments.create_payment(self.deps, environment_id, command, idempotency_key)
        )

    create_payment = value_of(create_payment_answer)

    async def process_payment_answer(
        self, environment_id: str, payment_id: str, *, idempotency_key: str | None = None
    ) -> Answer[Payment]:
        return await self._changed(
            payments.process_payment(self.deps, environment_id, payment_id, idempotency_key)
        )

    process_payment = value_of(process_payment_answer)

    get_payment = use_case(payments.get_payment)
    list_payments = listing_of(queries.payment_query, payments.list_payments)

    async def payment_events(
        self, environment_id: str, payment_id: str, **page: Unpack[PageArgs]
    ) -> Page[PaymentEvent]:
        """Oldest first; an event's cursor is its sequence (1, 2, 3...)."""
        window = Window(**page)
        return await payments.payment_events(self.deps, environment_id, payment_id, window)

    async def refund_payment_answer(
        self,
        environment_id: str,
        payment_id: str,
        body: RefundPayment | Body | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Answer[Refund]:
        command = body if isinstance(body, RefundPayment) else parse_refund(payment_id, body)
        return await self._changed(
            refunds.refund_payment(self.deps, environment_id, command, idempotency_key)
        )

    refund_payment = value_of(refund_payment_answer)

    async def list_refunds(
        self, environment_id: str, payment_id: str, **page: Unpack[PageArgs]
    ) -> Page[Refund]:
        window = Window(**page)
        return await refunds.list_refunds(self.deps, environment_id, payment_id, window)

    # Gateway events, reconciliation, notifications

    async def handle_gateway_event(
        self, event: GatewayEvent, *, environment_id: str | None = None
    ) -> bool:
        """Apply a verified gateway event to `environment_id`'s objects only; False when it
        names nothing known there. Without `environment_id` (the in-process sandbox's own
        events) the environment is the one the event's metadata names."""
        environment = environment_id or event.metadata.get("environment_id")
        if environment is None:
            return False
        return await self._changed(
            gateway_events.handle_gateway_event(self.deps, environment, event)
        )

    async def reconcile(
        self, *, older_than: timedelta = timedelta(seconds=30), limit: int = 100
    ) -> ReconcileReport:
        return await self._changed(
            reconciliation.reconcile(self.deps, older_than=older_than, limit=limit)
        )

    async def deliver_notifications(self) -> int:
        delivered = 0
        while True:
            batch = await outbox.deliver_notifications(
                self.deps, self.notifier, limit=NOTIFICATION_BATCH
            )
            delivered += batch
            # A short batch emptied the outbox (or met a failing notifier): no second look.
            if batch < NOTIFICATION_BATCH:
                return delivered

    # Webhook endpoints

    async def create_webhook_endpoint(self, environment_id: str, body: Body) -> WebhookEndpoint:
        """A new endpoint (`url`, `events`); its `secret` is shown to the caller here only."""
        url, events = parse_create_webhook_endpoint(body)
        return await webhook_endpoints.create_webhook_endpoint(
            self.deps, environment_id, url, events
        )

    async def list_webhook_endpoints(
        self, environment_id: str, **page: Unpack[PageArgs]
    ) -> Page[WebhookEndpoint]:
        window = Window(**page)
        return await webhook_endpoints.list_webhook_endpoints(self.deps, environment_id, window)

    get_webhook_endpoint = use_case(webhook_endpoints.get_webhook_endpoint)
    delete_webhook_endpoint = use_case(webhook_endpoints.delete_webhook_endpoint)

    async def webhook_deliveries(
        self, environment_id: str, endpoint_id: str, **page: Unpack[PageArgs]
    ) -> Page[WebhookDelivery]:
        window = Window(**page)
        return await webhook_endpoints.webhook_deliveries(
            self.deps, environment_id, endpoint_id, window
        )

    async def send_webhooks(self, *, limit: int = 100) -> WebhookReport:
        """One pass over the webhook deliveries that are due (none without a sender)."""
        if self.webhook_sender is None:
            return WebhookReport()
        return await webhook_delivery.send_webhooks(self.deps, self.webhook_sender, limit=limit)

    # The sandbox and the process

    async def complete_sandbox_checkout(self, session_id: str, card_number: str) -> GatewayEvent:
        """Play a customer typing `card_number` on a sandbox hosted page."""
        if self.sandbox is None:
            raise ValidationError("Hosted pages are completed by the customer at Stripe.")
        return await self.sandbox.complete_checkout_session(session_id, card_number)

    def newest_schema(self) -> str | None:
        """The migration every database must be at, read from the scripts once per process
        (None: in memory, where there is no schema to migrate)."""
        return head_revision() if self._engines else None

    async def schema_state(self) -> SchemaState:
        """The furthest from current of the databases' schemas (in memory: always current).
        Raises unless the storage answers."""
        return await schemas_state(self._engines)

    @property
    def _engines(self) -> tuple[AsyncEngine, ...]:
        return tuple(e for e in (self.engine, self.sandbox_engine) if e is not None)

    async def migrate(self) -> None:
        """Bring the database to the newest schema (nothing to do in memory)."""
        for engine in self._engines:
            await migrate(engine)

    async def open_secrets(self, *, reseal_all: bool = False) -> SealingReport | None:
        """Check that every stored secret opens with the configured keys (`SecretsError` if
        one does not) and seal those stored before secrets were sealed; `reseal_all`: seal
        every one again with the first key (a rotation). None in memory: nothing is at rest."""
        storage = self.deps.uow
        if not isinstance(storage, SqlUnitOfWorkFactory):
            return None
        return await reseal(storage.engine, storage.secrets, only_plain=not reseal_all)

    async def aclose(self) -> None:
        """Release what the adapters hold (connections, clients)."""
        if self.sandbox is not None:
            await self.sandbox.drain_events()
        await self.gateways.aclose()
        if isinstance(self.gateway, StripePaymentGateway):
            await self.gateway.aclose()
        if isinstance(self.webhook_sender, HttpWebhookSender):
            await self.webhook_sender.aclose()
        for engine in (self.engine, self.sandbox_engine):
            if engine is not None:
                await engine.dispose()
