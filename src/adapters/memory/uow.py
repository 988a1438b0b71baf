"""`InMemoryUnitOfWork`: one transaction, checked and applied at commit; and its factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import attrs

from adapters.memory import notifications, records
from adapters.memory.table import InMemoryStore, Table
from adapters.unit_of_work import RollsBackOnExit
from core.errors import (
    ConcurrentUpdate,
    CustomerAlreadyExists,
    GatewayCustomerNotOwned,
    IdempotencyKeyInUse,
    InvoiceAlreadyPaid,
    PaymentInProgress,
)
from core.model import LIVE_STATUSES, PAID_STATUSES
from core.ports import ReadOnlyUnitOfWork

R = TypeVar("R")

LINKED_HERE = "Another customer in this environment already links that gateway customer."


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


class InMemoryUnitOfWork(RollsBackOnExit):
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
        lambda uow: records.InMemoryEnvironmentRepository(Table(uow.store.environments))
    )
    api_keys = _Opened(lambda uow: records.InMemoryApiKeyRepository(Table(uow.store.api_keys)))
    customers = _Opened(lambda uow: records.InMemoryCustomerRepository(Table(uow.store.customers)))
    invoices = _Opened(
        lambda uow: records.InMemoryInvoiceRepository(Table(uow.store.invoices), uow)
    )
    payments = _Opened(
        lambda uow: records.InMemoryPaymentRepository(Table(uow.store.payments), uow.store)
    )
    refunds = _Opened(lambda uow: records.InMemoryRefundRepository(Table(uow.store.refunds)))
    idempotency = _Opened(
        lambda uow: notifications.InMemoryIdempotencyRepository(Table(uow.store.idempotency))
    )
    outbox = _Opened(lambda uow: notifications.InMemoryOutboxRepository(uow.store))
    gateway_events = _Opened(lambda uow: notifications.InMemoryGatewayEventLog(uow.store))
    webhook_endpoints = _Opened(
        lambda uow: notifications.InMemoryWebhookEndpointRepository(
            Table(uow.store.webhook_endpoints)
        )
    )
    webhook_deliveries = _Opened(
        lambda uow: notifications.InMemoryWebhookDeliveryRepository(
            Table(uow.store.webhook_deliveries)
        )
    )

    def _opened(self, name: str, kind: type[R]) -> R | None:
        repository = self.__dict__.get(name)
        return repository if isinstance(repository, kind) else None

    def _opened_tables(self, *names: str) -> Iterator[Table[Any, Any]]:
        """The tables of these repositories that this transaction wrote to."""
        for name in names:
            repository = self.__dict__.get(name)
            if repository is not None and repository.table.staged:
                yield repository.table

    def _reset(self) -> None:
        self.__dict__.clear()

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

    @staticmethod
    def _check_customers(customers: records.InMemoryCustomerRepository) -> None:
        """An external id is unique in its environment; a gateway customer has one holder
        (as SQL's unique indexes)."""
        for customer in customers.table.staged.values():
            key = (customer.environment_id, customer.id)
            others = [c for c in customers.table.rows() if (c.environment_id, c.id) != key]
            same_external_id = (
                c
                for c in others
                if c.environment_id == customer.environment_id
                and c.external_id == customer.external_id
            )
            if (existing := next(same_external_id, None)) is not None:
                raise CustomerAlreadyExists(customer_id=existing.id)
            if customer.gateway_customer_id is not None:
                holder = next(
                    (c for c in others if c.gateway_customer_id == customer.gateway_customer_id),
                    None,
                )
                if holder is not None and holder.environment_id != customer.environment_id:
                    raise GatewayCustomerNotOwned(gateway_customer_id=holder.gateway_customer_id)
                if holder is not None:
                    raise CustomerAlreadyExists(LINKED_HERE, customer_id=holder.id)

    def _check(self) -> None:
        for table in self._opened_tables("idempotency"):
            if any(table.conflicts()):
                raise IdempotencyKeyInUse()
        versioned = ("environments", "api_keys", "invoices", "payments", "refunds",
                     "webhook_endpoints", "webhook_deliveries")  # fmt: skip
        for table in self._opened_tables(*versioned):
            if any(table.conflicts()):
                raise ConcurrentUpdate()
        if deliveries := self._opened(
            "webhook_deliveries", notifications.InMemoryWebhookDeliveryRepository
        ):
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
        if customers := self._opened("customers", records.InMemoryCustomerRepository):
            self._check_customers(customers)
        if payments := self._opened("payments", records.InMemoryPaymentRepository):
            self._check_payments(payments)
        events = self._opened("gateway_events", notifications.InMemoryGatewayEventLog)
        if events and any(key in self.store.gateway_events for key in events.added):
            raise ConcurrentUpdate()  # recorded in its environment by another transaction

    def _check_payments(self, payments: records.InMemoryPaymentRepository) -> None:
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
        if keys := self._opened("idempotency", notifications.InMemoryIdempotencyRepository):
            keys.apply_renewals()
        if payments := self._opened("payments", records.InMemoryPaymentRepository):
            for key, payment in payments.table.staged.items():
                if key in payments.table.inserted:
                    store.payments_by_invoice.setdefault(
                        (payment.environment_id, payment.invoice_id), []
                    ).append(payment.id)
                if payment.gateway_tracking_id:
                    tracking = (payment.environment_id, payment.gateway_tracking_id)
                    store.payments_by_tracking_id[tracking] = key
            payments.table.apply()
            for event in payments.new_events:
                store.events.setdefault(event.payment_id, []).append(event)
        if outbox := self._opened("outbox", notifications.InMemoryOutboxRepository):
            for notification in outbox.added:
                store.outbox[notification.id] = notification
            for notification_id in outbox.delivered:
                store.outbox.pop(notification_id, None)
        if events := self._opened("gateway_events", notifications.InMemoryGatewayEventLog):
            store.gateway_events.update(events.added)
        store.commits += 1


@attrs.define
class InMemoryUnitOfWorkFactory:
    store: InMemoryStore = attrs.Factory(InMemoryStore)

    def __call__(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store, read_only)
