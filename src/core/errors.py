"""Every error the contract names, each a class carrying its `code`, message and details."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar


class NextAction(StrEnum):
    """What the caller should do after a failed payment (the product page's Resolution column)."""

    CREATE_PAYMENT_LINK = "create_payment_link"
    CONTACT_BANK = "contact_bank"
    USE_DIFFERENT_PAYMENT_METHOD = "use_different_payment_method"
    UPDATE_PAYMENT_METHOD = "update_payment_method"


Details = Mapping[str, object]


class CheckoutError(Exception):
    """The base of every error a caller can see: a stable `code`, a sentence, and details."""

    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Something went wrong on our side."
    # True when this is a keyed request's stored answer, raised again for a retry.
    replayed: bool = False

    def __init__(self, message: str | None = None, **details: object) -> None:
        self.message = message or self.default_message
        self.details: dict[str, object] = {k: v for k, v in details.items() if v is not None}
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InternalError(CheckoutError):
    code = "internal_error"


class ValidationError(CheckoutError):
    code = "validation_error"

    def __init__(self, message: str, *, field: str | None = None, **details: object) -> None:
        super().__init__(message, field=field, **details)

    @property
    def field(self) -> str | None:
        value = self.details.get("field")
        return value if isinstance(value, str) else None


class InvalidJson(CheckoutError):
    code = "invalid_json"
    default_message = "The request body must be a JSON object."


class MissingEnvironment(CheckoutError):
    """A key was given but not the environment it should act in."""

    code = "missing_environment"
    default_message = (
        "The X-Environment-ID header is required: it names the environment the key acts in."
    )

    def __init__(self, message: str | None = None, **details: object) -> None:
        details.setdefault("field", "X-Environment-ID")
        super().__init__(message, **details)


class Unauthorized(CheckoutError):
    code = "unauthorized"
    default_message = "A valid API key is required."


class Forbidden(CheckoutError):
    code = "forbidden"
    default_message = "This API key may not do that."


class NotFound(CheckoutError):
    code = "not_found"
    default_message = "Nothing was found with that id."


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"
    default_message = "No invoice with that id exists in this environment."


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    default_message = "No payment with that id exists in this environment."


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    default_message = "No customer with that id exists in this environment."


class Conflict(CheckoutError):
    """The resource is not in a state that allows the request."""


class InvoiceNotFinalized(Conflict):
    code = "invoice_not_finalized"
    default_message = "The invoice must be finalized before it can be paid."


class InvoiceVoided(Conflict):
    code = "invoice_voided"
    default_message = "The invoice is voided."


class InvoiceAlreadyPaid(Conflict):
    code = "invoice_already_paid"
    default_message = "The invoice has no amount left to pay."


class PaymentInProgress(Conflict):
    code = "payment_in_progress"
    default_message = "The invoice already has a payment in progress."


class InvalidStateTransition(Conflict):
    code = "invalid_state_transition"
    default_message = "That change is not allowed from the current status."


def require_status(actual: StrEnum, expected: StrEnum, only: str, **ids: str) -> None:
    """Refuse a change that only `expected` allows; `only` says so ("Only a draft invoice can
    be finalized"), and the refusal adds what the status is."""
    if actual is not expected:
        raise InvalidStateTransition(
            f"{only}; this one is {actual.value}.",
            **ids,
            expected=expected.value,
            actual=actual.value,
        )


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed."


class CustomerAlreadyExists(Conflict):
    code = "customer_already_exists"
    default_message = "A customer with this external_id already exists in this environment."


class GatewayNotConnected(Conflict):
    code = "gateway_not_connected"
    default_message = (
        "This live environment has no Stripe connection of its own; an admin connects one "
        "with PUT /api/v1/connection."
    )


class ConcurrentUpdate(Conflict):
    """Two writers raced for the same row; the loser's transaction changed nothing."""

    code = "concurrent_update"
    default_message = "The resource was changed by another request; try again."


class Unprocessable(CheckoutError):
    """The request contradicts what is stored."""


class AmountMismatch(Unprocessable):
    code = "amount_mismatch"
    default_message = "The amount must equal the invoice's amount remaining."


class CurrencyMismatch(Unprocessable):
    code = "currency_mismatch"
    default_message = "The currency must equal the invoice's currency."


class CustomerNotLinked(Unprocessable):
    code = "customer_not_linked"
    default_message = "The customer does not exist at the payment gateway."


class GatewayCustomerNotOwned(Unprocessable):
    code = "gateway_customer_not_owned"
    default_message = (
        "That gateway customer is not this environment's: its metadata must name this "
        "environment, unless the environment is connected to a Stripe account of its own."
    )


class RefundExceedsPayment(Unprocessable):
    code = "refund_exceeds_payment"
    default_message = "The refund would return more than the payment's amount."


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used with a different request."


class WebhookUrlNotAllowed(Unprocessable):
    """The URL names, or resolves to, an address inside a network (loopback, private...)."""

    code = "webhook_url_not_allowed"
    default_message = (
        "Webhook URLs must reach a public address; loopback, private, link-local, multicast "
        "and reserved addresses are refused."
    )


class PaymentFailed(CheckoutError):
    """The payment was recorded and failed; `details` names it and says what to do next."""

    next_action: ClassVar[NextAction] = NextAction.USE_DIFFERENT_PAYMENT_METHOD

    def __init__(self, message: str | None = None, **details: object) -> None:
        details.setdefault("next_action", self.next_action.value)
        super().__init__(message, **details)


class NoDefaultPaymentMethod(PaymentFailed):
    code = "no_default_payment_method"
    default_message = (
        "Customer must have a default payment method to make card payments. Please make a "
        "payment using payment link with save_card_and_make_default=true first."
    )
    next_action = NextAction.CREATE_PAYMENT_LINK


class PaymentMethodNotFound(PaymentFailed):
    code = "payment_method_not_found"
    default_message = "The payment method does not exist or does not belong to the customer."
    next_action = NextAction.USE_DIFFERENT_PAYMENT_METHOD


class CardDeclined(PaymentFailed):
    code = "card_declined"
    default_message = "The card was declined by its issuer."
    next_action = NextAction.CONTACT_BANK


class InsufficientFunds(PaymentFailed):
    code = "insufficient_funds"
    default_message = "The card has insufficient funds."
    next_action = NextAction.USE_DIFFERENT_PAYMENT_METHOD


class AuthenticationRequired(PaymentFailed):
    code = "authentication_required"
    default_message = (
        "The card requires authentication (3D Secure); pay through a payment link instead."
    )
    next_action = NextAction.CREATE_PAYMENT_LINK


class ExpiredCard(PaymentFailed):
    code = "expired_card"
    default_message = "The card has expired."
    next_action = NextAction.UPDATE_PAYMENT_METHOD


class GatewayError(CheckoutError):
    """The gateway refused the request for a reason that is not the card's."""

    code = "gateway_error"
    default_message = "The payment gateway refused the request."


class ServiceUnavailable(CheckoutError):
    """A dependency of ours (the database) is unreachable or stalled: nothing is wrong with
    the request, and whatever was recorded before stays recorded."""

    code = "service_unavailable"
    default_message = "The service cannot reach its database right now; try again shortly."


class PayloadTooLarge(CheckoutError):
    code = "payload_too_large"
    default_message = "The request body is larger than 64 KiB."


class UnsupportedMediaType(CheckoutError):
    code = "unsupported_media_type"
    default_message = "The request body must be JSON (Content-Type: application/json)."


def _all_error_classes() -> list[type[CheckoutError]]:
    seen: list[type[CheckoutError]] = []
    pending: list[type[CheckoutError]] = [CheckoutError]
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return seen


def error_classes() -> dict[str, type[CheckoutError]]:
    """Every error code, each with the class that declares it."""
    return {cls.code: cls for cls in _all_error_classes() if "code" in vars(cls)}


PAYMENT_FAILURES: dict[str, type[PaymentFailed]] = {
    cls.code: cls
    for cls in (
        NoDefaultPaymentMethod,
        PaymentMethodNotFound,
        CardDeclined,
        InsufficientFunds,
        AuthenticationRequired,
        ExpiredCard,
    )
}


def payment_failure(code: str, message: str | None = None, **details: object) -> CheckoutError:
    """The error for a failed payment's stored code (`gateway_error` when it is not the card's)."""
    cls: type[CheckoutError] = PAYMENT_FAILURES.get(code, GatewayError)
    return cls(message, **details)


def error_from_code(code: str, message: str, details: Details) -> CheckoutError:
    """Rebuild a stored error exactly as it was raised (for idempotent replays)."""
    cls = error_classes().get(code, InternalError)
    error = cls.__new__(cls)
    CheckoutError.__init__(error, message, **dict(details))
    return error
