"""Customers: created here and at the gateway, their saved cards, and the page that saves one."""

from __future__ import annotations

from core.commands import CreateCustomer, SetupCard
from core.errors import CustomerAlreadyExists, GatewayCustomerNotOwned
from core.gateway import (
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionRequest,
    CustomerRequest,
    GatewayCustomer,
    GatewayPaymentMethod,
)
from core.lists import FIRST_PAGE, Window, window_of
from core.model import Customer, GatewayProvider
from core.ports import CustomerQuery, Page, UnitOfWork
from core.usecases.common import Deps, customer_of, gateway_call, gateway_customer_id
from core.usecases.idempotency import Answer, Idempotency, idempotent


async def create_customer(
    deps: Deps, environment_id: str, command: CreateCustomer, idempotency_key: str | None = None
) -> Answer[Customer]:
    """A customer, created at the gateway too unless it names its gateway customer."""

    async def run(idempotency: Idempotency) -> Customer:
        async with deps.uow(read_only=True) as uow:
            await idempotency.replay_if_done(uow)
            await _ensure_new(uow, environment_id, command.external_id)
        customer_id = deps.ids.new_id("cust")
        gateway = await deps.gateways.for_environment(environment_id)
        gateway_id = command.gateway_customer_id
        if gateway_id is None:
            gateway_id = await gateway_call(
                gateway.create_customer(
                    CustomerRequest(
                        idempotency_key=f"{customer_id}:customer",
                        name=command.name,
                        email=command.email,
                        metadata={"customer_id": customer_id, "environment_id": environment_id},
                    )
                )
            )
        else:
            linked = await gateway_call(gateway.get_customer(gateway_id))
            own = await deps.gateways.own_connection(environment_id)
            own_account = own is not None and own.provider is GatewayProvider.STRIPE
            _ensure_owned(linked, environment_id, own_account=own_account)
        customer = Customer(
            id=customer_id,
            environment_id=environment_id,
            external_id=command.external_id,
            name=command.name,
            email=command.email,
            gateway_customer_id=gateway_id,
            created_at=deps.clock.now(),
        )
        async with deps.uow() as uow:
            await idempotency.claim(uow)
            await _ensure_new(uow, environment_id, command.external_id)
            await uow.customers.add(customer)
            await idempotency.finish(uow, customer)
            await uow.commit()
        return customer

    request = (environment_id, "create_customer", command.fingerprint)
    return await idempotent(deps, idempotency_key, request, Customer, run)


async def _ensure_new(uow: UnitOfWork, environment_id: str, external_id: str) -> None:
    existing = await uow.customers.get_by_external_id(environment_id, external_id)
    if existing is not None:
        raise CustomerAlreadyExists(customer_id=existing.id)


def _ensure_owned(linked: GatewayCustomer, environment_id: str, *, own_account: bool) -> None:
    """A gateway customer the service created names its environment in its metadata. One
    made elsewhere names none: an environment with a Stripe account of its own may link it
    (storage lets one customer hold it); through a shared account it could be any tenant's."""
    owner = linked.metadata.get("environment_id")
    if owner != environment_id and (owner is not None or not own_account):
        raise GatewayCustomerNotOwned(gateway_customer_id=linked.id)


async def get_customer(deps: Deps, environment_id: str, customer_id: str) -> Customer:
    return await deps.read(lambda uow: customer_of(uow, environment_id, customer_id))


async def list_customers(deps: Deps, query: CustomerQuery) -> Page[Customer]:
    return await deps.read(lambda uow: uow.customers.list(query))


async def list_payment_methods(
    deps: Deps, environment_id: str, customer_id: str, window: Window = FIRST_PAGE
) -> Page[GatewayPaymentMethod]:
    """The customer's saved cards, as the gateway lists them."""
    customer = await get_customer(deps, environment_id, customer_id)
    gateway = await deps.gateways.for_environment(environment_id)
    cards = await gateway_call(gateway.list_payment_methods(gateway_customer_id(customer)))
    return window_of(cards, window, lambda card: card.id)


async def setup_card(
    deps: Deps, environment_id: str, command: SetupCard, idempotency_key: str | None = None
) -> CheckoutSession:
    """A hosted page that saves a card and makes it the customer's default."""
    customer = await get_customer(deps, environment_id, command.customer_id)
    key = idempotency_key or deps.ids.new_id("setup")
    gateway = await deps.gateways.for_environment(environment_id)
    return await gateway_call(
        gateway.create_checkout_session(
            CheckoutSessionRequest(
                mode=CheckoutMode.SETUP,
                gateway_customer_id=gateway_customer_id(customer),
                idempotency_key=f"{environment_id}:{customer.id}:setup:{key}",
                save_card_and_make_default=True,
                success_url=command.success_url,
                cancel_url=command.cancel_url,
                metadata={"environment_id": environment_id, "customer_id": customer.id},
            )
        )
    )
