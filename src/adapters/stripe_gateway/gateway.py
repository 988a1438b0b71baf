"""`StripePaymentGateway`: the PaymentGateway port on Stripe's API.

Every mutating call carries an idempotency key derived from the payment, refund or customer,
so the SDK's network retries (and ours) can never charge or refund twice. An answer that never
arrived (timeout, lost connection, a 5xx) is an unknown outcome: `GatewayUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import attrs
import stripe

from adapters.stripe_vocabulary import classify_card_error
from core.errors import CustomerNotLinked, GatewayError
from core.gateway import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
    GatewayCustomer,
    GatewayFailure,
    GatewayPaymentMethod,
    GatewayRefund,
    GatewayUnavailable,
    RefundOutcome,
    RefundRequest,
)

T = TypeVar("T")

# The API version this adapter was written and tested against; Stripe answers in it.
STRIPE_API_VERSION: Final = "2026-10-28.endive"
DEFAULT_TIMEOUT_SECONDS: Final = 20.0
DEFAULT_NETWORK_RETRIES: Final = 2
RATE_LIMIT_PAUSES: Final = (0.25, 0.5, 1.0)
REFUND_OUTCOMES: Final = {
    "succeeded": RefundOutcome.SUCCEEDED,
    "pending": RefundOutcome.PENDING,
    "requires_action": RefundOutcome.PENDING,
    "failed": RefundOutcome.FAILED,
    "canceled": RefundOutcome.FAILED,
}


def _get(obj: Any, name: str) -> Any:
    """A field of a Stripe object or a plain dict, None when absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _plain(obj: Any) -> Any:
    """An SDK object as the plain dict Stripe sent (webhook payloads are plain already)."""
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else obj


def _id(value: Any) -> str | None:
    """The id of an expanded object, or the id itself."""
    if value is None or isinstance(value, str):
        return value
    return str(_get(value, "id"))


