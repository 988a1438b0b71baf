"""The service on SQL storage: what survives a restart, and what a payment costs in commits."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from adapters.clock import SystemClock
from adapters.ids import UlidIdGenerator
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import Fault, InMemorySandboxStore, SandboxFaults, SandboxPaymentGateway
from core.errors import CheckoutError
from core.model import PaymentStatus
from entrypoints.bootstrap import Settings, bootstrap
from tests.helpers import (
    DECLINED,
    ENV,
    VISA,
    card_payment,
    customer_with_card,
    finalized_invoice,
    sandbox,
)
from tests.integration.conftest import SqlPath


async def test_a_new_bootstrap_on_the_same_sqlite_file_sees_everything(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'restart.sqlite3'}")
    before = bootstrap(settings, notifier=RecordingNotifier())
    await before.migrate()
    customer = await customer_with_card(before, VISA)
    invoice = await finalized_invoice(before, customer)
    paid = await before.create_payment(ENV, card_payment(invoice), idempotency_key="k1")
    await before.aclose()

    after = bootstrap(settings, notifier=RecordingNotifier())
    assert await after.get_customer(ENV, customer.id) == customer
    [card] = await after.list_payment_methods(ENV, customer.id)
    assert (card.last4, card.is_default) == ("4242", True)
    assert await after.get_payment(ENV, paid.id) == paid
    assert (await after.get_invoice(ENV, invoice.id)).amount_remaining.is_zero
    # The idempotency record survived too: the retry replays, the gateway is not called.
    assert await after.create_payment(ENV, card_payment(invoice), idempotency_key="k1") == paid
    assert len(await sandbox(after).succeeded_charges()) == 1
    # And the saved card is charged off-session after the restart.
    second = await finalized_invoice(after, customer, "20.00")
    assert (await after.create_payment(ENV, card_payment(second))).status.value == "succeeded"
    await after.aclose()


@pytest.mark.parametrize(
    ("card", "fault", "commits"),
    [
        (VISA, None, 2),  # recorded as processing, then the outcome
        (DECLINED, None, 2),
        (VISA, Fault.TIMEOUT_AFTER, 1),  # unknown outcome: stays processing
    ],
)
async def test_a_card_payment_costs_at_most_two_commits(
    sql_path: SqlPath, card: str, fault: Fault | None, commits: int
) -> None:
    units = sql_path.units()
    faults = SandboxFaults()
    # The sandbox keeps its state apart here, so that only the service's commits are counted.
    gateway = SandboxPaymentGateway(
        clock=SystemClock(), ids=UlidIdGenerator(), store=InMemorySandboxStore(), faults=faults
    )
    checkout = bootstrap(uow=units, gateway=gateway, dispatch_inline=False)
    gateway.event_sink = checkout.handle_gateway_event
    customer = await customer_with_card(checkout, card)
    invoice = await finalized_invoice(checkout, customer)
    if fault is not None:
        faults.schedule("charge", fault)
    before = units.commits
    try:
        payment = await checkout.create_payment(ENV, card_payment(invoice))
        status = payment.status
    except CheckoutError as error:
        status = (await checkout.get_payment(ENV, str(error.details["payment_id"]))).status
    assert units.commits - before == commits
    expected = {VISA: PaymentStatus.SUCCEEDED, DECLINED: PaymentStatus.FAILED}[card]
    assert status is (PaymentStatus.PROCESSING if fault else expected)


async def test_no_connection_is_held_while_the_gateway_works(sql_path: SqlPath) -> None:
    engine = sql_path.engine
    held: list[int] = []

    class WatchedSandbox(SandboxPaymentGateway):
        """Notes how many database connections are checked out at each gateway call."""

        async def charge(self, request):  # type: ignore[no-untyped-def]
            held.append(engine.sync_engine.pool.checkedout())
            return await super().charge(request)

        async def get_customer(self, gateway_customer_id):  # type: ignore[no-untyped-def]
            held.append(engine.sync_engine.pool.checkedout())
            return await super().get_customer(gateway_customer_id)

    gateway = WatchedSandbox(clock=SystemClock(), ids=UlidIdGenerator())
    checkout = bootstrap(uow=sql_path.units(), gateway=gateway)
    gateway.event_sink = checkout.handle_gateway_event
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    held.clear()
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.SUCCEEDED
    assert held == [0, 0]  # the customer look-up and the charge, each with no connection out


async def test_payments_leave_no_reference_cycles_for_the_collector(sql_path: SqlPath) -> None:
    """Cyclic garbage is freed only by the collector; made on every transaction, it fills the
    older generations and brings on full collections that stall the server's event loop."""
    checkout = bootstrap(uow=sql_path.units(), dispatch_inline=False)
    customer = await customer_with_card(checkout, VISA)
    invoices = [await finalized_invoice(checkout, customer) for _ in range(21)]
    await checkout.create_payment(ENV, card_payment(invoices.pop()))  # warm caches first
    gc.collect()
    gc.disable()
    try:
        for invoice in invoices:
            await checkout.create_payment(ENV, card_payment(invoice))
        cyclic = gc.collect()
    finally:
        gc.enable()
    await checkout.aclose()
    assert cyclic < 20 * 10, f"{cyclic} objects in reference cycles after 20 payments"
