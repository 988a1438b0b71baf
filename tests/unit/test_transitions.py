"""core.model: the payment lifecycle exactly as the contract draws it, and invoice states."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import CheckoutError, InvalidStateTransition
from core.model import (
    PAYMENT_STATUS_TRANSITIONS,
    Actor,
    ChargeDetails,
    Failure,
    Invoice,
    InvoicePaymentStatus,
    InvoiceStatus,
    Payment,
    PaymentMethodType,
    PaymentStatus,
)
from core.money import Money

T0 = datetime(2024, 1, 20, 10, 30, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)

# The contract's statuses and table, written out: never derived from core.model.
STATUSES = {"initiated", "processing", "succeeded", "partially_refunded", "refunded", "failed"}
ALLOWED = {
    ("initiated", "processing"),
    ("initiated", "failed"),
    ("processing", "succeeded"),
    ("processing", "failed"),
    ("succeeded", "partially_refunded"),
    ("succeeded", "refunded"),
    ("partially_refunded", "partially_refunded"),
    ("partially_refunded", "refunded"),
}
TERMINAL = ["failed", "refunded"]
ALL_PAIRS = sorted(itertools.product(STATUSES, repeat=2))

# Which timestamp a move into each status must set.
STAMP_FOR = {"succeeded": "succeeded_at", "failed": "failed_at", "refunded": "refunded_at"}


def payment(status: str = "initiated", version: int = 1) -> Payment:
    return Payment(
        id="pay_1",
        environment_id="env_test",
        invoice_id="inv_1",
        customer_id="cust_1",
        amount=Money.of("150.00", "usd"),
        method_type=PaymentMethodType.CARD,
        status=PaymentStatus(status),
        created_at=T0,
        updated_at=T0,
        version=version,
    )


def invoice(status: InvoiceStatus = InvoiceStatus.DRAFT, paid: str | None = None) -> Invoice:
    extra: dict[str, object] = {} if paid is None else {"amount_paid": Money.of(paid, "usd")}
    return Invoice(
        id="inv_1",
        environment_id="env_test",
        customer_id="cust_1",
        amount_due=Money.of("150.00", "usd"),
        status=status,
        created_at=T0,
        updated_at=T0,
        **extra,  # type: ignore[arg-type]
    )


def test_the_statuses_are_the_contracts_spelled_lowercase() -> None:
    assert {status.value for status in PaymentStatus} == STATUSES


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS)
def test_every_pair_moves_exactly_when_the_contract_allows_it(source: str, target: str) -> None:
    before = payment(source, version=3)
    snapshot = attrs.asdict(before, recurse=False)
    if (source, target) in ALLOWED:
        moved, event = before.transition(
            PaymentStatus(target), at=T1, reason="because", actor=Actor.GATEWAY
        )
        assert moved.status == target
        assert moved.version == 4
        assert moved.updated_at == T1
        assert event.from_status == source
        assert event.to_status == target
        assert event.reason == "because"
        assert event.actor is Actor.GATEWAY
        assert event.occurred_at == T1
        assert event.sequence == moved.event_count == before.event_count + 1
        assert event.payment_id == before.id
        assert event.environment_id == before.environment_id
    else:
        with pytest.raises(InvalidStateTransition) as error:
            before.transition(PaymentStatus(target), at=T1, reason="because", actor=Actor.API)
        assert error.value.code == "invalid_state_transition"
        assert error.value.details["payment_id"] == "pay_1"
        assert error.value.details["actual"] == source
    assert attrs.asdict(before, recurse=False) == snapshot


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED))
def test_a_move_stamps_the_time_of_its_outcome_and_nothing_else(source: str, target: str) -> None:
    moved, _ = payment(source).transition(
        PaymentStatus(target), at=T1, reason="r", actor=Actor.WEBHOOK
    )
    for status, stamp in STAMP_FOR.items():
        assert getattr(moved, stamp) == (T1 if status == target else None), stamp
    assert moved.created_at == T0


@pytest.mark.parametrize("source", TERMINAL)
def test_failed_and_refunded_are_terminal(source: str) -> None:
    for target in PaymentStatus:
        with pytest.raises(InvalidStateTransition):
            payment(source).transition(target, at=T1, reason="r", actor=Actor.RECONCILER)


def test_a_transition_carries_other_changes_along() -> None:
    moved, _ = payment("initiated").transition(
        PaymentStatus.PROCESSING,
        at=T1,
        reason="charging",
        actor=Actor.API,
        details=ChargeDetails(tracking_id="pi_123", card_brand="visa", card_last4="4242"),
    )
    assert (moved.gateway_tracking_id, moved.card_brand, moved.card_last4) == (
        "pi_123",
        "visa",
        "4242",
    )


def test_a_failure_is_recorded_only_by_the_move_to_failed() -> None:
    failure = Failure("card_declined", "Declined.", "card_declined", "generic_decline")
    failed, _ = payment("processing").transition(
        PaymentStatus.FAILED, at=T1, reason="r", actor=Actor.API, failure=failure
    )
    assert failed.failure == failure
    error = failed.failure_error()
    assert error is not None
    assert (error.code, error.details["decline_code"]) == ("card_declined", "generic_decline")
    assert payment("processing").failure_error() is None


def test_named_changes_keep_the_status_and_take_the_next_version() -> None:
    before = payment("processing", version=3)
    told = before.with_details(ChargeDetails(tracking_id="pi_9"), T1)
    assert (told.status, told.version, told.gateway_tracking_id) == (before.status, 4, "pi_9")
    assert told.with_details(ChargeDetails(tracking_id="pi_9"), T1) is told  # nothing new
    linked = before.with_checkout("cs_1", "https://pay.example/cs_1", T1)
    assert (linked.status, linked.version, linked.payment_url) == (
        before.status,
        4,
        "https://pay.example/cs_1",
    )


def test_start_records_the_creation_as_the_first_event() -> None:
    created, event = Payment.start(
        at=T0,
        id="pay_1",
        environment_id="env_test",
        invoice_id="inv_1",
        customer_id="cust_1",
        amount=Money.of("150.00", "usd"),
        method_type=PaymentMethodType.CARD,
    )
    assert created.status is PaymentStatus.INITIATED
    assert created.version == 1
    assert event.sequence == 1
    assert event.from_status is None
    assert event.to_status is PaymentStatus.INITIATED
    assert event.actor is Actor.API
    assert event.occurred_at == T0


def test_the_whole_lifecycle_numbers_its_events_consecutively() -> None:
    current = payment("initiated")
    sequences = [current.event_count]
    for target in ("processing", "succeeded", "partially_refunded", "partially_refunded"):
        current, event = current.transition(
            PaymentStatus(target), at=T1, reason=target, actor=Actor.API
        )
        sequences.append(event.sequence)
    current, event = current.transition(
        PaymentStatus.REFUNDED, at=T1, reason="rest", actor=Actor.API
    )
    sequences.append(event.sequence)
    assert sequences == [1, 2, 3, 4, 5, 6]
    assert current.status is PaymentStatus.REFUNDED


def test_changes_that_keep_the_status_leave_no_gap_in_the_events_numbers() -> None:
    """A payment's version also moves when it learns its charge or reserves a refund: its
    events were numbered by version (1, 2, 3, 5, 7)."""
    current, created = Payment.start(
        at=T0, id="pay_1", environment_id="env_test", invoice_id="inv_1",
        customer_id="cust_1", amount=Money.of("150.00", "usd"),
        method_type=PaymentMethodType.CARD,
    )  # fmt: skip
    sequences = [created.sequence]

    def to(target: PaymentStatus, payment: Payment) -> Payment:
        moved, event = payment.transition(target, at=T1, reason="r", actor=Actor.API)
        sequences.append(event.sequence)
        return moved

    current = to(PaymentStatus.PROCESSING, current)
    current = to(PaymentStatus.SUCCEEDED, current.with_details(ChargeDetails("pi_9"), T1))
    reserved = current.with_refund_reserved(Money.of("10.00", "usd"), T1)
    current = to(PaymentStatus.PARTIALLY_REFUNDED, reserved)
    assert sequences == [1, 2, 3, 4]
    assert (current.version, current.event_count) == (6, 4)


@given(st.lists(st.sampled_from(sorted(STATUSES)), max_size=12))
def test_any_sequence_of_requests_follows_the_table(targets: list[str]) -> None:
    current = payment("initiated")
    accepted = 0
    for target in targets:
        if (current.status.value, target) in ALLOWED:
            moved, event = current.transition(
                PaymentStatus(target), at=T1, reason="r", actor=Actor.API
            )
            assert moved.version == current.version + 1
            assert event.sequence == moved.event_count == current.event_count + 1
            assert event.from_status == current.status
            assert moved.status == target
            current = moved
            accepted += 1
        else:
            snapshot = attrs.asdict(current, recurse=False)
            with pytest.raises(InvalidStateTransition):
                current.transition(PaymentStatus(target), at=T1, reason="r", actor=Actor.API)
            assert attrs.asdict(current, recurse=False) == snapshot
    assert current.version == 1 + accepted


# --- invoices ----------------------------------------------------------------------------------


def test_a_draft_invoice_is_finalized() -> None:
    draft = invoice(InvoiceStatus.DRAFT)
    finalized = draft.finalize(T1)
    assert finalized.status is InvoiceStatus.FINALIZED
    assert finalized.finalized_at == T1
    assert finalized.updated_at == T1
    assert finalized.version == draft.version + 1
    assert draft.status is InvoiceStatus.DRAFT


@pytest.mark.parametrize("status", [InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED])
def test_only_a_draft_invoice_can_be_finalized(status: InvoiceStatus) -> None:
    with pytest.raises(InvalidStateTransition) as error:
        invoice(status).finalize(T1)
    assert error.value.code == "invalid_state_transition"
    assert error.value.details["invoice_id"] == "inv_1"
    assert error.value.details["actual"] == status.value


@pytest.mark.parametrize("status", [InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED])
def test_an_unpaid_invoice_can_be_voided(status: InvoiceStatus) -> None:
    before = invoice(status)
    voided = before.void(T1)
    assert voided.status is InvoiceStatus.VOIDED
    assert voided.voided_at == T1
    assert voided.version == before.version + 1


def test_a_voided_invoice_cannot_be_voided_again() -> None:
    with pytest.raises(CheckoutError) as error:
        invoice(InvoiceStatus.VOIDED).void(T1)
    assert error.value.code == "invoice_voided"


@pytest.mark.parametrize("paid", ["150.00", "0.01"])
def test_a_paid_invoice_cannot_be_voided(paid: str) -> None:
    with pytest.raises(CheckoutError) as error:
        invoice(InvoiceStatus.FINALIZED, paid=paid).void(T1)
    assert error.value.code == "invoice_already_paid"


@pytest.mark.parametrize(
    ("status", "paid", "code"),
    [
        (InvoiceStatus.DRAFT, None, "invoice_not_finalized"),
        (InvoiceStatus.VOIDED, None, "invoice_voided"),
        (InvoiceStatus.FINALIZED, "150.00", "invoice_already_paid"),
    ],
)
def test_only_a_finalized_invoice_with_something_left_is_payable(
    status: InvoiceStatus, paid: str | None, code: str
) -> None:
    with pytest.raises(CheckoutError) as error:
        invoice(status, paid=paid).ensure_payable()
    assert error.value.code == code
    invoice(InvoiceStatus.FINALIZED).ensure_payable()
    invoice(InvoiceStatus.FINALIZED, paid="149.99").ensure_payable()


def test_recording_a_payment_leaves_nothing_remaining() -> None:
    charging = invoice(InvoiceStatus.FINALIZED).with_payment_status(
        InvoicePaymentStatus.PROCESSING, T1
    )
    paid = charging.record_payment(Money.of("150.00", "usd"), T1)
    assert paid.amount_remaining.is_zero
    assert paid.amount_paid == Money.of("150.00", "usd")
    assert paid.payment_status == "succeeded"
    assert paid.paid_at == T1


INVOICE_MOVES = sorted(
    (source.value, target.value)
    for source, targets in PAYMENT_STATUS_TRANSITIONS.items()
    for target in targets
)


@pytest.mark.parametrize("source", [s.value for s in InvoicePaymentStatus])
@pytest.mark.parametrize("target", [s.value for s in InvoicePaymentStatus])
def test_an_invoices_payments_move_only_along_their_table(source: str, target: str) -> None:
    before = attrs.evolve(
        invoice(InvoiceStatus.FINALIZED), payment_status=InvoicePaymentStatus(source)
    )
    if (source, target) in INVOICE_MOVES:
        moved = before.with_payment_status(InvoicePaymentStatus(target), T1)
        assert (moved.payment_status, moved.version) == (target, before.version + 1)
        return
    with pytest.raises(InvalidStateTransition):
        before.with_payment_status(InvoicePaymentStatus(target), T1)


def test_a_pending_invoice_cannot_be_paid_without_a_payment_in_flight() -> None:
    with pytest.raises(InvalidStateTransition):
        invoice(InvoiceStatus.FINALIZED).record_payment(Money.of("150.00", "usd"), T1)
