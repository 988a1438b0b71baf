"""Lists on SQL storage (SQLite, and PostgreSQL through each executor): the listing contract,
events numbered 1..n through the service, and pages read from the lists' indexes."""

from __future__ import annotations

import pytest

from core.ports import UnitOfWorkFactory
from entrypoints.bootstrap import bootstrap
from tests.helpers import ENV, card_payment, customer_with_card, finalized_invoice
from tests.integration.conftest import SqlPath
from tests.listing_contract import ListingContract


class TestSqlLists(ListingContract):
    @pytest.fixture
    def units(self, sql_path: SqlPath) -> UnitOfWorkFactory:
        return sql_path.units()


async def test_each_payments_events_are_numbered_from_one_without_gaps(sql_path: SqlPath) -> None:
    checkout = bootstrap(uow=sql_path.units())
    customer = await customer_with_card(checkout)
    first, second = [
        await checkout.create_payment(ENV, card_payment(await finalized_invoice(checkout, c)))
        for c in (customer, customer)
    ]
    for payment_id, body in (
        (first.id, {"amount": "10.00"}),
        (second.id, {"amount": "20.00"}),
        (first.id, {}),
        (second.id, {}),
    ):
        await checkout.refund_payment(ENV, payment_id, body)
    for payment in (first, second):
        events = await checkout.payment_events(ENV, payment.id)
        assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
        assert (await checkout.get_payment(ENV, payment.id)).event_count == 5
    await checkout.aclose()
