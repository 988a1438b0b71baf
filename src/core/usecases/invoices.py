"""Invoices: created, finalized, voided and read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.commands import CreateInvoice
from core.errors import PaymentInProgress
from core.model import Invoice, InvoiceStatus
from core.ports import InvoiceQuery, Page, UnitOfWork
from core.usecases.common import Deps, customer_of, invoice_of, transaction
from core.usecases.idempotency import Answer, Idempotency, idempotent


async def create_invoice(
    deps: Deps, environment_id: str, command: CreateInvoice, idempotency_key: str | None = None
) -> Answer[Invoice]:
    async def run(idempotency: Idempotency) -> Invoice:
        async with deps.uow() as uow:
            await idempotency.claim(uow)
            await customer_of(uow, environment_id, command.customer_id)
            now = deps.clock.now()
            finalized = command.status is InvoiceStatus.FINALIZED
            invoice = Invoice(
                id=deps.ids.new_id("inv"),
                environment_id=environment_id,
                customer_id=command.customer_id,
                amount_due=command.amount_due,
                status=command.status,
                external_id=command.external_id,
                created_at=now,
                updated_at=now,
                finalized_at=now if finalized else None,
            )
            await uow.invoices.add(invoice)
            await idempotency.finish(uow, invoice)
            await uow.commit()
        return invoice

    request = (environment_id, "create_invoice", command.fingerprint)
    return await idempotent(deps, idempotency_key, request, Invoice, run)


async def finalize_invoice(
    deps: Deps, environment_id: str, invoice_id: str, *, idempotency_key: str | None = None
) -> Answer[Invoice]:
    async def finalize(uow: UnitOfWork, invoice: Invoice) -> Invoice:
        return invoice.finalize(deps.clock.now())

    return await _change(deps, environment_id, invoice_id, "finalize_invoice", finalize,
                         idempotency_key)  # fmt: skip


async def void_invoice(
    deps: Deps, environment_id: str, invoice_id: str, *, idempotency_key: str | None = None
) -> Answer[Invoice]:
    async def void(uow: UnitOfWork, invoice: Invoice) -> Invoice:
        live = await uow.payments.live_for_invoice(environment_id, invoice_id)
        if live is not None:
            raise PaymentInProgress(
                "The invoice has a payment in progress and cannot be voided.",
                invoice_id=invoice_id,
                payment_id=live.id,
            )
        return invoice.void(deps.clock.now())

    return await _change(deps, environment_id, invoice_id, "void_invoice", void, idempotency_key)


async def get_invoice(deps: Deps, environment_id: str, invoice_id: str) -> Invoice:
    return await deps.read(lambda uow: invoice_of(uow, environment_id, invoice_id))


async def list_invoices(deps: Deps, query: InvoiceQuery) -> Page[Invoice]:
    return await deps.read(lambda uow: uow.invoices.list(query))


async def _change(
    deps: Deps,
    environment_id: str,
    invoice_id: str,
    operation: str,
    change: Callable[[UnitOfWork, Invoice], Awaitable[Invoice]],
    idempotency_key: str | None,
) -> Answer[Invoice]:
    """Change an invoice in one transaction, with its idempotency record if keyed."""

    async def run(idempotency: Idempotency) -> Invoice:
        async def apply(uow: UnitOfWork) -> Invoice:
            await idempotency.claim(uow)
            invoice = await invoice_of(uow, environment_id, invoice_id, for_update=True)
            changed = await change(uow, invoice)
            await uow.invoices.update(changed)
            await idempotency.finish(uow, changed)
            await uow.commit()
            return changed

        return await transaction(deps, apply)

    request = (environment_id, operation, lambda: invoice_id)
    return await idempotent(deps, idempotency_key, request, Invoice, run)
