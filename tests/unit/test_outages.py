"""Outages of our own storage: `503 service_unavailable` with `Retry-After`, never a 500, and a
payment recorded before the outage is answered `processing` (202) with its id."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import cast

import attrs
import httpx
import pytest

from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import Fault, SandboxFaults
from adapters.sql.migrate import SchemaState
from core.errors import ServiceUnavailable
from core.model import PaymentStatus
from core.ports import UnitOfWork
from entrypoints.bootstrap import CardCheckout, bootstrap
from entrypoints.http import create_app
from entrypoints.http.app import _every
from tests.helpers import (
    ENV,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
    sandbox,
)


@attrs.define
class Storage:
    """In-memory storage that can go down: every unit of work asked for then fails the way
    the SQL adapter reports an outage."""

    inner: InMemoryUnitOfWorkFactory = attrs.Factory(InMemoryUnitOfWorkFactory)
    down: bool = False

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        if self.down:
            raise ServiceUnavailable()
        return self.inner(read_only=read_only)


@attrs.define
class DownDuring:
    """Sandbox faults that take storage down as the gateway first starts `operation`, and
    optionally fail that call itself with `raising`."""

    storage: Storage
    operation: str
    raising: Exception | None = None
    struck: bool = False

    async def before(self, operation: str) -> Fault | None:
        if operation == self.operation and not self.struck:
            self.struck = self.storage.down = True
            if self.raising is not None:
                raise self.raising
        return None

    @staticmethod
    def after(fault: Fault | None, operation: str) -> None:
        return None


@pytest.fixture
def storage() -> Storage:
    return Storage()


@pytest.fixture
def checkout(storage: Storage, clock: ManualClock) -> CardCheckout:
    # Notifications wait in the outbox, as under `serve`: delivered inline, the library would
    # try to deliver them during the outage too.
    return bootstrap(uow=storage, clock=clock, notifier=RecordingNotifier(),
                     sandbox_faults=SandboxFaults(), dispatch_inline=False)  # fmt: skip


def _outage_during(checkout: CardCheckout, storage: Storage, operation: str,
                   raising: Exception | None = None) -> None:  # fmt: skip
    sandbox(checkout).faults = cast(SandboxFaults, DownDuring(storage, operation, raising))


@pytest.mark.parametrize("key", [None, "k-1"], ids=["unkeyed", "keyed"])
async def test_a_payment_charged_as_storage_went_down_is_answered_processing_with_its_id(
    checkout: CardCheckout, storage: Storage, clock: ManualClock, key: str | None
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    _outage_during(checkout, storage, "charge")

    payment = await checkout.create_payment(ENV, card_payment(invoice), idempotency_key=key)

    assert payment.status is PaymentStatus.PROCESSING
    storage.down = False
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING
    assert len(await sandbox(checkout).succeeded_charges()) == 1
    clock.advance(timedelta(minutes=5))
    await checkout.reconcile()
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


async def test_the_library_delivering_inline_still_answers_a_payment_recorded_before_an_outage(
    storage: Storage, clock: ManualClock
) -> None:
    notifier = RecordingNotifier()
    checkout = bootstrap(uow=storage, clock=clock, notifier=notifier,
                         sandbox_faults=SandboxFaults(), dispatch_inline=True)  # fmt: skip
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    _outage_during(checkout, storage, "charge")

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.PROCESSING
    sent = len(notifier.delivered)
    storage.down = False
    assert await checkout.deliver_notifications() > 0
    assert len(notifier.delivered) > sent


async def test_processing_an_initiated_payment_as_storage_went_down_answers_it_processing(
    checkout: CardCheckout, storage: Storage
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))
    _outage_during(checkout, storage, "charge")

    payment = await checkout.process_payment(ENV, initiated.id, idempotency_key="p-1")

    assert (payment.id, payment.status) == (initiated.id, PaymentStatus.PROCESSING)
    assert len(await sandbox(checkout).succeeded_charges()) == 1


async def test_storage_failing_inside_the_gateway_call_leaves_the_payment_processing(
    checkout: CardCheckout, storage: Storage
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    _outage_during(checkout, storage, "charge", raising=ServiceUnavailable())

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.PROCESSING
    storage.down = False
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING


async def test_an_outage_before_anything_is_recorded_is_service_unavailable(
    checkout: CardCheckout, storage: Storage
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    storage.down = True

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "service_unavailable"
    storage.down = False
    assert (await checkout.list_payments(ENV)).items == []


# Over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    await checkout.create_environment("t", "test", environment_id=ENV)
    _, key = await checkout.create_api_key("t", [ENV], "write")
    app = create_app(checkout, notify_every=None)
    # Nothing reaches the server as an exception: it would log a second traceback.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


def _jsonable(body: dict[str, object]) -> dict[str, object]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in body.items()}


async def test_an_outage_answers_503_with_retry_after_and_the_error_body(
    client: httpx.AsyncClient, storage: Storage
) -> None:
    storage.down = True

    response = await client.get("/api/v1/payments/pay_1")

    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert set(error) == {"code", "type", "message", "details", "request_id"}
    assert error["type"] == "api_error"
    assert error["code"] == "service_unavailable"


async def test_a_payment_recorded_before_the_outage_answers_202_with_its_id(
    checkout: CardCheckout, client: httpx.AsyncClient, storage: Storage
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    _outage_during(checkout, storage, "charge")

    response = await client.post(
        "/api/v1/payments",
        json=_jsonable(card_payment(invoice)),
        headers={"Idempotency-Key": "outage"},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["payment_status"] == "processing"
    storage.down = False
    assert (await checkout.get_payment(ENV, body["id"])).status is PaymentStatus.PROCESSING


def _http_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("card_checkout", "uvicorn"))]


async def test_an_outage_logs_one_line_with_the_request_id_and_no_traceback(
    client: httpx.AsyncClient, storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    storage.down = True

    await client.get("/api/v1/payments/pay_1", headers={"X-Request-ID": "req-outage"})

    [record] = _http_records(caplog)
    assert (record.getMessage(), record.request_id, record.status) == ("request", "req-outage", 503)
    assert record.exc_info is None


async def test_a_bug_logs_one_line_with_the_request_id_and_its_traceback(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(CardCheckout, "get_payment", broken)
    caplog.set_level(logging.INFO)

    response = await client.get("/api/v1/payments/pay_1", headers={"X-Request-ID": "req-bug"})

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["x-request-id"] == "req-bug"
    [record] = _http_records(caplog)
    assert (record.getMessage(), record.request_id, record.status) == ("request", "req-bug", 500)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


async def test_readiness_answers_503_within_a_second_when_storage_hangs(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hanging(self: CardCheckout) -> SchemaState:
        await asyncio.sleep(30)
        return SchemaState.CURRENT

    monkeypatch.setattr(CardCheckout, "schema_state", hanging)
    started = time.perf_counter()

    response = await client.get("/readyz")

    assert time.perf_counter() - started < 1.0
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


async def test_a_background_pass_failing_on_an_outage_logs_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes = 0
    third = asyncio.Event()

    async def outage() -> None:
        nonlocal passes
        passes += 1
        if passes == 3:
            third.set()
        raise ServiceUnavailable()

    caplog.set_level(logging.WARNING, logger="card_checkout.http")
    running = asyncio.create_task(_every(0.001, outage, "delivery"))
    await asyncio.wait_for(third.wait(), timeout=5)
    running.cancel()
    records = [r for r in caplog.records if "delivery pass failed" in r.getMessage()]
    assert len(records) >= 2
    assert all(r.exc_info is None for r in records)


@attrs.define
class FailingAfter:
    """Sandbox faults whose `operation` goes through at the gateway and then fails with
    `raising`, as the gateway's own storage failing as it answers."""

    operation: str
    raising: Exception

    async def before(self, operation: str) -> Fault | None:
        return None

    def after(self, fault: Fault | None, operation: str) -> None:
        if operation in self.operation.split(","):
            raise self.raising


