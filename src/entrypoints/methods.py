"""How the facade's methods are made from use cases, so that each is one line there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from core.ports import Page
from core.usecases import Answer, Deps

T = TypeVar("T")
P = ParamSpec("P")
Q = TypeVar("Q")
S = TypeVar("S")
Body = Mapping[str, object]


class HasDeps(Protocol):
    deps: Deps


def value_of(
    answered: Callable[Concatenate[S, P], Awaitable[Answer[T]]],
) -> Callable[Concatenate[S, P], Awaitable[T]]:
    """The library's spelling of a keyed call: the answer's value alone."""

    async def value(checkout: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return (await answered(checkout, *args, **kwargs)).value

    value.__name__ = answered.__name__.removesuffix("_answer")
    value.__doc__ = answered.__doc__
    return value


def listing_of(
    query: Callable[P, Q], listed: Callable[[Deps, Q], Awaitable[Page[T]]]
) -> Callable[Concatenate[HasDeps, P], Awaitable[Page[T]]]:
    """A list method: the caller's filters read by `query`, then the use case `listed`."""

    async def listing(checkout: HasDeps, /, *args: P.args, **kwargs: P.kwargs) -> Page[T]:
        return await listed(checkout.deps, query(*args, **kwargs))

    listing.__doc__ = query.__doc__
    return listing


def use_case(
    run: Callable[Concatenate[Deps, P], Awaitable[T]],
) -> Callable[Concatenate[HasDeps, P], Awaitable[T]]:
    """A method that is the use case `run`, on the library's dependencies."""

    async def method(checkout: HasDeps, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await run(checkout.deps, *args, **kwargs)

    method.__name__ = run.__name__
    method.__doc__ = run.__doc__
    return method


def parsed(body: T | Body, parse: Callable[[object], T], kind: type[T]) -> T:
    return body if isinstance(body, kind) else parse(body)
