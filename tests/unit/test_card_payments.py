"""CARD payments through the library facade, on in-memory storage and the sandbox gateway.

One test per promise of the product page (card-payment-checkout-flow.md) and the contract
(API.md): the success row, each failing test card, payment method selection, the invoice checks,
processing later, idempotency keys, gateway faults with reconciliation, events, notifications
and currencies with zero and three decimals.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import Fault, SandboxFaults, SandboxPaymentGateway
from core.errors import CheckoutError
from core.gateway import ChargeRequest, ChargeResult, ChargeStatus, GatewayEvent, GatewayEventType
from core.model import (
    Actor,
    InvoicePaymentStatus,
    InvoiceStatus,
    Notification,
    PaymentMethodType,
    PaymentStatus,
)
from entrypoints.bootstrap import CardCheckout, bootstrap
from tests.helpers import (
    AUTHENTICATION_REQUIRED,
    DECLINED,
    ENV,
    EXPIRED,
    INSUFFICIENT_FUNDS,
    OTHER_ENV,
    VISA,
    HeldGateway,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
    notifier,
    sandbox,
    use_gateway,
)


async def payments_of(checkout: CardCheckout, invoice_id: str, env: str = ENV) -> list[str]:
    page = await checkout.list_payments(env, destination_id=invoice_id)
    return [p.id for p in page.items]


# The product page: a saved default card succeeds ------------------------------------------


async def test_default_card_payment_succeeds_and_pays_the_invoice(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    clock.advance(timedelta(minutes=5))

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.id.startswith("pay_")
    assert str(payment.amount) == "150.00"
    assert payment.currency.code == "usd"
    assert payment.customer_id == customer.id
    assert payment.invoice_id == invoice.id
    assert payment.method_type is PaymentMethodType.CARD
    assert payment.card_brand == "visa"
    assert payment.card_last4 == "4242"
    assert payment.gateway_tracking_id is not None
    assert payment.gateway_tracking_id.startswith("pi_")
    assert payment.payment_method_id is not None
    assert payment.payment_method_id.startswith("pm_")
    assert payment.failure is None
    assert payment.succeeded_at == clock.now()
    assert payment.failed_at is None
    assert str(payment.amount_refunded) == "0.00"

    paid = await checkout.get_invoice(ENV, invoice.id)
    assert str(paid.amount_paid) == "150.00"
    assert str(paid.amount_remaining) == "0.00"
    assert paid.payment_status is InvoicePaymentStatus.SUCCEEDED
    assert paid.paid_at == clock.now()
    assert paid.status is InvoiceStatus.FINALIZED


async def test_successful_payment_is_readable_and_charged_exactly_once(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert await checkout.get_payment(ENV, payment.id) == payment
    charges = await sandbox(checkout).charges_for(payment.id)
    assert len(charges) == 1
    charge = charges[0]
    assert charge["id"] == payment.gateway_tracking_id
    assert charge["amount"] == 15000
    assert charge["currency"] == "usd"
    assert charge["customer"] == customer.gateway_customer_id
    assert charge["payment_method"] == payment.payment_method_id
    assert charge["metadata"] == {
        "payment_id": payment.id,
        "invoice_id": invoice.id,
        "environment_id": ENV,
    }


async def test_payment_uses_the_card_saved_as_the_customers_default(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    [card] = await checkout.list_payment_methods(ENV, customer.id)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert card.is_default is True
    assert payment.payment_method_id == card.id


# The product page: the failing test cards ----------------------------------------------------

FAILING_CARDS = [
    pytest.param(
        DECLINED, "card_declined", "contact_bank", "card_declined", "generic_decline",
        id="declined",
    ),
    pytest.param(
        INSUFFICIENT_FUNDS, "insufficient_funds", "use_different_payment_method",
        "card_declined", "insufficient_funds",
        id="insufficient_funds",
    ),
    pytest.param(
        AUTHENTICATION_REQUIRED, "authentication_required", "create_payment_link",
        "authentication_required", "authentication_required",
        id="authentication_required",
    ),
    pytest.param(
        EXPIRED, "expired_card", "update_payment_method", "expired_card", "expired_card",
        id="expired_card",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("card", "code", "next_action", "stripe_error_code", "decline_code"), FAILING_CARDS
)
async def test_failing_test_card_raises_its_code_with_next_action_and_ids(
    checkout: CardCheckout,
    card: str,
    code: str,
    next_action: str,
    stripe_error_code: str,
    decline_code: str,
) -> None:
    customer = await customer_with_card(checkout, card)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == code
    assert error.message
    [payment_id] = await payments_of(checkout, invoice.id)
    assert error.details["next_action"] == next_action
    assert error.details["payment_id"] == payment_id
    assert error.details["customer_id"] == customer.id
    assert error.details["invoice_id"] == invoice.id
    assert error.details["stripe_error_code"] == stripe_error_code
    assert error.details["decline_code"] == decline_code


@pytest.mark.parametrize(
    ("card", "code", "next_action", "stripe_error_code", "decline_code"), FAILING_CARDS
)
async def test_failing_test_card_leaves_the_payment_readable_as_failed_with_its_failure(
    checkout: CardCheckout,
    clock: ManualClock,
    card: str,
    code: str,
    next_action: str,
    stripe_error_code: str,
    decline_code: str,
) -> None:
    customer = await customer_with_card(checkout, card)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    payment = await checkout.get_payment(ENV, str(error.details["payment_id"]))
    assert payment.status is PaymentStatus.FAILED
    assert payment.failure is not None
    assert payment.failure.code == code
    assert payment.failure.gateway_code == stripe_error_code
    assert payment.failure.decline_code == decline_code
    assert payment.failure.message == error.message
    assert payment.failed_at == clock.now()
    assert payment.succeeded_at is None
    assert payment.card_last4 == card[-4:]
    assert payment.gateway_tracking_id is not None
    assert await sandbox(checkout).charges_for(payment.id) == []

    unpaid = await checkout.get_invoice(ENV, invoice.id)
    assert unpaid.payment_status is InvoicePaymentStatus.FAILED
    assert str(unpaid.amount_paid) == "0.00"
    assert str(unpaid.amount_remaining) == "150.00"
    assert unpaid.paid_at is None


@pytest.mark.parametrize("card", [DECLINED, INSUFFICIENT_FUNDS, AUTHENTICATION_REQUIRED, EXPIRED])
async def test_invoice_left_by_a_failed_card_is_paid_after_the_customer_saves_a_new_card(
    checkout: CardCheckout, card: str
) -> None:
    customer = await customer_with_card(checkout, card)
    invoice = await finalized_invoice(checkout, customer)
    failed = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, VISA)
    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.id != failed.details["payment_id"]
    assert payment.card_last4 == "4242"
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert paid.payment_status is InvoicePaymentStatus.SUCCEEDED
    assert str(paid.amount_remaining) == "0.00"
    statuses = {p.id: p.status for p in (await checkout.list_payments(ENV)).items}
    assert statuses == {
        failed.details["payment_id"]: PaymentStatus.FAILED,
        payment.id: PaymentStatus.SUCCEEDED,
    }


# Payment method selection ------------------------------------------------------------------


async def test_customer_without_default_card_gets_no_default_payment_method(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "no_default_payment_method"
    assert error.details["next_action"] == "create_payment_link"
    assert error.details["customer_id"] == customer.id
    [payment_id] = await payments_of(checkout, invoice.id)
    assert error.details["payment_id"] == payment_id


async def test_payment_without_a_default_card_is_recorded_failed_and_nothing_is_charged(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    payment = await checkout.get_payment(ENV, str(error.details["payment_id"]))
    assert payment.status is PaymentStatus.FAILED
    assert payment.failure is not None
    assert payment.failure.code == "no_default_payment_method"
    assert payment.payment_method_id is None
    assert payment.gateway_tracking_id is None
    assert await sandbox(checkout).succeeded_charges() == []
    events = await checkout.payment_events(ENV, payment.id)
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, PaymentStatus.INITIATED),
        (PaymentStatus.INITIATED, PaymentStatus.FAILED),
    ]
    unpaid = await checkout.get_invoice(ENV, invoice.id)
    assert unpaid.payment_status is InvoicePaymentStatus.FAILED


async def test_given_payment_method_id_of_the_customer_is_charged_instead_of_the_default(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, VISA)
    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, EXPIRED)  # the new default
    cards = {card.last4: card for card in await checkout.list_payment_methods(ENV, customer.id)}
    assert cards["0069"].is_default is True
    assert cards["4242"].is_default is False
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(
        ENV, card_payment(invoice, payment_method_id=cards["4242"].id)
    )

    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.payment_method_id == cards["4242"].id
    assert payment.card_last4 == "4242"
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert charge["payment_method"] == cards["4242"].id


async def test_without_payment_method_id_the_default_card_is_charged_not_an_older_one(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, VISA)
    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, EXPIRED)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "expired_card"


async def test_payment_method_of_another_customer_is_payment_method_not_found(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, VISA)
    other = await customer_with_card(checkout, VISA)
    [others_card] = await checkout.list_payment_methods(ENV, other.id)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(
        checkout.create_payment(ENV, card_payment(invoice, payment_method_id=others_card.id))
    )

    assert error.code == "payment_method_not_found"
    assert error.details["next_action"] == "use_different_payment_method"
    assert error.details["customer_id"] == customer.id
    payment = await checkout.get_payment(ENV, str(error.details["payment_id"]))
    assert payment.status is PaymentStatus.FAILED
    assert payment.failure is not None
    assert payment.failure.code == "payment_method_not_found"
    assert await sandbox(checkout).succeeded_charges() == []


async def test_unknown_payment_method_id_is_payment_method_not_found(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(
        checkout.create_payment(ENV, card_payment(invoice, payment_method_id="pm_missing"))
    )

    assert error.code == "payment_method_not_found"
    [payment] = (await checkout.list_payments(ENV)).items
    assert payment.status is PaymentStatus.FAILED


# The invoice checks: the request is wrong, nothing is recorded ------------------------------


async def test_amount_other_than_the_amount_remaining_is_amount_mismatch(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(
        checkout.create_payment(ENV, card_payment(invoice, amount=Decimal("149.99")))
    )

    assert error.code == "amount_mismatch"
    assert error.details["invoice_id"] == invoice.id
    assert error.details["expected"] == "150.00"
    assert error.details["actual"] == "149.99"
    assert (await checkout.list_payments(ENV)).items == []
    assert await sandbox(checkout).succeeded_charges() == []


async def test_currency_other_than_the_invoices_is_currency_mismatch_and_records_nothing(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice, currency="eur")))

    assert error.code == "currency_mismatch"
    assert error.details["expected"] == "usd"
    assert error.details["actual"] == "eur"
    assert (await checkout.list_payments(ENV)).items == []
    assert (await checkout.get_invoice(ENV, invoice.id)).payment_status is (
        InvoicePaymentStatus.PENDING
    )


async def test_currency_code_is_case_insensitive_and_amount_may_be_a_string(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(
        ENV, card_payment(invoice, currency="USD", amount="150")
    )

    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.currency.code == "usd"
    assert str(payment.amount) == "150.00"


async def test_draft_invoice_is_invoice_not_finalized(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    draft = await checkout.create_invoice(
        ENV, {"customer_id": customer.id, "currency": "usd", "amount_due": Decimal("150.00")}
    )

    error = await error_of(checkout.create_payment(ENV, card_payment(draft)))

    assert error.code == "invoice_not_finalized"
    assert error.details["invoice_id"] == draft.id
    assert (await checkout.list_payments(ENV)).items == []


async def test_voided_invoice_is_invoice_voided(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    await checkout.void_invoice(ENV, invoice.id)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "invoice_voided"
    assert (await checkout.list_payments(ENV)).items == []


async def test_paid_invoice_is_invoice_already_paid_and_is_not_charged_again(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    first = await checkout.create_payment(ENV, card_payment(invoice))

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "invoice_already_paid"
    assert error.details["invoice_id"] == invoice.id
    assert await payments_of(checkout, invoice.id) == [first.id]
    assert len(await sandbox(checkout).succeeded_charges()) == 1


async def test_second_payment_while_one_is_initiated_is_payment_in_progress(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    first = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "payment_in_progress"
    assert error.details["invoice_id"] == invoice.id
    assert error.details["payment_id"] == first.id
    assert await payments_of(checkout, invoice.id) == [first.id]
    assert await sandbox(checkout).succeeded_charges() == []


async def test_concurrent_payments_for_one_invoice_charge_it_once(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.latency = 0.01  # so that the two requests interleave

    results = await asyncio.gather(
        checkout.create_payment(ENV, card_payment(invoice)),
        checkout.create_payment(ENV, card_payment(invoice)),
        return_exceptions=True,
    )

    succeeded = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, CheckoutError)]
    assert len(succeeded) == 1
    assert len(refused) == 1
    assert refused[0].code in {"payment_in_progress", "invoice_already_paid"}
    assert await payments_of(checkout, invoice.id) == [succeeded[0].id]
    assert len(await sandbox(checkout).succeeded_charges()) == 1
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert str(paid.amount_paid) == "150.00"


async def test_unknown_invoice_is_invoice_not_found(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice, destination_id="inv_missing")

    error = await error_of(checkout.create_payment(ENV, body))

    assert error.code == "invoice_not_found"
    assert error.details["invoice_id"] == "inv_missing"
    assert (await checkout.list_payments(ENV)).items == []


async def test_unknown_payment_is_payment_not_found(checkout: CardCheckout) -> None:
    assert (await error_of(checkout.get_payment(ENV, "pay_missing"))).code == "payment_not_found"
    assert (
        await error_of(checkout.process_payment(ENV, "pay_missing"))
    ).code == "payment_not_found"
    assert (await error_of(checkout.payment_events(ENV, "pay_missing"))).code == "payment_not_found"


async def test_customer_gone_at_the_gateway_is_customer_not_linked_and_records_nothing(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    assert customer.gateway_customer_id is not None
    await sandbox(checkout).delete_customer(customer.gateway_customer_id)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "customer_not_linked"
    assert (await checkout.list_payments(ENV)).items == []


async def test_invoice_of_another_environment_is_invoice_not_found(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, env=ENV)
    invoice = await finalized_invoice(checkout, customer, env=ENV)

    error = await error_of(checkout.create_payment(OTHER_ENV, card_payment(invoice)))

    assert error.code == "invoice_not_found"
    assert (await checkout.list_payments(OTHER_ENV)).items == []
    assert (await checkout.list_payments(ENV)).items == []


async def test_payment_of_another_environment_is_payment_not_found(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, env=ENV)
    invoice = await finalized_invoice(checkout, customer, env=ENV)
    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert (await error_of(checkout.get_payment(OTHER_ENV, payment.id))).code == (
        "payment_not_found"
    )
    assert (await error_of(checkout.payment_events(OTHER_ENV, payment.id))).code == (
        "payment_not_found"
    )
    assert (await checkout.list_payments(OTHER_ENV)).items == []
    assert [p.id for p in (await checkout.list_payments(ENV)).items] == [payment.id]


# Request validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"amount": 150.0}, "amount", id="float-amount"),
        pytest.param({"amount": Decimal("150.001")}, "amount", id="too-many-decimals"),
        pytest.param({"amount": Decimal("-150.00")}, "amount", id="negative-amount"),
        pytest.param({"currency": "xyz"}, "currency", id="unknown-currency"),
        pytest.param({"destination_type": "SUBSCRIPTION"}, "destination_type", id="destination"),
        pytest.param({"payment_method_type": "ACH"}, "payment_method_type", id="method-type"),
        pytest.param({"payment_gateway": "paypal"}, "payment_gateway", id="gateway"),
        pytest.param({"process_payment": "yes"}, "process_payment", id="process-not-bool"),
        pytest.param({"surprise": "x"}, "surprise", id="unknown-field"),
        pytest.param({"card_number": "x"}, "card_number", id="card-field"),
        pytest.param(
            {"metadata": {"note": "4242 4242 4242 4242"}}, "metadata.note", id="card-in-metadata"
        ),
        pytest.param({"metadata": {"card_last4": "1234"}}, "metadata.card_last4", id="reserved"),
        pytest.param(
            {"save_card_and_make_default": True}, "save_card_and_make_default", id="link-only"
        ),
    ],
)
async def test_malformed_request_is_validation_error_naming_the_field_and_records_nothing(
    checkout: CardCheckout, overrides: dict[str, object], field: str
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice, **overrides)))

    assert error.code == "validation_error"
    assert error.details["field"] == field
    assert (await checkout.list_payments(ENV)).items == []


async def test_missing_required_field_is_validation_error(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)
    del body["process_payment"]

    error = await error_of(checkout.create_payment(ENV, body))

    assert error.code == "validation_error"
    assert error.details["field"] == "process_payment"


async def test_card_number_is_never_echoed_in_the_validation_error(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(
        checkout.create_payment(ENV, card_payment(invoice, metadata={"pan": VISA}))
    )

    assert error.code == "validation_error"
    assert VISA not in error.message
    assert VISA not in repr(error.details)


async def test_callers_metadata_is_kept_on_the_payment(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(
        ENV, card_payment(invoice, metadata={"order": "A-17", "channel": "web"})
    )

    assert dict(payment.metadata) == {"order": "A-17", "channel": "web"}


# Processing later ---------------------------------------------------------------------------


async def test_process_payment_false_leaves_the_payment_initiated_and_charges_nothing(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))

    assert payment.status is PaymentStatus.INITIATED
    assert payment.gateway_tracking_id is None
    assert await sandbox(checkout).succeeded_charges() == []
    pending = await checkout.get_invoice(ENV, invoice.id)
    assert pending.payment_status is InvoicePaymentStatus.PENDING
    assert str(pending.amount_remaining) == "150.00"


async def test_process_payment_charges_an_initiated_payment_once(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))

    payment = await checkout.process_payment(ENV, initiated.id)

    assert payment.id == initiated.id
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.card_last4 == "4242"
    assert len(await sandbox(checkout).charges_for(payment.id)) == 1
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert paid.payment_status is InvoicePaymentStatus.SUCCEEDED
    assert str(paid.amount_remaining) == "0.00"


async def test_processing_a_payment_twice_is_invalid_state_transition(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))
    await checkout.process_payment(ENV, initiated.id)

    error = await error_of(checkout.process_payment(ENV, initiated.id))

    assert error.code == "invalid_state_transition"
    assert error.details["payment_id"] == initiated.id
    assert error.details["actual"] == "succeeded"
    assert len(await sandbox(checkout).charges_for(initiated.id)) == 1


async def test_processing_later_with_a_declined_card_fails_the_payment(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))

    error = await error_of(checkout.process_payment(ENV, initiated.id))

    assert error.code == "card_declined"
    assert error.details["payment_id"] == initiated.id
    assert (await checkout.get_payment(ENV, initiated.id)).status is PaymentStatus.FAILED


async def test_processing_later_uses_the_payment_method_id_given_at_creation(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, VISA)
    [visa] = await checkout.list_payment_methods(ENV, customer.id)
    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(
        ENV, card_payment(invoice, process_payment=False, payment_method_id=visa.id)
    )

    payment = await checkout.process_payment(ENV, initiated.id)

    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.payment_method_id == visa.id


# Idempotency keys ---------------------------------------------------------------------------


async def test_same_key_and_body_replays_the_payment_with_one_charge(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)

    first = await checkout.create_payment(ENV, body, idempotency_key="order-17")
    again = await checkout.create_payment(ENV, dict(body), idempotency_key="order-17")

    assert again == first
    assert again.status is PaymentStatus.SUCCEEDED
    assert len(await sandbox(checkout).charges_for(first.id)) == 1
    assert len(await sandbox(checkout).succeeded_charges()) == 1
    assert await payments_of(checkout, invoice.id) == [first.id]


async def test_same_key_with_another_body_is_idempotency_key_reused(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    other_invoice = await finalized_invoice(checkout, customer, "20.00")
    first = await checkout.create_payment(ENV, card_payment(invoice), idempotency_key="k-1")

    error = await error_of(
        checkout.create_payment(ENV, card_payment(other_invoice), idempotency_key="k-1")
    )

    assert error.code == "idempotency_key_reused"
    assert await payments_of(checkout, other_invoice.id) == []
    assert await payments_of(checkout, invoice.id) == [first.id]


async def test_same_key_with_other_metadata_is_idempotency_key_reused(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    await checkout.create_payment(
        ENV, card_payment(invoice, metadata={"a": "1"}), idempotency_key="k-meta"
    )

    error = await error_of(
        checkout.create_payment(
            ENV, card_payment(invoice, metadata={"a": "2"}), idempotency_key="k-meta"
        )
    )

    assert error.code == "idempotency_key_reused"


async def test_replay_of_a_declined_payment_raises_the_same_error_without_a_new_payment(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, INSUFFICIENT_FUNDS)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)

    first = await error_of(checkout.create_payment(ENV, body, idempotency_key="k-declined"))
    again = await error_of(checkout.create_payment(ENV, body, idempotency_key="k-declined"))

    assert first.code == "insufficient_funds"
    assert again.code == "insufficient_funds"
    assert type(again) is type(first)
    assert again.details == first.details
    assert again.message == first.message
    assert len(await payments_of(checkout, invoice.id)) == 1


async def test_replay_of_a_payment_without_default_card_raises_the_same_error(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)

    first = await error_of(checkout.create_payment(ENV, body, idempotency_key="k-nodefault"))
    again = await error_of(checkout.create_payment(ENV, body, idempotency_key="k-nodefault"))

    assert first.code == again.code == "no_default_payment_method"
    assert again.details["payment_id"] == first.details["payment_id"]
    assert len(await payments_of(checkout, invoice.id)) == 1


async def test_replay_of_an_initiated_payment_returns_it_without_a_second_payment(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice, process_payment=False)

    first = await checkout.create_payment(ENV, body, idempotency_key="k-later")
    again = await checkout.create_payment(ENV, body, idempotency_key="k-later")

    assert again.id == first.id
    assert again.status is PaymentStatus.INITIATED
    assert await payments_of(checkout, invoice.id) == [first.id]


async def test_same_amount_spelled_differently_is_the_same_request(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    first = await checkout.create_payment(
        ENV, card_payment(invoice, amount=Decimal("150.00")), idempotency_key="spelled"
    )
    again = await checkout.create_payment(
        ENV, card_payment(invoice, amount="150", currency="USD"), idempotency_key="spelled"
    )

    assert again == first
    assert len(await sandbox(checkout).succeeded_charges()) == 1


async def test_idempotency_key_is_forgotten_after_24_hours(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)
    await checkout.create_payment(ENV, body, idempotency_key="day-old")
    clock.advance(timedelta(hours=23, minutes=59))
    replayed = await checkout.create_payment(ENV, body, idempotency_key="day-old")
    assert replayed.status is PaymentStatus.SUCCEEDED
    clock.advance(timedelta(minutes=1))

    error = await error_of(checkout.create_payment(ENV, body, idempotency_key="day-old"))

    assert error.code == "invoice_already_paid"
    assert len(await sandbox(checkout).succeeded_charges()) == 1


async def test_process_payment_replayed_with_its_key_charges_once(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))

    first = await checkout.process_payment(ENV, initiated.id, idempotency_key="proc-1")
    again = await checkout.process_payment(ENV, initiated.id, idempotency_key="proc-1")

    assert again == first
    assert first.status is PaymentStatus.SUCCEEDED
    assert len(await sandbox(checkout).charges_for(initiated.id)) == 1


async def test_key_of_a_create_reused_to_process_is_idempotency_key_reused(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(
        ENV, card_payment(invoice, process_payment=False), idempotency_key="one-key"
    )

    error = await error_of(checkout.process_payment(ENV, initiated.id, idempotency_key="one-key"))

    assert error.code == "idempotency_key_reused"
    assert (await checkout.get_payment(ENV, initiated.id)).status is PaymentStatus.INITIATED


async def test_concurrent_processing_of_one_payment_charges_it_once(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))
    faults.latency = 0.01  # so that the two requests interleave

    results = await asyncio.gather(
        checkout.process_payment(ENV, initiated.id),
        checkout.process_payment(ENV, initiated.id),
        return_exceptions=True,
    )

    codes = sorted(r.code if isinstance(r, CheckoutError) else r.status.value for r in results)
    assert codes == ["invalid_state_transition", "succeeded"]
    assert len(await sandbox(checkout).charges_for(initiated.id)) == 1


async def test_idempotency_keys_are_scoped_to_the_environment(checkout: CardCheckout) -> None:
    customer_a = await customer_with_card(checkout, env=ENV)
    customer_b = await customer_with_card(checkout, env=OTHER_ENV)
    invoice_a = await finalized_invoice(checkout, customer_a, env=ENV)
    invoice_b = await finalized_invoice(checkout, customer_b, env=OTHER_ENV)

    paid_a = await checkout.create_payment(ENV, card_payment(invoice_a), idempotency_key="same")
    paid_b = await checkout.create_payment(
        OTHER_ENV, card_payment(invoice_b), idempotency_key="same"
    )

    assert paid_a.id != paid_b.id
    assert paid_a.environment_id == ENV
    assert paid_b.environment_id == OTHER_ENV
    assert paid_b.status is PaymentStatus.SUCCEEDED
    assert len(await sandbox(checkout).succeeded_charges()) == 2


async def test_key_of_another_environment_is_not_replayed_there(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, env=ENV)
    invoice = await finalized_invoice(checkout, customer, env=ENV)
    body = card_payment(invoice)
    await checkout.create_payment(ENV, body, idempotency_key="scoped")

    error = await error_of(checkout.create_payment(OTHER_ENV, body, idempotency_key="scoped"))

    assert error.code == "invoice_not_found"


@pytest.mark.parametrize("key", ["", "x" * 256, "line\nbreak"])
async def test_malformed_idempotency_key_is_validation_error(
    checkout: CardCheckout, key: str
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice), idempotency_key=key))

    assert error.code == "validation_error"
    assert error.details["field"] == "Idempotency-Key"
    assert (await checkout.list_payments(ENV)).items == []


async def test_key_still_in_flight_is_idempotency_key_in_use(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)
    hold = HeldGateway("charge")
    sandbox(checkout).faults = hold  # type: ignore[assignment]

    first = asyncio.create_task(checkout.create_payment(ENV, body, idempotency_key="busy"))
    await hold.started.wait()
    error = await error_of(checkout.create_payment(ENV, body, idempotency_key="busy"))
    hold.release.set()
    payment = await first

    assert error.code == "idempotency_key_in_use"
    assert payment.status is PaymentStatus.SUCCEEDED
    assert await payments_of(checkout, invoice.id) == [payment.id]
    assert len(await sandbox(checkout).succeeded_charges()) == 1


async def test_payment_without_key_while_one_is_charging_is_payment_in_progress(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    hold = HeldGateway("charge")
    sandbox(checkout).faults = hold  # type: ignore[assignment]

    first = asyncio.create_task(checkout.create_payment(ENV, card_payment(invoice)))
    await hold.started.wait()
    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))
    hold.release.set()
    payment = await first

    assert error.code == "payment_in_progress"
    assert error.details["payment_id"] == payment.id
    assert len(await sandbox(checkout).succeeded_charges()) == 1


async def test_retry_with_the_key_after_a_gateway_error_before_recording_succeeds(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("get_customer", Fault.ERROR_BEFORE)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice), idempotency_key="r"))
    assert error.code == "gateway_error"
    assert (await checkout.list_payments(ENV)).items == []

    payment = await checkout.create_payment(ENV, card_payment(invoice), idempotency_key="r")

    assert payment.status is PaymentStatus.SUCCEEDED
    assert len(await sandbox(checkout).succeeded_charges()) == 1


# Gateway faults and reconciliation ----------------------------------------------------------


async def test_timeout_after_the_charge_leaves_the_payment_processing_not_failed(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.PROCESSING
    assert payment.failure is None
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING
    unsettled = await checkout.get_invoice(ENV, invoice.id)
    assert unsettled.payment_status is InvoicePaymentStatus.PROCESSING
    assert str(unsettled.amount_paid) == "0.00"
    # The gateway did charge: only its answer was lost.
    assert len(await sandbox(checkout).charges_for(payment.id)) == 1


async def test_reconcile_settles_a_timed_out_payment_succeeded_with_exactly_one_charge(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    clock.advance(timedelta(seconds=1))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.examined == 1
    assert report.succeeded == 1
    assert report.unresolved == ()
    settled = await checkout.get_payment(ENV, payment.id)
    assert settled.status is PaymentStatus.SUCCEEDED
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert settled.gateway_tracking_id == charge["id"]
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert paid.payment_status is InvoicePaymentStatus.SUCCEEDED
    assert str(paid.amount_remaining) == "0.00"
    events = await checkout.payment_events(ENV, payment.id)
    assert events[-1].to_status is PaymentStatus.SUCCEEDED
    assert events[-1].actor is Actor.RECONCILER


async def test_reconcile_with_older_than_zero_includes_payments_updated_just_now(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.examined == 1
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


async def test_reconcile_leaves_payments_younger_than_older_than_alone(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    clock.advance(timedelta(seconds=10))

    report = await checkout.reconcile(older_than=timedelta(seconds=30))

    assert report.examined == 0
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING


async def test_reconcile_twice_never_charges_twice(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    clock.advance(timedelta(minutes=1))

    await checkout.reconcile(older_than=timedelta(0))
    clock.advance(timedelta(minutes=1))
    second = await checkout.reconcile(older_than=timedelta(0))

    assert second.examined == 0
    assert len(await sandbox(checkout).charges_for(payment.id)) == 1
    assert str((await checkout.get_invoice(ENV, invoice.id)).amount_paid) == "150.00"


async def test_timed_out_declined_charge_is_failed_by_reconcile_with_the_decline(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING
    clock.advance(timedelta(seconds=1))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.failed == 1
    failed = await checkout.get_payment(ENV, payment.id)
    assert failed.status is PaymentStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == "card_declined"


async def test_error_before_the_charge_leaves_processing_and_reconcile_charges_once(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.ERROR_BEFORE)

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.PROCESSING
    assert await sandbox(checkout).charges_for(payment.id) == []

    clock.advance(timedelta(seconds=1))
    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.succeeded == 1
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED
    assert len(await sandbox(checkout).charges_for(payment.id)) == 1


async def test_reconcile_while_the_gateway_is_still_down_leaves_the_payment_processing(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.ERROR_BEFORE)
    faults.schedule("find_charge", Fault.ERROR_BEFORE)  # still down for the look-up
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    clock.advance(timedelta(seconds=1))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.unresolved == (payment.id,)
    assert report.failed == 0
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING


async def test_payment_processing_for_long_is_reported_as_needing_attention(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.ERROR_BEFORE)
    faults.schedule("find_charge", Fault.ERROR_BEFORE)  # still down for the look-up
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    clock.advance(timedelta(hours=2))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert [stuck.payment_id for stuck in report.needs_attention] == [payment.id]


async def test_gateway_refusal_is_gateway_error_and_fails_the_payment(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.REJECT)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "gateway_error"
    [payment_id] = await payments_of(checkout, invoice.id)
    assert error.details["payment_id"] == payment_id
    payment = await checkout.get_payment(ENV, payment_id)
    assert payment.status is PaymentStatus.FAILED
    assert payment.failure is not None
    assert payment.failure.code == "gateway_error"
    assert await sandbox(checkout).succeeded_charges() == []
    # The invoice is still payable.
    retry = await checkout.create_payment(ENV, card_payment(invoice))
    assert retry.status is PaymentStatus.SUCCEEDED


async def test_payment_intent_succeeded_event_settles_a_timed_out_payment(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    [charge] = await sandbox(checkout).charges_for(payment.id)
    event = GatewayEvent(
        id="evt_pi_succeeded_1",
        type=GatewayEventType.PAYMENT_SUCCEEDED,
        created_at=clock.now(),
        metadata=charge["metadata"],
        charge=ChargeResult(
            status=ChargeStatus.SUCCEEDED,
            intent_id=charge["id"],
            payment_method_id=charge["payment_method"],
            card_brand="visa",
            card_last4="4242",
        ),
    )

    await checkout.handle_gateway_event(event)

    settled = await checkout.get_payment(ENV, payment.id)
    assert settled.status is PaymentStatus.SUCCEEDED
    assert settled.gateway_tracking_id == charge["id"]
    assert (await checkout.payment_events(ENV, payment.id))[-1].actor is Actor.WEBHOOK
    assert (await checkout.get_invoice(ENV, invoice.id)).payment_status is (
        InvoicePaymentStatus.SUCCEEDED
    )


class _WebhookFirst:
    """The sandbox, but each charge's webhook is handled before the charge answers."""

    def __init__(self, inner: SandboxPaymentGateway, checkout: CardCheckout, clock: ManualClock):
        self.inner, self.checkout, self.clock = inner, checkout, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        result = await self.inner.charge(request)
        succeeded = result.status is ChargeStatus.SUCCEEDED
        await self.checkout.handle_gateway_event(
            GatewayEvent(
                id=f"evt_{result.intent_id}",
                type=GatewayEventType.PAYMENT_SUCCEEDED
                if succeeded
                else GatewayEventType.PAYMENT_FAILED,
                created_at=self.clock.now(),
                metadata=dict(request.metadata),
                charge=result,
            )
        )
        return result


