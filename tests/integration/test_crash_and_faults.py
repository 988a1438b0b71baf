"""Nothing lost, nothing stuck, nothing twice: a process killed mid-payment, and a fault storm."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx

from adapters.notifiers import RecordingNotifier
from adapters.sandbox import Fault, SandboxFaults
from core.errors import CheckoutError
from core.model import PAID_STATUSES, PaymentStatus
from entrypoints.bootstrap import Settings, bootstrap
from tests.helpers import ENV, VISA, card_payment, customer_with_card, finalized_invoice, sandbox
from tests.integration.http_server import free_port

CLI = str(Path(sys.executable).with_name("card-checkout"))


async def _serve(url: str, port: int, **env: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on without blocking
        [CLI, "serve", "--port", str(port)],
        env={**os.environ, "DATABASE_URL": url, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    async with httpx.AsyncClient() as client:
        for _ in range(150):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return server
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    server.kill()
    raise AssertionError("the server did not start")


async def test_a_process_killed_after_the_charge_settles_once_after_restart(
    database_url: str,
) -> None:
    checkout = bootstrap(Settings(database_url=database_url), notifier=RecordingNotifier())
    await checkout.create_environment("t", "drill", environment_id=ENV)
    _, key = await checkout.create_api_key("t", [ENV], "write")
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    await checkout.aclose()
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    body = {k: str(v) for k, v in card_payment(invoice).items()}
    body["process_payment"] = True  # type: ignore[assignment]

    port = free_port()
    doomed = await _serve(database_url, port, SANDBOX_FAULTS="charge:crash_after",
                          RECONCILE_EVERY_SECONDS="0")  # fmt: skip
    async with httpx.AsyncClient(headers=headers) as client:
        try:
            await client.post(f"http://127.0.0.1:{port}/api/v1/payments", json=body)
            raise AssertionError("the server answered although it was to die")
        except httpx.TransportError:
            pass
    assert doomed.wait(timeout=10) == -signal.SIGKILL

    between = bootstrap(Settings(database_url=database_url), notifier=RecordingNotifier())
    [left] = (await between.list_payments(ENV, destination_id=invoice.id)).items
    assert left.status is PaymentStatus.PROCESSING  # charged, but never recorded
    assert len(await sandbox(between).charges_for(left.id)) == 1
    await between.aclose()

    revived = await _serve(
        database_url, port, RECONCILE_EVERY_SECONDS="0.2", RECONCILE_OLDER_THAN_SECONDS="0"
    )
    try:
        async with httpx.AsyncClient(headers=headers) as client:
            url = f"http://127.0.0.1:{port}/api/v1/payments/{left.id}"
            deadline = time.monotonic() + 20
            while (await client.get(url)).json()["payment_status"] == "processing":
                assert time.monotonic() < deadline, "reconciliation never settled the payment"
                await asyncio.sleep(0.2)
            paid = (await client.get(url)).json()
            settled_invoice = (
                await client.get(f"http://127.0.0.1:{port}/api/v1/invoices/{invoice.id}")
            ).json()
    finally:
        revived.terminate()
        revived.wait(timeout=10)
    assert paid["payment_status"] == "succeeded"
    assert settled_invoice["amount_remaining"] == "0.00"
    after = bootstrap(Settings(database_url=database_url), notifier=RecordingNotifier())
    assert len(await sandbox(after).charges_for(left.id)) == 1
    await after.aclose()


async def test_a_fault_storm_leaves_every_payment_settled_and_charged_once(
    database_url: str,
) -> None:
    faults = SandboxFaults(seed=7)
    checkout = bootstrap(
        Settings(database_url=database_url), notifier=RecordingNotifier(), sandbox_faults=faults
    )
    invoices = []
    for _ in range(40):
        customer = await customer_with_card(checkout, VISA)
        invoices.append(await finalized_invoice(checkout, customer, "12.34"))
    # On every operation: a storm, not a drill of one call.
    faults.rates["*"] = {Fault.TIMEOUT_AFTER: 0.2, Fault.ERROR_BEFORE: 0.15, Fault.REJECT: 0.05}
    outcomes: Counter[str] = Counter()
    for invoice in invoices:
        try:
            outcomes[(await checkout.create_payment(ENV, card_payment(invoice))).status.value] += 1
        except CheckoutError as error:
            outcomes[error.code] += 1
    assert outcomes["processing"] > 0, outcomes  # the storm did leave payments in flight
    faults.rates.clear()
    report = await checkout.reconcile(older_than=timedelta(0), limit=1000)
    assert (report.unresolved, report.errors) == ((), ())
    payments = [
        payment
        for invoice in invoices
        for payment in (await checkout.list_payments(ENV, destination_id=invoice.id)).items
    ]
    assert not [p.id for p in payments if p.status is PaymentStatus.PROCESSING]
    charges = await sandbox(checkout).succeeded_charges()
    paid = [p for p in payments if p.status in PAID_STATUSES]
    assert sorted(c["metadata"]["payment_id"] for c in charges) == sorted(p.id for p in paid)
    for invoice in invoices:
        current = await checkout.get_invoice(ENV, invoice.id)
        invoice_paid = [p for p in paid if p.invoice_id == invoice.id]
        assert current.amount_paid.amount == sum((p.amount.amount for p in invoice_paid), 0)
        assert current.amount_remaining.is_zero == bool(invoice_paid)
    await checkout.aclose()
