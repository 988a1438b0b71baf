"""`StripePaymentGateway`: the PaymentGateway port on Stripe's API.

Every mutating call carries an idempotency key derived from the payment, refund or customer,
so the SDK's network retries (and ours) can never charge or refund twice. An answer that never
arrived (timeout, lost connection, a 5xx) is an unknown outcome: `GatewayUnavailable`.

Here: the calls. Stripe's objects are read in `objects`, its errors translated in `errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import attrs
import stripe

from adapters.stripe_gateway import objects
from adapters.stripe_gateway.errors import Declined, RateLimited, translated
from adapters.stripe_gateway.objects import REFUND_OUTCOMES, field, id_of, payment_method_from
from core.errors import CustomerNotLinked, GatewayError
from core.gateway import (
    ChargeRequest,
    ChargeResult,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionRequest,
    CustomerRequest,
    GatewayCustomer,
    GatewayFailure,
    GatewayPaymentMethod,
    GatewayRefund,
    GatewayUnavailable,
    RefundOutcome,
    RefundRequest,
)

T = TypeVar("T")

logger = logging.getLogger("card_checkout.stripe")

# The API version this adapter was written and tested against; Stripe answers in it.
STRIPE_API_VERSION: Final = "2026-10-28.endive"
DEFAULT_TIMEOUT_SECONDS: Final = 20.0
DEFAULT_NETWORK_RETRIES: Final = 2
RATE_LIMIT_PAUSES: Final = (0.25, 0.5, 1.0)


@attrs.define
class StripePaymentGateway:
    client: stripe.StripeClient
    http_client: stripe.HTTPXClient
    # Where Stripe sends the customer after a hosted page when the request names no URL.
    default_return_url: str = "http://127.0.0.1:8000/"

    # Public on the class before they moved to `objects`: kept, so that callers still work.
    intent_result = staticmethod(objects.intent_result)
    session_from = staticmethod(objects.session_from)

    @classmethod
    def create(
        cls,
        secret_key: str,
        *,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_network_retries: int = DEFAULT_NETWORK_RETRIES,
        default_return_url: str = "http://127.0.0.1:8000/",
    ) -> StripePaymentGateway:
        http_client = stripe.HTTPXClient(timeout=timeout)
        client = stripe.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": api_base} if api_base else None,
            http_client=http_client,
            max_network_retries=max_network_retries,
        )
        return cls(client=client, http_client=http_client, default_return_url=default_return_url)

    async def aclose(self) -> None:
        await self.http_client.close_async()  # type: ignore[no-untyped-call]  # SDK: untyped

    # Customers and cards -------------------------------------------------------------

    async def create_customer(self, request: CustomerRequest) -> str:
        params: dict[str, Any] = {"metadata": dict(request.metadata)}
        if request.name:
            params["name"] = request.name
        if request.email:
            params["email"] = request.email
        customer = await self._call(
            lambda: self.client.v1.customers.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            )
        )
        return str(customer.id)

    async def get_customer(self, gateway_customer_id: str) -> GatewayCustomer:
        customer = await self._customer(gateway_customer_id)
        default = field(field(customer, "invoice_settings"), "default_payment_method")
        card = None
        if default is not None:
            if isinstance(default, str):
                default = await self._call(
                    lambda: self.client.v1.payment_methods.retrieve_async(default)
                )
            card = payment_method_from(default, is_default=True)
        metadata = field(customer, "metadata") or {}
        if not isinstance(metadata, dict):  # the SDK's StripeObject is no mapping
            metadata = metadata.to_dict()
        metadata = {str(k): str(v) for k, v in metadata.items()}
        return GatewayCustomer(id=str(customer.id), default_payment_method=card, metadata=metadata)

    async def list_payment_methods(
        self, gateway_customer_id: str
    ) -> Sequence[GatewayPaymentMethod]:
        customer = await self._customer(gateway_customer_id)
        default_id = id_of(field(field(customer, "invoice_settings"), "default_payment_method"))
        listed = await self._call(
            lambda: self.client.v1.payment_methods.list_async(
                params={"customer": gateway_customer_id, "type": "card", "limit": 100}
            )
        )
        cards = (payment_method_from(pm, is_default=pm.id == default_id) for pm in listed.data)
        return [card for card in cards if card is not None]

    async def get_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> GatewayPaymentMethod | None:
        try:
            pm = await self._call(
                lambda: self.client.v1.payment_methods.retrieve_async(payment_method_id)
            )
        except GatewayError as error:
            if error.details.get("stripe_error_code") == "resource_missing":
                return None
            raise
        if id_of(field(pm, "customer")) != gateway_customer_id:
            return None
        customer = await self._customer(gateway_customer_id)
        default_id = id_of(field(field(customer, "invoice_settings"), "default_payment_method"))
        return payment_method_from(pm, is_default=pm.id == default_id)

    async def set_default_payment_method(
        self, gateway_customer_id: str, payment_method_id: str
    ) -> None:
        await self._call(
            lambda: self.client.v1.customers.update_async(
                gateway_customer_id,
                params={"invoice_settings": {"default_payment_method": payment_method_id}},
            )
        )

    async def _customer(self, gateway_customer_id: str) -> Any:
        try:
            customer = await self._call(
                lambda: self.client.v1.customers.retrieve_async(
                    gateway_customer_id,
                    params={"expand": ["invoice_settings.default_payment_method"]},
                )
            )
        except GatewayError as error:
            if error.details.get("stripe_error_code") == "resource_missing":
                raise CustomerNotLinked(gateway_customer_id=gateway_customer_id) from None
            raise
        if field(customer, "deleted"):
            raise CustomerNotLinked(gateway_customer_id=gateway_customer_id)
        return customer

    # Charges -------------------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """The product page's charge: a PaymentIntent confirmed off-session."""
        try:
            intent = await self._call(
                lambda: self.client.v1.payment_intents.create_async(
                    params={
                        "amount": request.amount.to_minor_units(),
                        "currency": request.amount.currency.code,
                        "customer": request.gateway_customer_id,
                        "payment_method": request.payment_method_id,
                        "off_session": True,
                        "confirm": True,
                        "metadata": dict(request.metadata),
                        "expand": ["payment_method"],
                    },
                    options={"idempotency_key": request.idempotency_key},
                ),
                charging=True,
            )
        except Declined as declined:
            return declined.result
        return self.intent_result(intent)

    async def find_charge(self, request: ChargeRequest, intent_id: str | None) -> ChargeResult:
        if intent_id is None:
            # Replaying the create with its key returns the first answer (within 24 hours).
            try:
                return await self.charge(request)
            except GatewayUnavailable:
                # In flight (409), or no answer: look for the charge by the payment's id.
                found = await self._search_charge(request.metadata.get("payment_id"))
                if found is None:
                    raise
                return found
        intent = await self._call(
            lambda: self.client.v1.payment_intents.retrieve_async(
                intent_id, params={"expand": ["payment_method"]}
            )
        )
        return self.intent_result(intent)

    async def _search_charge(self, payment_id: str | None) -> ChargeResult | None:
        """The charge made for a payment, found by its metadata; None when none is known.

        Stripe's search is eventually consistent (a new charge shows within a minute, an
        hour at worst), so finding none says nothing about whether the payment was charged.
        """
        if payment_id is None:
            return None
        try:
            found = await self._call(
                lambda: self.client.v1.payment_intents.search_async(
                    params={
                        "query": metadata_query("payment_id", payment_id),
                        "expand": ["data.payment_method"],
                    }
                )
            )
        except (GatewayError, GatewayUnavailable) as error:
            # Search is not offered everywhere (some accounts, Stripe-compatible servers).
            logger.warning("stripe: searching the charge of %s failed: %s", payment_id, error)
            return None
        settled = [intent for intent in found.data if objects.settled(intent)]
        if not settled:
            return None
        return self.intent_result(max(settled, key=objects.charge_rank))

    # Refunds -------------------------------------------------------------------------

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        params: dict[str, Any] = {
            "payment_intent": request.intent_id,
            "amount": request.amount.to_minor_units(),
            "metadata": dict(request.metadata),
        }
        refund = await self._call(
            lambda: self.client.v1.refunds.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            )
        )
        outcome = REFUND_OUTCOMES.get(str(field(refund, "status")), RefundOutcome.PENDING)
        failure = None
        if outcome is RefundOutcome.FAILED:
            reason = field(refund, "failure_reason") or "failed"
            failure = GatewayFailure(GatewayError.code, f"The refund failed: {reason}.")
        return GatewayRefund(id=str(refund.id), outcome=outcome, failure=failure)

    # Hosted pages --------------------------------------------------------------------

    async def create_checkout_session(self, request: CheckoutSessionRequest) -> CheckoutSession:
        params: dict[str, Any] = {
            "mode": request.mode.value,
            "customer": request.gateway_customer_id,
            "success_url": request.success_url or self.default_return_url,
            "cancel_url": request.cancel_url or self.default_return_url,
            "metadata": {
                **request.metadata,
                "save_card_and_make_default": str(request.save_card_and_make_default).lower(),
            },
        }
        if request.mode is CheckoutMode.PAYMENT:
            assert request.amount is not None, "a payment page has an amount"
            params["line_items"] = [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.amount.currency.code,
                        "unit_amount": request.amount.to_minor_units(),
                        "product_data": {"name": "Invoice payment"},
                    },
                }
            ]
            intent_data: dict[str, Any] = {"metadata": dict(request.metadata)}
            if request.save_card_and_make_default:
                intent_data["setup_future_usage"] = "off_session"
            params["payment_intent_data"] = intent_data
        else:
            params["payment_method_types"] = ["card"]
            params["setup_intent_data"] = {"metadata": dict(request.metadata)}
        session = await self._call(
            lambda: self.client.v1.checkout.sessions.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            )
        )
        return self.session_from(session)

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        session = await self._call(
            lambda: self.client.v1.checkout.sessions.retrieve_async(
                session_id,
                params={
                    "expand": [
                        "payment_intent.payment_method",
                        "setup_intent.payment_method",
                    ]
                },
            )
        )
        return self.session_from(session)

    # Errors --------------------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]], *, charging: bool = False) -> T:
        """Make an SDK call, turning Stripe's errors into the core's.

        A card error while charging is a definite decline (raised as `Declined`, carrying the
        failed result); other refusals are `GatewayError`; no answer is `GatewayUnavailable`.
        A rate limit is waited out a few times: the same idempotency key makes it safe.
        """
        for pause in (*RATE_LIMIT_PAUSES, None):
            try:
                return await translated(call(), charging=charging)
            except RateLimited as limited:
                if pause is None:
                    raise GatewayUnavailable(str(limited)) from None
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")


def metadata_query(key: str, value: str) -> str:
    """A search query (Stripe's search query language) for one metadata value."""
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{key}']:'{quoted}'"
