"""entrypoints.bodies: bodies into commands (card data refused), their schemas, fingerprints."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.commands import CreateCustomer, CreateInvoice, CreatePayment, RefundPayment, SetupCard
from core.errors import CheckoutError, ValidationError
from core.model import InvoiceStatus, NotificationType, PaymentMethodType
from core.money import Money
from entrypoints.bodies import (
    BODIES,
    CREATE_INVOICE,
    CREATE_PAYMENT,
    CREATE_WEBHOOK_ENDPOINT,
    Body,
    parse_connect_gateway,
    parse_create_customer,
    parse_create_invoice,
    parse_create_payment,
    parse_create_webhook_endpoint,
    parse_refund,
    parse_setup_card,
)

INVOICE_ID = "inv_01K34HYZN03V6X8Q6V3T8X6G4F"
VISA = "4242424242424242"
REQUIRED_PAYMENT_FIELDS = [
    "destination_type",
    "destination_id",
    "payment_method_type",
    "payment_gateway",
    "amount",
    "currency",
    "process_payment",
]
OPTIONAL_PAYMENT_FIELDS = [
    "payment_method_id",
    "save_card_and_make_default",
    "success_url",
    "cancel_url",
    "metadata",
]
RESERVED_METADATA_KEYS = ["stripe_payment_intent_id", "card_last4", "card_brand"]


def example_body(**overrides: object) -> dict[str, object]:
    """The product page's request body (JSON numbers arrive as Decimal)."""
    body: dict[str, object] = {
        "amount": Decimal("150.00"),
        "currency": "usd",
        "destination_id": INVOICE_ID,
        "destination_type": "INVOICE",
        "payment_method_type": "CARD",
        "process_payment": True,
        "payment_gateway": "stripe",
    }
    body.update(overrides)
    return body


def link_body(**overrides: object) -> dict[str, object]:
    return example_body(payment_method_type="PAYMENT_LINK", **overrides)


def usd(amount: str) -> Money:
    return Money.of(amount, "usd")


def refused(parse: Callable[[], object], field: str) -> ValidationError:
    with pytest.raises(ValidationError) as error:
        parse()
    assert error.value.code == "validation_error"
    assert error.value.details["field"] == field
    return error.value


def assert_card_not_echoed(error: CheckoutError, card: str) -> None:
    digits = re.sub(r"\D", "", card)
    for text in (error.message, str(error), repr(error), repr(error.details)):
        assert card not in text
        assert digits not in re.sub(r"\D", "", text)


# --- the happy path ----------------------------------------------------------------------------


def test_product_page_example_body_gives_the_card_payment_command() -> None:
    command = parse_create_payment(example_body())
    assert command == CreatePayment(
        destination_id=INVOICE_ID,
        amount=usd("150.00"),
        method_type=PaymentMethodType.CARD,
        process_payment=True,
        payment_method_id=None,
        save_card_and_make_default=False,
        success_url=None,
        cancel_url=None,
        metadata={},
        gateway="stripe",
    )
    assert command.amount.to_minor_units() == 15000
    assert command.amount.currency.code == "usd"


def test_product_page_example_with_payment_method_id_keeps_it() -> None:
    command = parse_create_payment(example_body(payment_method_id="pm_1234567890abcdef"))
    assert command.payment_method_id == "pm_1234567890abcdef"


@pytest.mark.parametrize("amount", [Decimal("150.10"), "150.10", " 150.10 "])
def test_amount_is_kept_exact_from_numbers_and_strings(amount: object) -> None:
    command = parse_create_payment(example_body(amount=amount))
    assert command.amount == usd("150.10")
    assert str(command.amount) == "150.10"


def test_currency_is_case_insensitive_and_lowercased() -> None:
    command = parse_create_payment(example_body(currency="USD"))
    assert command.amount.currency.code == "usd"


def test_process_payment_false_is_kept() -> None:
    assert parse_create_payment(example_body(process_payment=False)).process_payment is False