@pytest.mark.parametrize("card", [VISA, INSUFFICIENT_FUNDS])
async def test_an_event_settling_the_payment_before_the_api_records_it_is_not_recorded_twice(
    checkout: CardCheckout, clock: ManualClock, card: str
) -> None:
    """The API records the charge's answer over the payment as it left it, without reading it
    again; the webhook got there first, so that write loses and is re-run on fresh reads."""
    customer = await customer_with_card(checkout, card)
    invoice = await finalized_invoice(checkout, customer)
    use_gateway(checkout, _WebhookFirst(sandbox(checkout), checkout, clock))
    if card == VISA:
        answered = await checkout.create_payment(ENV, card_payment(invoice))
    else:
        error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    [payment_id] = await payments_of(checkout, invoice.id)
    stored = await checkout.get_payment(ENV, payment_id)
    events = await checkout.payment_events(ENV, payment_id)
    settled = await checkout.get_invoice(ENV, invoice.id)
    assert [(e.to_status, e.actor) for e in events][1:] == [
        (PaymentStatus.PROCESSING, Actor.API),
        (stored.status, Actor.WEBHOOK),
    ]
    if card == VISA:
        assert answered == stored
        assert stored.status is PaymentStatus.SUCCEEDED
        assert str(settled.amount_paid) == "150.00"
        assert settled.payment_status is InvoicePaymentStatus.SUCCEEDED
    else:
        assert error.code == "insufficient_funds"
        assert stored.status is PaymentStatus.FAILED
        assert str(settled.amount_paid) == "0.00"
        assert settled.payment_status is InvoicePaymentStatus.FAILED


