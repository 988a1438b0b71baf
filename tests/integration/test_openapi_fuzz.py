"""schemathesis against the running app's /openapi.json: no 5xx, answers match the document."""

from __future__ import annotations

import asyncio

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from tests.helpers import ENV, VISA, customer_with_card, finalized_invoice, in_memory_checkout


async def _seeded() -> tuple[CardCheckout, str]:
    checkout = in_memory_checkout()
    await checkout.create_environment("t", "fuzz", environment_id=ENV)
    _, key = await checkout.create_api_key("t", [ENV], "admin")
    customer = await customer_with_card(checkout, VISA)
    await finalized_invoice(checkout, customer)
    return checkout, key


CHECKOUT, KEY = asyncio.run(_seeded())
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(CHECKOUT, notify_every=None, close_checkout=False)
)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_answers_within_its_document_and_never_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {KEY}", "X-Environment-ID": ENV},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