# --- required and unknown fields ---------------------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED_PAYMENT_FIELDS)
def test_every_missing_required_payment_field_is_named(field: str) -> None:
    body = example_body()
    del body[field]
    refused(lambda: parse_create_payment(body), field)


@pytest.mark.parametrize("field", REQUIRED_PAYMENT_FIELDS)
def test_a_null_required_payment_field_counts_as_missing(field: str) -> None:
    refused(lambda: parse_create_payment(example_body(**{field: None})), field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("destination_type", "SUBSCRIPTION"),
        ("destination_type", "invoice"),
        ("destination_id", ""),
        ("destination_id", 42),
        ("destination_id", "x" * 256),
        ("payment_method_type", "BANK_TRANSFER"),
        ("payment_gateway", "paypal"),
        ("payment_gateway", "STRIPE"),
        ("amount", Decimal("0")),
        ("amount", Decimal("-150.00")),
        ("amount", 150.0),
        ("amount", Decimal("150.001")),
        ("amount", True),
        ("amount", "abc"),
        ("currency", "usdollars"),
        ("currency", "xyz"),
        ("currency", 840),
        ("process_payment", "true"),
        ("process_payment", 1),
        ("payment_method_id", 7),
        ("metadata", "order=42"),
        ("metadata", ["order"]),
    ],
)
def test_wrong_payment_field_values_are_refused_naming_the_field(field: str, value: object) -> None:
    refused(lambda: parse_create_payment(example_body(**{field: value})), field)


@pytest.mark.parametrize("field", ["foo", "customer_id", "Amount", "invoice_id", "status"])
def test_unknown_field_is_rejected_naming_it(field: str) -> None:
    error = refused(lambda: parse_create_payment(example_body(**{field: "x"})), field)
    assert field in error.message


@pytest.mark.parametrize("body", [None, [], "body", 150, [example_body()]])
def test_a_body_that_is_not_an_object_is_refused(body: object) -> None:
    refused(lambda: parse_create_payment(body), "body")


@pytest.mark.parametrize(
    ("parse", "field"),
    [
        (lambda: parse_create_customer({}), "external_id"),
        (lambda: parse_create_invoice({"currency": "usd", "amount_due": 1}), "customer_id"),
        (lambda: parse_create_invoice({"customer_id": "c", "amount_due": 1}), "currency"),
        (lambda: parse_create_invoice({"customer_id": "c", "currency": "usd"}), "amount_due"),
        (
            lambda: parse_create_invoice(
                {"customer_id": "c", "currency": "usd", "amount_due": 1, "status": "VOIDED"}
            ),
            "status",
        ),
        (
            lambda: parse_create_invoice(
                {"customer_id": "c", "currency": "jpy", "amount_due": Decimal("1.5")}
            ),
            "amount_due",
        ),
        (lambda: parse_create_customer({"external_id": "e", "email": "nope"}), "email"),
        (lambda: parse_refund("pay_1", {"amount": Decimal("0")}), "amount"),
        (lambda: parse_refund("pay_1", {"amount": 1.5}), "amount"),
        (lambda: parse_refund("pay_1", {"why": "x"}), "why"),
    ],
)
def test_other_commands_name_the_offending_field(parse: Callable[[], object], field: str) -> None:
    refused(parse, field)


def test_other_commands_parse_their_bodies() -> None:
    assert parse_create_customer(
        {"external_id": "ext-1", "name": "Ada", "email": "ada@example.com"}
    ) == CreateCustomer(external_id="ext-1", name="Ada", email="ada@example.com")
    assert parse_create_invoice(
        {"customer_id": "cust_1", "currency": "KWD", "amount_due": "1.25", "status": "FINALIZED"}
    ) == CreateInvoice(
        customer_id="cust_1", amount_due=Money.of("1.250", "kwd"), status=InvoiceStatus.FINALIZED
    )
    assert (
        parse_create_invoice({"customer_id": "cust_1", "currency": "usd", "amount_due": 5}).status
        is InvoiceStatus.DRAFT
    )
    assert parse_refund("pay_1", None) == RefundPayment(payment_id="pay_1")
    assert parse_refund("pay_1", {"amount": "10.50", "reason": "duplicate"}) == RefundPayment(
        payment_id="pay_1", amount=Decimal("10.50"), reason="duplicate"
    )


