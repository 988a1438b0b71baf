"""The contract of every storage adapter's lists (`core.lists`), as one suite beside the
storage contract: keyset pages either way from a cursor, a `has_more` that is exact at every
boundary, and cursors that are not items of the list refused.

Subclass `ListingContract` with a `units` fixture that returns a fresh, empty
`UnitOfWorkFactory`.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ValidationError
from core.lists import Window
from core.model import Actor, PaymentStatus
from core.ports import (
    CustomerQuery,
    DeliveryQuery,
    InvoiceQuery,
    Page,
    PaymentQuery,
    UnitOfWorkFactory,
)
from tests.storage_contract import ENV, T0, customer, delivery, endpoint, invoice, payment

# Created at these seconds after T0: ties are ordered by id.
SECONDS = (1, 2, 2, 3, 5, 5, 8)
NEWEST_FIRST = [7, 6, 5, 4, 3, 2, 1]

# Each example of a property test seeds an environment of its own in the same storage.
_EXAMPLES = itertools.count()

# A page of one list, as the storage pages it.
Lister = Callable[[Window], Awaitable[Page[Any]]]


def _ids(page: Page[Any]) -> list[str]:
    return [item.id for item in page.items]


async def _walk(lister: Lister, limit: int, *, backwards_from: str | None = None) -> list[str]:
    """Every id met walking page by page (forwards from the start, or backwards from an
    item), each page's has_more checked against what the next page holds."""
    met: list[str] = []
    window = Window(limit, ending_before=backwards_from)
    while True:
        page = await lister(window)
        assert len(page.items) <= limit
        ids = _ids(page)
        met = ids + met if backwards_from else met + ids
        if not page.has_more:
            return met
        assert len(page.items) == limit  # more, yet a short page: has_more lied
        window = Window(limit, ending_before=ids[0]) if backwards_from else Window(limit, ids[-1])


