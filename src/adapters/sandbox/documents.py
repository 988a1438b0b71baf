"""The sandbox's Stripe-shaped documents (customers, cards, intents) and idempotency keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs

from adapters.sandbox.cards import TestCard
from adapters.sandbox.store import Document, SandboxStore
from core.errors import CustomerNotLinked, GatewayError
from core.gateway import (
    ChargeResult,
    ChargeStatus,
    GatewayFailure,
    GatewayPaymentMethod,
    GatewayUnavailable,
)
from core.money import Money
from core.ports import Clock, IdGenerator

# One encoder for every fingerprint (json.dumps with options builds one per call).
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, default=str)


def _fingerprint(params: dict[str, Any]) -> str:
    return hashlib.sha256(_CANONICAL.encode(params).encode()).hexdigest()


class SandboxDocuments:
    """What every part of `SandboxPaymentGateway` reads and writes its documents with."""

    # A mixin of the slotted attrs gateway, which sets these fields.
    __slots__ = ()
    clock: Clock
    ids: IdGenerator
    store: SandboxStore

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