# --- card data ---------------------------------------------------------------------------------


CARD_FIELD_NAMES = ["card_number", "cvc", "cvv", "exp_month", "exp_year", "card", "expiry"]


@pytest.mark.parametrize("name", CARD_FIELD_NAMES)
def test_card_field_names_are_rejected_at_the_top_level(name: str) -> None:
    error = refused(lambda: parse_create_payment(example_body(**{name: "123"})), name)
    assert "card" in error.message.lower()


@pytest.mark.parametrize("name", CARD_FIELD_NAMES)
def test_card_field_names_are_rejected_in_metadata(name: str) -> None:
    body = example_body(metadata={"order": "42", name: "12"})
    refused(lambda: parse_create_payment(body), f"metadata.{name}")


def test_card_field_names_are_rejected_at_any_depth() -> None:
    body = example_body(metadata={"order": {"payer": [{"CVC": "123"}]}})
    refused(lambda: parse_create_payment(body), "metadata.order.payer[0].CVC")


@pytest.mark.parametrize(
    "card", [VISA, "4242 4242 4242 4242", "4242-4242-4242-4242", "4000002760003184"]
)
@pytest.mark.parametrize(
    ("where", "build", "field"),
    [
        ("metadata", lambda c: example_body(metadata={"note": c}), "metadata.note"),
        ("metadata text", lambda c: example_body(metadata={"n": f"card {c} ok"}), "metadata.n"),
        ("destination_id", lambda c: example_body(destination_id=c), "destination_id"),
        ("payment_method_id", lambda c: example_body(payment_method_id=c), "payment_method_id"),
        ("amount", lambda c: example_body(amount=c), "amount"),
        ("success_url", lambda c: link_body(success_url=f"https://x.io/?n={c}"), "success_url"),
        ("unknown", lambda c: example_body(pan_data=c), "pan_data"),
        ("list", lambda c: example_body(metadata={"cards": ["a", c]}), "metadata.cards[1]"),
    ],
)
def test_card_number_in_any_payment_field_is_rejected_without_echoing_it(
    card: str, where: str, build: Callable[[str], dict[str, object]], field: str
) -> None:
    error = refused(lambda: parse_create_payment(build(card)), field)
    assert_card_not_echoed(error, card)


@pytest.mark.parametrize(
    "parse",
    [
        lambda c: parse_create_customer({"external_id": "e", "name": c}),
        lambda c: parse_create_customer({"external_id": c}),
        lambda c: parse_create_invoice(
            {"customer_id": "c", "currency": "usd", "amount_due": 1, "external_id": c}
        ),
        lambda c: parse_refund("pay_1", {"reason": f"card {c}"}),
    ],
)
def test_card_number_in_other_commands_is_rejected_without_echoing_it(
    parse: Callable[[str], object],
) -> None:
    with pytest.raises(ValidationError) as error:
        parse(VISA)
    assert error.value.details["field"]
    assert_card_not_echoed(error.value, VISA)


