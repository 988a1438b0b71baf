"""`SandboxPaymentGateway`: Stripe's test mode, played in-process.

It keeps Stripe-shaped documents in a `SandboxStore` (so, on SQL, they survive a restart),
honours idempotency keys like Stripe (a repeated key returns the first answer, a key reused
with other parameters is refused), knows the test cards of the contract, and can be told to
inject faults. Card numbers are only ever matched against the test-card table: the sandbox
stores a token, the brand and the last four digits, never the number.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import attrs

from adapters.sandbox.faults import SandboxFaults
from adapters.sandbox.store import Document, InMemorySandboxStore, SandboxStore
from adapters.stripe_vocabulary import classify_card_error
from core.errors import CustomerNotLinked, GatewayError, ValidationError, payment_failure
from core.gateway import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
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
from core.money import CURRENCIES, Money
from core.ports import Clock, IdGenerator

logger = logging.getLogger("card_checkout.sandbox")
EventSink = Callable[[GatewayEvent], Awaitable[object]]


@attrs.frozen
class TestCard:
    """A Stripe test card and what happens when it is charged off-session."""

    __test__ = False  # not a pytest class

    number: str
    token: str
    brand: str = "visa"
    gateway_code: str | None = None
    decline_code: str | None = None
    message: str = ""

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def failure(self) -> GatewayFailure | None:
        if self.gateway_code is None:
            return None
        return classify_card_error(self.gateway_code, self.decline_code, self.message)


TEST_CARDS: Final = (
    TestCard("4242424242424242", "pm_card_visa"),
    TestCard(
        "4000000000000002", "pm_card_chargeDeclined",
        gateway_code="card_declined", decline_code="generic_decline",
        message="Your card was declined.",
    ),
    TestCard(
        "4000000000009995", "pm_card_chargeDeclinedInsufficientFunds",
        gateway_code="card_declined", decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
    ),
    TestCard(
        "4000002760003184", "pm_card_authenticationRequired",
        gateway_code="authentication_required", decline_code="authentication_required",
        message="Your card was declined. This transaction requires authentication.",
    ),
    TestCard(
        "4000000000000069", "pm_card_chargeDeclinedExpiredCard",
        gateway_code="expired_card", decline_code="expired_card",
        message="Your card has expired.",
    ),
    TestCard(
        "4000000000000341", "pm_card_chargeCustomerFail",
        gateway_code="card_declined", decline_code="generic_decline",
        message="Your card was declined.",
    ),
)  # fmt: skip
_BY_NUMBER: Final = {card.number: card for card in TEST_CARDS}
_BY_TOKEN: Final = {card.token: card for card in TEST_CARDS}


def test_card(number_or_token: str) -> TestCard:
    """The test card typed on a hosted page (spaces and dashes allowed), or a clear error."""
    typed = number_or_token.strip()
    card = _BY_TOKEN.get(typed) or _BY_NUMBER.get(typed.replace(" ", "").replace("-", ""))
    if card is None:
        raise ValidationError(
            "The sandbox accepts only Stripe test cards, such as 4242 4242 4242 4242.",
            field="card_number",
        )
    return card


test_card.__test__ = False  # type: ignore[attr-defined]


# One encoder for every fingerprint (json.dumps with options builds one per call).
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, default=str)


def _fingerprint(params: dict[str, Any]) -> str:
    return hashlib.sha256(_CANONICAL.encode(params).encode()).hexdigest()


@attrs.define
class SandboxPaymentGateway:
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
    _announcing: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)

    # Customers and cards -------------------------------------------------------------------

    async def create_customer(
        self,
        *,
        customer_id: str,
        environment_id: str,
        name: str | None,
        email: str | None,
        idempotency_key: str,
    ) -> str:
        async def create() -> Document:
            customer: Document = {
                "id": self.ids.new_id("cus"),
                "name": name,
                "email": email,
                "metadata": {"customer_id": customer_id, "environment_id": environment_id},
                "default_payment_method": None,
                "payment_methods": [],
                "deleted": False,
            }
            await self.store.put("customer", customer["id"], customer)
            return {"customer": customer["id"]}

        await self.faults.before("create_customer")
        params = {"op": "customer", "customer_id": customer_id, "name": name, "email": email}
        answer = await self._idempotent(idempotency_key, params, create)
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
        return GatewayCustomer(id=customer["id"], default_payment_method=card)

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

    async def _customer_doc(self, gateway_customer_id: str) -> Document:
        customer = await self.store.get("customer", gateway_customer_id)
        if customer is None or customer["deleted"]:
            raise CustomerNotLinked(
                f"The gateway has no customer {gateway_customer_id}.",
                gateway_customer_id=gateway_customer_id,
            )
        return customer

    async def _card(
        self, payment_method_id: str, default_id: str | None
    ) -> GatewayPaymentMethod | None:
        pm = await self.store.get("payment_method", payment_method_id)
        if pm is None:
            return None
        return GatewayPaymentMethod(
            id=pm["id"],
            brand=pm["brand"],
            last4=pm["last4"],
            exp_month=pm["exp_month"],
            exp_year=pm["exp_year"],
            is_default=pm["id"] == default_id,
        )

    async def _save_card(self, gateway_customer_id: str, card: TestCard) -> Document:
        customer = await self._customer_doc(gateway_customer_id)
        pm: Document = {
            "id": self.ids.new_id("pm"),
            "customer": gateway_customer_id,
            "token": card.token,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": 12,
            "exp_year": self.clock.now().year + 4,
        }
        await self.store.put("payment_method", pm["id"], pm)
        customer["payment_methods"].append(pm["id"])
        await self.store.put("customer", gateway_customer_id, customer)
        return pm

    # Charges -------------------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        fault = await self.faults.before("charge")
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
        self.faults.after(fault, "charge")
        return await self._intent_result(str(answer["payment_intent"]))

    async def find_charge(self, request: ChargeRequest, intent_id: str | None) -> ChargeResult:
        if intent_id is not None:
            await self.faults.before("find_charge")
            return await self._intent_result(intent_id)
        # Like Stripe: replaying the create with its idempotency key returns the first answer.
        return await self.charge(request)

    async def _confirm_off_session(self, request: ChargeRequest) -> Document:
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
            failure = _BY_TOKEN[pm["token"]].failure()
        intent = await self._new_intent(request.amount, request.gateway_customer_id,
                                        pm, failure, dict(request.metadata))  # fmt: skip
        if self.emit_charge_events:
            task = asyncio.create_task(self._announce_charge(str(intent["id"])))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)
        return {"payment_intent": intent["id"]}

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

    async def _new_intent(
        self,
        amount: Money,
        gateway_customer_id: str,
        pm: Document | None,
        failure: GatewayFailure | None,
        metadata: dict[str, str],
    ) -> Document:
        intent: Document = {
            "id": self.ids.new_id("pi"),
            "amount": amount.to_minor_units(),
            "currency": amount.currency.code,
            "customer": gateway_customer_id,
            "payment_method": pm["id"] if pm else None,
            "brand": pm["brand"] if pm else None,
            "last4": pm["last4"] if pm else None,
            "status": "failed" if failure else "succeeded",
            "failure": attrs.asdict(failure) if failure else None,
            "amount_refunded": 0,
            "metadata": metadata,
        }
        await self.store.put("payment_intent", intent["id"], intent)
        return intent

    async def _intent_result(self, intent_id: str) -> ChargeResult:
        intent = await self.store.get("payment_intent", intent_id)
        if intent is None:
            raise GatewayError(f"No such payment_intent: {intent_id}.")
        failure = intent["failure"]
        return ChargeResult(
            status=ChargeStatus(intent["status"]),
            intent_id=intent["id"],
            payment_method_id=intent["payment_method"],
            card_brand=intent["brand"],
            card_last4=intent["last4"],
            failure=GatewayFailure(**failure) if failure else None,
        )

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

        async def create() -> Document:
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
            await self.store.put("payment_intent", intent["id"], intent)
            await self.store.put("refund", refund["id"], refund)
            return {"refund": refund["id"]}

        answer = await self._idempotent(request.idempotency_key, params, create)
        self.faults.after(fault, "refund")
        refund = await self.store.get("refund", str(answer["refund"]))
        assert refund is not None
        return GatewayRefund(id=refund["id"], outcome=RefundOutcome(refund["status"]))

    # Hosted pages --------------------------------------------------------------------

    async def create_checkout_session(self, request: CheckoutSessionRequest) -> CheckoutSession:
        await self.faults.before("create_checkout_session")
        await self._customer_doc(request.gateway_customer_id)
        amount = request.amount
        params = {
            "op": "checkout_session",
            "mode": request.mode.value,
            "customer": request.gateway_customer_id,
            "amount": amount.to_minor_units() if amount else None,
            "currency": amount.currency.code if amount else None,
        }

        async def create() -> Document:
            session_id = self.ids.new_id("cs")
            session: Document = {
                "id": session_id,
                "url": f"{self.base_url.rstrip('/')}/sandbox/checkout/{session_id}",
                "mode": request.mode.value,
                "customer": request.gateway_customer_id,
                "amount": params["amount"],
                "currency": params["currency"],
                "save_card_and_make_default": request.save_card_and_make_default,
                "success_url": request.success_url,
                "cancel_url": request.cancel_url,
                "metadata": dict(request.metadata),
                "status": CheckoutSessionStatus.OPEN.value,
                "payment_intent": None,
                "payment_method": None,
            }
            await self.store.put("checkout_session", session_id, session)
            return {"checkout_session": session_id}

        answer = await self._idempotent(request.idempotency_key, params, create)
        return await self.get_checkout_session(str(answer["checkout_session"]))

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        session = await self._session_doc(session_id)
        return await self._session(session)

    async def checkout_page(self, session_id: str) -> Document:
        """What the hosted page shows: mode, amount, status, where to go after."""
        return await self._session_doc(session_id)

    async def complete_checkout_session(self, session_id: str, card_number: str) -> GatewayEvent:
        """Play the customer typing a card on the hosted page and submitting it.

        Emits `checkout.session.completed`, as Stripe would. A card that declines leaves the
        session open and raises the decline, as Stripe's page shows it.
        """
        session = await self._session_doc(session_id)
        if session["status"] != CheckoutSessionStatus.OPEN.value:
            raise ValidationError(f"This checkout is {session['status']}.", field="session")
        card = test_card(card_number)
        if session["mode"] == CheckoutMode.PAYMENT.value:
            # On-session: the customer completes 3D Secure on the page, so only hard
            # declines fail here.
            failure = card.failure()
            if failure is not None and failure.code != "authentication_required":
                raise payment_failure(
                    failure.code, failure.message, decline_code=failure.decline_code
                )
        pm = await self._save_card(session["customer"], card)
        session["payment_method"] = pm["id"]
        if session["mode"] == CheckoutMode.PAYMENT.value:
            amount = Money.from_minor_units(session["amount"], CURRENCIES[session["currency"]])
            intent = await self._new_intent(amount, session["customer"], pm, None,
                                            dict(session["metadata"]))  # fmt: skip
            session["payment_intent"] = intent["id"]
        session["status"] = CheckoutSessionStatus.COMPLETE.value
        await self.store.put("checkout_session", session_id, session)
        return await self._emit(GatewayEventType.CHECKOUT_COMPLETED, session)

    async def expire_checkout_session(self, session_id: str) -> GatewayEvent:
        session = await self._session_doc(session_id)
        if session["status"] != CheckoutSessionStatus.OPEN.value:
            raise ValidationError(f"This checkout is {session['status']}.", field="session")
        session["status"] = CheckoutSessionStatus.EXPIRED.value
        await self.store.put("checkout_session", session_id, session)
        return await self._emit(GatewayEventType.CHECKOUT_EXPIRED, session)

    async def _session_doc(self, session_id: str) -> Document:
        session = await self.store.get("checkout_session", session_id)
        if session is None:
            raise ValidationError(f"No checkout session {session_id}.", field="session_id")
        return session

    async def _session(self, session: Document) -> CheckoutSession:
        charge = None
        if session["payment_intent"]:
            charge = await self._intent_result(session["payment_intent"])
        elif session["payment_method"]:
            card = await self._card(session["payment_method"], None)
            assert card is not None
            charge = ChargeResult(
                status=ChargeStatus.SUCCEEDED,
                payment_method_id=card.id,
                card_brand=card.brand,
                card_last4=card.last4,
            )
        return CheckoutSession(
            id=session["id"],
            url=session["url"],
            mode=CheckoutMode(session["mode"]),
            status=CheckoutSessionStatus(session["status"]),
            gateway_customer_id=session["customer"],
            save_card_and_make_default=session["save_card_and_make_default"],
            paid=session["payment_intent"] is not None,
            charge=charge,
            metadata=session["metadata"],
        )

    async def _emit(self, kind: GatewayEventType, session: Document) -> GatewayEvent:
        event = GatewayEvent(
            id=self.ids.new_id("evt"),
            type=kind,
            created_at=self.clock.now(),
            metadata=session["metadata"],
            session=await self._session(session),
        )
        if self.event_sink is not None:
            await self.event_sink(event)
        return event

    # Idempotency ---------------------------------------------------------------------

    async def _idempotent(
        self, key: str, params: dict[str, Any], create: Callable[[], Awaitable[Document]]
    ) -> Document:
        """Run `create` once per key; later calls with the key get its answer back."""
        fingerprint = _fingerprint(params)
        claimed = await self.store.insert(
            "idempotency_key", key, {"fingerprint": fingerprint, "answer": None}
        )
        if not claimed:
            existing = await self.store.get("idempotency_key", key)
            assert existing is not None
            if existing["fingerprint"] != fingerprint:
                raise GatewayError(
                    "Keys for idempotent requests can only be used with the same parameters.",
                    stripe_error_code="idempotency_error",
                )
            if existing["answer"] is None:
                raise GatewayUnavailable("A request with this idempotency key is in flight.")
            if "error" in existing["answer"]:
                raise GatewayError(existing["answer"]["error"])
            return dict(existing["answer"])
        try:
            answer = await create()
        except GatewayError as error:
            answer = {"error": error.message}
            await self.store.put(
                "idempotency_key", key, {"fingerprint": fingerprint, "answer": answer}
            )
            raise
        except BaseException:
            # Nothing was created: free the key so that a retry may do the work.
            await self.store.delete("idempotency_key", key)
            raise
        await self.store.put("idempotency_key", key, {"fingerprint": fingerprint, "answer": answer})
        return answer