async def test_a_refund_made_as_storage_failed_stays_pending_and_is_settled_not_failed(
    clock: ManualClock,
) -> None:
    checkout = bootstrap(uow=InMemoryUnitOfWorkFactory(), clock=clock,
                         notifier=RecordingNotifier(), sandbox_faults=SandboxFaults())  # fmt: skip
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    sandbox(checkout).faults = cast(SandboxFaults, FailingAfter("refund", ServiceUnavailable()))

    refund = await checkout.refund_payment(ENV, payment.id, {"amount": Decimal("50.00")})

    assert refund.status.value == "pending"  # it may have gone through: never failed on a guess
    sandbox(checkout).faults = SandboxFaults()
    clock.advance(timedelta(minutes=1))
    await checkout.reconcile(older_than=timedelta(0))
    settled = await checkout.get_payment(ENV, payment.id)
    assert settled.amount_refunded.amount == Decimal("50.00")
    left = settled.amount.amount - Decimal("50.00")
    too_much = await error_of(
        checkout.refund_payment(ENV, payment.id, {"amount": left + Decimal("0.01")})
    )
    assert too_much.code == "refund_exceeds_payment"
    intent = await sandbox(checkout).store.get("payment_intent", str(payment.gateway_tracking_id))
    assert intent is not None
    assert intent["amount_refunded"] == 5000  # the gateway agrees


async def test_reconciliation_whose_look_up_fails_on_storage_leaves_the_payment_processing(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    faults = SandboxFaults()
    sandbox(checkout).faults = faults
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING
    failing = FailingAfter("charge,find_charge", ServiceUnavailable())
    sandbox(checkout).faults = cast(SandboxFaults, failing)

    report = await checkout.reconcile(older_than=timedelta(0))

    # The gateway's storage, not ours, failed: the look-up says nothing, the pass goes on.
    assert (report.unresolved, report.stopped_by, report.failed) == ((payment.id,), None, 0)
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING


async def test_a_charge_made_as_the_gateways_storage_failed_is_unknown_not_failed(
    checkout: CardCheckout,
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    sandbox(checkout).faults = cast(SandboxFaults, FailingAfter("charge", ServiceUnavailable()))

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.PROCESSING  # charged: reconciliation will tell
    assert len(await sandbox(checkout).succeeded_charges()) == 1
