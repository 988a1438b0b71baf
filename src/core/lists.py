"""Lists as Stripe's integrators know them: a page of `limit` items after one cursor
(`starting_after`) or just before another (`ending_before`), in the list's own order either
way, and whether more lie beyond the page in the direction it was asked for.

A cursor is the id of an item of the list's kind where the list is taken from (a payment of
the environment, a delivery of the endpoint), whether or not the list's filters keep it: an
item that changed between two pages still marks its place. Any other id is refused, naming
the parameter that gave it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar, overload

import attrs

from core.errors import ValidationError
from core.model import InvoiceStatus, PaymentStatus
from core.rules import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, looks_like_card_number

T = TypeVar("T")

STARTING_AFTER: Final = "starting_after"
ENDING_BEFORE: Final = "ending_before"


@attrs.frozen
class Page(Sequence[T]):
    """One page of a list: the sequence of its items, and whether more lie beyond it in the
    direction it was asked for."""

    items: Sequence[T]
    has_more: bool

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...
    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)


@attrs.frozen
class Window:
    """Which page of a list: up to `limit` items after one cursor or before another, never
    both (each list query holds one; a list that takes no filters takes one alone)."""

    limit: int = DEFAULT_PAGE_SIZE
    starting_after: str | None = None
    ending_before: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.starting_after is not None and self.ending_before is not None:
            raise ValidationError(
                f"Give {STARTING_AFTER} or {ENDING_BEFORE}, not both.", field=ENDING_BEFORE
            )
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE_SIZE}.", field="limit")


FIRST_PAGE: Final = Window()


# The list queries: a window on what the filters keep.


@attrs.frozen
class PaymentQuery:
    environment_id: str
    window: Window = FIRST_PAGE
    invoice_id: str | None = None
    customer_id: str | None = None
    statuses: frozenset[PaymentStatus] | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


@attrs.frozen
class CustomerQuery:
    environment_id: str
    window: Window = FIRST_PAGE
    external_id: str | None = None


@attrs.frozen
class InvoiceQuery:
    environment_id: str
    window: Window = FIRST_PAGE
    customer_id: str | None = None
    statuses: frozenset[InvoiceStatus] | None = None


@attrs.frozen
class DeliveryQuery:
    environment_id: str
    endpoint_id: str
    window: Window = FIRST_PAGE


@attrs.frozen
class Cursor:
    parameter: str  # the one that named it
    id: str

    @property
    def backwards(self) -> bool:
        """The page lies before the cursor: it is found walking the list backwards."""
        return self.parameter == ENDING_BEFORE


def cursor_of(window: Window) -> Cursor | None:
    """The window's cursor, if it has one."""
    if window.starting_after is not None:
        return Cursor(STARTING_AFTER, window.starting_after)
    if window.ending_before is not None:
        return Cursor(ENDING_BEFORE, window.ending_before)
    return None


def unknown_cursor(cursor: Cursor) -> ValidationError:
    # Messages are logged: what looks like a card number is never echoed.
    given = "" if looks_like_card_number(cursor.id) else f" is {cursor.id!r}, which"
    return ValidationError(
        f"{cursor.parameter}{given} is not an item of this list.", field=cursor.parameter
    )


def trimmed(found: Sequence[T], limit: int, *, backwards: bool = False) -> Page[T]:
    """The page from up to `limit` + 1 items found walking away from the cursor: the one too
    many says there are more. Found walking backwards, they are turned to the list's order."""
    items = list(found[:limit])
    if backwards:
        items.reverse()
    return Page(items=items, has_more=len(found) > limit)


def window_of(items: Sequence[T], window: Window, id_of: Callable[[T], str]) -> Page[T]:
    """The page of a list held whole, in its order (lists short enough to read whole)."""
    cursor = cursor_of(window)
    if cursor is None:
        return trimmed(items[: window.limit + 1], window.limit)
    at = next((i for i, item in enumerate(items) if id_of(item) == cursor.id), None)
    if at is None:
        raise unknown_cursor(cursor)
    if cursor.backwards:
        walked_back = items[:at][::-1]
        return trimmed(walked_back[: window.limit + 1], window.limit, backwards=True)
    return trimmed(items[at + 1 : at + 2 + window.limit], window.limit)
