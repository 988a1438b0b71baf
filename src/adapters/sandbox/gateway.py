"""`SandboxPaymentGateway`: Stripe's test mode, played in-process.

It keeps Stripe-shaped documents in a `SandboxStore` (so, on SQL, they survive a restart),
honours idempotency keys like Stripe (a repeated key returns the first answer, a key reused
with other parameters is refused; a charge and its key's answer are stored together), knows the
test cards of the contract, and can be told to inject faults. Card numbers are only ever
matched against the test-card table: the sandbox stores a token, the brand and the last four
digits, never the number.

Here: customers, cards, charges and refunds. The hosted pages are in `checkout`, the documents
and idempotency keys in `documents`, the test cards in `cards`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

import attrs

from adapters.sandbox.cards import BY_TOKEN
from adapters.sandbox.checkout import EventSink, HostedCheckout
from adapters.sandbox.documents import Created, unknown_if_the_store_fails
from adapters.sandbox.faults import SandboxFaults
from adapters.sandbox.store import Document, InMemorySandboxStore, SandboxStore
from core.errors import GatewayError
from core.gateway import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CustomerRequest,
    GatewayCustomer,
    GatewayEvent,
    GatewayEventType,
    GatewayFailure,
    GatewayPaymentMethod,
    GatewayRefund,
    GatewayUnavailable,
    RefundOutcome,
    RefundRequest,
)
from core.ports import Clock, IdGenerator

logger = logging.getLogger("card_checkout.sandbox")


@attrs.define
class SandboxPaymentGateway(HostedCheckout):
    clock: Clock
    ids: IdGenerator
    store: SandboxStore = attrs.Factory(InMemorySandboxStore)
    faults: SandboxFaults = attrs.Factory(SandboxFaults)
    base_url: str = "http://127.0.0.1:8000"
    # Receives the events the sandbox emits, as a Stripe webhook endpoint would.
    event_sink: EventSink | None = None
    # Also announce each charge (payment_intent.succeeded / .payment_failed) a moment later,
    # as Stripe's webhooks do: a charge whose answer was lost is then settled by its event.
    emit_charge_events: bool = False
    idempotency_lease: timedelta = timedelta(seconds=10)
    _announcing: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)

    # Customers and cards -------------------------------------------------------------------

    async def create_customer(self, request: CustomerRequest) -> str:
        async def create() -> Created:
            customer: Document = {
                "id": self.ids.new_id("cus"),
                "name": request.name,
                "email": request.email,
                "metadata": dict(request.metadata),
                "default_payment_method": None,
                "payment_methods": [],
                "deleted": False,
            }
            return Created({"customer": customer["id"]}, [("customer", customer["id"], customer)])

        await self.faults.before("create_customer")
        params = {
            "op": "customer",
            "name": request.name,
            "email": request.email,
            "metadata": dict(request.metadata),
        }
        answer = await self._idempotent(request.idempotency_key, params, create)
        return str(answer["customer"])

    async def delete_customer(self, gateway_customer_id: str) -> None:
        customer = await self._customer_doc(gateway_customer_id)
        customer["deleted"] = True
        await self.store.put("customer", gateway_customer_id, customer)

    async def get_customer(self, gateway_customer_id: str) -> GatewayCustomer:
        await self.faults.before("get_customer")
        customer = await self._customer_doc(gateway_customer_id)
        default = customer["default_payment_method"]
        card = await self._card(default, default) if default else None
        metadata = dict(customer.get("metadata") or {})
        return GatewayCustomer(id=customer["id"], default_payment_method=card, metadata=metadata)

    async def list_payment_methods(
        self, gateway_customer_id: str
    ) -> Sequence[GatewayPaymentMethod]:
        await self.faults.before("list_payment_methods")
        customer = await self._customer_doc(gateway_customer_id)
        cards = [
            await self._card(pm_id, customer["default_payment_method"])
            for pm_id in customer["payment_methods"]
        ]
        return [card for card in cards if card is not None]

    async def get_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> GatewayPaymentMethod | None:
        await self.faults.before("get_payment_method")
        customer = await self._customer_doc(gateway_customer_id)
        if payment_method_id not in customer["payment_methods"]:
            return None
        return await self._card(payment_method_id, customer["default_payment_method"])

    async def set_default_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> None:
        await self.faults.before("set_default_payment_method")
        customer = await self._customer_doc(gateway_customer_id)
        if payment_method_id not in customer["payment_methods"]:
            raise GatewayError(
                f"No such payment method {payment_method_id} on customer {gateway_customer_id}."
            )
        customer["default_payment_method"] = payment_method_id
        await self.store.put("customer", gateway_customer_id, customer)

    # Charges -------------------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        return await self._charge(request, "charge")

    async def _charge(self, request: ChargeRequest, operation: str) -> ChargeResult:
        """Create (or, with the same key, replay) the charge; faults of `operation` apply."""
        fault = await self.faults.before(operation)
        params = {
            "op": "payment_intent",
            "amount": request.amount.to_minor_units(),
            "currency": request.amount.currency.code,
            "customer": request.gateway_customer_id,
            "payment_method": request.payment_method_id,
            "off_session": True,
            "confirm": True,
        }
        answer = await self._idempotent(
            request.idempotency_key, params, lambda: self._confirm_off_session(request)
        )
        self.faults.after(fault, operation)
        with unknown_if_the_store_fails():
            return await self._intent_result(str(answer["payment_intent"]))

    async def find_charge(self, request: ChargeRequest, intent_id: str | None) -> ChargeResult:
        if intent_id is not None:
            await self.faults.before("find_charge")
            return await self._intent_result(intent_id)
        # Like Stripe: replaying the create with its idempotency key returns the first answer.
        try:
            return await self._charge(request, "find_charge")
        except GatewayUnavailable:
            # In flight, or no answer: look for the charge by the payment's id, as Stripe's
            # search does. Finding none says nothing: the first request may still charge.
            found = await self._search_charge(request.metadata.get("payment_id"))
            if found is None:
                raise
            return found

    async def _search_charge(self, payment_id: str | None) -> ChargeResult | None:
        if payment_id is None:
            return None
        with unknown_if_the_store_fails():
            intents = [
                intent
                for intent in await self.store.all("payment_intent")
                if intent["metadata"].get("payment_id") == payment_id
            ]
            if not intents:
                return None
            # A succeeded one first, then the newest (ids are ULIDs: they sort by time).
            best = max(intents, key=lambda intent: (intent["status"] == "succeeded", intent["id"]))
            return await self._intent_result(best["id"])

    async def _confirm_off_session(self, request: ChargeRequest) -> Created:
        customer = await self._customer_doc(request.gateway_customer_id)
        pm = await self.store.get("payment_method", request.payment_method_id)
        failure: GatewayFailure | None
        if pm is None or request.payment_method_id not in customer["payment_methods"]:
            failure = GatewayFailure(
                "payment_method_not_found",
                f"No such payment method {request.payment_method_id} on this customer.",
                gateway_code="resource_missing",
            )
        else:
            failure = BY_TOKEN[pm["token"]].failure()
        intent = self._intent_document(request.amount, request.gateway_customer_id,
                                       pm, failure, dict(request.metadata))  # fmt: skip
        return Created(
            {"payment_intent": intent["id"]},
            [("payment_intent", intent["id"], intent)],
            then=lambda: self._announce_later(str(intent["id"])),
        )

    def _announce_later(self, intent_id: str) -> None:
        if self.emit_charge_events:
            task = asyncio.create_task(self._announce_charge(intent_id))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    async def _announce_charge(self, intent_id: str) -> None:
        await asyncio.sleep(0)  # after the caller's answer, like a webhook
        result = await self._intent_result(intent_id)
        intent = await self.store.get("payment_intent", intent_id)
        assert intent is not None
        kind = (
            GatewayEventType.PAYMENT_SUCCEEDED
            if result.status is ChargeStatus.SUCCEEDED
            else GatewayEventType.PAYMENT_FAILED
        )
        event = GatewayEvent(
            id=self.ids.new_id("evt"),
            type=kind,
            created_at=self.clock.now(),
            metadata=intent["metadata"],
            charge=result,
        )
        if self.event_sink is not None:
            try:
                await self.event_sink(event)
            except Exception:
                # Stripe would retry the webhook; reconciliation settles it here.
                logger.warning("sandbox: event %s was not taken", event.id, exc_info=True)

    async def drain_events(self) -> None:
        """Wait for the charge events announced so far (tests, shutdown)."""
        while self._announcing:
            await asyncio.gather(*self._announcing)

    async def charges_for(self, metadata_payment_id: str) -> list[Document]:
        """Succeeded charges made for a payment (tests prove 'never twice' with it)."""
        return [
            doc
            for doc in await self.store.all("payment_intent")
            if doc["status"] == "succeeded"
            and doc["metadata"].get("payment_id") == metadata_payment_id
        ]

    async def succeeded_charges(self) -> list[Document]:
        return [
            doc for doc in await self.store.all("payment_intent") if doc["status"] == "succeeded"
        ]

    # Refunds -------------------------------------------------------------------------

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        fault = await self.faults.before("refund")
        params = {
            "op": "refund",
            "payment_intent": request.intent_id,
            "amount": request.amount.to_minor_units(),
        }

        async def create() -> Created:
            intent = await self.store.get("payment_intent", request.intent_id)
            if intent is None or intent["status"] != "succeeded":
                raise GatewayError(f"No succeeded charge {request.intent_id} to refund.")
            units = request.amount.to_minor_units()
            if intent["amount_refunded"] + units > intent["amount"]:
                raise GatewayError(
                    "Refund amount is greater than the charge's unrefunded amount.",
                    stripe_error_code="amount_too_large",
                )
            intent["amount_refunded"] += units
            refund: Document = {
                "id": self.ids.new_id("re"),
                "payment_intent": request.intent_id,
                "amount": units,
                "status": "succeeded",
                "metadata": dict(request.metadata),
            }
            return Created(
                {"refund": refund["id"]},
                [("payment_intent", intent["id"], intent), ("refund", refund["id"], refund)],
            )

        answer = await self._idempotent(request.idempotency_key, params, create)
        self.faults.after(fault, "refund")
        refund = await self.store.get("refund", str(answer["refund"]))
        assert refund is not None
        return GatewayRefund(id=refund["id"], outcome=RefundOutcome(refund["status"]))
