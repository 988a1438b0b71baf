"""Issue 19, errors: the missing environment header named (400), unknown query parameters
refused, every bad field of a body reported at once, and every error body carrying its `type`
and the request's id, whatever answers it (a route, Starlette, a middleware, a bug, a replay)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.sandbox import Fault, SandboxFaults
from core.errors import CheckoutError, ValidationError, error_classes
from core.model import Role
from entrypoints.bodies import parse_create_invoice, parse_create_payment
from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.errors import STATUS_FOR_CODE, error_type
from entrypoints.http.openapi import openapi_document
from entrypoints.http.routing import KEYED, ApiRoute
from entrypoints.http.throttle import AuthThrottle
from tests.helpers import DECLINED, ENV, card_payment, customer_with_card, finalized_invoice

TYPES = {
    "invalid_request_error",
    "authentication_error",
    "card_error",
    "gateway_error",
    "api_error",
}


@pytest.fixture
async def key(checkout: CardCheckout) -> str:
    await checkout.create_environment("t", "test", environment_id=ENV)
    await checkout.create_environment("t", "other", environment_id="env_other")
    return (await checkout.create_api_key("t", [ENV], "admin"))[1]


@pytest.fixture
async def bare(checkout: CardCheckout, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app sending no header of its own (each test says what it sends)."""
    app = create_app(checkout, notify_every=None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _keyed(key: str, request_id: str = "", **more: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV, **more}
    if request_id:
        headers["X-Request-ID"] = request_id
    return headers


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape with that status and code, its `type` the status's and its
    `request_id` the one the response's header names."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "type", "message", "details", "request_id"}, error
    assert error["code"] == code, error
    assert error["type"] == error_type(status)
    assert error["request_id"] == response.headers["x-request-id"]
    return dict(error)


# --- X-Environment-ID ------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [None, ""], ids=["absent", "empty"])
async def test_a_missing_environment_header_is_400_naming_it(
    bare: httpx.AsyncClient, key: str, sent: str | None
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    if sent is not None:
        headers["X-Environment-ID"] = sent
    for method, path in (("GET", "/api/v1/payments"), ("POST", "/api/v1/customers")):
        response = await bare.request(method, path, headers=headers, json={"external_id": "c"})
        error = _error(response, 400, "missing_environment")
        assert error["type"] == "invalid_request_error"
        assert error["details"] == {"field": "X-Environment-ID"}
        assert "X-Environment-ID" in error["message"]


async def test_the_key_is_checked_before_the_environment_header(
    bare: httpx.AsyncClient, key: str
) -> None:
    """Authentication first, as Stripe does: without a usable key, 401 whatever else is
    missing; with one, the missing header is named; a header the key may not use is 403."""
    no_key = await bare.get("/api/v1/payments")
    assert _error(no_key, 401, "unauthorized")["type"] == "authentication_error"
    unknown_key = await bare.get("/api/v1/payments", headers={"Authorization": "Bearer ck_nope"})
    _error(unknown_key, 401, "unauthorized")
    elsewhere = await bare.get(
        "/api/v1/payments", headers={**_keyed(key), "X-Environment-ID": "env_other"}
    )
    assert _error(elsewhere, 403, "forbidden")["type"] == "authentication_error"


async def test_the_library_refuses_a_missing_environment_as_missing_environment(
    checkout: CardCheckout, key: str
) -> None:
    with pytest.raises(CheckoutError) as caught:
        await checkout.authorize(key, None, Role.READ)
    assert caught.value.code == "missing_environment"


# --- unknown query parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "unknown"),
    [
        ("/api/v1/payments?limt=2", "limt"),  # a list route, a misspelt parameter
        ("/api/v1/payments?limit=2&expand=customer", "expand"),
        ("/api/v1/payments/pay_nope?expand=customer", "expand"),  # before the 404
        ("/api/v1/customers?email=a@example.com", "email"),
        ("/api/v1/connection?verbose=1", "verbose"),
    ],
)
async def test_an_unknown_query_parameter_is_400_naming_it(
    bare: httpx.AsyncClient, key: str, path: str, unknown: str
) -> None:
    error = _error(await bare.get(path, headers=_keyed(key)), 400, "validation_error")
    assert error["details"]["field"] == unknown
    assert unknown in error["message"]


async def test_an_unknown_query_parameter_that_is_a_card_number_is_not_echoed(
    bare: httpx.AsyncClient, key: str
) -> None:
    response = await bare.get("/api/v1/payments?4242424242424242=1", headers=_keyed(key))
    assert _error(response, 400, "validation_error")["details"]["field"] == "query"
    assert "42424242" not in response.text


async def test_every_declared_query_parameter_is_taken(
    checkout: CardCheckout, bare: httpx.AsyncClient, key: str
) -> None:
    """The check reads the routes' declarations: nothing a route documents is refused as
    unknown (a value may still be refused, naming its parameter)."""
    app = create_app(checkout, notify_every=None)
    checked = 0
    for route in app.routes:
        if not (isinstance(route, ApiRoute) and route.operation.access in KEYED):
            continue
        if route.method != "GET" or route.param_convertors:
            continue
        for query in route.operation.query:
            response = await bare.get(route.path, params={query.name: "1"}, headers=_keyed(key))
            if response.status_code == 400:  # a value refused, not the parameter
                assert "query parameter" not in response.json()["error"]["message"], query
            checked += 1
    assert checked >= 10


# --- every bad field of a body at once ----------------------------------------------------------


async def test_three_bad_fields_are_all_reported_the_first_also_as_field(
    bare: httpx.AsyncClient, key: str
) -> None:
    body = {"customer_id": "cus_1", "currency": "usd", "amount_due": "-1", "status": "VOIDED"}
    response = await bare.post(
        "/api/v1/invoices", json={**body, "colour": "red"}, headers=_keyed(key)
    )
    error = _error(response, 400, "validation_error")
    fields = error["details"]["fields"]
    assert [entry["field"] for entry in fields] == ["colour", "amount_due", "status"]
    assert all(set(entry) == {"field", "message"} and entry["message"] for entry in fields)
    assert error["details"]["field"] == "colour"


async def test_a_field_that_depends_on_a_refused_one_is_not_reported_twice(
    bare: httpx.AsyncClient, key: str
) -> None:
    """An amount is read in its currency: with the currency refused (or missing), only the
    currency is reported."""
    for body, expected in (
        ({"currency": "xyz", "amount_due": "1.005"}, ["customer_id", "currency"]),
        ({"amount_due": "abc", "status": "PAID"}, ["customer_id", "currency", "status"]),
    ):
        response = await bare.post("/api/v1/invoices", json=body, headers=_keyed(key))
        fields = _error(response, 400, "validation_error")["details"]["fields"]
        assert [entry["field"] for entry in fields] == expected


def test_the_library_reports_every_bad_field_too() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_create_payment(
            {
                "destination_type": "BILL",
                "destination_id": "in_1",
                "payment_method_type": "CARD",
                "currency": "usd",
                "amount": 0,
                "process_payment": True,
                "success_url": "https://example.com",
            }
        )
    details = caught.value.details
    assert [entry["field"] for entry in details["fields"]] == [  # type: ignore[attr-defined]
        "destination_type",
        "payment_gateway",
        "amount",
        "success_url",
    ]
    assert details["field"] == "destination_type"
    assert details["expected"] == '"INVOICE"'  # the first error's own details stay


def test_one_bad_field_is_listed_too_and_a_good_body_still_reads() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_create_invoice({"customer_id": "c", "currency": "usd"})
    assert caught.value.details["fields"] == [
        {"field": "amount_due", "message": "amount_due is required."}
    ]
    assert caught.value.message == "amount_due is required."
    invoice = parse_create_invoice({"customer_id": "c", "currency": "usd", "amount_due": 1})
    assert str(invoice.amount_due) == "1.00"


# --- type and request_id on every error -------------------------------------------------------


def test_every_code_has_one_of_the_contracts_types_by_its_status() -> None:
    assert {error_type(status) for status in STATUS_FOR_CODE.values()} == TYPES
    assert error_type(STATUS_FOR_CODE["card_declined"]) == "card_error"
    assert error_type(STATUS_FOR_CODE["gateway_error"]) == "gateway_error"
    assert error_type(STATUS_FOR_CODE["forbidden"]) == "authentication_error"
    assert error_type(STATUS_FOR_CODE["service_unavailable"]) == "api_error"
    assert error_type(STATUS_FOR_CODE["rate_limited"]) == "invalid_request_error"
    assert set(error_classes()) <= set(STATUS_FOR_CODE)


async def test_route_and_edge_errors_carry_their_type_and_the_request_id(
    bare: httpx.AsyncClient, key: str
) -> None:
    big = b'{"external_id": "' + b"a" * 70_000 + b'"}'
    json_headers = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, dict[str, str], bytes | None, int, str]] = [
        ("GET", "/api/v1/payments/pay_nope", {}, None, 404, "payment_not_found"),
        ("GET", "/api/v1/nowhere", {}, None, 404, "not_found"),
        ("DELETE", "/api/v1/payments", {}, None, 405, "method_not_allowed"),
        ("POST", "/api/v1/customers", json_headers, big, 413, "payload_too_large"),
        ("POST", "/api/v1/customers", {"Content-Type": "text/plain"}, b"x", 415,
         "unsupported_media_type"),
        ("POST", "/api/v1/customers", json_headers, b"[1]", 400, "invalid_json"),
        ("GET", "/api/v1/payments", {"X-Filler": "a" * 20_000}, None, 431,
         "request_header_fields_too_large"),
    ]  # fmt: skip
    for n, (method, path, headers, content, status, code) in enumerate(cases):
        sent = f"req-{n}-{code}"
        response = await bare.request(
            method, path, headers={**_keyed(key, sent), **headers}, content=content
        )
        error = _error(response, status, code)
        assert error["request_id"] == sent, code


