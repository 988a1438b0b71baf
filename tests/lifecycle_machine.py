"""A hypothesis state machine that drives the whole payment lifecycle against a simple model.

Random sequences of customers (with random test cards), invoices, payments (now, later, by
link), refunds, idempotent retries, duplicate and stale gateway events, injected gateway
faults and reconciliation; after every step the invariants of the contract are checked.
The same machine runs on every storage adapter: subclass it with another `make_checkout`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from adapters.clock import ManualClock
from adapters.sandbox import Fault, SandboxFaults
from core.errors import CheckoutError
from core.gateway import ChargeResult, ChargeStatus, GatewayEvent, GatewayEventType, GatewayFailure
from core.model import (
    LIVE_STATUSES,
    PAID_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Customer,
    Invoice,
    PaymentStatus,
)
from core.money import Money
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    AUTHENTICATION_REQUIRED,
    DECLINED,
    ENV,
    EXPIRED,
    INSUFFICIENT_FUNDS,
    VISA,
    card_payment,
    in_memory_checkout,
    sandbox,
)

# What an off-session charge of each card must end as (None: no card saved at all).
EXPECTED_CARD_OUTCOME: dict[str | None, str] = {
    VISA: "succeeded",
    DECLINED: "card_declined",
    INSUFFICIENT_FUNDS: "insufficient_funds",
    AUTHENTICATION_REQUIRED: "authentication_required",
    EXPIRED: "expired_card",
    None: "no_default_payment_method",
}
AMOUNTS = {"usd": ["150.00", "0.50", "99999.99"], "jpy": ["1500", "1"], "kwd": ["1.250", "0.010"]}
KEYS = st.sampled_from([None, None, "key-a", "key-b", "key-c"])


class PaymentLifecycle(RuleBasedStateMachine):
    customers = Bundle("customers")
    invoices = Bundle("invoices")
    payments = Bundle("payments")

    def make_checkout(self, clock: ManualClock, faults: SandboxFaults) -> CardCheckout:
        return in_memory_checkout(clock=clock, faults=faults)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.faults = SandboxFaults()
        self.checkout = self.make_checkout(self.clock, self.faults)
        self.card_of: dict[str, str | None] = {}  # customer id -> the default card's number
        self.seen_status: dict[str, PaymentStatus] = {}
        # Idempotency keys this run used: key -> (invoice id, whether it was for "process now").
        self.keys: dict[str, tuple[str, bool]] = {}

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.checkout.aclose())
        self.loop.close()

    @staticmethod
    def _body(invoice: Invoice, **overrides: object) -> dict[str, object]:
        """A payment for what remains, or for the whole amount once paid (to be refused)."""
        body = card_payment(invoice, **overrides)
        if invoice.amount_remaining.is_zero:
            body["amount"] = invoice.amount_due.amount
        return body

    # Rules -------------------------------------------------------------------------------

    @initialize()
    def start_clock(self) -> None:
        self.clock.advance(timedelta(days=1))

    @rule(
        target=customers,
        card=st.sampled_from([VISA, VISA, DECLINED, INSUFFICIENT_FUNDS, AUTHENTICATION_REQUIRED,
                              EXPIRED, None]),
    )  # fmt: skip
    def new_customer(self, card: str | None) -> Customer:
        customer = self.run(
            self.checkout.create_customer(ENV, {"external_id": f"ext-{len(self.card_of)}"})
        )
        if card is not None:
            planned, self.faults.plan = self.faults.plan, {}  # faults are for payments
            setup = self.run(self.checkout.setup_card(ENV, customer.id))
            self.run(self.checkout.complete_sandbox_checkout(setup.id, card))
            self.faults.plan = planned
        self.card_of[customer.id] = card
        return customer

    @rule(
        target=invoices,
        customer=customers,
        currency=st.sampled_from(sorted(AMOUNTS)),
        pick=st.integers(0, 2),
        finalized=st.booleans(),
    )
    def new_invoice(self, customer: Customer, currency: str, pick: int, finalized: bool) -> Invoice:
        amount = AMOUNTS[currency][pick % len(AMOUNTS[currency])]
        status = "FINALIZED" if finalized else "DRAFT"
        return self.run(
            self.checkout.create_invoice(
                ENV,
                {
                    "customer_id": customer.id,
                    "currency": currency,
                    "amount_due": Decimal(amount),
                    "status": status,
                },
            )
        )

    @rule(invoice=invoices)
    def finalize(self, invoice: Invoice) -> None:
        try:
            self.run(self.checkout.finalize_invoice(ENV, invoice.id))
        except CheckoutError as error:
            assert error.code == "invalid_state_transition"

    @rule(target=payments, invoice=invoices, now=st.booleans(), key=KEYS)
    def pay_by_card(self, invoice: Invoice, now: bool, key: str | None) -> str:
        current = self.run(self.checkout.get_invoice(ENV, invoice.id))
        body = self._body(current, process_payment=now)
        had_fault = any(self.faults.plan.values())
        reused = key is not None and key in self.keys
        try:
            payment = self.run(self.checkout.create_payment(ENV, body, idempotency_key=key))
        except CheckoutError as error:
            assert error.code in {
                "invoice_not_finalized", "invoice_already_paid", "payment_in_progress",
                "idempotency_key_reused", "gateway_error", *EXPECTED_CARD_OUTCOME.values(),
            }, error  # fmt: skip
            if error.code in EXPECTED_CARD_OUTCOME.values() and not reused:
                card = self.card_of[current.customer_id]
                assert error.code == EXPECTED_CARD_OUTCOME[card]
                assert error.details["payment_id"]
            if key is not None and error.code not in {"idempotency_key_reused"} and not reused:
                self.keys.setdefault(key, (invoice.id, now))
            return str(error.details.get("payment_id", ""))
        if key is not None:
            self.keys.setdefault(key, (invoice.id, now))
        if now and not had_fault and not reused and payment.status is not PaymentStatus.INITIATED:
            expected = EXPECTED_CARD_OUTCOME[self.card_of[current.customer_id]]
            assert payment.status.value == expected, (payment.status, expected)
        return payment.id

    @rule(
        target=payments,
        invoice=invoices,
        save=st.booleans(),
        card=st.sampled_from([VISA, AUTHENTICATION_REQUIRED]),
    )
    def pay_by_link(self, invoice: Invoice, save: bool, card: str) -> str:
        current = self.run(self.checkout.get_invoice(ENV, invoice.id))
        body = self._body(
            current, payment_method_type="PAYMENT_LINK", save_card_and_make_default=save
        )
        try:
            payment = self.run(self.checkout.create_payment(ENV, body))
        except CheckoutError as error:
            assert error.code in {"invoice_not_finalized", "invoice_already_paid",
                                  "payment_in_progress", "gateway_error"}, error  # fmt: skip
            return ""
        if payment.gateway_tracking_id is None:
            return payment.id  # the hosted page was not opened: reconciliation opens it
        self.run(self.checkout.complete_sandbox_checkout(payment.gateway_tracking_id, card))
        settled = self.run(self.checkout.get_payment(ENV, payment.id))
        assert settled.status is PaymentStatus.SUCCEEDED
        if save:
            self.card_of[current.customer_id] = card
        return payment.id

    @rule(payment_id=payments, key=KEYS)
    def process_later(self, payment_id: str, key: str | None) -> None:
        if not payment_id:
            return
        try:
            self.run(self.checkout.process_payment(ENV, payment_id, idempotency_key=key))
        except CheckoutError as error:
            assert error.code in {
                "invalid_state_transition", "invoice_already_paid", "invoice_voided",
                "idempotency_key_reused", "gateway_error", "validation_error",
                *EXPECTED_CARD_OUTCOME.values(),
            }, error  # fmt: skip

    @rule(payment_id=payments, part=st.sampled_from(["all", "half", "minimum", "too much"]),
          key=KEYS)  # fmt: skip
    def refund(self, payment_id: str, part: str, key: str | None) -> None:
        if not payment_id:
            return
        payment = self.run(self.checkout.get_payment(ENV, payment_id))
        body: dict[str, object] = {}
        if payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED):
            step = Money.from_minor_units(payment.currency.gateway_step, payment.currency)
            if part == "half" and payment.refundable > step:
                units = payment.refundable.to_minor_units() // 2
                units -= units % payment.currency.gateway_step
                body["amount"] = str(Money.from_minor_units(units, payment.currency))
            elif part == "minimum":
                body["amount"] = str(step)
            elif part == "too much":
                body["amount"] = str(payment.amount + step)
        try:
            self.run(self.checkout.refund_payment(ENV, payment_id, body, idempotency_key=key))
        except CheckoutError as error:
            assert error.code in {
                "invalid_state_transition", "refund_exceeds_payment", "idempotency_key_reused",
                "gateway_error", "validation_error",
            }, error  # fmt: skip

    @rule(fault=st.sampled_from([Fault.TIMEOUT_AFTER, Fault.ERROR_BEFORE, Fault.REJECT]),
          operation=st.sampled_from(["charge", "refund", "create_checkout_session"]))  # fmt: skip
    def inject_fault(self, fault: Fault, operation: str) -> None:
        self.faults.schedule(operation, fault)

    @rule()
    def reconcile(self) -> None:
        self.faults.clear()
        self.clock.advance(timedelta(minutes=5))
        report = self.run(self.checkout.reconcile(older_than=timedelta(seconds=30)))
        assert report.errors == (), report.errors  # a pass reports an item's error, not raises
        # With the gateway answering again, every card charge in flight is settled.
        page = self.run(self.checkout.list_payments(ENV, payment_status="processing", limit=100))
        stuck = [p.id for p in page.items if p.method_type.value == "CARD"]
        assert not stuck, (stuck, report)

    @rule(payment_id=payments, kind=st.sampled_from(["failed", "succeeded"]))
    def stale_or_duplicate_gateway_event(self, payment_id: str, kind: str) -> None:
        """An event that arrives late, twice, or contradicts a settled payment."""
        if not payment_id:
            return
        payment = self.run(self.checkout.get_payment(ENV, payment_id))
        if payment.gateway_tracking_id is None or payment.status is PaymentStatus.PROCESSING:
            return  # only events about settled outcomes: they must change nothing
        before = payment
        succeeded = kind == "succeeded"
        event = GatewayEvent(
            id=f"evt_stale_{payment_id}_{kind}",
            type=GatewayEventType.PAYMENT_SUCCEEDED
            if succeeded
            else GatewayEventType.PAYMENT_FAILED,
            created_at=self.clock.now(),
            metadata={"payment_id": payment.id, "environment_id": ENV},
            charge=ChargeResult(
                status=ChargeStatus.SUCCEEDED if succeeded else ChargeStatus.FAILED,
                intent_id=payment.gateway_tracking_id,
                failure=None if succeeded else GatewayFailure("card_declined", "late decline"),
            ),
        )
        self.run(self.checkout.handle_gateway_event(event))
        self.run(self.checkout.handle_gateway_event(event))
        after = self.run(self.checkout.get_payment(ENV, payment_id))
        assert after.status is before.status
        assert after.amount_refunded == before.amount_refunded

    # Invariants --------------------------------------------------------------------------

    def _all_payments(self) -> list[Any]:
        found: list[Any] = []
        after: str | None = None
        while True:
            page = self.run(self.checkout.list_payments(ENV, limit=100, starting_after=after))
            found.extend(page.items)
            if not page.has_more:
                return found
            after = page.items[-1].id

    @invariant()
    def the_books_balance(self) -> None:
        payments = self._all_payments()
        charges = self.run(sandbox(self.checkout).succeeded_charges())
        charges_per_invoice = Counter(c["metadata"].get("invoice_id") for c in charges)
        # No invoice is ever charged twice at the gateway.
        assert all(count <= 1 for count in charges_per_invoice.values()), charges_per_invoice
        by_invoice: dict[str, list[Any]] = {}
        for payment in payments:
            by_invoice.setdefault(payment.invoice_id, []).append(payment)
            self._check_payment(payment)
        for invoice_id, group in by_invoice.items():
            invoice = self.run(self.checkout.get_invoice(ENV, invoice_id))
            paid = [p for p in group if p.status in PAID_STATUSES]
            assert len([p for p in group if p.status in LIVE_STATUSES]) <= 1
            assert len(paid) <= 1
            zero = Money.zero(invoice.currency)
            assert invoice.amount_paid == sum((p.amount for p in paid), zero)
            assert invoice.amount_refunded == sum((p.amount_refunded for p in paid), zero)
            assert invoice.amount_paid <= invoice.amount_due
            assert invoice.amount_refunded <= invoice.amount_paid
            if paid:
                assert invoice.paid_at is not None
                assert invoice.amount_remaining.is_zero
                # A paid payment is backed by exactly one gateway charge.
                assert charges_per_invoice[invoice_id] == 1

    def _check_payment(self, payment: Any) -> None:
        previous = self.seen_status.get(payment.id)
        if previous is not None and previous in TERMINAL_STATUSES:
            assert payment.status is previous, f"{payment.id} left terminal {previous}"
        self.seen_status[payment.id] = payment.status
        assert payment.amount_refunded + payment.refund_reserved <= payment.amount
        events = self.run(self.checkout.payment_events(ENV, payment.id))
        assert events[0].from_status is None
        assert events[0].to_status is PaymentStatus.INITIATED
        for earlier, later in itertools.pairwise(events):
            assert later.sequence > earlier.sequence
            assert later.from_status is earlier.to_status
            assert later.to_status in TRANSITIONS[earlier.to_status]
        assert events[-1].to_status is payment.status
        if payment.status is PaymentStatus.FAILED:
            assert payment.failure is not None
            assert payment.failed_at is not None
        if payment.status in PAID_STATUSES:
            assert payment.succeeded_at is not None
            assert payment.gateway_tracking_id
