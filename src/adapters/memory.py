"""In-memory storage with the guarantees a database gives.

A unit of work stages its writes and applies them at commit, all at once, after checking
what a database's constraints would: versions not moved by another writer, at most one live
and one paid payment per invoice, unique idempotency keys, gateway event ids and customers.
Commit never awaits, so it is atomic under asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import attrs

from core.errors import (
    ConcurrentUpdate,
    CustomerAlreadyExists,
    IdempotencyKeyInUse,
    InvoiceAlreadyPaid,
    PaymentInProgress,
)
from core.model import (
    LIVE_STATUSES,
    PAID_STATUSES,
    ApiKey,
    Customer,
    Environment,
    Invoice,
    Notification,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    RefundStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.ports import (
    CustomerQuery,
    IdempotencyRecord,
    InvoiceQuery,
    Page,
    PaymentQuery,
    ReadOnlyUnitOfWork,
)


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


E = TypeVar("E", bound=_Versioned)
K = TypeVar("K", bound=Hashable)


class _Table(Generic[K, E]):
    """One table's committed rows plus this transaction's staged changes."""

    def __init__(self, committed: dict[K, E]) -> None:
        self.committed = committed
        self.staged: dict[K, E] = {}
        self.read_versions: dict[K, int] = {}
        self.inserted: set[K] = set()

    def get(self, key: K) -> E | None:
        return self.staged.get(key) or self.committed.get(key)

    def add(self, key: K, row: E) -> None:
        self.staged[key] = row
        self.inserted.add(key)

    def update(self, key: K, row: E) -> None:
        current = self.get(key)
        if current is None or current.version != row.version - 1:
            raise ConcurrentUpdate()
        if key not in self.inserted:
            self.read_versions.setdefault(key, current.version)
        self.staged[key] = row

    def conflicts(self) -> Iterable[K]:
        """Keys another transaction wrote first: inserted twice, or updated since read."""
        for key in self.inserted:
            if key in self.committed:
                yield key
        for key, version in self.read_versions.items():
            row = self.committed.get(key)
            if row is None or row.version != version:
                yield key

    def rows(self) -> Iterable[E]:
        """Every row as this transaction sees it."""
        yield from self.staged.values()
        for key, row in self.committed.items():
            if key not in self.staged:
                yield row

    def apply(self) -> None:
        self.committed.update(self.staged)


@attrs.define
class InMemoryStore:
    """The committed state, shared by every unit of work made from it."""

    environments: dict[str, Environment] = attrs.Factory(dict)
    api_keys: dict[str, ApiKey] = attrs.Factory(dict)
    customers: dict[tuple[str, str], Customer] = attrs.Factory(dict)
    invoices: dict[tuple[str, str], Invoice] = attrs.Factory(dict)
    payments: dict[tuple[str, str], Payment] = attrs.Factory(dict)
    payments_by_invoice: dict[tuple[str, str], list[str]] = attrs.Factory(dict)
    payments_by_tracking_id: dict[str, tuple[str, str]] = attrs.Factory(dict)
    events: dict[str, list[PaymentEvent]] = attrs.Factory(dict)
    refunds: dict[tuple[str, str], Refund] = attrs.Factory(dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = attrs.Factory(dict)
    # Only what is not yet delivered: delivery removes a notification.
    outbox: dict[str, Notification] = attrs.Factory(dict)
    gateway_events: dict[str, str] = attrs.Factory(dict)
    webhook_endpoints: dict[tuple[str, str], WebhookEndpoint] = attrs.Factory(dict)
    webhook_deliveries: dict[tuple[str, str], WebhookDelivery] = attrs.Factory(dict)
    commits: int = 0


def _page(rows: Iterable[E], limit: int, starting_after: str | None,
          key: Callable[[E], tuple[datetime, str]]) -> Page[E]:  # fmt: skip
    """Newest first, after the row whose id is `starting_after`."""
    ordered = sorted(rows, key=key, reverse=True)
    if starting_after is not None:
        cursor = next((key(row) for row in ordered if key(row)[1] == starting_after), None)
        ordered = [row for row in ordered if cursor is not None and key(row) < cursor]
    return Page(items=ordered[:limit], has_more=len(ordered) > limit)


class InMemoryEnvironmentRepository:
    def __init__(self, table: _Table[str, Environment]) -> None:
        self.table = table

    async def add(self, environment: Environment) -> None:
        self.table.add(environment.id, environment)

    async def get(self, environment_id: str) -> Environment | None:
        return self.table.get(environment_id)

    async def update(self, environment: Environment) -> None:
        self.table.update(environment.id, environment)


class InMemoryApiKeyRepository:
    def __init__(self, table: _Table[str, ApiKey]) -> None:
        self.table = table

    async def add(self, key: ApiKey) -> None:
        self.table.add(key.id, key)

    async def get(self, key_id: str) -> ApiKey | None:
        return self.table.get(key_id)

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.table.rows() if k.key_hash == key_hash), None)

    async def update(self, key: ApiKey) -> None:
        self.table.update(key.id, key)


class InMemoryCustomerRepository:
    def __init__(self, table: _Table[tuple[str, str], Customer]) -> None:
        self.table = table

    async def add(self, customer: Customer) -> None:
        self.table.add((customer.environment_id, customer.id), customer)

    async def get(self, environment_id: str, customer_id: str) -> Customer | None:
        return self.table.get((environment_id, customer_id))

    async def get_by_external_id(self, environment_id: str, external_id: str) -> Customer | None:
        return next(
            (
                c
                for c in self.table.rows()
                if c.environment_id == environment_id and c.external_id == external_id
            ),
            None,
        )

    async def list(self, query: CustomerQuery) -> Page[Customer]:
        rows = (
            c
            for c in self.table.rows()
            if c.environment_id == query.environment_id
            and (query.external_id is None or c.external_id == query.external_id)
        )
        return _page(rows, query.limit, query.starting_after, lambda c: (c.created_at, c.id))


class InMemoryInvoiceRepository:
    def __init__(self, table: _Table[tuple[str, str], Invoice], uow: InMemoryUnitOfWork) -> None:
        self.table = table
        self.uow = uow  # for customers as this transaction sees them; dropped at its end

    async def add(self, invoice: Invoice) -> None:
        self.table.add((invoice.environment_id, invoice.id), invoice)

    async def get(
        self, environment_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice | None:
        return self.table.get((environment_id, invoice_id))

    async def get_with_customer(
        self, environment_id: str, invoice_id: str
    ) -> tuple[Invoice, Customer] | None:
        invoice = self.table.get((environment_id, invoice_id))
        if invoice is None:
            return None
        customer = await self.uow.customers.get(environment_id, invoice.customer_id)
        assert customer is not None, "an invoice's customer is never deleted"
        return invoice, customer

    async def update(self, invoice: Invoice) -> None:
        self.table.update((invoice.environment_id, invoice.id), invoice)

    async def list(self, query: InvoiceQuery) -> Page[Invoice]:
        rows = (
            i
            for i in self.table.rows()
            if i.environment_id == query.environment_id
            and (query.customer_id is None or i.customer_id == query.customer_id)
            and (query.statuses is None or i.status in query.statuses)
        )
        return _page(rows, query.limit, query.starting_after, lambda i: (i.created_at, i.id))


class InMemoryPaymentRepository:
    def __init__(self, table: _Table[tuple[str, str], Payment], store: InMemoryStore) -> None:
        self.table = table
        self._store = store
        self.new_events: list[PaymentEvent] = []

    async def add(self, payment: Payment) -> None:
        self.table.add((payment.environment_id, payment.id), payment)

    async def get(
        self, environment_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        return self.table.get((environment_id, payment_id))

    async def get_by_tracking_id(self, gateway_tracking_id: str) -> Payment | None:
        for payment in self.table.staged.values():
            if payment.gateway_tracking_id == gateway_tracking_id:
                return payment
        key = self._store.payments_by_tracking_id.get(gateway_tracking_id)
        return self.table.get(key) if key else None

    async def update(self, payment: Payment) -> None:
        self.table.update((payment.environment_id, payment.id), payment)

    def for_invoice(self, environment_id: str, invoice_id: str) -> list[Payment]:
        ids = self._store.payments_by_invoice.get((environment_id, invoice_id), [])
        found = {p.id: p for p in (self.table.get((environment_id, i)) for i in ids) if p}
        for payment in self.table.staged.values():
            if payment.environment_id == environment_id and payment.invoice_id == invoice_id:
                found[payment.id] = payment
        return list(found.values())

    async def live_for_invoice(self, environment_id: str, invoice_id: str) -> Payment | None:
        return next((p for p in self.for_invoice(environment_id, invoice_id) if p.is_live), None)

    async def list(self, query: PaymentQuery) -> Page[Payment]:
        rows = (
            p
            for p in self.table.rows()
            if p.environment_id == query.environment_id
            and (query.invoice_id is None or p.invoice_id == query.invoice_id)
            and (query.customer_id is None or p.customer_id == query.customer_id)
            and (query.statuses is None or p.status in query.statuses)
            and (query.created_gte is None or p.created_at >= query.created_gte)
            and (query.created_lt is None or p.created_at < query.created_lt)
        )
        return _page(rows, query.limit, query.starting_after, lambda p: (p.created_at, p.id))

    async def processing(self, not_updated_since: datetime, limit: int) -> Sequence[Payment]:
        stuck = [
            p
            for p in self.table.rows()
            if p.status is PaymentStatus.PROCESSING and p.updated_at <= not_updated_since
        ]
        return sorted(stuck, key=lambda p: p.updated_at)[:limit]

    async def add_event(self, event: PaymentEvent) -> None:
        self.new_events.append(event)

    async def events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]:
        stored = self._store.events.get(payment_id, [])
        staged = [e for e in self.new_events if e.payment_id == payment_id]
        return [e for e in [*stored, *staged] if e.environment_id == environment_id]


class InMemoryRefundRepository:
    def __init__(self, table: _Table[tuple[str, str], Refund]) -> None:
        self.table = table

    async def add(self, refund: Refund) -> None:
        self.table.add((refund.environment_id, refund.id), refund)

    async def get(self, environment_id: str, refund_id: str) -> Refund | None:
        return self.table.get((environment_id, refund_id))

    async def update(self, refund: Refund) -> None:
        self.table.update((refund.environment_id, refund.id), refund)

    async def for_payment(self, environment_id: str, payment_id: str) -> Sequence[Refund]:
        found = [
            r
            for r in self.table.rows()
            if r.environment_id == environment_id and r.payment_id == payment_id
        ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def pending(self, not_updated_since: datetime, limit: int) -> Sequence[Refund]:
        found = [
            r
            for r in self.table.rows()
            if r.status is RefundStatus.PENDING and r.updated_at <= not_updated_since
        ]
        return sorted(found, key=lambda r: r.updated_at)[:limit]


class InMemoryIdempotencyRepository:
    def __init__(self, table: _Table[tuple[str, str], IdempotencyRecord]) -> None:
        self.table = table

    async def get(self, environment_id: str, key: str) -> IdempotencyRecord | None:
        return self.table.get((environment_id, key))

    async def put(self, record: IdempotencyRecord) -> None:
        key = (record.environment_id, record.key)
        if record.version == 1:
            self.table.add(key, record)
        else:
            self.table.update(key, record)


class InMemoryOutboxRepository:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.added: list[Notification] = []
        self.delivered: list[str] = []

    async def add(self, notification: Notification) -> None:
        self.added.append(notification)

    async def undelivered(self, limit: int) -> Sequence[Notification]:
        pending = iter(self._store.outbox.values())
        return [n for _, n in zip(range(limit), pending, strict=False)]

    async def remove_delivered(self, notification_ids: Sequence[str]) -> None:
        self.delivered.extend(notification_ids)


class InMemoryGatewayEventLog:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.added: dict[str, str] = {}

    async def seen(self, event_id: str) -> bool:
        return event_id in self._store.gateway_events or event_id in self.added

    async def add(self, event_id: str, event_type: str, at: datetime) -> None:
        self.added[event_id] = event_type


class InMemoryWebhookEndpointRepository:
    def __init__(self, table: _Table[tuple[str, str], WebhookEndpoint]) -> None:
        self.table = table

    async def add(self, endpoint: WebhookEndpoint) -> None:
        self.table.add((endpoint.environment_id, endpoint.id), endpoint)

    async def get(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        return self.table.get((environment_id, endpoint_id))

    async def list(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        found = [e for e in self.table.rows() if e.environment_id == environment_id]
        return sorted(found, key=lambda e: (e.created_at, e.id))

    async def update(self, endpoint: WebhookEndpoint) -> None:
        self.table.update((endpoint.environment_id, endpoint.id), endpoint)


class InMemoryWebhookDeliveryRepository:
    def __init__(self, table: _Table[tuple[str, str], WebhookDelivery]) -> None:
        self.table = table

    async def add(self, delivery: WebhookDelivery) -> None:
        self.table.add((delivery.environment_id, delivery.id), delivery)

    async def get(self, environment_id: str, delivery_id: str) -> WebhookDelivery | None:
        return self.table.get((environment_id, delivery_id))

    async def due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        found = [d for d in self.table.rows() if d.pending and d.next_attempt_at <= now]
        return sorted(found, key=lambda d: (d.next_attempt_at, d.created_at, d.id))[:limit]

    async def update(self, delivery: WebhookDelivery) -> None:
        self.table.update((delivery.environment_id, delivery.id), delivery)

    async def for_endpoint(
        self, environment_id: str, endpoint_id: str, limit: int
    ) -> Sequence[WebhookDelivery]:
        found = [
            d
            for d in self.table.rows()
            if d.environment_id == environment_id and d.endpoint_id == endpoint_id
        ]
        return sorted(found, key=lambda d: (d.created_at, d.id), reverse=True)[:limit]


R = TypeVar("R")


class _Opened(Generic[R]):
    """A repository made on first use in a transaction and kept on the unit of work
    (functools.cached_property without its lock, which cost more than the repository)."""

    def __init__(self, make: Callable[[InMemoryUnitOfWork], R]) -> None:
        self.make = make
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, uow: InMemoryUnitOfWork, owner: type | None = None) -> R:
        repository = self.make(uow)
        uow.__dict__[self.name] = repository  # later reads find it before this descriptor
        return repository


class InMemoryUnitOfWork:
    """One transaction over an `InMemoryStore`; rolls back unless committed.

    Repositories open on first use: most transactions touch two or three of them, and
    commit checks and applies only those.
    """

    # The instance dict holds only the repositories opened in this transaction.
    __slots__ = ("__dict__", "read_only", "store")

    def __init__(self, store: InMemoryStore, read_only: bool = False) -> None:
        self.store = store
        self.read_only = read_only

    environments = _Opened(
        lambda uow: InMemoryEnvironmentRepository(_Table(uow.store.environments))
    )
    api_keys = _Opened(lambda uow: InMemoryApiKeyRepository(_Table(uow.store.api_keys)))
    customers = _Opened(lambda uow: InMemoryCustomerRepository(_Table(uow.store.customers)))
    invoices = _Opened(lambda uow: InMemoryInvoiceRepository(_Table(uow.store.invoices), uow))
    payments = _Opened(lambda uow: InMemoryPaymentRepository(_Table(uow.store.payments), uow.store))
    refunds = _Opened(lambda uow: InMemoryRefundRepository(_Table(uow.store.refunds)))
    idempotency = _Opened(lambda uow: InMemoryIdempotencyRepository(_Table(uow.store.idempotency)))
    outbox = _Opened(lambda uow: InMemoryOutboxRepository(uow.store))
    gateway_events = _Opened(lambda uow: InMemoryGatewayEventLog(uow.store))
    webhook_endpoints = _Opened(
        lambda uow: InMemoryWebhookEndpointRepository(_Table(uow.store.webhook_endpoints))
    )
    webhook_deliveries = _Opened(
        lambda uow: InMemoryWebhookDeliveryRepository(_Table(uow.store.webhook_deliveries))
    )

    def _opened(self, name: str, kind: type[R]) -> R | None:
        repository = self.__dict__.get(name)
        return repository if isinstance(repository, kind) else None

    def _opened_tables(self, *names: str) -> Iterator[_Table[Any, Any]]:
        """The tables of these repositories that this transaction wrote to."""
        for name in names:
            repository = self.__dict__.get(name)
            if repository is not None and repository.table.staged:
                yield repository.table

    def _reset(self) -> None:
        self.__dict__.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    async def rollback(self) -> None:
        self._reset()

    async def commit(self) -> None:
        if self.read_only:
            self._reset()
            raise ReadOnlyUnitOfWork("this unit of work was opened read-only")
        try:
            self._check()
            self._apply()
        finally:
            self._reset()

    def _check(self) -> None:
        for table in self._opened_tables("idempotency"):
            if any(table.conflicts()):
                raise IdempotencyKeyInUse()
        versioned = ("environments", "api_keys", "invoices", "payments", "refunds",
                     "webhook_endpoints", "webhook_deliveries")  # fmt: skip
        for table in self._opened_tables(*versioned):
            if any(table.conflicts()):
                raise ConcurrentUpdate()
        if deliveries := self._opened("webhook_deliveries", InMemoryWebhookDeliveryRepository):
            for key in deliveries.table.inserted:
                # One delivery per notification and endpoint, however many dispatchers run.
                new = deliveries.table.staged[key]
                if any(
                    d.endpoint_id == new.endpoint_id
                    and d.notification.id == new.notification.id
                    and d.id != new.id
                    for d in deliveries.table.rows()
                ):
                    raise ConcurrentUpdate()
        if customers := self._opened("customers", InMemoryCustomerRepository):
            for customer in customers.table.staged.values():
                others = (
                    c
                    for c in customers.table.rows()
                    if c.environment_id == customer.environment_id
                    and c.external_id == customer.external_id
                    and c.id != customer.id
                )
                if (existing := next(others, None)) is not None:
                    raise CustomerAlreadyExists(customer_id=existing.id)
        if payments := self._opened("payments", InMemoryPaymentRepository):
            self._check_payments(payments)
        events = self._opened("gateway_events", InMemoryGatewayEventLog)
        if events and any(event_id in self.store.gateway_events for event_id in events.added):
            raise ConcurrentUpdate()

    def _check_payments(self, payments: InMemoryPaymentRepository) -> None:
        for payment in payments.table.staged.values():
            siblings = [
                p
                for p in payments.for_invoice(payment.environment_id, payment.invoice_id)
                if p.id != payment.id
            ]
            if payment.is_live and any(p.status in LIVE_STATUSES for p in siblings):
                raise PaymentInProgress(invoice_id=payment.invoice_id)
            if payment.status in PAID_STATUSES and any(p.status in PAID_STATUSES for p in siblings):
                raise InvoiceAlreadyPaid(invoice_id=payment.invoice_id)
        for event in payments.new_events:
            known = self.store.events.get(event.payment_id, [])
            if any(e.sequence == event.sequence for e in known):
                raise ConcurrentUpdate()

    def _apply(self) -> None:
        store = self.store
        for table in self._opened_tables("environments", "api_keys", "customers", "invoices",
                                         "refunds", "idempotency", "webhook_endpoints",
                                         "webhook_deliveries"):  # fmt: skip
            table.apply()
        if payments := self._opened("payments", InMemoryPaymentRepository):
            for key, payment in payments.table.staged.items():
                if key in payments.table.inserted:
                    store.payments_by_invoice.setdefault(
                        (payment.environment_id, payment.invoice_id), []
                    ).append(payment.id)
                if payment.gateway_tracking_id:
                    store.payments_by_tracking_id[payment.gateway_tracking_id] = key
            payments.table.apply()
            for event in payments.new_events:
                store.events.setdefault(event.payment_id, []).append(event)
        if outbox := self._opened("outbox", InMemoryOutboxRepository):
            for notification in outbox.added:
                store.outbox[notification.id] = notification
            for notification_id in outbox.delivered:
                store.outbox.pop(notification_id, None)
        if events := self._opened("gateway_events", InMemoryGatewayEventLog):
            store.gateway_events.update(events.added)
        store.commits += 1


@attrs.define
class InMemoryUnitOfWorkFactory:
    store: InMemoryStore = attrs.Factory(InMemoryStore)

    def __call__(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store, read_only)
