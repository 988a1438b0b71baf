"""The one facade: `CardCheckout`, whose async methods are the routes of the HTTP API.

Both the in-process library and the HTTP routes call it. It parses bodies (plain mappings as
parsed from JSON, or commands), calls the use case, and delivers notifications inline when
asked. Errors are the core's exceptions, each with the contract's `code`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Concatenate, ParamSpec, TypeVar

import attrs
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sandbox import SandboxPaymentGateway
from adapters.sql.migrate import migrate
from adapters.stripe_gateway import StripePaymentGateway
from adapters.webhooks import HttpWebhookSender
from core.commands import CreateCustomer, CreateInvoice, CreatePayment, RefundPayment
from core.errors import NotFound, ServiceUnavailable, ValidationError
from core.gateway import CheckoutSession, GatewayEvent
from core.model import (
    ApiKey,
    Customer,
    Invoice,
    Payment,
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
from entrypoints.bodies import (
    parse_create_customer,
    parse_create_invoice,
    parse_create_payment,
    parse_create_webhook_endpoint,
    parse_refund,
    parse_setup_card,
    queries,
)

_log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
Q = TypeVar("Q")
Body = Mapping[str, object]
# Notifications delivered per transaction.
NOTIFICATION_BATCH = 100


def _value_of(
    answered: Callable[Concatenate[CardCheckout, P], Awaitable[Answer[T]]],
) -> Callable[Concatenate[CardCheckout, P], Awaitable[T]]:
    """The library's spelling of a keyed call: the answer's value alone."""

    async def value(checkout: CardCheckout, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return (await answered(checkout, *args, **kwargs)).value

    value.__name__ = answered.__name__.removesuffix("_answer")
    value.__doc__ = answered.__doc__
    return value


def _listing(
    query: Callable[P, Q], listed: Callable[[Deps, Q], Awaitable[Page[T]]]
) -> Callable[Concatenate[CardCheckout, P], Awaitable[Page[T]]]:
    """A list method: the caller's filters read by `query`, then the use case `listed`."""

    async def listing(checkout: CardCheckout, /, *args: P.args, **kwargs: P.kwargs) -> Page[T]:
        return await listed(checkout.deps, query(*args, **kwargs))

    listing.__doc__ = query.__doc__
    return listing


def _use_case(
    run: Callable[Concatenate[Deps, P], Awaitable[T]],
) -> Callable[Concatenate[CardCheckout, P], Awaitable[T]]:
    """A method that is the use case `run`, on the library's dependencies."""

    async def method(checkout: CardCheckout, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await run(checkout.deps, *args, **kwargs)

    method.__name__ = run.__name__
    method.__doc__ = run.__doc__
    return method


def _parsed(body: T | Body, parse: Callable[[object], T], kind: type[T]) -> T:
    return body if isinstance(body, kind) else parse(body)


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
    def gateway(self) -> PaymentGateway:
        return self.deps.gateway

    @property
    def sandbox(self) -> SandboxPaymentGateway | None:
        gateway = self.deps.gateway
        return gateway if isinstance(gateway, SandboxPaymentGateway) else None

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

    create_environment = _use_case(access.create_environment)
    get_environment = _use_case(access.get_environment)
    set_webhook_secrets = _use_case(access.set_webhook_secrets)

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

    revoke_api_key = _use_case(access.revoke_api_key)

    async def authorize(
        self, raw_key: str | None, environment_id: str | None, needs: Role
    ) -> ApiKey:
        return await access.authorize(self.deps, raw_key, environment_id, needs)

    # Customers

    async def create_customer_answer(
        self, environment_id: str, body: CreateCustomer | Body, *,
        idempotency_key: str | None = None,
    ) -> Answer[Customer]:  # fmt: skip
        command = _parsed(body, parse_create_customer, CreateCustomer)
        return await customers.create_customer(self.deps, environment_id, command, idempotency_key)

    create_customer = _value_of(create_customer_answer)

    get_customer = _use_case(customers.get_customer)
    list_customers = _listing(queries.customer_query, customers.list_customers)
    list_payment_methods = _use_case(customers.list_payment_methods)

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
        command = _parsed(body, parse_create_invoice, CreateInvoice)
        return await invoices.create_invoice(self.deps, environment_id, command, idempotency_key)

    create_invoice = _value_of(create_invoice_answer)

    finalize_invoice_answer = _use_case(invoices.finalize_invoice)
    finalize_invoice = _value_of(finalize_invoice_answer)
    void_invoice_answer = _use_case(invoices.void_invoice)
    void_invoice = _value_of(void_invoice_answer)
    get_invoice = _use_case(invoices.get_invoice)
    list_invoices = _listing(queries.invoice_query, invoices.list_invoices)

    # Payments

    async def create_payment_answer(
        self, environment_id: str, body: CreatePayment | Body, *, idempotency_key: str | None = None
    ) -> Answer[Payment]:
        command = _parsed(body, parse_create_payment, CreatePayment)
        return await self._changed(
            payments.create_payment(self.deps, environment_id, command, idempotency_key)
        )

    create_payment = _value_of(create_payment_answer)

    async def process_payment_answer(
        self, environment_id: str, payment_id: str, *, idempotency_key: str | None = None
    ) -> Answer[Payment]:
        return await self._changed(
            payments.process_payment(self.deps, environment_id, payment_id, idempotency_key)
        )

    process_payment = _value_of(process_payment_answer)

    get_payment = _use_case(payments.get_payment)
    list_payments = _listing(queries.payment_query, payments.list_payments)
    payment_events = _use_case(payments.payment_events)

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

    refund_payment = _value_of(refund_payment_answer)

    list_refunds = _use_case(refunds.list_refunds)

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

    list_webhook_endpoints = _use_case(webhook_endpoints.list_webhook_endpoints)
    get_webhook_endpoint = _use_case(webhook_endpoints.get_webhook_endpoint)
    delete_webhook_endpoint = _use_case(webhook_endpoints.delete_webhook_endpoint)

    async def webhook_deliveries(
        self, environment_id: str, endpoint_id: str, *, limit: int = 20
    ) -> Sequence[WebhookDelivery]:
        return await webhook_endpoints.webhook_deliveries(
            self.deps, environment_id, endpoint_id, limit=queries.page_size(limit)
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
        if isinstance(self.deps.gateway, StripePaymentGateway):
            await self.deps.gateway.aclose()
        if isinstance(self.webhook_sender, HttpWebhookSender):
            await self.webhook_sender.aclose()
        for engine in (self.engine, self.sandbox_engine):
            if engine is not None:
                await engine.dispose()
