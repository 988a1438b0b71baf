"""The sandbox's hosted checkout pages: sessions, the customer's card on them, their events."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from adapters.sandbox.cards import test_card
from adapters.sandbox.documents import Created, SandboxDocuments
from adapters.sandbox.faults import SandboxFaults
from adapters.sandbox.store import Document, Expected
from core.errors import ValidationError, payment_failure
from core.gateway import (
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
    GatewayEvent,
    GatewayEventType,
)
from core.money import CURRENCIES, Money

EventSink = Callable[[GatewayEvent], Awaitable[object]]


class HostedCheckout(SandboxDocuments):
    """The hosted-page half of `SandboxPaymentGateway`."""

    # A mixin of the slotted attrs gateway, which sets these fields.
    __slots__ = ()
    faults: SandboxFaults
    base_url: str
    event_sink: EventSink | None

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

        async def create() -> Created:
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
                # Carried by the hosted form: a page of another site cannot read it, so it
                # cannot post the form (shared by every instance, as the session is).
                "form_token": secrets.token_urlsafe(16),
            }
            return Created(
                {"checkout_session": session_id}, [("checkout_session", session_id, session)]
            )

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
        writes: list[tuple[str, str, Document]] = []
        if session["mode"] == CheckoutMode.PAYMENT.value:
            amount = Money.from_minor_units(session["amount"], CURRENCIES[session["currency"]])
            metadata = dict(session["metadata"])
            intent = self._intent_document(amount, session["customer"], pm, None, metadata)
            writes.append(("payment_intent", intent["id"], intent))
            session["payment_intent"] = intent["id"]
        session["status"] = CheckoutSessionStatus.COMPLETE.value
        writes.append(("checkout_session", session_id, session))
        # The charge and the completed session together, and only over a session still
        # open: of two submissions at once, one pays.
        still_open = Expected(
            "checkout_session", session_id, "status", CheckoutSessionStatus.OPEN.value
        )
        if not await self.store.put_all(writes, expected=still_open):
            raise ValidationError("This checkout is complete.", field="session")
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