def luhn_check_digit(payload: str) -> str:
    total = 0
    for index, char in enumerate(reversed(payload)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


def test_luhn_helper_agrees_with_known_test_cards() -> None:
    for card in (VISA, "4000000000000002", "4000000000009995", "5555555555554444"):
        assert luhn_check_digit(card[:-1]) == card[-1]


luhn_cards = (
    st.text(alphabet="0123456789", min_size=15, max_size=15)
    .filter(lambda s: s[0] != "0")
    .map(lambda payload: payload + luhn_check_digit(payload))
)
PAYMENT_TEXT_FIELDS = ["destination_id", "payment_method_id", "amount", "metadata"]


@given(luhn_cards, st.sampled_from(PAYMENT_TEXT_FIELDS), st.sampled_from(["", " ", "-"]))
def test_any_luhn_valid_sixteen_digit_number_is_rejected_without_echoing_it(
    card: str, field: str, separator: str
) -> None:
    spelled = separator.join(card[i : i + 4] for i in range(0, 16, 4))
    value: object = {"k": spelled} if field == "metadata" else spelled
    with pytest.raises(ValidationError) as error:
        parse_create_payment(example_body(**{field: value}))
    assert error.value.details["field"] in {field, f"{field}.k"}
    assert_card_not_echoed(error.value, card)


def test_card_number_as_a_metadata_key_is_rejected() -> None:
    with pytest.raises(ValidationError) as error:
        parse_create_payment(example_body(metadata={VISA: "x"}))
    assert_card_not_echoed(error.value, VISA)


def test_card_number_as_a_field_name_is_not_echoed() -> None:
    with pytest.raises(ValidationError) as error:
        parse_create_payment(example_body(**{VISA: "x"}))
    assert_card_not_echoed(error.value, VISA)


def test_ordinary_numbers_are_not_mistaken_for_cards() -> None:
    body = example_body(
        metadata={"order": "1234567890", "phone": "+1 555 0100", "invoice": "2024-01-20"}
    )
    assert parse_create_payment(body).metadata == body["metadata"]


# --- metadata ----------------------------------------------------------------------------------


def test_metadata_with_string_keys_and_values_is_kept() -> None:
    metadata = {"order": "42", "note": "first payment", "empty": ""}
    assert parse_create_payment(example_body(metadata=metadata)).metadata == metadata


def test_metadata_may_have_fifty_keys_but_not_fifty_one() -> None:
    fifty = {f"k{i}": "v" for i in range(50)}
    assert parse_create_payment(example_body(metadata=fifty)).metadata == fifty
    refused(lambda: parse_create_payment(example_body(metadata={**fifty, "k50": "v"})), "metadata")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (42, "metadata.order"),
        (Decimal("4.2"), "metadata.order"),
        (True, "metadata.order"),
        (["a"], "metadata.order"),
        ({"a": "b"}, "metadata.order"),
        ("x" * 501, "metadata.order"),
    ],
)
def test_metadata_values_must_be_strings(value: object, field: str) -> None:
    refused(lambda: parse_create_payment(example_body(metadata={"order": value})), field)


@pytest.mark.parametrize("key", ["", "k" * 41])
def test_metadata_keys_must_be_one_to_forty_characters(key: str) -> None:
    refused(lambda: parse_create_payment(example_body(metadata={key: "v"})), f"metadata.{key}")


@pytest.mark.parametrize("key", RESERVED_METADATA_KEYS)
def test_reserved_metadata_keys_are_refused(key: str) -> None:
    refused(lambda: parse_create_payment(example_body(metadata={key: "x"})), f"metadata.{key}")


# --- payment method types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("save_card_and_make_default", True),
        ("success_url", "https://shop.example/ok"),
        ("cancel_url", "https://shop.example/cancel"),
    ],
)
def test_card_payment_refuses_payment_link_only_fields(field: str, value: object) -> None:
    refused(lambda: parse_create_payment(example_body(**{field: value})), field)


def test_payment_link_accepts_its_fields() -> None:
    command = parse_create_payment(
        link_body(
            save_card_and_make_default=True,
            success_url="https://shop.example/ok",
            cancel_url="https://shop.example/cancel",
        )
    )
    assert command.method_type is PaymentMethodType.PAYMENT_LINK
    assert command.save_card_and_make_default is True
    assert command.success_url == "https://shop.example/ok"
    assert command.cancel_url == "https://shop.example/cancel"


@pytest.mark.parametrize("url", ["ftp://shop.example", "shop.example/ok", "javascript:alert(1)"])
def test_payment_link_urls_must_be_http(url: str) -> None:
    refused(lambda: parse_create_payment(link_body(success_url=url)), "success_url")


# --- any input: a command or a validation error naming a field ---------------------------------


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals()
    | st.text(max_size=30)
    | st.sampled_from([VISA, "4242 4242 4242 4242", "", " ", "0", "-1", "1e999", "NaN"])
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)

