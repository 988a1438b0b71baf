"""Reconciliation on Stripe finds a charge by the payment's id when its key is in flight.

Stripe answers `idempotency_key_in_use` while the first request with a key runs (or appears
to); the adapter then searches PaymentIntents by `metadata['payment_id']`. Search is
eventually consistent, so a miss is an unknown outcome, never "no charge". These run on a
stub of Stripe's HTTP API: localstripe has no search endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.stripe_gateway import StripePaymentGateway
from core.gateway import ChargeRequest, ChargeStatus, GatewayUnavailable
from core.money import Money

KEY_IN_USE = {
    "error": {
        "type": "idempotency_error",
        "code": "idempotency_key_in_use",
        "message": "There is currently another in-progress request using this Idempotent Key.",
    }
}
SUCCEEDED = {
    "id": "pi_found", "object": "payment_intent", "status": "succeeded",
    "metadata": {"payment_id": "pay_1"},
    "payment_method": {"id": "pm_1", "object": "payment_method",
                       "card": {"brand": "visa", "last4": "4242"}},
}  # fmt: skip
REQUEST = ChargeRequest(
    amount=Money.of("12.50", "usd"), gateway_customer_id="cus_1", payment_method_id="pm_1",
    idempotency_key="pay_1:charge",
    metadata={"payment_id": "pay_1", "invoice_id": "inv_1", "environment_id": "env_1"},
)  # fmt: skip


def search_result(*intents: dict[str, Any]) -> dict[str, Any]:
    return {"object": "search_result", "url": "/v1/payment_intents/search",
            "has_more": False, "next_page": None, "data": list(intents)}  # fmt: skip


class StubStripe:
    """Answers the create with `created` and the search with `searched`; records requests."""

    def __init__(
        self, created: tuple[int, dict[str, Any]], searched: tuple[int, dict[str, Any]]
    ) -> None:
        self.created = created
        self.searched = searched
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path == "/v1/payment_intents":
            status, body = self.created
        elif request.method == "GET" and request.url.path == "/v1/payment_intents/search":
            status, body = self.searched
        else:
            status, body = 404, {"error": {"type": "invalid_request_error", "message": "?"}}
        return httpx.Response(status, json=body)

    def searches(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("/search")]


def on_stub(handler: Callable[[httpx.Request], httpx.Response]) -> StripePaymentGateway:
    gateway = StripePaymentGateway.create(
        "sk_test_stub", api_base="http://stripe.invalid", max_network_retries=0
    )
    # The SDK builds its own httpx client; the stub answers in its place.
    gateway.http_client._client_async = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return gateway


async def test_a_key_in_flight_is_looked_past_by_searching_the_payments_id() -> None:
    stub = StubStripe(created=(409, KEY_IN_USE), searched=(200, search_result(SUCCEEDED)))
    found = await on_stub(stub).find_charge(REQUEST, None)
    assert found.status is ChargeStatus.SUCCEEDED
    assert (found.intent_id, found.card_last4) == ("pi_found", "4242")
    [search] = stub.searches()
    assert search.url.params["query"] == "metadata['payment_id']:'pay_1'"
    assert search.url.params["expand[0]"] == "data.payment_method"


async def test_a_search_that_finds_nothing_is_an_unknown_outcome_not_a_failure() -> None:
    stub = StubStripe(created=(409, KEY_IN_USE), searched=(200, search_result()))
    with pytest.raises(GatewayUnavailable):
        await on_stub(stub).find_charge(REQUEST, None)
    assert len(stub.searches()) == 1


async def test_a_search_stripe_cannot_answer_is_an_unknown_outcome() -> None:
    unavailable = {"error": {"type": "invalid_request_error", "message": "Unrecognized request"}}
    stub = StubStripe(created=(409, KEY_IN_USE), searched=(404, unavailable))
    with pytest.raises(GatewayUnavailable):
        await on_stub(stub).find_charge(REQUEST, None)
    stub = StubStripe(created=(409, KEY_IN_USE), searched=(500, {"error": {"type": "api_error"}}))
    with pytest.raises(GatewayUnavailable):
        await on_stub(stub).find_charge(REQUEST, None)


async def test_a_replay_that_answers_needs_no_search() -> None:
    stub = StubStripe(created=(200, SUCCEEDED), searched=(200, search_result()))
    found = await on_stub(stub).find_charge(REQUEST, None)
    assert found.intent_id == "pi_found"
    assert stub.searches() == []


async def test_the_search_prefers_the_charge_that_succeeded() -> None:
    failed = {**SUCCEEDED, "id": "pi_declined", "status": "requires_payment_method",
              "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline",
                                     "message": "Your card was declined."}}  # fmt: skip
    stub = StubStripe(created=(409, KEY_IN_USE), searched=(200, search_result(failed, SUCCEEDED)))
    found = await on_stub(stub).find_charge(REQUEST, None)
    assert found.intent_id == "pi_found"


def test_the_search_quotes_what_it_is_given() -> None:
    from adapters.stripe_gateway.gateway import metadata_query

    assert metadata_query("payment_id", "pay_'x\\") == "metadata['payment_id']:'pay_\\'x\\\\'"


async def test_a_charge_told_its_key_is_in_use_has_an_unknown_outcome() -> None:
    """Stripe answers 409 while another request with the key runs: not a decline."""
    stub = StubStripe(created=(409, KEY_IN_USE), searched=(200, search_result()))
    with pytest.raises(GatewayUnavailable):
        await on_stub(stub).charge(REQUEST)


async def test_an_intent_still_being_confirmed_is_not_an_answer() -> None:
    confirming = {**SUCCEEDED, "status": "requires_confirmation"}
    unconfirmed = {**SUCCEEDED, "status": "requires_payment_method", "last_payment_error": None}
    stub = StubStripe(
        created=(409, KEY_IN_USE), searched=(200, search_result(confirming, unconfirmed))
    )
    with pytest.raises(GatewayUnavailable):
        await on_stub(stub).find_charge(REQUEST, None)
