"""The OpenAPI document is read off the routes: every operation named, tagged and derived."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.model import InvoicePaymentStatus, InvoiceStatus, PaymentStatus, RefundStatus
from entrypoints.bodies import BODIES, Body
from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.openapi import openapi_document
from entrypoints.http.routes import RESOURCES
from entrypoints.http.routing import ApiRoute
from tests.helpers import api_client


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(checkout) as client:
        yield client


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    validate(body)
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_operation_has_a_readable_unique_id_and_one_declared_tag(
    document: dict[str, Any],
) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", id_) for id_ in ids), ids
    assert {"createPayment", "listPayments", "getPayment", "createInvoice"} <= set(ids)
    declared = [tag["name"] for tag in document["tags"]]
    assert declared == [resource.tag.name for resource in RESOURCES]
    used = {tag for _, _, operation in operations(document) for tag in operation["tags"]}
    assert used == set(declared)
    assert all(len(operation["tags"]) == 1 for _, _, operation in operations(document))


def test_the_document_names_its_server(document: dict[str, Any]) -> None:
    assert document["servers"] == [
        {"url": "/", "description": "The server that serves this document"}
    ]


def test_request_schemas_are_derived_from_the_body_definitions(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    by_name = {body.name: body for body in BODIES}
    used: set[str] = set()
    for _, _, operation in operations(document):
        if "requestBody" not in operation:
            continue
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        name = ref.removeprefix("#/components/schemas/")
        if name in by_name:
            used.add(name)
            body: Body = by_name[name]
            assert schemas[name] == body.schema()
            assert operation["requestBody"]["required"] is not body.optional
    assert used == set(by_name)


def test_keyed_posts_take_an_idempotency_key_and_keyed_routes_answer_errors(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        if "security" in operation:
            assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
        if method == "POST" and "security" in operation:
            expected = path != "/api/v1/webhook_endpoints"  # created once, never replayed
            assert ("Idempotency-Key" in headers) is expected, path


def test_response_enumerations_come_from_the_enum_classes(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Payment"]["properties"]["payment_status"]["enum"] == [
        s.value for s in PaymentStatus
    ]
    assert schemas["Refund"]["properties"]["status"]["enum"] == [s.value for s in RefundStatus]
    invoice = schemas["Invoice"]["properties"]
    assert invoice["invoice_status"]["enum"] == [s.value for s in InvoiceStatus]
    assert invoice["payment_status"]["enum"] == [s.value for s in InvoicePaymentStatus]


async def test_documented_query_values_are_the_ones_the_lists_take(
    document: dict[str, Any], client: httpx.AsyncClient
) -> None:
    for path in ("/api/v1/payments", "/api/v1/invoices"):
        for parameter in document["paths"][path]["get"]["parameters"]:
            schema = parameter["schema"]
            for value in schema.get("enum", []):
                answered = await client.get(path, params={parameter["name"]: value})
                assert answered.status_code == 200, (path, parameter["name"], value)
            if parameter["name"] == "limit":
                for value in (schema["minimum"], schema["maximum"]):
                    assert (await client.get(path, params={"limit": value})).status_code == 200
                for value in (schema["minimum"] - 1, schema["maximum"] + 1):
                    assert (await client.get(path, params={"limit": value})).status_code == 400


async def _endpoint(request: Request) -> Response:
    return Response()


def test_a_route_served_without_an_operation_is_refused() -> None:
    with pytest.raises(TypeError, match="/undocumented"):
        openapi_document([Route("/undocumented", _endpoint)])
    hidden = Route("/hidden", _endpoint, include_in_schema=False)
    assert openapi_document([hidden])["paths"] == {}


def test_every_served_route_carries_its_operation(checkout: CardCheckout) -> None:
    app = create_app(checkout, notify_every=None)
    for route in app.routes:
        assert isinstance(route, Route)
        assert isinstance(route, ApiRoute) or not route.include_in_schema, route.path
