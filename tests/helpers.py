"""Shared builders for tests: a customer with a saved sandbox card, a finalized invoice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import httpx
import pytest

from adapters.addresses import StaticAddressResolver
from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import SandboxFaults, SandboxPaymentGateway
from core.errors import CheckoutError
from core.model import Customer, Invoice
from core.ports import PaymentGateway
from entrypoints.bootstrap import CardCheckout, bootstrap
from entrypoints.http import create_app

ENV = "env_test"

# The product page's request example, byte for byte (a JSON number, not a string); %s: invoice.
PRODUCT_PAGE_BODY = b"""{
    "amount": 150.00,
    "currency": "usd",
    "destination_id": "%s",
    "destination_type": "INVOICE",
    "payment_method_type": "CARD",
    "process_payment": true,
    "payment_gateway": "stripe"
}"""
OTHER_ENV = "env_other"

VISA = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
AUTHENTICATION_REQUIRED = "4000002760003184"
EXPIRED = "4000000000000069"
# Seals the secrets of test databases that outlive one `bootstrap` (PostgreSQL has no key file).
TEST_ENCRYPTION_KEY = "Kb1zEg4zQAR8fRnY6nDmsqHWetd7DiQ2C_u63hKTrPg="
# What every webhook host name resolves to in tests, unless a test says otherwise: public.
PUBLIC_ADDRESS = "93.184.215.14"


def in_memory_checkout(
    *, clock: ManualClock | None = None, faults: SandboxFaults | None = None
) -> CardCheckout:
    """Card Checkout on in-memory storage and the sandbox, with a clock the test moves (and
    a DNS that answers a public address for every name)."""
    return bootstrap(
        uow=InMemoryUnitOfWorkFactory(),
        clock=clock or ManualClock(),
        notifier=RecordingNotifier(),
        sandbox_faults=faults or SandboxFaults(),
        address_resolver=StaticAddressResolver(default=[PUBLIC_ADDRESS]),
    )


def sandbox(checkout: CardCheckout) -> SandboxPaymentGateway:
    assert checkout.sandbox is not None
    return checkout.sandbox


def use_gateway(checkout: CardCheckout, gateway: PaymentGateway) -> None:
    """Have every environment without a connection of its own charge through `gateway`."""
    gateways = attrs.evolve(checkout.gateways, default_gateway=gateway)
    checkout.deps = attrs.evolve(checkout.deps, gateways=gateways)


def notifier(checkout: CardCheckout) -> RecordingNotifier:
    assert isinstance(checkout.notifier, RecordingNotifier)
    return checkout.notifier


async def customer_with_card(
    checkout: CardCheckout, card: str | None = VISA, *, env: str = ENV, external_id: str = ""
) -> Customer:
    """A customer whose card (if any) was saved as default through a sandbox setup page."""
    customer = await checkout.create_customer(
        env, {"external_id": external_id or f"customer-{_next()}"}
    )
    if card is not None:
        setup = await checkout.setup_card(env, customer.id)
        await checkout.complete_sandbox_checkout(setup.id, card)
    return customer


async def finalized_invoice(
    checkout: CardCheckout,
    customer: Customer,
    amount: str = "150.00",
    currency: str = "usd",
    *,
    env: str = ENV,
) -> Invoice:
    return await checkout.create_invoice(
        env,
        {
            "customer_id": customer.id,
            "currency": currency,
            "amount_due": Decimal(amount),
            "status": "FINALIZED",
        },
    )


def card_payment(invoice: Invoice, **overrides: object) -> dict[str, object]:
    """The product page's request body for `invoice`, with `overrides`."""
    body: dict[str, object] = {
        "amount": invoice.amount_remaining.amount,
        "currency": invoice.currency.code,
        "destination_id": invoice.id,
        "destination_type": "INVOICE",
        "payment_method_type": "CARD",
        "process_payment": True,
        "payment_gateway": "stripe",
    }
    body.update(overrides)
    return body


_counter = 0


def _next() -> int:
    global _counter
    _counter += 1
    return _counter


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of an HTTP error answer."""
    return dict(response.json()["error"])


async def error_of(call: Awaitable[object]) -> CheckoutError:
    """The CheckoutError `call` raises (the test fails if it raises nothing)."""
    with pytest.raises(CheckoutError) as caught:
        await call
    return caught.value


class HeldGateway:
    """Sandbox faults that hold every call of one operation until the test releases it."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def before(self, operation: str) -> None:
        if operation == self.operation:
            self.started.set()
            await self.release.wait()

    @staticmethod
    def after(fault: object, operation: str) -> None:
        return None


@asynccontextmanager
async def api_client(
    checkout: CardCheckout, role: str = "admin"
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `checkout`'s app (no background passes) with a key of `role` for
    ENV, which it creates."""
    await checkout.create_environment("t", "test", environment_id=ENV)
    _, key = await checkout.create_api_key("t", [ENV], role)
    async with keyed_client(checkout, key) as client:
        yield client


async def keys_by_role(
    checkout: CardCheckout, environments: tuple[str, ...] = (ENV,)
) -> dict[str, str]:
    """ENV and OTHER_ENV made; a key of each role for `environments`, and an admin key of
    OTHER_ENV alone as "other"."""
    await checkout.create_environment("t", "test", environment_id=ENV)
    await checkout.create_environment("t", "other", environment_id=OTHER_ENV)
    keys = {
        role: (await checkout.create_api_key("t", list(environments), role))[1]
        for role in ("read", "write", "admin")
    }
    keys["other"] = (await checkout.create_api_key("t", [OTHER_ENV], "admin"))[1]
    return keys


@asynccontextmanager
async def keyed_client(
    checkout: CardCheckout, key: str, environment: str = ENV
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `checkout`'s app (no background passes) sending `key` for
    `environment` with every request."""
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": environment}
    transport = httpx.ASGITransport(app=create_app(checkout, notify_every=None))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


@asynccontextmanager
async def webhook_client(checkout: CardCheckout, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `checkout`'s app taking gateway webhooks signed with `secret`."""
    app = create_app(checkout, notify_every=None, webhook_secrets=[secret])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
