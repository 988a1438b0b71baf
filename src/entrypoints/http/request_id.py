"""The id of the request being served, for what answers on its behalf deep inside the app.

The HTTP middleware (`RequestObservability`) sets it around the whole request, so that an
error body rendered anywhere (a route, an exception handler, a middleware, a replayed stored
answer) names the request that got it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CURRENT: ContextVar[str | None] = ContextVar("card_checkout_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served; None outside of one."""
    return _CURRENT.get()


@contextmanager
def serving(request_id: str) -> Iterator[None]:
    """`request_id` is the current request's inside."""
    token = _CURRENT.set(request_id)
    try:
        yield
    finally:
        _CURRENT.reset(token)