@attrs.define
class StripePaymentGateway:
    client: stripe.StripeClient
    http_client: stripe.HTTPXClient
    # Where Stripe sends the customer after a hosted page when the request names no URL.
    default_return_url: str = "http://127.0.0.1:8000/"

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

    async def create_customer(
        self,
        *,
        customer_id: str,
        environment_id: str,
        name: str | None,
        email: str | None,
        idempotency_key: str,
    ) -> str:
        params: dict[str, Any] = {
            "metadata": {"customer_id": customer_id, "environment_id": environment_id}
        }
        if name:
            params["name"] = name
        if email:
            params["email"] = email
        customer = await self._call(
            lambda: self.client.v1.customers.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return str(customer.id)

    async def get_customer(self, gateway_customer_id: str) -> GatewayCustomer:
        customer = await self._customer(gateway_customer_id)
        default = _get(_get(customer, "invoice_settings"), "default_payment_method")
        card = None
        if default is not None:
            if isinstance(default, str):
                default = await self._call(
                    lambda: self.client.v1.payment_methods.retrieve_async(default)
                )
            card = self._card(default, is_default=True)
        return GatewayCustomer(id=str(customer.id), default_payment_method=card)

    async def list_payment_methods(
        self, gateway_customer_id: str
    ) -> Sequence[GatewayPaymentMethod]:
        customer = await self._customer(gateway_customer_id)
        default_id = _id(_get(_get(customer, "invoice_settings"), "default_payment_method"))
        listed = await self._call(
            lambda: self.client.v1.payment_methods.list_async(
                params={"customer": gateway_customer_id, "type": "card", "limit": 100}
            )
        )
        cards = (self._card(pm, is_default=pm.id == default_id) for pm in listed.data)
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
        if _id(_get(pm, "customer")) != gateway_customer_id:
            return None
        customer = await self._customer(gateway_customer_id)
        default_id = _id(_get(_get(customer, "invoice_settings"), "default_payment_method"))
        return self._card(pm, is_default=pm.id == default_id)

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
        if _get(customer, "deleted"):
            raise CustomerNotLinked(gateway_customer_id=gateway_customer_id)
        return customer

    @staticmethod
    def _card(pm: Any, *, is_default: bool) -> GatewayPaymentMethod | None:
        card = _get(pm, "card")
        if card is None:
            return None
        return GatewayPaymentMethod(
            id=str(_get(pm, "id")),
            brand=str(_get(card, "brand")),
            last4=str(_get(card, "last4")),
            exp_month=int(_get(card, "exp_month")),
            exp_year=int(_get(card, "exp_year")),
            is_default=is_default,
        )

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
        except _Declined as declined:
            return declined.result
        return self.intent_result(intent)

    async def find_charge(self, request: ChargeRequest, intent_id: str | None) -> ChargeResult:
        if intent_id is None:
            # Replaying the create with its key returns the first answer (within 24 hours).
            return await self.charge(request)
        intent = await self._call(
            lambda: self.client.v1.payment_intents.retrieve_async(
                intent_id, params={"expand": ["payment_method"]}
            )
        )
        return self.intent_result(intent)

    @staticmethod
    def intent_result(intent: Any) -> ChargeResult:
        """Read the intent's status, not only the absence of an error."""
        intent = _plain(intent)
        status = _get(intent, "status")
        pm = _get(intent, "payment_method")
        card = _get(pm, "card") if not isinstance(pm, str) else None
        found = {
            "intent_id": str(_get(intent, "id")),
            "payment_method_id": _id(pm),
            "card_brand": _get(card, "brand"),
            "card_last4": _get(card, "last4"),
        }
        if status == "succeeded":
            return ChargeResult(status=ChargeStatus.SUCCEEDED, **found)
        if status == "processing":
            return ChargeResult(status=ChargeStatus.PROCESSING, **found)
        error = _get(intent, "last_payment_error")
        if status == "requires_action" or (status == "requires_payment_method" and not error):
            failure = classify_card_error(
                "authentication_required",
                "authentication_required",
                "The card requires authentication; use a payment link.",
            )
        elif error is not None:
            failure = classify_card_error(
                _get(error, "code"), _get(error, "decline_code"), str(_get(error, "message"))
            )
        else:
            failure = GatewayFailure(GatewayError.code, f"The PaymentIntent is {status}.")
        return ChargeResult(status=ChargeStatus.FAILED, failure=failure, **found)

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
        outcome = REFUND_OUTCOMES.get(str(_get(refund, "status")), RefundOutcome.PENDING)
        failure = None
        if outcome is RefundOutcome.FAILED:
            reason = _get(refund, "failure_reason") or "failed"
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

    @staticmethod
    def session_from(session: Any) -> CheckoutSession:
        """A Checkout Session (an SDK object or a webhook's plain dict) as the core sees it."""
        session = _plain(session)
        metadata = dict(_get(session, "metadata") or {})
        mode = CheckoutMode(str(_get(session, "mode")))
        intent = _get(session, "payment_intent") or _get(session, "setup_intent")
        pm = _get(intent, "payment_method") if not isinstance(intent, str) else None
        card = _get(pm, "card") if pm is not None and not isinstance(pm, str) else None
        charge = None
        if intent is not None:
            charge = ChargeResult(
                status=ChargeStatus.SUCCEEDED,
                intent_id=_id(intent) if mode is CheckoutMode.PAYMENT else None,
                payment_method_id=_id(pm),
                card_brand=_get(card, "brand"),
                card_last4=_get(card, "last4"),
            )
        return CheckoutSession(
            id=str(_get(session, "id")),
            url=str(_get(session, "url") or ""),
            mode=mode,
            status=CheckoutSessionStatus(str(_get(session, "status") or "open")),
            gateway_customer_id=str(_id(_get(session, "customer"))),
            save_card_and_make_default=metadata.pop("save_card_and_make_default", "") == "true",
            paid=_get(session, "payment_status") == "paid",
            charge=charge,
            metadata=metadata,
        )

    # Errors --------------------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]], *, charging: bool = False) -> T:
        """Make an SDK call, turning Stripe's errors into the core's.

        A card error while charging is a definite decline (raised as `_Declined`, carrying the
        failed result); other refusals are `GatewayError`; no answer is `GatewayUnavailable`.
        A rate limit is waited out a few times: the same idempotency key makes it safe.
        """
        for pause in (*RATE_LIMIT_PAUSES, None):
            try:
                return await self._translated(call(), charging=charging)
            except _RateLimited as limited:
                if pause is None:
                    raise GatewayUnavailable(str(limited)) from None
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def _translated(self, call: Awaitable[T], *, charging: bool) -> T:
        try:
            return await call
        except stripe.CardError as error:
            body = error.error
            failure = classify_card_error(
                error.code, _get(body, "decline_code"), error.user_message or str(error)
            )
            if charging:
                intent = _get(body, "payment_intent")
                raise _Declined(
                    ChargeResult(
                        status=ChargeStatus.FAILED,
                        intent_id=_id(intent),
                        payment_method_id=_id(_get(body, "payment_method")),
                        failure=failure,
                    )
                ) from None
            raise GatewayError(failure.message, stripe_error_code=error.code) from None
        except stripe.RateLimitError as error:
            raise _RateLimited(str(error)) from None
        except stripe.APIConnectionError as error:
            raise GatewayUnavailable(str(error)) from None
        except stripe.InvalidRequestError as error:
            if charging:
                raise _Declined(
                    ChargeResult(
                        status=ChargeStatus.FAILED,
                        failure=GatewayFailure(
                            GatewayError.code,
                            error.user_message or str(error),
                            gateway_code=error.code,
                        ),
                    )
                ) from None
            # Stripe says resource_missing for a 404; some compatible servers only the status.
            code = error.code or ("resource_missing" if error.http_status == 404 else None)
            raise GatewayError(error.user_message or str(error), stripe_error_code=code) from None
        except stripe.IdempotencyError as error:
            if error.code == "idempotency_key_in_use":  # the first request is still running
                raise GatewayUnavailable(str(error)) from None
            raise GatewayError(str(error), stripe_error_code="idempotency_error") from None
        except stripe.APIError as error:
            if error.http_status is not None and error.http_status < 500:
                # A refusal whose body was not Stripe's JSON (some compatible servers).
                raise GatewayError(str(error), stripe_error_code=error.code) from None
            # A 5xx: Stripe may or may not have done the work.
            raise GatewayUnavailable(str(error)) from None
        except stripe.StripeError as error:  # authentication, permission: our configuration
            raise GatewayError(str(error), stripe_error_code=error.code) from None


class _RateLimited(Exception):
    pass


class _Declined(Exception):
    def __init__(self, result: ChargeResult) -> None:
        super().__init__(result.failure.message if result.failure else "declined")
        self.result = result
