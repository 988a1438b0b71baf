"""Payments of invoices: record one and, if asked, charge it now; read them back.

Every write follows one rule: read and validate, call the gateway with no transaction open,
then record the outcome in one short transaction.
"""

from __future__ import annotations

from core.commands import CreatePayment
from core.errors import InvoiceNotFound, PaymentInProgress, ValidationError, require_status
from core.lists import FIRST_PAGE, Window, window_of
from core.model import Invoice, Payment, PaymentEvent, PaymentMethodType, PaymentStatus
from core.ports import Page, PaymentQuery, UnitOfWork
from core.rules import check_payment_matches_invoice
from core.usecases.charging import begin_processing, charge_recorded, select_card
from core.usecases.common import Deps, customer_of, invoice_of, of_payment, optimistic, payment_of
from core.usecases.idempotency import Answer, Idempotency, idempotent
from core.usecases.recording import record_event


async def create_payment(
    deps: Deps, environment_id: str, command: CreatePayment, idempotency_key: str | None = None
) -> Answer[Payment]:
    """Record a payment for an invoice and, if asked, charge it now.

    Answers the payment (`succeeded`, `initiated`, or `processing` when the gateway's answer
    is unknown or pending); raises `PaymentFailed` or `GatewayError` when it was recorded
    and failed.
    """

    async def run(idempotency: Idempotency) -> Payment:
        async with deps.uow(read_only=True) as uow:
            await idempotency.replay_if_done(uow)
            found = await uow.invoices.get_with_customer(environment_id, command.destination_id)
        if found is None:
            raise InvoiceNotFound(invoice_id=command.destination_id)
        invoice, customer = found
        check_payment_matches_invoice(command, invoice)
        gateway = None
        card = None
        if command.process_payment:
            gateway = await deps.gateways.for_environment(environment_id)
            if command.method_type is PaymentMethodType.CARD:
                card = await select_card(gateway, customer, command.payment_method_id)

        # Processing always writes the invoice's next version, so the first attempt may go on
        # the invoice as read above: its versioned update refuses it if it changed since.
        async def record(uow: UnitOfWork, known: Invoice | None) -> tuple[Payment, Invoice | None]:
            payment_id = deps.ids.new_id("pay")
            await idempotency.claim(uow, about=payment_id)
            invoice = known
            if invoice is None:
                invoice = await invoice_of(uow, environment_id, command.destination_id,
                                           for_update=True)  # fmt: skip
                check_payment_matches_invoice(command, invoice)
            # A second live payment is refused by storage at commit (a unique index in SQL),
            # which holds across processes.
            payment, created = Payment.start(
                at=deps.clock.now(),
                id=payment_id,
                environment_id=environment_id,
                invoice_id=invoice.id,
                customer_id=invoice.customer_id,
                amount=command.amount,
                method_type=command.method_type,
                gateway=command.gateway,
                payment_method_id=command.payment_method_id,
                save_card_and_make_default=command.save_card_and_make_default,
                success_url=command.success_url,
                cancel_url=command.cancel_url,
                metadata=dict(command.metadata),
            )
            await uow.payments.add(payment)
            await record_event(deps, uow, payment, created)
            processing_invoice = None
            if command.process_payment:
                payment, processing_invoice = await begin_processing(
                    deps, uow, payment, invoice, card
                )
            if not command.process_payment or payment.failure:
                await idempotency.finish(uow, payment)
            await uow.commit()
            return payment, processing_invoice

        known = invoice if command.process_payment else None
        try:
            payment, processing = await optimistic(deps, known, record)
        except PaymentInProgress as busy:
            raise await _naming_live_payment(deps, busy, environment_id,
                                             command.destination_id) from None  # fmt: skip
        if gateway is None:
            return payment
        return await charge_recorded(deps, gateway, payment, customer, idempotency, processing)

    request = (environment_id, "create_payment", command.fingerprint)
    return await idempotent(deps, idempotency_key, request, Payment, run)


async def process_payment(
    deps: Deps, environment_id: str, payment_id: str, idempotency_key: str | None = None
) -> Answer[Payment]:
    """Charge a payment left `initiated` (same outcomes as `create_payment`)."""

    async def run(idempotency: Idempotency) -> Payment:
        async with deps.uow(read_only=True) as uow:
            await idempotency.replay_if_done(uow)
            payment = await payment_of(uow, environment_id, payment_id)
            _ensure_initiated(payment)
            customer = await customer_of(uow, environment_id, payment.customer_id)
            await _payable_for(uow, payment, for_update=False)
        gateway = await deps.gateways.for_environment(environment_id)
        card = None
        if payment.method_type is PaymentMethodType.CARD:
            card = await select_card(gateway, customer, payment.payment_method_id)

        async def record(uow: UnitOfWork, _: None) -> tuple[Payment, Invoice | None]:
            await idempotency.claim(uow, about=payment_id)
            current = await payment_of(uow, environment_id, payment_id, for_update=True)
            _ensure_initiated(current)
            invoice = await _payable_for(uow, current, for_update=True)
            current, processing = await begin_processing(deps, uow, current, invoice, card)
            if current.failure:
                await idempotency.finish(uow, current)
            await uow.commit()
            return current, processing

        current, processing = await optimistic(deps, None, record)
        return await charge_recorded(deps, gateway, current, customer, idempotency, processing)

    request = (environment_id, "process_payment", lambda: payment_id)
    return await idempotent(deps, idempotency_key, request, Payment, run)


async def get_payment(deps: Deps, environment_id: str, payment_id: str) -> Payment:
    return await deps.read(lambda uow: payment_of(uow, environment_id, payment_id))


async def list_payments(deps: Deps, query: PaymentQuery) -> Page[Payment]:
    return await deps.read(lambda uow: uow.payments.list(query))


async def payment_events(
    deps: Deps, environment_id: str, payment_id: str, window: Window = FIRST_PAGE
) -> Page[PaymentEvent]:
    """The payment's events, oldest first; an event's cursor is its `sequence`."""
    events = await of_payment(
        deps,
        environment_id,
        payment_id,
        lambda uow: uow.payments.events(environment_id, payment_id),
    )
    return window_of(events, window, lambda event: str(event.sequence))


def _ensure_initiated(payment: Payment) -> None:
    require_status(
        payment.status,
        PaymentStatus.INITIATED,
        "Only an initiated payment can be processed",
        payment_id=payment.id,
    )


async def _payable_for(uow: UnitOfWork, payment: Payment, *, for_update: bool) -> Invoice:
    invoice = await invoice_of(
        uow, payment.environment_id, payment.invoice_id, for_update=for_update
    )
    invoice.ensure_payable()
    if payment.amount != invoice.amount_remaining:
        raise ValidationError(
            "The invoice changed since this payment was created; its amount no longer "
            "matches what remains.",
            field="amount",
            expected=str(invoice.amount_remaining),
            actual=str(payment.amount),
        )
    return invoice


async def _naming_live_payment(
    deps: Deps, busy: PaymentInProgress, environment_id: str, invoice_id: str
) -> PaymentInProgress:
    """Storage refused a second live payment for the invoice: say which one is live."""
    if "payment_id" in busy.details:
        return busy
    async with deps.uow(read_only=True) as uow:
        live = await uow.payments.live_for_invoice(environment_id, invoice_id)
    if live is None:  # it settled meanwhile; the refusal stands as it was
        return busy
    return PaymentInProgress(invoice_id=invoice_id, payment_id=live.id)