class _InvoiceChangesDuringCardLookUp:
    """The sandbox, but something else changes the invoice while the card is looked up,
    after the payment read it and before its first transaction."""

    def __init__(self, inner: SandboxPaymentGateway, change: Any) -> None:
        self.inner, self.change = inner, change

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_customer(self, gateway_customer_id: str) -> Any:
        await self.change()
        return await self.inner.get_customer(gateway_customer_id)


async def test_an_invoice_voided_while_the_card_is_looked_up_is_not_charged(
    checkout: CardCheckout,
) -> None:
    """The first transaction writes over the invoice as read before the card look-up; its
    versioned update loses to the void, and the re-run on a fresh read refuses the payment."""
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    gateway = sandbox(checkout)
    use_gateway(
        checkout,
        _InvoiceChangesDuringCardLookUp(gateway, lambda: checkout.void_invoice(ENV, invoice.id)),
    )

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "invoice_voided"
    assert await payments_of(checkout, invoice.id) == []
    assert (await checkout.get_invoice(ENV, invoice.id)).status is InvoiceStatus.VOIDED
    assert await gateway.succeeded_charges() == []


async def test_a_payment_started_while_the_card_is_looked_up_is_named_and_not_charged_twice(
    checkout: CardCheckout,
) -> None:
    """An initiated payment leaves the invoice's version as it was: storage itself refuses
    the second live payment, and the error names the first."""
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    first: list[str] = []

    async def start_another() -> None:
        started = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))
        first.append(started.id)

    gateway = sandbox(checkout)
    use_gateway(checkout, _InvoiceChangesDuringCardLookUp(gateway, start_another))

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "payment_in_progress"
    assert error.details["payment_id"] == first[0]
    assert await payments_of(checkout, invoice.id) == first
    assert await gateway.succeeded_charges() == []