PLAUSIBLE_VALUES: dict[str, list[object]] = {
    "destination_type": ["INVOICE", "invoice"],
    "destination_id": [INVOICE_ID],
    "payment_method_type": ["CARD", "PAYMENT_LINK"],
    "payment_gateway": ["stripe"],
    "amount": [Decimal("150.00"), "1.255", Decimal("0.5"), 1500],
    "amount_due": [Decimal("150.00"), "1.255", 1500],
    "currency": ["usd", "JPY", "kwd", "isk"],
    "process_payment": [True, False],
    "payment_method_id": ["pm_card_visa"],
    "save_card_and_make_default": [True, False],
    "success_url": ["https://shop.example/ok"],
    "cancel_url": ["https://shop.example/cancel"],
    "metadata": [{"order": "42"}, {"card_brand": "visa"}],
    "external_id": ["ext-1"],
    "name": ["Ada"],
    "email": ["ada@example.com", "nope"],
    "gateway_customer_id": ["cus_123"],
    "customer_id": ["cust_1"],
    "status": ["DRAFT", "FINALIZED", "VOIDED", "draft"],
    "reason": ["duplicate"],
}


def bodies_with_fields(fields: list[str]) -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {},
        optional={name: json_values | st.sampled_from(PLAUSIBLE_VALUES[name]) for name in fields},
    )


@st.composite
def mutated_bodies(draw: st.DrawFn, valid: dict[str, object]) -> dict[str, object]:
    """A valid body with some fields dropped, some replaced by anything, maybe one added."""
    body = dict(valid)
    for name in sorted(valid):
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "drop":
            del body[name]
        elif action == "replace":
            body[name] = draw(json_values | st.sampled_from(PLAUSIBLE_VALUES[name]))
    extra = draw(st.none() | st.sampled_from(sorted(PLAUSIBLE_VALUES)) | st.text(max_size=8))
    if extra is not None:
        body[extra] = draw(json_values | st.sampled_from(PLAUSIBLE_VALUES.get(extra, [""])))
    return body


CUSTOMER_BODY: dict[str, object] = {"external_id": "ext-1", "email": "ada@example.com"}
INVOICE_BODY: dict[str, object] = {"customer_id": "c", "currency": "usd", "amount_due": 1}
REFUND_BODY: dict[str, object] = {"amount": Decimal("1.00"), "reason": "duplicate"}
PARSERS: list[tuple[str, Callable[[object], object], type, st.SearchStrategy[object]]] = [
    (
        "payment",
        parse_create_payment,
        CreatePayment,
        bodies_with_fields(REQUIRED_PAYMENT_FIELDS + OPTIONAL_PAYMENT_FIELDS)
        | mutated_bodies(example_body(metadata={"order": "42"}))
        | mutated_bodies(link_body(success_url="https://x.io", save_card_and_make_default=True)),
    ),
    (
        "customer",
        parse_create_customer,
        CreateCustomer,
        bodies_with_fields(["external_id", "name", "email", "gateway_customer_id"])
        | mutated_bodies(CUSTOMER_BODY),
    ),
    (
        "invoice",
        parse_create_invoice,
        CreateInvoice,
        bodies_with_fields(["customer_id", "currency", "amount_due", "external_id", "status"])
        | mutated_bodies(INVOICE_BODY),
    ),
    (
        "refund",
        lambda body: parse_refund("pay_1", body),
        RefundPayment,
        bodies_with_fields(["amount", "reason"]) | mutated_bodies(REFUND_BODY),
    ),
]


@pytest.mark.parametrize(
    ("parse", "command_type", "bodies"),
    [pytest.param(p, t, b, id=name) for name, p, t, b in PARSERS],
)
@settings(deadline=None)
@given(data=st.data())
def test_any_json_value_gives_a_command_or_a_validation_error_naming_a_field(
    parse: Callable[[object], object],
    command_type: type,
    bodies: st.SearchStrategy[object],
    data: st.DataObject,
) -> None:
    body = data.draw(json_values | bodies)
    try:
        result = parse(body)
    except ValidationError as error:
        field = error.details.get("field")
        assert isinstance(field, str)
        # An empty name is only fair when the body really has a field named "".
        assert field or (isinstance(body, dict) and "" in body)
    else:
        assert isinstance(result, command_type)


