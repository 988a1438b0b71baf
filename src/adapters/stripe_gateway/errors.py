"""Stripe's SDK errors as the core's: a decline, a refusal, or no answer (outcome unknown)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import stripe

from adapters.stripe_gateway.objects import field, id_of
from adapters.stripe_vocabulary import classify_card_error
from core.errors import GatewayError
from core.gateway import ChargeResult, ChargeStatus, GatewayFailure, GatewayUnavailable

T = TypeVar("T")


async def translated(call: Awaitable[T], *, charging: bool) -> T:
    """Await an SDK call; Stripe's errors raised as the core's (`StripePaymentGateway._call`)."""
    try:
        return await call
    except stripe.CardError as error:
        body = error.error
        failure = classify_card_error(
            error.code, field(body, "decline_code"), error.user_message or str(error)
        )
        if charging:
            intent = field(body, "payment_intent")
            raise Declined(
                ChargeResult(
                    status=ChargeStatus.FAILED,
                    intent_id=id_of(intent),
                    payment_method_id=id_of(field(body, "payment_method")),
                    failure=failure,
                )
            ) from None
        raise GatewayError(failure.message, stripe_error_code=error.code) from None
    except stripe.RateLimitError as error:
        raise RateLimited(str(error)) from None
    except stripe.APIConnectionError as error:
        raise GatewayUnavailable(str(error)) from None
    except stripe.InvalidRequestError as error:
        if charging:
            raise Declined(
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
        if error.http_status == 409:
            # Stripe's idempotency_key_in_use: another request with the key is still running.
            raise GatewayUnavailable(str(error)) from None
        if error.http_status is not None and error.http_status < 500:
            # A refusal whose body was not Stripe's JSON (some compatible servers).
            raise GatewayError(str(error), stripe_error_code=error.code) from None
        # A 5xx: Stripe may or may not have done the work.
        raise GatewayUnavailable(str(error)) from None
    except stripe.StripeError as error:  # authentication, permission: our configuration
        raise GatewayError(str(error), stripe_error_code=error.code) from None


class RateLimited(Exception):
    """Stripe asked us to slow down: the call may be retried with its idempotency key."""


class Declined(Exception):
    """A definite decline while charging, carrying the failed result."""

    def __init__(self, result: ChargeResult) -> None:
        super().__init__(result.failure.message if result.failure else "declined")
        self.result = result
