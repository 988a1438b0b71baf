"""Reconciliation moves a payment only on a definite answer: `processing` is not a failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from adapters.clock import ManualClock
from adapters.ids import UlidIdGenerator
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import SandboxPaymentGateway
from core.gateway import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CheckoutSession,
    CheckoutSessionRequest,
    CustomerRequest,
    GatewayCustomer,
    GatewayPaymentMethod,
    GatewayRefund,
    GatewayUnavailable,
    RefundRequest,
)
from core.model import PaymentStatus
from entrypoints.bootstrap import CardCheckout, bootstrap
from tests.helpers import ENV, VISA, card_payment, finalized_invoice


class SlowToSettleGateway:
    """The sandbox, except that a charge's answer is lost and a look-up says `answer`."""

    def __init__(self, sandbox: SandboxPaymentGateway) -> None:
        self.sandbox = sandbox
        self.answer = ChargeStatus.PROCESSING
        self.lookups: list[str | None] = []

    async def create_customer(self, request: CustomerRequest) -> str:
        return await self.sandbox.create_customer(request)

    async def get_customer(self, gateway_customer_id: str) -> GatewayCustomer:
        return await self.sandbox.get_customer(gateway_customer_id)

    async def list_payment_methods(
        self, gateway_customer_id: str
    ) -> Sequence[GatewayPaymentMethod]:
        return await self.sandbox.list_payment_methods(gateway_customer_id)

    async def get_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> GatewayPaymentMethod | None:
        return await self.sandbox.get_payment_method(gateway_customer_id, payment_method_id)

    async def set_default_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> None:
        await self.sandbox.set_default_payment_method(gateway_customer_id, payment_method_id)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        raise GatewayUnavailable("the connection was lost before the gateway answered")

    async def find_charge(self, request: ChargeRequest, intent_id: str | None) -> ChargeResult:
        self.lookups.append(intent_id)
        return ChargeResult(
            status=self.answer,
            intent_id="pi_slow_to_settle",
            payment_method_id=request.payment_method_id,
            card_brand="visa",
            card_last4="4242",
        )

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        return await self.sandbox.refund(request)

    async def create_checkout_session(self, request: CheckoutSessionRequest) -> CheckoutSession:
        return await self.sandbox.create_checkout_session(request)

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return await self.sandbox.get_checkout_session(session_id)


def _checkout(clock: ManualClock) -> tuple[CardCheckout, SlowToSettleGateway]:
    sandbox = SandboxPaymentGateway(clock=clock, ids=UlidIdGenerator())
    gateway = SlowToSettleGateway(sandbox)
    checkout = bootstrap(
        uow=InMemoryUnitOfWorkFactory(),
        gateway=gateway,
        clock=clock,
        notifier=RecordingNotifier(),
    )
    sandbox.event_sink = checkout.handle_gateway_event  # its hosted pages report to us
    return checkout, gateway


async def test_a_processing_answer_at_reconciliation_leaves_the_payment_processing() -> None:
    clock = ManualClock()
    checkout, gateway = _checkout(clock)
    customer = await checkout.create_customer(ENV, {"external_id": "slow"})
    setup = await checkout.setup_card(ENV, customer.id)
    await gateway.sandbox.complete_checkout_session(setup.id, VISA)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING  # the charge's answer was lost (202)

    clock.advance(timedelta(minutes=5))
    report = await checkout.reconcile(older_than=timedelta(0))

    assert gateway.lookups, "reconciliation did not ask the gateway"
    assert report.examined == 1
    assert report.failed == 0
    assert report.succeeded == 0
    assert payment.id in report.unresolved
    after = await checkout.get_payment(ENV, payment.id)
    assert after.status is PaymentStatus.PROCESSING
    assert after.failure is None
    assert after.failed_at is None
    events = await checkout.payment_events(ENV, payment.id)
    assert PaymentStatus.FAILED not in {event.to_status for event in events}
    held = await checkout.get_invoice(ENV, invoice.id)
    assert held.payment_status.value == "processing"
    assert held.amount_remaining == invoice.amount_remaining

    # The gateway settles the charge: the next pass records it as succeeded.
    gateway.answer = ChargeStatus.SUCCEEDED
    clock.advance(timedelta(minutes=5))
    report = await checkout.reconcile(older_than=timedelta(0))

    assert (report.succeeded, report.failed, report.unresolved) == (1, 0, ())
    settled = await checkout.get_payment(ENV, payment.id)
    assert settled.status is PaymentStatus.SUCCEEDED
    assert settled.gateway_tracking_id == "pi_slow_to_settle"
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert paid.payment_status.value == "succeeded"
    assert paid.amount_remaining.amount == 0
