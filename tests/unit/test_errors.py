"""core.errors: every code the contract names, what to do after a failure, exact replays."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import (
    PAYMENT_FAILURES,
    CheckoutError,
    Conflict,
    InternalError,
    NextAction,
    NotFound,
    PaymentFailed,
    Unprocessable,
    ValidationError,
    error_classes,
    error_from_code,
    payment_failure,
)
from tests.unit.test_error_statuses import CONTRACT_TABLE, NOT_YET_IMPLEMENTED

# The contract's error table (one copy, in test_error_statuses), less what is not built yet.
CONTRACT_ERRORS = {
    code: status for code, status in CONTRACT_TABLE.items() if code not in NOT_YET_IMPLEMENTED
}

# The product page's Resolution column, as the contract names the actions.
RESOLUTION = {
    "no_default_payment_method": "create_payment_link",
    "card_declined": "contact_bank",
    "insufficient_funds": "use_different_payment_method",
    "authentication_required": "create_payment_link",
    "expired_card": "update_payment_method",
}
NEXT_ACTIONS = {
    "create_payment_link",
    "contact_bank",
    "use_different_payment_method",
    "update_payment_method",
}

# The error families that share one HTTP status in the contract's table.
FAMILY_FOR_STATUS: dict[int, type[CheckoutError]] = {
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    402: PaymentFailed,
}


def codes_with_status(status: int) -> list[str]:
    return sorted(code for code, http in CONTRACT_ERRORS.items() if http == status)


def all_subclasses(cls: type[CheckoutError]) -> list[type[CheckoutError]]:
    found: list[type[CheckoutError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


def make(
    cls: type[CheckoutError], message: str = "It went wrong.", **details: object
) -> CheckoutError:
    return cls(message, **details)


@pytest.mark.parametrize(("code", "status"), sorted(CONTRACT_ERRORS.items()))
def test_every_contract_error_code_has_its_class(code: str, status: int) -> None:
    classes = error_classes()
    assert code in classes
    cls = classes[code]
    assert issubclass(cls, CheckoutError)
    assert cls.code == code
    error = make(cls)
    assert error.code == code
    assert error.message == "It went wrong."
    family = FAMILY_FOR_STATUS.get(status)
    if family is not None:
        assert issubclass(cls, family), f"{code} ({status}) is not a {family.__name__}"


@pytest.mark.parametrize(("status", "family"), sorted(FAMILY_FOR_STATUS.items()))
def test_every_error_of_a_family_has_a_code_of_that_families_status(
    status: int, family: type[CheckoutError]
) -> None:
    declared = {cls.code for cls in [family, *all_subclasses(family)] if "code" in vars(cls)}
    contract_codes = set(codes_with_status(status))
    # The project may add codes of its own, but none of the contract's codes of another status.
    assert not declared & (set(CONTRACT_ERRORS) - contract_codes)


def test_every_error_without_a_message_gets_its_default_sentence() -> None:
    for code, cls in error_classes().items():
        assert cls.default_message.strip(), code
        if not issubclass(cls, ValidationError):  # a validation error always says what is wrong
            assert cls().message == cls.default_message, code


def test_payment_failures_are_exactly_the_contracts_402_codes() -> None:
    assert sorted(PAYMENT_FAILURES) == codes_with_status(402)
    for code, cls in PAYMENT_FAILURES.items():
        assert issubclass(cls, PaymentFailed)
        assert cls.code == code


@pytest.mark.parametrize(("code", "action"), sorted(RESOLUTION.items()))
def test_payment_failure_says_what_the_product_pages_resolution_says(
    code: str, action: str
) -> None:
    cls = error_classes()[code]
    assert issubclass(cls, PaymentFailed)
    assert cls.next_action == action
    error = cls(customer_id="cust_1", payment_id="pay_1")
    assert error.details == {
        "customer_id": "cust_1",
        "payment_id": "pay_1",
        "next_action": action,
    }


@pytest.mark.parametrize("cls", all_subclasses(PaymentFailed), ids=lambda cls: cls.__name__)
def test_every_payment_failure_names_a_known_next_action(cls: type[PaymentFailed]) -> None:
    assert isinstance(cls.next_action, NextAction)
    assert cls.next_action.value in NEXT_ACTIONS
    assert cls().details["next_action"] in NEXT_ACTIONS


def test_the_next_actions_are_the_contracts() -> None:
    assert {action.value for action in NextAction} == NEXT_ACTIONS


def test_payment_failure_builds_the_stored_codes_error() -> None:
    error = payment_failure("card_declined", "Declined.", decline_code="do_not_honor")
    assert error.code == "card_declined"
    assert error.message == "Declined."
    assert error.details == {"decline_code": "do_not_honor", "next_action": "contact_bank"}
    assert payment_failure("processing_error").code == "gateway_error"


def test_none_details_are_left_out() -> None:
    error = CheckoutError("x", payment_id=None, invoice_id="inv_1")
    assert error.details == {"invoice_id": "inv_1"}


details_strategy = st.dictionaries(
    st.sampled_from(
        [
            "customer_id",
            "payment_id",
            "invoice_id",
            "stripe_error_code",
            "decline_code",
            "field",
            "expected",
            "actual",
            "next_action",
        ]
    ),
    st.text(min_size=1, max_size=20) | st.integers() | st.lists(st.text(max_size=5), max_size=3),
)


@pytest.mark.parametrize("code", sorted(error_classes()))
@settings(max_examples=30)  # x 31 codes
@given(message=st.text(min_size=1, max_size=60), details=details_strategy)
def test_error_from_code_round_trips_code_message_and_details(
    code: str, message: str, details: dict[str, object]
) -> None:
    cls = error_classes()[code]
    original = make(cls, message, **details)
    rebuilt = error_from_code(original.code, original.message, original.details)
    assert type(rebuilt) is cls
    assert rebuilt.code == original.code
    assert rebuilt.message == original.message
    assert rebuilt.details == original.details
    assert str(rebuilt) == str(original)


def test_error_from_code_keeps_a_validation_errors_field() -> None:
    original = ValidationError("amount is required.", field="amount")
    rebuilt = error_from_code("validation_error", original.message, original.details)
    assert isinstance(rebuilt, ValidationError)
    assert rebuilt.field == "amount"


def test_error_from_code_of_an_unknown_code_is_an_internal_error() -> None:
    rebuilt = error_from_code("no_such_code", "Something.", {})
    assert isinstance(rebuilt, InternalError)
    assert rebuilt.code == "internal_error"
