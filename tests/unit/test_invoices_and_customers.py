"""Customers, saved cards, invoices and listings, through the library facade.

Invoices are created as drafts or finalized, finalized once, and voided only while nothing is
paid or in flight. Listings are newest first with keyset pagination. Customers are linked to a
gateway customer and save cards only through the sandbox's hosted setup page.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from adapters.clock import ManualClock
from adapters.sandbox import Fault, SandboxFaults
from core.gateway import (
    CheckoutMode,
    CheckoutSessionStatus,
    CustomerRequest,
    GatewayPaymentMethod,
)
from core.model import Customer, Invoice, InvoicePaymentStatus, InvoiceStatus, PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    DECLINED,
    ENV,
    EXPIRED,
    OTHER_ENV,
    VISA,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
    sandbox,
)


async def draft_invoice(
    checkout: CardCheckout, customer: Customer, amount: str = "150.00", currency: str = "usd"
) -> Invoice:
    return await checkout.create_invoice(
        ENV, {"customer_id": customer.id, "currency": currency, "amount_due": Decimal(amount)}
    )


# Customers ------------------------------------------------------------------------------------


async def test_create_customer_links_a_new_gateway_customer(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await checkout.create_customer(
        ENV, {"external_id": "acme-1", "name": "Acme Ltd", "email": "billing@acme.test"}
    )

    assert customer.id.startswith("cust_")
    assert customer.environment_id == ENV
    assert customer.external_id == "acme-1"
    assert customer.name == "Acme Ltd"
    assert customer.email == "billing@acme.test"
    assert customer.created_at == clock.now()
    assert customer.gateway_customer_id is not None
    assert customer.gateway_customer_id.startswith("cus_")
    assert await checkout.get_customer(ENV, customer.id) == customer
    gateway_customer = await sandbox(checkout).store.get("customer", customer.gateway_customer_id)
    assert gateway_customer is not None
    assert gateway_customer["metadata"] == {"customer_id": customer.id, "environment_id": ENV}


async def test_customer_with_an_existing_gateway_customer_is_linked_to_it(
    checkout: CardCheckout,
) -> None:
    # Made at the gateway before the service knew it (a migration), so no customer links it;
    # its metadata names the environment it is migrated into (the account is shared).
    existing = await sandbox(checkout).create_customer(
        CustomerRequest(idempotency_key="old", metadata={"environment_id": ENV})
    )
    gateway_customers = len(await sandbox(checkout).store.all("customer"))

    linked = await checkout.create_customer(
        ENV, {"external_id": "migrated-1", "gateway_customer_id": existing}
    )

    assert linked.gateway_customer_id == existing
    assert len(await sandbox(checkout).store.all("customer")) == gateway_customers


async def test_customer_with_an_unknown_gateway_customer_is_customer_not_linked(
    checkout: CardCheckout,
) -> None:
    error = await error_of(
        checkout.create_customer(ENV, {"external_id": "ghost", "gateway_customer_id": "cus_nope"})
    )

    assert error.code == "customer_not_linked"
    assert error.details["gateway_customer_id"] == "cus_nope"
    assert await sandbox(checkout).store.all("customer") == []


async def test_duplicate_external_id_is_refused_within_an_environment_only(
    checkout: CardCheckout,
) -> None:
    first = await checkout.create_customer(ENV, {"external_id": "acme-1"})

    error = await error_of(checkout.create_customer(ENV, {"external_id": "acme-1"}))
    elsewhere = await checkout.create_customer(OTHER_ENV, {"external_id": "acme-1"})

    assert error.code == "customer_already_exists"
    assert error.details["customer_id"] == first.id
    assert elsewhere.id != first.id
    assert elsewhere.environment_id == OTHER_ENV


async def test_failed_gateway_link_leaves_the_external_id_free(checkout: CardCheckout) -> None:
    await error_of(
        checkout.create_customer(ENV, {"external_id": "acme-2", "gateway_customer_id": "cus_x"})
    )

    customer = await checkout.create_customer(ENV, {"external_id": "acme-2"})

    assert customer.external_id == "acme-2"


async def test_gateway_down_while_creating_a_customer_is_gateway_error_and_stores_nothing(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    faults.schedule("create_customer", Fault.ERROR_BEFORE)

    error = await error_of(checkout.create_customer(ENV, {"external_id": "acme-3"}))

    assert error.code == "gateway_error"
    customer = await checkout.create_customer(ENV, {"external_id": "acme-3"})
    assert customer.gateway_customer_id is not None


async def test_create_customer_replayed_with_its_key_creates_one_customer(
    checkout: CardCheckout,
) -> None:
    first = await checkout.create_customer(ENV, {"external_id": "acme-4"}, idempotency_key="c-1")
    again = await checkout.create_customer(ENV, {"external_id": "acme-4"}, idempotency_key="c-1")

    assert again == first
    assert len(await sandbox(checkout).store.all("customer")) == 1
    reused = await error_of(
        checkout.create_customer(ENV, {"external_id": "acme-5"}, idempotency_key="c-1")
    )
    assert reused.code == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "external_id", id="missing-external-id"),
        pytest.param({"external_id": "  "}, "external_id", id="blank-external-id"),
        pytest.param({"external_id": "a", "email": "not-an-email"}, "email", id="email"),
        pytest.param({"external_id": "a", "phone": "1"}, "phone", id="unknown-field"),
        pytest.param({"external_id": "a", "name": "4242 4242 4242 4242"}, "name", id="card"),
        pytest.param({"external_id": "a", "cvc": "123"}, "cvc", id="cvc"),
    ],
)
async def test_malformed_customer_is_validation_error(
    checkout: CardCheckout, body: dict[str, object], field: str
) -> None:
    error = await error_of(checkout.create_customer(ENV, body))

    assert error.code == "validation_error"
    assert error.details["field"] == field
    assert await sandbox(checkout).store.all("customer") == []


async def test_customers_list_newest_first_and_are_found_by_external_id_in_their_environment(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    made = []
    for name in ("acme-1", "acme-2", "acme-3"):
        made.append(await checkout.create_customer(ENV, {"external_id": name}))
        clock.advance(timedelta(seconds=1))
    await checkout.create_customer(OTHER_ENV, {"external_id": "acme-2"})

    first = await checkout.list_customers(ENV, limit=2)
    assert [c.id for c in first.items] == [made[2].id, made[1].id]
    assert first.has_more
    rest = await checkout.list_customers(ENV, limit=2, starting_after=made[1].id)
    assert ([c.id for c in rest.items], rest.has_more) == ([made[0].id], False)
    found = await checkout.list_customers(ENV, external_id="acme-2")
    assert [c.id for c in found.items] == [made[1].id]
    assert (await checkout.list_customers(ENV, external_id="acme-9")).items == []
    assert (await error_of(checkout.list_customers(ENV, limit=0))).code == "validation_error"


async def test_customer_of_another_environment_is_customer_not_found(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, env=ENV)

    for call in (
        checkout.get_customer(OTHER_ENV, customer.id),
        checkout.list_payment_methods(OTHER_ENV, customer.id),
        checkout.setup_card(OTHER_ENV, customer.id),
    ):
        error = await error_of(call)
        assert error.code == "customer_not_found"
        assert error.details["customer_id"] == customer.id


# Saved cards ---------------------------------------------------------------------------------


async def test_setup_card_returns_a_hosted_setup_page(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, None)

    setup = await checkout.setup_card(ENV, customer.id, {"success_url": "https://shop.test/saved"})

    assert setup.mode is CheckoutMode.SETUP
    assert setup.status is CheckoutSessionStatus.OPEN
    assert setup.url == f"http://127.0.0.1:8000/sandbox/checkout/{setup.id}"
    assert setup.gateway_customer_id == customer.gateway_customer_id
    assert setup.save_card_and_make_default is True
    page = await sandbox(checkout).checkout_page(setup.id)
    assert page["success_url"] == "https://shop.test/saved"
    assert (await checkout.list_payment_methods(ENV, customer.id)).items == []


async def test_completed_setup_saves_the_card_as_the_default(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, None)
    setup = await checkout.setup_card(ENV, customer.id)

    await checkout.complete_sandbox_checkout(setup.id, "4242 4242 4242 4242")

    [card] = await checkout.list_payment_methods(ENV, customer.id)
    assert card.id.startswith("pm_")
    assert card.brand == "visa"
    assert card.last4 == "4242"
    assert card.exp_month == 12
    assert card.exp_year > 2026
    assert card.is_default is True
    assert [f.name for f in attrs.fields(GatewayPaymentMethod)] == [
        "id", "brand", "last4", "exp_month", "exp_year", "is_default",
    ]  # fmt: skip


async def test_each_completed_setup_makes_its_card_the_new_default(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, VISA)
    setup = await checkout.setup_card(ENV, customer.id)

    await checkout.complete_sandbox_checkout(setup.id, DECLINED)

    cards = {c.last4: c.is_default for c in await checkout.list_payment_methods(ENV, customer.id)}
    assert cards == {"4242": False, "0002": True}


async def test_setup_page_is_completed_once(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, None)
    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, VISA)

    error = await error_of(checkout.complete_sandbox_checkout(setup.id, EXPIRED))

    assert error.code == "validation_error"
    assert len(await checkout.list_payment_methods(ENV, customer.id)) == 1


async def test_sandbox_page_accepts_only_test_cards(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, None)
    setup = await checkout.setup_card(ENV, customer.id)

    error = await error_of(checkout.complete_sandbox_checkout(setup.id, "5555555555554445"))

    assert error.code == "validation_error"
    assert error.details["field"] == "card_number"
    assert (await checkout.list_payment_methods(ENV, customer.id)).items == []


async def test_setup_card_for_an_unknown_customer_is_customer_not_found(
    checkout: CardCheckout,
) -> None:
    error = await error_of(checkout.setup_card(ENV, "cust_missing"))

    assert error.code == "customer_not_found"


async def test_cards_of_one_customer_are_not_listed_for_another(checkout: CardCheckout) -> None:
    first = await customer_with_card(checkout, VISA)
    second = await customer_with_card(checkout, None)

    assert len(await checkout.list_payment_methods(ENV, first.id)) == 1
    assert (await checkout.list_payment_methods(ENV, second.id)).items == []


# Invoices -------------------------------------------------------------------------------------


async def test_new_invoice_is_a_draft_with_nothing_paid(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)

    invoice = await checkout.create_invoice(
        ENV,
        {
            "customer_id": customer.id,
            "currency": "USD",
            "amount_due": "150.10",
            "external_id": "INV-0001",
        },
    )

    assert invoice.id.startswith("inv_")
    assert invoice.status is InvoiceStatus.DRAFT
    assert invoice.payment_status is InvoicePaymentStatus.PENDING
    assert invoice.currency.code == "usd"
    assert str(invoice.amount_due) == "150.10"
    assert str(invoice.amount_paid) == "0.00"
    assert str(invoice.amount_remaining) == "150.10"
    assert str(invoice.amount_refunded) == "0.00"
    assert invoice.external_id == "INV-0001"
    assert invoice.customer_id == customer.id
    assert invoice.created_at == clock.now()
    assert invoice.finalized_at is None
    assert invoice.paid_at is None
    assert await checkout.get_invoice(ENV, invoice.id) == invoice


async def test_invoice_created_finalized_is_payable_at_once(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)

    invoice = await finalized_invoice(checkout, customer)

    assert invoice.status is InvoiceStatus.FINALIZED
    assert invoice.finalized_at == clock.now()
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.SUCCEEDED


async def test_finalizing_a_draft_makes_it_payable(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    draft = await draft_invoice(checkout, customer)
    clock.advance(timedelta(hours=1))

    finalized = await checkout.finalize_invoice(ENV, draft.id)

    assert finalized.status is InvoiceStatus.FINALIZED
    assert finalized.finalized_at == clock.now()
    assert finalized.updated_at == clock.now()
    assert (await checkout.get_invoice(ENV, draft.id)).status is InvoiceStatus.FINALIZED
    payment = await checkout.create_payment(ENV, card_payment(finalized))
    assert payment.status is PaymentStatus.SUCCEEDED


async def test_finalizing_twice_is_invalid_state_transition(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    draft = await draft_invoice(checkout, customer)
    await checkout.finalize_invoice(ENV, draft.id)

    error = await error_of(checkout.finalize_invoice(ENV, draft.id))

    assert error.code == "invalid_state_transition"
    assert error.details["invoice_id"] == draft.id
    assert error.details["actual"] == "FINALIZED"


async def test_voided_invoice_cannot_be_finalized(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    draft = await draft_invoice(checkout, customer)
    await checkout.void_invoice(ENV, draft.id)

    error = await error_of(checkout.finalize_invoice(ENV, draft.id))

    assert error.code == "invalid_state_transition"
    assert error.details["actual"] == "VOIDED"


async def test_voiding_an_unpaid_invoice_stops_payments(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    clock.advance(timedelta(minutes=1))

    voided = await checkout.void_invoice(ENV, invoice.id)

    assert voided.status is InvoiceStatus.VOIDED
    assert voided.voided_at == clock.now()
    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))
    assert error.code == "invoice_voided"


async def test_voiding_twice_is_invoice_voided(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    await checkout.void_invoice(ENV, invoice.id)

    error = await error_of(checkout.void_invoice(ENV, invoice.id))

    assert error.code == "invoice_voided"


async def test_paid_invoice_cannot_be_voided(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    await checkout.create_payment(ENV, card_payment(invoice))

    error = await error_of(checkout.void_invoice(ENV, invoice.id))

    assert error.code == "invoice_already_paid"
    assert error.details["invoice_id"] == invoice.id
    assert (await checkout.get_invoice(ENV, invoice.id)).status is InvoiceStatus.FINALIZED


async def test_refunded_invoice_still_cannot_be_voided(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    await checkout.refund_payment(ENV, payment.id)

    error = await error_of(checkout.void_invoice(ENV, invoice.id))

    assert error.code == "invoice_already_paid"


async def test_invoice_with_an_initiated_payment_cannot_be_voided(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))

    error = await error_of(checkout.void_invoice(ENV, invoice.id))

    assert error.code == "payment_in_progress"
    assert error.details["invoice_id"] == invoice.id
    assert error.details["payment_id"] == payment.id
    assert (await checkout.get_invoice(ENV, invoice.id)).status is InvoiceStatus.FINALIZED


async def test_invoice_with_a_processing_payment_cannot_be_voided(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING

    error = await error_of(checkout.void_invoice(ENV, invoice.id))

    assert error.code == "payment_in_progress"
    assert error.details["payment_id"] == payment.id


async def test_invoice_whose_payment_failed_can_be_voided(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    voided = await checkout.void_invoice(ENV, invoice.id)

    assert voided.status is InvoiceStatus.VOIDED


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"amount_due": "0"}, "amount_due", id="zero"),
        pytest.param({"amount_due": "1.001"}, "amount_due", id="too-precise"),
        pytest.param({"amount_due": 1.5}, "amount_due", id="float"),
        pytest.param({"currency": "zzz"}, "currency", id="currency"),
        pytest.param({"status": "VOIDED"}, "status", id="voided"),
        pytest.param({"status": "PAID"}, "status", id="unknown-status"),
        pytest.param({"discount": "1"}, "discount", id="unknown-field"),
    ],
)
async def test_malformed_invoice_is_validation_error(
    checkout: CardCheckout, overrides: dict[str, object], field: str
) -> None:
    customer = await customer_with_card(checkout)
    body: dict[str, object] = {"customer_id": customer.id, "currency": "usd", "amount_due": "10"}
    body.update(overrides)

    error = await error_of(checkout.create_invoice(ENV, body))

    assert error.code == "validation_error"
    assert error.details["field"] == field
    assert (await checkout.list_invoices(ENV)).items == []


async def test_invoice_for_an_unknown_or_other_environments_customer_is_customer_not_found(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, env=ENV)
    body = {"customer_id": customer.id, "currency": "usd", "amount_due": "10"}

    error = await error_of(checkout.create_invoice(OTHER_ENV, body))

    assert error.code == "customer_not_found"
    assert (await checkout.list_invoices(OTHER_ENV)).items == []


async def test_invoice_of_another_environment_is_invoice_not_found(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, env=ENV)
    invoice = await finalized_invoice(checkout, customer, env=ENV)

    for call in (
        checkout.get_invoice(OTHER_ENV, invoice.id),
        checkout.finalize_invoice(OTHER_ENV, invoice.id),
        checkout.void_invoice(OTHER_ENV, invoice.id),
    ):
        error = await error_of(call)
        assert error.code == "invoice_not_found"
        assert error.details["invoice_id"] == invoice.id
    assert (await checkout.get_invoice(ENV, invoice.id)).status is InvoiceStatus.FINALIZED


async def test_create_invoice_replayed_with_its_key_creates_one_invoice(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    body = {"customer_id": customer.id, "currency": "usd", "amount_due": "10.00"}

    first = await checkout.create_invoice(ENV, body, idempotency_key="i-1")
    again = await checkout.create_invoice(ENV, body, idempotency_key="i-1")
    reused = await error_of(
        checkout.create_invoice(ENV, {**body, "amount_due": "11.00"}, idempotency_key="i-1")
    )

    assert again == first
    assert reused.code == "idempotency_key_reused"
    assert [i.id for i in (await checkout.list_invoices(ENV)).items] == [first.id]


# Listing invoices -----------------------------------------------------------------------------


async def make_invoices(
    checkout: CardCheckout, clock: ManualClock, customer: Customer, count: int
) -> list[Invoice]:
    """`count` invoices, one minute apart, oldest first."""
    made = []
    for n in range(count):
        clock.advance(timedelta(minutes=1))
        made.append(await finalized_invoice(checkout, customer, f"{n + 1}.00"))
    return made


async def test_invoices_are_listed_newest_first_in_pages(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    made = await make_invoices(checkout, clock, customer, 5)
    newest_first = [i.id for i in reversed(made)]

    first = await checkout.list_invoices(ENV, limit=2)
    second = await checkout.list_invoices(ENV, limit=2, starting_after=first.items[-1].id)
    third = await checkout.list_invoices(ENV, limit=2, starting_after=second.items[-1].id)

    assert [i.id for i in first.items] == newest_first[0:2]
    assert first.has_more is True
    assert [i.id for i in second.items] == newest_first[2:4]
    assert second.has_more is True
    assert [i.id for i in third.items] == newest_first[4:5]
    assert third.has_more is False


async def test_invoice_page_exactly_as_long_as_what_remains_has_no_more(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    await make_invoices(checkout, clock, customer, 3)

    page = await checkout.list_invoices(ENV, limit=3)

    assert len(page.items) == 3
    assert page.has_more is False


async def test_invoices_created_at_the_same_instant_are_paged_without_gaps_or_repeats(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    made = {(await finalized_invoice(checkout, customer, f"{n}.00")).id for n in range(1, 6)}

    seen: list[str] = []
    cursor = None
    while True:
        page = await checkout.list_invoices(ENV, limit=2, starting_after=cursor)
        seen.extend(i.id for i in page.items)
        if not page.has_more:
            break
        cursor = page.items[-1].id

    assert sorted(seen) == sorted(made)
    assert len(seen) == len(made)


async def test_invoices_are_listed_by_customer_and_status(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    alice = await customer_with_card(checkout)
    bob = await customer_with_card(checkout)
    alice_final = await finalized_invoice(checkout, alice)
    clock.advance(timedelta(minutes=1))
    alice_draft = await draft_invoice(checkout, alice)
    clock.advance(timedelta(minutes=1))
    bob_final = await finalized_invoice(checkout, bob)

    by_alice = await checkout.list_invoices(ENV, customer_id=alice.id)
    drafts = await checkout.list_invoices(ENV, invoice_status="draft")
    finalized = await checkout.list_invoices(ENV, invoice_status="FINALIZED")

    assert [i.id for i in by_alice.items] == [alice_draft.id, alice_final.id]
    assert [i.id for i in drafts.items] == [alice_draft.id]
    assert [i.id for i in finalized.items] == [bob_final.id, alice_final.id]
    bad = await error_of(checkout.list_invoices(ENV, invoice_status="PAID"))
    assert bad.code == "validation_error"
    assert bad.details["field"] == "invoice_status"


async def test_invoices_are_listed_per_environment(checkout: CardCheckout) -> None:
    here = await customer_with_card(checkout, env=ENV)
    there = await customer_with_card(checkout, env=OTHER_ENV)
    mine = await finalized_invoice(checkout, here, env=ENV)
    theirs = await finalized_invoice(checkout, there, env=OTHER_ENV)

    assert [i.id for i in (await checkout.list_invoices(ENV)).items] == [mine.id]
    assert [i.id for i in (await checkout.list_invoices(OTHER_ENV)).items] == [theirs.id]


@pytest.mark.parametrize("limit", [0, 101])
async def test_list_limit_out_of_range_is_validation_error(
    checkout: CardCheckout, limit: int
) -> None:
    invoices = await error_of(checkout.list_invoices(ENV, limit=limit))
    payments = await error_of(checkout.list_payments(ENV, limit=limit))

    assert invoices.code == payments.code == "validation_error"
    assert invoices.details["field"] == payments.details["field"] == "limit"


# Listing payments -----------------------------------------------------------------------------


async def test_payments_are_filtered_by_invoice_status_and_customer(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    good = await customer_with_card(checkout, VISA)
    bad = await customer_with_card(checkout, DECLINED)
    good_invoice = await finalized_invoice(checkout, good)
    bad_invoice = await finalized_invoice(checkout, bad, "20.00")
    succeeded = await checkout.create_payment(ENV, card_payment(good_invoice))
    clock.advance(timedelta(minutes=1))
    declined = await error_of(checkout.create_payment(ENV, card_payment(bad_invoice)))
    failed_id = declined.details["payment_id"]

    by_invoice = await checkout.list_payments(ENV, destination_id=good_invoice.id)
    failed_lower = await checkout.list_payments(ENV, payment_status="failed")
    failed_upper = await checkout.list_payments(ENV, payment_status="FAILED")
    succeeded_only = await checkout.list_payments(ENV, payment_status="Succeeded")
    by_customer = await checkout.list_payments(ENV, customer_id=bad.id)
    everything = await checkout.list_payments(ENV)

    assert [p.id for p in by_invoice.items] == [succeeded.id]
    assert [p.id for p in failed_lower.items] == [failed_id]
    assert [p.id for p in failed_upper.items] == [failed_id]
    assert [p.id for p in succeeded_only.items] == [succeeded.id]
    assert [p.id for p in by_customer.items] == [failed_id]
    assert [p.id for p in everything.items] == [failed_id, succeeded.id]
    assert everything.has_more is False


async def test_payment_filters_combine(checkout: CardCheckout, clock: ManualClock) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    declined = await error_of(checkout.create_payment(ENV, card_payment(invoice)))
    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, VISA)
    clock.advance(timedelta(minutes=1))
    paid = await checkout.create_payment(ENV, card_payment(invoice))

    failed = await checkout.list_payments(
        ENV, destination_id=invoice.id, customer_id=customer.id, payment_status="failed"
    )
    both = await checkout.list_payments(ENV, destination_id=invoice.id)
    nothing = await checkout.list_payments(
        ENV, destination_id=invoice.id, payment_status="refunded"
    )

    assert [p.id for p in failed.items] == [declined.details["payment_id"]]
    assert [p.id for p in both.items] == [paid.id, declined.details["payment_id"]]
    assert nothing.items == []


async def test_unknown_payment_status_filter_is_validation_error(checkout: CardCheckout) -> None:
    error = await error_of(checkout.list_payments(ENV, payment_status="paid"))

    assert error.code == "validation_error"
    assert error.details["field"] == "payment_status"


async def test_payments_are_listed_newest_first_in_pages_and_by_creation_time(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    start = clock.now()
    made = []
    for invoice in await make_invoices(checkout, clock, customer, 3):
        clock.advance(timedelta(minutes=1))
        made.append(await checkout.create_payment(ENV, card_payment(invoice)))
    newest_first = [p.id for p in reversed(made)]

    first = await checkout.list_payments(ENV, limit=2)
    rest = await checkout.list_payments(ENV, limit=2, starting_after=first.items[-1].id)
    window = await checkout.list_payments(
        ENV, created_gte=made[1].created_at, created_lt=made[2].created_at
    )
    before_any = await checkout.list_payments(ENV, created_lt=start)

    assert [p.id for p in first.items] == newest_first[:2]
    assert first.has_more is True
    assert [p.id for p in rest.items] == newest_first[2:]
    assert rest.has_more is False
    assert [p.id for p in window.items] == [made[1].id]
    assert before_any.items == []