# --- fingerprints ------------------------------------------------------------------------------


def test_equal_commands_have_equal_fingerprints() -> None:
    a = parse_create_payment(example_body(metadata={"a": "1", "b": "2"}))
    b = parse_create_payment(
        example_body(amount="150", currency="USD", metadata={"b": "2", "a": "1"})
    )
    assert a == b
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Decimal("150.01")},
        {"currency": "eur"},
        {"destination_id": "inv_other"},
        {"process_payment": False},
        {"payment_method_id": "pm_other"},
        {"metadata": {"a": "1"}},
        {"payment_method_type": "PAYMENT_LINK"},
    ],
)
def test_a_different_command_has_a_different_fingerprint(change: dict[str, object]) -> None:
    base = parse_create_payment(example_body())
    other = parse_create_payment(example_body(**change))
    assert base != other
    assert base.fingerprint() != other.fingerprint()


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
)
def test_fingerprints_differ_exactly_when_amounts_differ(a: Decimal, b: Decimal) -> None:
    first = parse_create_payment(example_body(amount=a))
    second = parse_create_payment(example_body(amount=b))
    assert (first.fingerprint() == second.fingerprint()) == (a == b)


def test_fingerprints_of_different_command_types_differ() -> None:
    refund = RefundPayment(payment_id="x")
    customer = CreateCustomer(external_id="x")
    assert refund.fingerprint() != customer.fingerprint()


# --- one definition: what the schema says is what the parser does ------------------------------


def _parser(body: Body) -> Callable[[object], object]:
    return {
        "CreatePayment": parse_create_payment,
        "CreateCustomer": parse_create_customer,
        "CreateInvoice": parse_create_invoice,
        "CreateRefund": lambda b: parse_refund("pay_1", b),
        "CardSetup": lambda b: parse_setup_card("cust_1", b),
        "CreateWebhookEndpoint": parse_create_webhook_endpoint,
        "GatewayConnection": parse_connect_gateway,
    }[body.name]


VALID_BODIES: dict[str, dict[str, object]] = {
    "CreatePayment": example_body(),
    "CreateCustomer": {"external_id": "ext-1"},
    "CreateInvoice": {"customer_id": "c", "currency": "usd", "amount_due": 1},
    "CreateRefund": {},
    "CardSetup": {},
    "CreateWebhookEndpoint": {"url": "https://hooks.example/in"},
    "GatewayConnection": {"provider": "stripe", "secret_key": "sk_test_1"},
}
BODY_IDS = [body.name for body in BODIES]


def error_of(parse: Callable[[object], object], body: object) -> ValidationError | None:
    try:
        parse(body)
    except ValidationError as error:
        return error
    return None


def test_every_body_has_a_parser_and_a_valid_example() -> None:
    for body in BODIES:
        _parser(body)(VALID_BODIES[body.name])


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_the_schema_lists_exactly_the_fields_the_parser_accepts(body: Body) -> None:
    schema = body.schema()
    assert schema["additionalProperties"] is False
    for name in schema["properties"]:
        error = error_of(_parser(body), {**VALID_BODIES[body.name], name: "x"})
        assert error is None or not error.message.startswith("Unknown field"), name
    refused(lambda: _parser(body)({**VALID_BODIES[body.name], "unlisted": "x"}), "unlisted")


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_the_schema_requires_exactly_the_fields_the_parser_requires(body: Body) -> None:
    schema = body.schema()
    valid = VALID_BODIES[body.name]
    assert set(schema["required"]) <= set(valid)
    for name in valid:
        smaller = {k: v for k, v in valid.items() if k != name}
        if name in schema["required"]:
            error = refused(partial(_parser(body), smaller), name)
            assert error.message == f"{name} is required."
        else:
            _parser(body)(smaller)
    if not schema["required"]:
        assert body.optional
        _parser(body)(None)


