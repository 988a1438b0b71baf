"""The sandbox's Stripe-shaped documents (customers, cards, intents) and idempotency keys."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

import attrs

from adapters.sandbox.cards import TestCard
from adapters.sandbox.store import Document, Expected, SandboxStore, StoreFailures, Writes
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
KEYS: Final = "idempotency_key"
IN_FLIGHT: Final = "A request with this idempotency key is in flight."

logger = logging.getLogger("card_checkout.sandbox")


def _fingerprint(params: dict[str, Any]) -> str:
    return hashlib.sha256(_CANONICAL.encode(params).encode()).hexdigest()


# The SQL store reports its database's failures as `GatewayUnavailable` itself; a store's
# connection failing is one too.
_STORE_FAILURES: Final = StoreFailures((OSError,))


def unknown_if_the_store_fails() -> StoreFailures:
    """The sandbox's own storage failing is, to its caller, a gateway that did not answer."""
    return _STORE_FAILURES


@attrs.frozen
class Created:
    """What an idempotent request did: its answer, the documents stored with it (in the
    same transaction), and what to do once they are stored."""

    answer: Document
    documents: Writes = ()
    then: Callable[[], object] | None = None


class SandboxDocuments:
    """What every part of `SandboxPaymentGateway` reads and writes its documents with."""

    # A mixin of the slotted attrs gateway, which sets these fields.
    __slots__ = ()
    clock: Clock
    ids: IdGenerator
    store: SandboxStore
    # How long a request holds its idempotency key without answering before a retry may run
    # it again (its documents and its answer are stored together, so it stored nothing).
    idempotency_lease: timedelta

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

    def _intent_document(
        self,
        amount: Money,
        gateway_customer_id: str,
        pm: Document | None,
        failure: GatewayFailure | None,
        metadata: dict[str, str],
    ) -> Document:
        return {
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
        self, key: str, params: dict[str, Any], create: Callable[[], Awaitable[Created]]
    ) -> Document:
        """Run `create` once per key; later calls with the key get its answer back.

        Like Stripe: what a request creates and the answer kept under its key are stored in
        one transaction, so a key without an answer means a request that created nothing.
        Such a key is in flight while its lease lasts; after, a retry runs the request again.
        """
        fingerprint = _fingerprint(params)
        claim: Document = {
            "fingerprint": fingerprint,
            "answer": None,
            "claim": secrets.token_hex(8),
            "expires_at": (self.clock.now() + self.idempotency_lease).timestamp(),
        }
        held = Expected(KEYS, key, "claim", claim["claim"])
        with unknown_if_the_store_fails():
            if not await self.store.insert(KEYS, key, claim):
                existing = await self.store.get(KEYS, key)
                answer = _replayed(existing, fingerprint)
                if answer is not None:
                    return answer
                assert existing is not None
                if not await self._took_over(key, existing, claim):
                    raise GatewayUnavailable(IN_FLIGHT)
        try:
            with unknown_if_the_store_fails():
                created = await create()
        except GatewayError as error:
            refused = {"fingerprint": fingerprint, "answer": {"error": error.message}}
            await self._keep_or_release(key, refused, held)
            raise
        except BaseException:
            # Nothing was stored: expire the claim, so that a retry may do the work now.
            released = {**claim, "expires_at": self.clock.now().timestamp()}
            await self._keep_or_release(key, released, held)
            raise
        answered = {"fingerprint": fingerprint, "answer": created.answer}
        writes = [*created.documents, (KEYS, key, answered)]
        with unknown_if_the_store_fails():
            stored = await self.store.put_all(writes, expected=held)
        if not stored:
            # This request outlived its lease and a retry took the key: it stored nothing.
            raise GatewayUnavailable(IN_FLIGHT)
        if created.then is not None:
            created.then()
        return created.answer

    async def _took_over(self, key: str, existing: Document, claim: Document) -> bool:
        """Claim a key whose request died before answering (its lease is over)."""
        expires_at = existing.get("expires_at")
        if expires_at is None or self.clock.now().timestamp() < expires_at:
            return False  # in flight; or kept by an earlier sandbox, which gave no lease
        stale = Expected(KEYS, key, "claim", existing["claim"])
        return await self.store.put_all([(KEYS, key, claim)], expected=stale)

    async def _keep_or_release(self, key: str, document: Document, held: Expected) -> None:
        """Store a refusal as the key's answer, or release the key; if the store fails, the
        key is released anyway when its lease ends."""
        try:
            await self.store.put_all([(KEYS, key, document)], expected=held)
        except Exception:
            logger.warning("sandbox: idempotency key %s was left claimed", key, exc_info=True)


def _replayed(existing: Document | None, fingerprint: str) -> Document | None:
    """The answer kept under a key (a refusal raised again); None while it has none."""
    if existing is None:
        raise GatewayUnavailable(IN_FLIGHT)  # its request just released it
    if existing["fingerprint"] != fingerprint:
        raise GatewayError(
            "Keys for idempotent requests can only be used with the same parameters.",
            stripe_error_code="idempotency_error",
        )
    answer: Document | None = existing["answer"]
    if answer is not None and "error" in answer:
        raise GatewayError(answer["error"])
    return answer