async def test_late_payment_failed_event_never_moves_a_succeeded_payment_back(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    late = GatewayEvent(
        id="evt_pi_failed_late",
        type=GatewayEventType.PAYMENT_FAILED,
        created_at=clock.now(),
        metadata={"payment_id": payment.id, "environment_id": ENV},
        charge=ChargeResult(status=ChargeStatus.FAILED, intent_id=payment.gateway_tracking_id),
    )

    await checkout.handle_gateway_event(late)

    assert await checkout.get_payment(ENV, payment.id) == payment
    assert (await checkout.get_invoice(ENV, invoice.id)).payment_status is (
        InvoicePaymentStatus.SUCCEEDED
    )


# Events and notifications -------------------------------------------------------------------


async def test_payment_events_list_each_transition_oldest_first(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    created_at = clock.now()
    payment = await checkout.create_payment(ENV, card_payment(invoice))

    events = await checkout.payment_events(ENV, payment.id)

    assert [(e.from_status, e.to_status) for e in events] == [
        (None, PaymentStatus.INITIATED),
        (PaymentStatus.INITIATED, PaymentStatus.PROCESSING),
        (PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED),
    ]
    assert all(e.payment_id == payment.id for e in events)
    assert all(e.environment_id == ENV for e in events)
    assert all(e.actor is Actor.API for e in events)
    assert all(e.occurred_at == created_at for e in events)
    assert all(e.reason for e in events)
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences))