async def test_an_error_without_a_given_request_id_carries_the_generated_one(
    bare: httpx.AsyncClient,
) -> None:
    response = await bare.get("/api/v1/nowhere")
    error = _error(response, 404, "not_found")
    assert len(error["request_id"]) == 32
    other = await bare.get("/api/v1/nowhere")
    assert _error(other, 404, "not_found")["request_id"] != error["request_id"]


async def test_the_throttles_429_carries_its_type_and_the_request_id(
    checkout: CardCheckout,
) -> None:
    app = create_app(checkout, notify_every=None, auth_throttle=AuthThrottle(max_failures=2))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as bare:
        for n in range(2):
            refused = await bare.get("/api/v1/payments", headers=_keyed(f"ck_guess_{n}", f"g{n}"))
            assert _error(refused, 401, "unauthorized")["request_id"] == f"g{n}"
        throttled = await bare.get("/api/v1/payments", headers=_keyed("ck_guess_3", "g3"))
    error = _error(throttled, 429, "rate_limited")
    assert error["type"] == "invalid_request_error"
    assert error["request_id"] == "g3"


async def test_the_500_of_a_bug_carries_api_error_and_the_request_id(
    bare: httpx.AsyncClient, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret table payments_v2 is missing")

    monkeypatch.setattr(CardCheckout, "get_payment", broken)
    response = await bare.get("/api/v1/payments/pay_1", headers=_keyed(key, "bug-1"))
    error = _error(response, 500, "internal_error")
    assert error["type"] == "api_error"
    assert error["request_id"] == "bug-1"
    assert "payments_v2" not in response.text


async def test_card_and_gateway_failures_carry_their_types(
    checkout: CardCheckout, bare: httpx.AsyncClient, key: str, faults: SandboxFaults
) -> None:
    declined = await finalized_invoice(checkout, await customer_with_card(checkout, DECLINED))
    response = await bare.post(
        "/api/v1/payments", json=_jsonable(card_payment(declined)), headers=_keyed(key, "c-1")
    )
    assert _error(response, 402, "card_declined")["type"] == "card_error"
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    faults.schedule("charge", Fault.REJECT)
    response = await bare.post(
        "/api/v1/payments", json=_jsonable(card_payment(invoice)), headers=_keyed(key, "g-1")
    )
    assert _error(response, 502, "gateway_error")["type"] == "gateway_error"


async def test_a_replayed_error_carries_the_id_of_the_request_that_replays_it(
    checkout: CardCheckout, bare: httpx.AsyncClient, key: str
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout, DECLINED))
    body = _jsonable(card_payment(invoice))
    first = await bare.post(
        "/api/v1/payments", json=body, headers=_keyed(key, "first", **{"Idempotency-Key": "k1"})
    )
    again = await bare.post(
        "/api/v1/payments", json=body, headers=_keyed(key, "second", **{"Idempotency-Key": "k1"})
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert _error(first, 402, "card_declined")["request_id"] == "first"
    replayed = _error(again, 402, "card_declined")
    assert replayed["request_id"] == "second"
    assert {k: v for k, v in replayed.items() if k != "request_id"} == {
        k: v for k, v in first.json()["error"].items() if k != "request_id"
    }


def _jsonable(body: dict[str, object]) -> dict[str, object]:
    return {k: str(v) if k == "amount" else v for k, v in body.items()}


# --- the document -------------------------------------------------------------------------------


def test_the_error_schema_lists_type_and_request_id_and_each_status_its_type(
    checkout: CardCheckout,
) -> None:
    schema = openapi_document(create_app(checkout, notify_every=None).routes)
    error = schema["components"]["schemas"]["Error"]["properties"]["error"]
    assert {"type", "request_id"} <= set(error["required"])
    assert set(error["properties"]["type"]["enum"]) == TYPES
    fields = error["properties"]["details"]["properties"]["fields"]
    assert fields["items"]["required"] == ["field", "message"]
    answers = schema["paths"]["/api/v1/payments"]["post"]["responses"]
    for status in ("400", "401", "402", "502"):
        narrowed = answers[status]["content"]["application/json"]["schema"]["allOf"][1]
        type_schema = narrowed["properties"]["error"]["properties"]["type"]
        assert type_schema == {"const": error_type(int(status))}
    codes_400 = answers["400"]["content"]["application/json"]["schema"]["allOf"][1]
    assert "missing_environment" in codes_400["properties"]["error"]["properties"]["code"]["enum"]
