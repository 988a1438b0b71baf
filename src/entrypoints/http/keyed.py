"""Keyed POSTs: what a create, or an action on what the path names, passes to its use case.

Each returns the use case's call not yet awaited: the caller's `answer` awaits it, so that a
refusal it raises is answered with its replay header.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, TypeVar

from starlette.requests import Request

from core.usecases import Answer
from entrypoints.http import params
from entrypoints.http.auth import environment_of
from entrypoints.http.body import json_body
from entrypoints.http.wire import Json

T = TypeVar("T")


class Create(Protocol[T]):
    def __call__(
        self, environment_id: str, body: Json, *, idempotency_key: str | None = None
    ) -> Awaitable[Answer[T]]: ...


class Act(Protocol[T]):
    def __call__(
        self, environment_id: str, target_id: str, /, *, idempotency_key: str | None = None
    ) -> Awaitable[Answer[T]]: ...


async def create(request: Request, call: Create[T]) -> Awaitable[Answer[T]]:
    """`call` on the request's body, in the caller's environment, with its Idempotency-Key."""
    environment = environment_of(request)
    body = await json_body(request)
    assert body is not None
    return call(environment, body, idempotency_key=params.idempotency_key(request))


async def act(request: Request, target: str, call: Act[T]) -> Awaitable[Answer[T]]:
    """`call` on what the path parameter `target` names; a body, if sent, must be JSON."""
    environment = environment_of(request)
    await json_body(request, optional=True)
    return call(
        environment, request.path_params[target], idempotency_key=params.idempotency_key(request)
    )
