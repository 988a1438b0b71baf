"""Lists as Stripe's integrators know them, through the library and the HTTP API in process:
`limit`, `starting_after`, `ending_before`, a true `has_more`, unknown cursors refused; and
each payment's events numbered 1..n."""

from __future__ import annotations

from typing import Any

import attrs
import httpx
import pytest

from adapters.memory import InMemoryUnitOfWorkFactory
from core.errors import ValidationError
from core.lists import Window
from core.model import Customer, Payment
from core.ports import UnitOfWorkFactory
from core.rules import MAX_PAGE_SIZE
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    DECLINED,
    ENV,
    api_client,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
)
from tests.listing_contract import ListingContract

HOOKS = "/api/v1/webhook_endpoints"


async def _charged(checkout: CardCheckout, customer: Customer) -> Payment:
    invoice = await finalized_invoice(checkout, customer)
    return await checkout.create_payment(ENV, card_payment(invoice))


async def _walk(
    client: httpx.AsyncClient, route: str, limit: int, *, backwards_from: str | None = None
) -> list[str]:
    """Every id met paging through `route`, forwards from the start or backwards from an id."""
    met: list[str] = []
    cursor = backwards_from
    while True:
        parameter = "ending_before" if backwards_from else "starting_after"
        params = {"limit": str(limit)} | ({parameter: cursor} if cursor else {})
        page = (await client.get(route, params=params)).json()
        ids = [item["id"] for item in page["items"]]
        met = ids + met if backwards_from else met + ids
        if not page["has_more"]:
            return met
        cursor = ids[0] if backwards_from else ids[-1]


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    return dict(response.json()["error"])


async def test_each_payments_events_are_numbered_from_one_without_gaps(
    checkout: CardCheckout,
) -> None:
    """A refund reserves part of its payment before it settles: the payment changes without
    an event, and its events were numbered by its version (1, 2, 3, 5, 7)."""
    customer = await customer_with_card(checkout)
    first, second = [await _charged(checkout, customer) for _ in range(2)]
    for payment_id, body in (
        (first.id, {"amount": "10.00"}),
        (second.id, {"amount": "20.00"}),
        (first.id, {}),
        (second.id, {"amount": "30.00"}),
        (second.id, {}),
    ):
        await checkout.refund_payment(ENV, payment_id, body)

    for payment, count in ((first, 5), (second, 6)):
        events = await checkout.payment_events(ENV, payment.id)
        assert [e.sequence for e in events] == list(range(1, count + 1))
        assert events[-1].to_status.value == "refunded"


async def test_a_delivery_page_says_whether_more_follow(checkout: CardCheckout) -> None:
    async with api_client(checkout) as client:
        endpoint = (await client.post(HOOKS, json={"url": "https://example.com/in"})).json()
        for _ in range(2):  # each declined payment: initiated, processing and failed events
            await error_of(_charged(checkout, await customer_with_card(checkout, DECLINED)))
        route = f"{HOOKS}/{endpoint['id']}/deliveries"
        everything = (await client.get(route, params={"limit": "100"})).json()
        assert len(everything["items"]) > 2
        assert everything["has_more"] is False

        first = (await client.get(route, params={"limit": "2"})).json()
        assert first["items"] == everything["items"][:2]
        assert first["has_more"] is True

        ids = [d["id"] for d in everything["items"]]
        assert await _walk(client, route, 2) == ids
        assert await _walk(client, route, 2, backwards_from=ids[-1]) == ids[:-1]


async def test_every_list_route_pages_and_refuses_what_is_no_cursor_of_it(
    checkout: CardCheckout,
) -> None:
    async with api_client(checkout) as client:
        endpoint = (await client.post(HOOKS, json={"url": "https://example.com/in"})).json()
        customer = await customer_with_card(checkout)
        payment = await _charged(checkout, customer)
        await checkout.refund_payment(ENV, payment.id, {"amount": "1.00"})
        lists = {
            "/api/v1/payments": payment.id,
            "/api/v1/invoices": payment.invoice_id,
            "/api/v1/customers": customer.id,
            f"/api/v1/customers/{customer.id}/payment_methods": None,
            f"/api/v1/payments/{payment.id}/refunds": None,
            f"/api/v1/payments/{payment.id}/events": "1",
            HOOKS: endpoint["id"],
            f"{HOOKS}/{endpoint['id']}/deliveries": None,
        }
        for route, first_id in lists.items():
            whole = await client.get(route)
            assert whole.status_code == 200, (route, whole.text)
            items = whole.json()["items"]
            assert items, route
            assert whole.json()["has_more"] is False
            cursor = first_id or items[0]["id"]
            after = await client.get(route, params={"starting_after": cursor})
            assert after.json()["items"] == items[1:], route
            before = await client.get(route, params={"ending_before": cursor})
            assert before.json() == {"items": [], "has_more": False}, route

            for parameter in ("starting_after", "ending_before"):
                refused = _error(await client.get(route, params={parameter: "nothing_here"}))
                assert refused["details"]["field"] == parameter, route
            both = {"starting_after": cursor, "ending_before": cursor}
            assert _error(await client.get(route, params=both))["details"]["field"] == (
                "ending_before"
            )
            assert _error(await client.get(route, params={"limit": "0"}))["details"]["field"] == (
                "limit"
            )


