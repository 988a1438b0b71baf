"""What every use case stands on: its dependencies, transactions, gateway calls, look-ups."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import attrs

from core.errors import (
    CheckoutError,
    ConcurrentUpdate,
    CustomerNotFound,
    CustomerNotLinked,
    GatewayError,
    InvoiceNotFound,
    NotFound,
    PaymentNotFound,
)
from core.gateway import GatewayUnavailable
from core.model import Customer, Environment, Invoice, Payment, Refund
from core.ports import (
    AddressResolver,
    ApiKeyLookup,
    Clock,
    GatewayDirectory,
    IdGenerator,
    UnitOfWork,
    UnitOfWorkFactory,
)
from core.usecases.policies import Policies

R = TypeVar("R")
K = TypeVar("K")

# A transaction that lost a race is re-run from a fresh read this many times.
MAX_ATTEMPTS: Final = 3


@attrs.frozen
class Deps:
    """The one set of dependencies every use case takes."""

    uow: UnitOfWorkFactory
    gateways: GatewayDirectory
    clock: Clock
    ids: IdGenerator
    api_keys: ApiKeyLookup
    policies: Policies = attrs.Factory(Policies)
    # Checks webhook URLs' host names at registration (None: no name can be checked, so
    # none is accepted unless private URLs are allowed).
    addresses: AddressResolver | None = None

    async def read(self, work: Callable[[UnitOfWork], Awaitable[R]]) -> R:
        """What `work` reads in one read-only unit of work."""
        async with self.uow(read_only=True) as uow:
            return await work(uow)


async def transaction(deps: Deps, work: Callable[[UnitOfWork], Awaitable[R]]) -> R:
    """Run `work` in a fresh unit of work, re-running it if it lost a race."""
    return await optimistic(deps, None, lambda uow, _: work(uow))


async def of_payment(
    deps: Deps, environment_id: str, payment_id: str, work: Callable[[UnitOfWork], Awaitable[R]]
) -> R:
    """What `work` reads of a payment (its refunds, its events); `payment_not_found` if none."""

    async def of_a_payment(uow: UnitOfWork) -> R:
        await payment_of(uow, environment_id, payment_id)
        return await work(uow)

    return await deps.read(of_a_payment)


async def optimistic(
    deps: Deps, known: K | None, work: Callable[[UnitOfWork, K | None], Awaitable[R]]
) -> R:
    """Run `work` with what an earlier transaction read (`known`), re-running it without
    that, on fresh reads, if a versioned update shows it changed since."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with deps.uow() as uow:
                return await work(uow, known if attempt == 1 else None)
        except ConcurrentUpdate:
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def gateway_call(call: Awaitable[R]) -> R:
    """A gateway call that charges nothing: an unknown outcome is just a gateway error."""
    try:
        return await call
    except GatewayUnavailable:
        raise GatewayError(
            "The payment gateway did not answer in time; nothing was charged."
        ) from None


def gateway_customer_id(customer: Customer) -> str:
    if customer.gateway_customer_id is None:
        raise CustomerNotLinked(customer_id=customer.id)
    return customer.gateway_customer_id


def found(item: R | None, missing: Callable[[], CheckoutError]) -> R:
    """The item looked up, or the error that says it is not there."""
    if item is None:
        raise missing()
    return item


async def invoice_of(
    uow: UnitOfWork, environment_id: str, invoice_id: str, *, for_update: bool = False
) -> Invoice:
    """The invoice; `for_update` locks its row until the transaction ends, where it can."""
    invoice = await uow.invoices.get(environment_id, invoice_id, for_update=for_update)
    return found(invoice, lambda: InvoiceNotFound(invoice_id=invoice_id))


async def environment_of(uow: UnitOfWork, environment_id: str) -> Environment:
    return found(
        await uow.environments.get(environment_id),
        lambda: NotFound(f"No environment {environment_id}.", environment_id=environment_id),
    )


async def customer_of(uow: UnitOfWork, environment_id: str, customer_id: str) -> Customer:
    customer = await uow.customers.get(environment_id, customer_id)
    return found(customer, lambda: CustomerNotFound(customer_id=customer_id))


async def payment_of(
    uow: UnitOfWork, environment_id: str, payment_id: str, *, for_update: bool = False
) -> Payment:
    payment = await uow.payments.get(environment_id, payment_id, for_update=for_update)
    return found(payment, lambda: PaymentNotFound(payment_id=payment_id))


async def refund_of(uow: UnitOfWork, environment_id: str, refund_id: str) -> Refund:
    return found(
        await uow.refunds.get(environment_id, refund_id),
        lambda: NotFound(f"No refund {refund_id} exists in this environment.", refund_id=refund_id),
    )
