"""The ports: what the use cases need from the world, as small Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self, TypeVar

import attrs

from core.gateway import (
    ChargeRequest,
    ChargeResult,
    CheckoutSession,
    CheckoutSessionRequest,
    CustomerRequest,
    GatewayCustomer,
    GatewayPaymentMethod,
    GatewayRefund,
    RefundRequest,
)
from core.lists import CustomerQuery as CustomerQuery
from core.lists import DeliveryQuery as DeliveryQuery
from core.lists import InvoiceQuery as InvoiceQuery
from core.lists import Page as Page
from core.lists import PaymentQuery as PaymentQuery
from core.model import (
    ApiKey,
    Customer,
    Environment,
    GatewayConnection,
    Invoice,
    Notification,
    Payment,
    PaymentEvent,
    Refund,
    WebhookDelivery,
    WebhookEndpoint,
)

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str:
        """A fresh sortable, unguessable id such as `pay_01K34...`."""

    def new_secret(self, prefix: str) -> str:
        """A fresh secret (an API key) with at least 256 random bits after `prefix`."""


class Notifier(Protocol):
    async def notify(self, notification: Notification) -> None:
        """Deliver one outbound event; raise to have it retried later."""


class ApiKeyLookup(Protocol):
    """Finds the stored API key for a key's hash (an adapter may remember live keys a while)."""

    async def find(self, key_hash: str) -> ApiKey | None: ...

    def forget(self, key: ApiKey) -> None:
        """The key changed (revoked): never answer it from memory again."""


class WebhookSender(Protocol):
    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
        """Sign and send one delivery to the endpoint; raise unless the endpoint took it
        (`WebhookNotAccepted`, whose kind is all the delivery records)."""


class AddressResolver(Protocol):
    async def resolve(self, host: str) -> Sequence[str]:
        """Every address (`93.184.215.14`, `2606:4700::1111`) the host name has now, within
        a bounded time; none when it does not resolve, or not in time."""


class PaymentGateway(Protocol):
    """The card processor (Stripe, or the sandbox that plays it)."""

    async def create_customer(self, request: CustomerRequest) -> str:
        """Create the customer at the gateway and return the gateway's id."""

    async def get_customer(self, gateway_customer_id: str) -> GatewayCustomer:
        """The customer with its default card; `CustomerNotLinked` when it is gone."""

    async def list_payment_methods(
        self, gateway_customer_id: str
    ) -> Sequence[GatewayPaymentMethod]:
        """The customer's saved cards."""

    async def get_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> GatewayPaymentMethod | None:
        """The card if it exists and belongs to the customer, else None."""

    async def set_default_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> None:
        """Make a saved card the customer's default (idempotent)."""

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Create and confirm an off-session charge; `GatewayUnavailable`: outcome unknown."""

    async def find_charge(self, request: ChargeRequest, intent_id: str | None) -> ChargeResult:
        """The charge's state: by id when known, else by replaying `request` with its key."""

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        """Refund part or all of a charge; the same idempotency key never refunds twice."""

    async def create_checkout_session(self, request: CheckoutSessionRequest) -> CheckoutSession:
        """A hosted page that takes a card (payment or setup mode)."""

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        """The hosted page's current state."""


class GatewayDirectory(Protocol):
    """Which gateway serves each environment: its own connection, else the default one."""

    async def for_environment(self, environment_id: str) -> PaymentGateway:
        """The environment's gateway; `GatewayNotConnected` when a live environment has
        no Stripe connection to charge through."""

    async def own_connection(self, environment_id: str) -> GatewayConnection | None:
        """The environment's own connection; None when the default applies to it."""

    def forget(self, environment_id: str) -> None:
        """The environment's connection changed: never answer it from memory again."""

    @property
    def default(self) -> GatewayConnection:
        """What applies to an environment without a connection of its own."""


# Storage ---------------------------------------------------------------------------------