async def test_a_payments_events_are_paged_by_their_sequence(checkout: CardCheckout) -> None:
    payment = await _charged(checkout, await customer_with_card(checkout))
    await checkout.refund_payment(ENV, payment.id, {"amount": "1.00"})
    await checkout.refund_payment(ENV, payment.id, {})  # events 1..5
    async with api_client(checkout) as client:
        route = f"/api/v1/payments/{payment.id}/events"
        middle = (await client.get(route, params={"starting_after": "2", "limit": "2"})).json()
        assert ([e["sequence"] for e in middle["items"]], middle["has_more"]) == ([3, 4], True)
        start = (await client.get(route, params={"ending_before": "3", "limit": "5"})).json()
        assert ([e["sequence"] for e in start["items"]], start["has_more"]) == ([1, 2], False)
        beyond = _error(await client.get(route, params={"starting_after": "6"}))
        assert beyond["details"]["field"] == "starting_after"


async def test_the_library_lists_take_the_same_parameters(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    payments = [await _charged(checkout, customer) for _ in range(3)]
    newest_first = [p.id for p in reversed(payments)]

    page = await checkout.list_payments(ENV, limit=1, ending_before=newest_first[2])
    assert ([p.id for p in page], page.has_more) == ([newest_first[1]], True)
    page = await checkout.list_payments(
        ENV, customer_id=customer.id, starting_after=newest_first[0]
    )
    assert ([p.id for p in page], page.has_more) == (newest_first[1:], False)
    invoices = await checkout.list_invoices(ENV, limit=2, ending_before=payments[0].invoice_id)
    assert [i.id for i in invoices] == [payments[2].invoice_id, payments[1].invoice_id]
    found = await checkout.list_customers(ENV, external_id=customer.external_id, limit=1)
    assert ([c.id for c in found], found.has_more) == ([customer.id], False)
    events = await checkout.payment_events(ENV, payments[0].id, limit=1, starting_after="1")
    assert ([e.sequence for e in events], events.has_more) == ([2], True)
    for call in (
        checkout.list_customers(ENV, starting_after=customer.id, ending_before=customer.id),
        checkout.list_refunds(ENV, payments[0].id, starting_after="re_x", ending_before="re_y"),
    ):
        assert (await error_of(call)).details["field"] == "ending_before"
    unknown = await error_of(checkout.webhook_deliveries(ENV, "we_missing"))
    assert unknown.code == "not_found"


async def test_every_list_declares_its_page_in_the_document(checkout: CardCheckout) -> None:
    async with api_client(checkout) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    lists = [
        (path, operation)
        for path, item in paths.items()
        for method, operation in item.items()
        if method == "get" and "has_more" in str(operation["responses"].get("200", {}))
    ]
    assert len(lists) >= 8
    for path, operation in lists:
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert {"limit", "starting_after", "ending_before"} <= names, path


@pytest.mark.parametrize("route", ["/api/v1/payments", "/api/v1/invoices", "/api/v1/customers"])
async def test_an_unknown_cursor_is_refused_naming_its_parameter(
    checkout: CardCheckout, route: str
) -> None:
    async with api_client(checkout) as client:
        for parameter in ("starting_after", "ending_before"):
            error = _error(await client.get(route, params={parameter: "pay_bogus"}))
            assert (error["code"], error["details"]["field"]) == ("validation_error", parameter)
            assert "pay_bogus" in error["message"]


class TestInMemoryLists(ListingContract):
    @pytest.fixture
    def units(self) -> UnitOfWorkFactory:
        return InMemoryUnitOfWorkFactory()


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": MAX_PAGE_SIZE + 1}, "limit"),
        ({"starting_after": "pay_1", "ending_before": "pay_2"}, "ending_before"),
    ],
)
def test_no_window_holds_a_limit_out_of_range_or_two_cursors(
    window: dict[str, Any], field: str
) -> None:
    """Every list query holds a window, so no adapter sees such a page, whoever asks."""
    with pytest.raises(ValidationError) as refused:
        Window(**window)
    assert refused.value.field == field
    with pytest.raises(ValidationError):
        attrs.evolve(Window(limit=MAX_PAGE_SIZE), **window)
    assert Window(MAX_PAGE_SIZE, "pay_1").limit == MAX_PAGE_SIZE