async def test_events_of_a_payment_processed_later_keep_their_times(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    created_at = clock.now()
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))
    clock.advance(timedelta(hours=1))

    await checkout.process_payment(ENV, initiated.id)
    events = await checkout.payment_events(ENV, initiated.id)

    assert [(e.to_status, e.occurred_at) for e in events] == [
        (PaymentStatus.INITIATED, created_at),
        (PaymentStatus.PROCESSING, created_at + timedelta(hours=1)),
        (PaymentStatus.SUCCEEDED, created_at + timedelta(hours=1)),
    ]


async def test_successful_payment_notifies_created_processing_succeeded_and_invoice_paid(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    delivered = notifier(checkout).delivered
    assert [n.type.value for n in delivered] == [
        "payment.created",
        "payment.processing",
        "payment.succeeded",
        "invoice.paid",
    ]
    assert all(n.environment_id == ENV for n in delivered)
    assert all(n.data["payment_id"] == payment.id for n in delivered)
    assert all(n.data["invoice_id"] == invoice.id for n in delivered)
    assert len({n.id for n in delivered}) == 4
    [succeeded] = notifier(checkout).of_type("payment.succeeded")
    assert succeeded.data["payment_status"] == "succeeded"
    assert succeeded.data["amount"] == "150.00"
    assert succeeded.data["currency"] == "usd"
    [invoice_paid] = notifier(checkout).of_type("invoice.paid")
    assert invoice_paid.data["amount_paid"] == "150.00"
    assert invoice_paid.data["customer_id"] == customer.id


async def test_the_invoice_changes_and_is_notified_at_its_payments_moment() -> None:
    checkout = bootstrap()  # a running clock: separate readings would differ
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    paid = await checkout.get_invoice(ENV, invoice.id)
    [succeeded] = notifier(checkout).of_type("payment.succeeded")
    [invoice_paid] = notifier(checkout).of_type("invoice.paid")
    assert invoice_paid.occurred_at == succeeded.occurred_at == payment.succeeded_at
    assert paid.paid_at == paid.updated_at == payment.succeeded_at
    [created, processing, _] = await checkout.payment_events(ENV, payment.id)
    assert [n.occurred_at for n in notifier(checkout).delivered[:2]] == [
        created.occurred_at,
        processing.occurred_at,
    ]


async def test_the_recording_notifier_keeps_only_the_latest_notifications() -> None:
    checkout = bootstrap(notifier=RecordingNotifier(keep=5))
    customer = await customer_with_card(checkout)
    first = await checkout.create_payment(
        ENV, card_payment(await finalized_invoice(checkout, customer))
    )
    second = await checkout.create_payment(
        ENV, card_payment(await finalized_invoice(checkout, customer))
    )

    kept = notifier(checkout).delivered
    assert [(n.type.value, n.data["payment_id"]) for n in kept] == [
        ("invoice.paid", first.id),
        ("payment.created", second.id),
        ("payment.processing", second.id),
        ("payment.succeeded", second.id),
        ("invoice.paid", second.id),
    ]
    # The library's default notifier is one, with a bound of 1,000.
    assert bootstrap().notifier == RecordingNotifier(keep=1_000)


async def test_declined_payment_notifies_payment_failed_with_its_code(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert [n.type.value for n in notifier(checkout).delivered] == [
        "payment.created",
        "payment.processing",
        "payment.failed",
    ]
    [failed] = notifier(checkout).of_type("payment.failed")
    assert failed.data["payment_id"] == error.details["payment_id"]
    assert failed.data["error_code"] == "card_declined"
    assert failed.data["payment_status"] == "failed"
    assert notifier(checkout).of_type("invoice.paid") == []


async def test_payment_without_default_card_notifies_created_then_failed(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)

    await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert [n.type.value for n in notifier(checkout).delivered] == [
        "payment.created",
        "payment.failed",
    ]
    [failed] = notifier(checkout).of_type("payment.failed")
    assert failed.data["error_code"] == "no_default_payment_method"


class FailingOnce:
    """A notifier whose first delivery fails (a subscriber briefly down)."""

    def __init__(self) -> None:
        self.failures_left = 1
        self.delivered: list[Notification] = []

    async def notify(self, notification: Notification) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("subscriber down")
        self.delivered.append(notification)


async def test_notifications_that_failed_to_deliver_are_delivered_later_in_order() -> None:
    failing = FailingOnce()
    checkout = bootstrap(uow=InMemoryUnitOfWorkFactory(), clock=ManualClock(), notifier=failing)
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.SUCCEEDED
    assert failing.delivered == []

    delivered = await checkout.deliver_notifications()

    assert delivered == 4
    assert [n.type.value for n in failing.delivered] == [
        "payment.created",
        "payment.processing",
        "payment.succeeded",
        "invoice.paid",
    ]
    assert await checkout.deliver_notifications() == 0


async def test_one_delivery_call_empties_an_outbox_longer_than_a_batch() -> None:
    subscriber = FailingOnce()
    store = InMemoryUnitOfWorkFactory()
    opened = 0

    def counting_uow(*, read_only: bool = False) -> InMemoryUnitOfWork:
        nonlocal opened
        opened += 1
        return store(read_only=read_only)

    checkout = bootstrap(uow=counting_uow, clock=ManualClock(), notifier=subscriber)
    customer = await customer_with_card(checkout)
    for _ in range(30):  # 4 notifications each, none delivered while the subscriber is down
        subscriber.failures_left = 1
        invoice = await finalized_invoice(checkout, customer)
        await checkout.create_payment(ENV, card_payment(invoice))
    opened = 0

    assert await checkout.deliver_notifications() == 120

    assert len(subscriber.delivered) == 120
    # A full batch and a short one, each read then marked: no third look at an empty outbox.
    assert opened == 4


async def test_no_default_card_error_carries_the_product_pages_message(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.message == (
        "Customer must have a default payment method to make card payments. Please make a "
        "payment using payment link with save_card_and_make_default=true first."
    )


async def test_rejected_request_notifies_nothing(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)

    await error_of(checkout.create_payment(ENV, card_payment(invoice, amount=Decimal("1.00"))))

    assert notifier(checkout).delivered == []


async def test_timed_out_payment_notifies_success_only_once_reconciled(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    await checkout.create_payment(ENV, card_payment(invoice))
    assert [n.type.value for n in notifier(checkout).delivered] == [
        "payment.created",
        "payment.processing",
    ]
    clock.advance(timedelta(seconds=1))

    await checkout.reconcile(older_than=timedelta(0))

    assert [n.type.value for n in notifier(checkout).delivered][2:] == [
        "payment.succeeded",
        "invoice.paid",
    ]


# Currencies with zero and three decimals ----------------------------------------------------


async def test_zero_decimal_currency_jpy_is_charged_in_whole_yen(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer, "1500", "jpy")

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.SUCCEEDED
    assert str(payment.amount) == "1500"
    assert payment.currency.code == "jpy"
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert charge["amount"] == 1500
    assert charge["currency"] == "jpy"
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert str(paid.amount_paid) == "1500"
    assert str(paid.amount_remaining) == "0"
    assert paid.payment_status is InvoicePaymentStatus.SUCCEEDED


async def test_three_decimal_currency_kwd_is_charged_in_fils(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer, "1.250", "kwd")

    payment = await checkout.create_payment(ENV, card_payment(invoice))

    assert payment.status is PaymentStatus.SUCCEEDED
    assert str(payment.amount) == "1.250"
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert charge["amount"] == 1250
    assert charge["currency"] == "kwd"
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert str(paid.amount_paid) == "1.250"
    assert str(paid.amount_remaining) == "0.000"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        pytest.param(Decimal("1500.5"), "jpy", id="jpy-fraction"),
        pytest.param(Decimal("1.2501"), "kwd", id="kwd-four-decimals"),
        pytest.param(Decimal("1.251"), "kwd", id="kwd-last-digit-not-zero"),
    ],
)
async def test_amount_finer_than_the_currency_allows_is_validation_error(
    checkout: CardCheckout, amount: Decimal, currency: str
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer, "1500" if currency == "jpy" else "1.250",
                                      currency)  # fmt: skip

    error = await error_of(
        checkout.create_payment(ENV, card_payment(invoice, amount=amount, currency=currency))
    )

    assert error.code == "validation_error"
    assert error.details["field"] == "amount"
    assert (await checkout.list_payments(ENV)).items == []


async def test_jpy_amount_with_zero_decimals_written_out_matches_the_invoice(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer, "1500", "jpy")

    payment = await checkout.create_payment(
        ENV, card_payment(invoice, amount=Decimal("1500.00"), currency="JPY")
    )

    assert str(payment.amount) == "1500"
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert charge["amount"] == 1500