class ListingContract:
    @pytest.fixture
    def units(self) -> UnitOfWorkFactory:
        raise NotImplementedError

    # Each list, seeded with the same shape: (its ids newest first, its pages, an id of the
    # same kind that is not an item of it).

    async def _payments(self, units: UnitOfWorkFactory) -> tuple[list[str], Lister, str]:
        async with units() as uow:
            for env in (ENV, "env_b"):
                await uow.customers.add(customer(env=env))
            for n, second in enumerate(SECONDS, start=1):
                await uow.invoices.add(invoice(n))
                created = T0 + timedelta(seconds=second)
                await uow.payments.add(attrs.evolve(payment(n, f"inv_{n:04d}"), created_at=created))
            await uow.invoices.add(invoice(1, env="env_b"))
            await uow.payments.add(payment(9, "inv_0001", env="env_b"))
            await uow.commit()

        async def lister(window: Window) -> Page[Any]:
            async with units(read_only=True) as uow:
                return await uow.payments.list(PaymentQuery(ENV, window))

        return [f"pay_{n:04d}" for n in NEWEST_FIRST], lister, "pay_0009"

    async def _invoices(self, units: UnitOfWorkFactory) -> tuple[list[str], Lister, str]:
        async with units() as uow:
            for env in (ENV, "env_b"):
                await uow.customers.add(customer(env=env))
            for n, second in enumerate(SECONDS, start=1):
                created = T0 + timedelta(seconds=second)
                await uow.invoices.add(attrs.evolve(invoice(n), created_at=created))
            await uow.invoices.add(invoice(9, env="env_b"))
            await uow.commit()

        async def lister(window: Window) -> Page[Any]:
            async with units(read_only=True) as uow:
                return await uow.invoices.list(InvoiceQuery(ENV, window))

        return [f"inv_{n:04d}" for n in NEWEST_FIRST], lister, "inv_0009"

    async def _customers(self, units: UnitOfWorkFactory) -> tuple[list[str], Lister, str]:
        async with units() as uow:
            for n, second in enumerate(SECONDS, start=1):
                created = T0 + timedelta(seconds=second)
                await uow.customers.add(attrs.evolve(customer(n), created_at=created))
            await uow.customers.add(customer(9, env="env_b"))
            await uow.commit()

        async def lister(window: Window) -> Page[Any]:
            async with units(read_only=True) as uow:
                return await uow.customers.list(CustomerQuery(ENV, window))

        return [f"cust_{n:04d}" for n in NEWEST_FIRST], lister, "cust_0009"

    async def _deliveries(self, units: UnitOfWorkFactory) -> tuple[list[str], Lister, str]:
        async with units() as uow:
            await uow.webhook_endpoints.add(endpoint(1))
            await uow.webhook_endpoints.add(endpoint(2))
            for n, second in enumerate(SECONDS, start=1):
                created = T0 + timedelta(seconds=second)
                await uow.webhook_deliveries.add(attrs.evolve(delivery(n), created_at=created))
            # The other endpoint's, newer than them all.
            await uow.webhook_deliveries.add(delivery(9, "we_0002"))
            await uow.commit()

        async def lister(window: Window) -> Page[Any]:
            async with units(read_only=True) as uow:
                query = DeliveryQuery(ENV, "we_0001", window)
                return await uow.webhook_deliveries.list(query)

        return [f"whd_{n:04d}" for n in NEWEST_FIRST], lister, "whd_0009"

    LISTS = ("_payments", "_invoices", "_customers", "_deliveries")

    @pytest.mark.parametrize("kind", LISTS)
    async def test_walking_pages_meets_every_item_once_in_order_either_way(
        self, units: UnitOfWorkFactory, kind: str
    ) -> None:
        ids, lister, _ = await getattr(self, kind)(units)
        for limit in range(1, len(ids) + 2):
            assert await _walk(lister, limit) == ids, f"forwards, limit {limit}"
            backwards = await _walk(lister, limit, backwards_from=ids[-1])
            assert backwards == ids[:-1], f"backwards, limit {limit}"

    @pytest.mark.parametrize("kind", LISTS)
    async def test_has_more_is_exact_at_each_boundary(
        self, units: UnitOfWorkFactory, kind: str
    ) -> None:
        ids, lister, _ = await getattr(self, kind)(units)
        count = len(ids)

        async def page(**window: Any) -> tuple[list[str], bool]:
            found = await lister(Window(**window))
            return _ids(found), found.has_more

        assert await page(limit=count) == (ids, False)
        assert await page(limit=count - 1) == (ids[:-1], True)
        assert await page(limit=2, starting_after=ids[-3]) == (ids[-2:], False)
        assert await page(limit=1, starting_after=ids[-3]) == (ids[-2:-1], True)
        assert await page(limit=5, starting_after=ids[-1]) == ([], False)
        # Just before a cursor: the items nearest it, in the list's order.
        assert await page(limit=2, ending_before=ids[3]) == (ids[1:3], True)
        assert await page(limit=3, ending_before=ids[3]) == (ids[:3], False)
        assert await page(limit=5, ending_before=ids[0]) == ([], False)

    @pytest.mark.parametrize("kind", LISTS)
    async def test_a_cursor_that_is_not_an_item_of_the_list_is_refused_naming_it(
        self, units: UnitOfWorkFactory, kind: str
    ) -> None:
        ids, lister, elsewhere = await getattr(self, kind)(units)
        for cursor in ("nothing_like_it", elsewhere, ids[0].upper()):
            for parameter in ("starting_after", "ending_before"):
                with pytest.raises(ValidationError) as refused:
                    await lister(Window(**{parameter: cursor}))
                assert refused.value.field == parameter
                assert cursor in refused.value.message
        with pytest.raises(ValidationError) as both:
            await lister(Window(2, ids[0], ids[1]))
        assert both.value.field == "ending_before"

    async def test_a_cursor_left_out_by_the_filters_still_marks_its_place(
        self, units: UnitOfWorkFactory
    ) -> None:
        """A payment that changed between two pages (here: it failed) is still a cursor."""
        async with units() as uow:
            await uow.customers.add(customer())
            for n in (1, 2, 3):
                await uow.invoices.add(invoice(n))
                await uow.payments.add(payment(n, f"inv_{n:04d}"))
            await uow.commit()
        async with units() as uow:
            current = await uow.payments.get(ENV, "pay_0002")
            assert current is not None
            failed, _ = current.transition(
                PaymentStatus.FAILED, at=T0, reason="declined", actor=Actor.API
            )
            await uow.payments.update(failed)
            await uow.commit()
        initiated = frozenset({PaymentStatus.INITIATED})
        async with units(read_only=True) as uow:
            after = await uow.payments.list(
                PaymentQuery(ENV, Window(starting_after="pay_0002"), statuses=initiated)
            )
            before = await uow.payments.list(
                PaymentQuery(ENV, Window(ending_before="pay_0002"), statuses=initiated)
            )
        assert (_ids(after), _ids(before)) == (["pay_0001"], ["pay_0003"])

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        seconds=st.lists(st.integers(0, 4), min_size=1, max_size=12),
        limit=st.integers(1, 6),
        data=st.data(),
    )
    async def test_any_list_is_walked_whole_either_way_at_any_page_size(
        self, units: UnitOfWorkFactory, seconds: Sequence[int], limit: int, data: st.DataObject
    ) -> None:
        """Customers made at random seconds (ties broken by id), in an environment of their
        own for each example."""
        env = f"env_walk_{next(_EXAMPLES)}"
        async with units() as uow:
            for n, second in enumerate(seconds, start=1):
                made = customer(n, env=env)
                await uow.customers.add(
                    attrs.evolve(made, created_at=T0 + timedelta(seconds=second))
                )
            await uow.commit()
        newest_first = [
            f"cust_{n:04d}"
            for second, n in sorted(((s, n) for n, s in enumerate(seconds, start=1)), reverse=True)
        ]

        async def lister(window: Window) -> Page[Any]:
            async with units(read_only=True) as uow:
                return await uow.customers.list(CustomerQuery(env, window))

        assert await _walk(lister, limit) == newest_first
        start = data.draw(st.sampled_from(newest_first))
        before_start = newest_first[: newest_first.index(start)]
        assert await _walk(lister, limit, backwards_from=start) == before_start