class IdempotencyState(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@attrs.frozen
class StoredError:
    code: str
    message: str
    details: dict[str, object] = attrs.field(factory=dict)


Resource = Payment | Refund | Customer | Invoice


@attrs.frozen
class IdempotencyRecord:
    """A request made with an Idempotency-Key, and (once done) what it answered."""

    environment_id: str
    key: str
    operation: str
    fingerprint: str
    state: IdempotencyState
    created_at: datetime
    expires_at: datetime
    resource: Resource | None = None
    error: StoredError | None = None
    version: int = 1
    # What the request recorded (the id of its payment, refund, customer or invoice), written
    # with the claim: a retry after the request died answers it as it is now.
    resource_id: str | None = None
    # While in progress: the request holds the key until then, and renews this while it runs.
    # None: a claim from before leases, held until the key expires.
    lease_expires_at: datetime | None = None


class CustomerRepository(Protocol):
    async def add(self, customer: Customer) -> None: ...
    async def get(self, environment_id: str, customer_id: str) -> Customer | None: ...
    async def get_by_external_id(
        self, environment_id: str, external_id: str
    ) -> Customer | None: ...
    async def get_by_gateway_customer_id(
        self, environment_id: str, gateway_customer_id: str
    ) -> Customer | None:
        """The environment's customer linking that gateway customer (it has one holder)."""

    async def list(self, query: CustomerQuery) -> Page[Customer]:
        """Newest first (by created_at, then id), keyset-paginated like every list: an
        unknown cursor is a `ValidationError` naming its parameter (`core.lists`)."""


class InvoiceRepository(Protocol):
    async def add(self, invoice: Invoice) -> None: ...
    async def get(
        self, environment_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice | None:
        """The invoice; `for_update` also locks it until the transaction ends (if the
        storage has row locks: others check versions at commit instead)."""

    async def get_with_customer(
        self, environment_id: str, invoice_id: str
    ) -> tuple[Invoice, Customer] | None:
        """The invoice and its customer, read together (one statement where storage can)."""

    async def update(self, invoice: Invoice) -> None:
        """Store the new version; `ConcurrentUpdate` at commit if another writer got there first."""

    async def list(self, query: InvoiceQuery) -> Page[Invoice]: ...


class PaymentRepository(Protocol):
    async def add(self, payment: Payment) -> None: ...
    async def get(
        self, environment_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        """The payment; `for_update` as for invoices."""

    async def get_by_tracking_id(
        self, environment_id: str, gateway_tracking_id: str
    ) -> Payment | None:
        """The environment's payment with that gateway id (what a gateway event names)."""

    async def update(self, payment: Payment) -> None:
        """Store the new version; `ConcurrentUpdate` at commit if another writer got there first."""

    async def live_for_invoice(self, environment_id: str, invoice_id: str) -> Payment | None: ...
    async def list(self, query: PaymentQuery) -> Page[Payment]: ...
    async def processing(self, not_updated_since: datetime, limit: int) -> Sequence[Payment]:
        """Payments of every environment left `processing` since `not_updated_since` or earlier."""

    async def add_event(self, event: PaymentEvent) -> None: ...
    async def events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]: ...


class RefundRepository(Protocol):
    async def add(self, refund: Refund) -> None: ...
    async def get(self, environment_id: str, refund_id: str) -> Refund | None: ...
    async def update(self, refund: Refund) -> None: ...
    async def for_payment(self, environment_id: str, payment_id: str) -> Sequence[Refund]: ...
    async def pending(self, not_updated_since: datetime, limit: int) -> Sequence[Refund]: ...


class IdempotencyRepository(Protocol):
    async def get(self, environment_id: str, key: str) -> IdempotencyRecord | None: ...
    async def put(self, record: IdempotencyRecord) -> None:
        """Insert (version 1: `IdempotencyKeyInUse` at commit if the key exists) or update
        over the version before (`IdempotencyKeyInUse` at commit if the key moved since)."""

    async def renew(self, environment_id: str, key: str, version: int, until: datetime) -> None:
        """Extend the lease of the claim still in progress at `version` (its version stays);
        nothing if the key has moved on (finished, or taken over)."""

    async def in_progress_for(
        self, environment_id: str, resource_id: str
    ) -> Sequence[IdempotencyRecord]:
        """The keys still in progress whose request recorded this resource."""


class OutboxRepository(Protocol):
    async def add(self, notification: Notification) -> None: ...
    async def undelivered(self, limit: int) -> Sequence[Notification]: ...
    async def remove_delivered(self, notification_ids: Sequence[str]) -> None:
        """Delivered notifications leave the outbox: it holds only what is left to send."""


class GatewayEventLog(Protocol):
    """The gateway events each environment has handled: one account's event may reach every
    environment's URL, and each handles it as its own."""

    async def seen(self, environment_id: str, event_id: str) -> bool: ...
    async def add(self, environment_id: str, event_id: str, event_type: str, at: datetime) -> None:
        """Record a handled event; a second add of the same id in the same environment fails
        at commit."""


class EnvironmentRepository(Protocol):
    async def add(self, environment: Environment) -> None: ...
    async def get(self, environment_id: str) -> Environment | None: ...
    async def update(self, environment: Environment) -> None: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...
    async def get(self, key_id: str) -> ApiKey | None: ...
    async def get_by_hash(self, key_hash: str) -> ApiKey | None: ...
    async def update(self, key: ApiKey) -> None: ...
    async def of_tenant(self, tenant_id: str) -> Sequence[ApiKey]:
        """The tenant's keys, revoked ones too, newest first (by created_at, then id)."""


class WebhookEndpointRepository(Protocol):
    async def add(self, endpoint: WebhookEndpoint) -> None: ...
    async def get(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint | None: ...
    async def list(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        """The environment's endpoints (deleted ones too), oldest first."""

    async def update(self, endpoint: WebhookEndpoint) -> None:
        """Store the new version; `ConcurrentUpdate` at commit if another writer got there first."""


class WebhookDeliveryRepository(Protocol):
    async def add(self, delivery: WebhookDelivery) -> None:
        """Insert; a second delivery of one notification to one endpoint fails at commit."""

    async def get(self, environment_id: str, delivery_id: str) -> WebhookDelivery | None: ...
    async def due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        """Pending deliveries of every environment whose next attempt is at `now` or before,
        the longest waiting first."""

    async def update(self, delivery: WebhookDelivery) -> None:
        """Store the new version; `ConcurrentUpdate` at commit if another writer got there first."""

    async def list(self, query: DeliveryQuery) -> Page[WebhookDelivery]:
        """The endpoint's deliveries, newest first, paged as customers are."""


class UnitOfWork(Protocol):
    """One transaction: rolls back on exit unless `commit` was called."""

    @property
    def environments(self) -> EnvironmentRepository: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def customers(self) -> CustomerRepository: ...
    @property
    def invoices(self) -> InvoiceRepository: ...
    @property
    def payments(self) -> PaymentRepository: ...
    @property
    def refunds(self) -> RefundRepository: ...
    @property
    def idempotency(self) -> IdempotencyRepository: ...
    @property
    def outbox(self) -> OutboxRepository: ...
    @property
    def gateway_events(self) -> GatewayEventLog: ...
    @property
    def webhook_endpoints(self) -> WebhookEndpointRepository: ...
    @property
    def webhook_deliveries(self) -> WebhookDeliveryRepository: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


class ReadOnlyUnitOfWork(RuntimeError):
    """A write, a lock or a commit asked of a unit of work opened `read_only`: a bug."""


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A new unit of work. `read_only`: it only reads, and each read may see its own
        moment, so storage need not begin a transaction (a round trip fewer each way).
        Its commit raises `ReadOnlyUnitOfWork`, and SQL storage refuses a write or a lock
        at once (outside a transaction it could not be undone)."""