def _text_of_length(schema: dict[str, Any], length: int) -> str:
    if schema.get("format") == "uri":
        return "https://x.io/" + "a" * (length - 13)
    if schema.get("format") == "email":
        return "a" * (length - 5) + "@x.io"
    return "a" * length


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_the_schema_length_limits_are_the_parser_limits(body: Body) -> None:
    for name, schema in body.schema()["properties"].items():
        if schema.get("type") != "string" or "maxLength" not in schema:
            continue
        limit = schema["maxLength"]
        too_long = {**VALID_BODIES[body.name], name: _text_of_length(schema, limit + 1)}
        error = refused(partial(_parser(body), too_long), name)
        assert error.message == f"{name} must be at most {limit} characters."
        longest = {**VALID_BODIES[body.name], name: _text_of_length(schema, limit)}
        # Refused, if at all, for another reason (a currency code that does not exist).
        not_too_long = error_of(_parser(body), longest)
        assert not_too_long is None or "at most" not in not_too_long.message


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_the_schema_enumerations_are_the_values_the_parser_takes(body: Body) -> None:
    for name, schema in body.schema()["properties"].items():
        values = schema.get("enum") or ([schema["const"]] if "const" in schema else [])
        for value in values:
            _parser(body)({**VALID_BODIES[body.name], name: value})
        if values:
            wrong = {**VALID_BODIES[body.name], name: values[0] + "X"}
            error = refused(partial(_parser(body), wrong), name)
            assert error.details["expected"]


def test_enumerations_come_from_the_enum_classes() -> None:
    payment = CREATE_PAYMENT.schema()["properties"]
    assert payment["payment_method_type"]["enum"] == [t.value for t in PaymentMethodType]
    assert payment["destination_type"] == {"const": "INVOICE"}
    assert payment["payment_gateway"] == {"const": "stripe"}
    status = CREATE_INVOICE.schema()["properties"]["status"]
    assert status["enum"] == ["DRAFT", "FINALIZED"]
    assert status["default"] == "DRAFT"
    events = CREATE_WEBHOOK_ENDPOINT.schema()["properties"]["events"]
    assert events["items"]["enum"] == ["*", *(kind.value for kind in NotificationType)]
    for event in events["items"]["enum"]:
        assert parse_create_webhook_endpoint({"url": "https://x.io", "events": [event]})
    refused(
        lambda: parse_create_webhook_endpoint({"url": "https://x.io", "events": ["nope"]}),
        "events",
    )


def test_metadata_limits_in_the_schema_are_the_ones_tested_above() -> None:
    metadata = CREATE_PAYMENT.schema()["properties"]["metadata"]
    assert metadata["maxProperties"] == 50
    assert metadata["propertyNames"]["maxLength"] == 40
    assert metadata["additionalProperties"]["maxLength"] == 500
    assert sorted(metadata["propertyNames"]["not"]["enum"]) == sorted(RESERVED_METADATA_KEYS)


def test_payment_link_only_fields_say_so_in_the_schema() -> None:
    properties = CREATE_PAYMENT.schema()["properties"]
    for name in ("save_card_and_make_default", "success_url", "cancel_url"):
        assert "Only with payment_method_type PAYMENT_LINK." in properties[name]["description"]


def test_setup_card_and_webhook_endpoint_bodies_parse() -> None:
    assert parse_setup_card("cust_1", None) == SetupCard(customer_id="cust_1")
    assert parse_setup_card(
        "cust_1", {"success_url": "https://x.io/ok", "cancel_url": "https://x.io/no"}
    ) == SetupCard(
        customer_id="cust_1", success_url="https://x.io/ok", cancel_url="https://x.io/no"
    )
    refused(lambda: parse_setup_card("cust_1", {"success_url": "x.io"}), "success_url")
    assert parse_create_webhook_endpoint({"url": " https://x.io/h "}) == ("https://x.io/h", [])
    refused(lambda: parse_create_webhook_endpoint({"url": "ftp://x.io"}), "url")
    refused(lambda: parse_create_webhook_endpoint({"events": ["*"]}), "url")
