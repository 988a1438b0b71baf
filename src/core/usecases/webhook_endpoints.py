"""Subscribers' webhook endpoints: registered, listed, deleted, and their deliveries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from core.errors import NotFound, ValidationError, WebhookUrlNotAllowed
from core.lists import FIRST_PAGE, Window, window_of
from core.model import WebhookDelivery, WebhookEndpoint
from core.ports import DeliveryQuery, Page, UnitOfWork
from core.rules import (
    are_public_addresses,
    check_webhook_destination,
    check_webhook_events,
    check_webhook_url,
    webhook_host_name,
)
from core.usecases.common import Deps, transaction

MAX_WEBHOOK_ENDPOINTS: Final = 16  # per environment, not counting deleted ones
# One answer whether the name has no address or an inside one: which inside names exist
# is not the caller's to learn.
NAME_NOT_ALLOWED: Final = (
    "The webhook URL's host name must resolve, and only to public addresses; loopback, "
    "private, link-local, multicast and reserved addresses are refused."
)


async def create_webhook_endpoint(
    deps: Deps, environment_id: str, url: str, events: Iterable[str] = ()
) -> WebhookEndpoint:
    """A new endpoint for the environment's events (none named: all of them)."""
    url = check_webhook_destination(
        check_webhook_url(url), allow_private=deps.policies.webhooks.allow_private_urls
    )
    wanted = check_webhook_events(events)
    await _check_host_name(deps, url)  # last: it may wait on DNS
    endpoint = WebhookEndpoint(
        id=deps.ids.new_id("we"),
        environment_id=environment_id,
        url=url,
        events=wanted,
        secret=deps.ids.new_secret("whsec"),
        created_at=deps.clock.now(),
    )
    async with deps.uow() as uow:
        existing = await uow.webhook_endpoints.list(environment_id)
        if sum(e.deleted_at is None for e in existing) >= MAX_WEBHOOK_ENDPOINTS:
            raise ValidationError(
                f"An environment may have at most {MAX_WEBHOOK_ENDPOINTS} webhook endpoints.",
                field="url",
            )
        await uow.webhook_endpoints.add(endpoint)
        await uow.commit()
    return endpoint


async def _check_host_name(deps: Deps, url: str) -> None:
    """Unless private URLs are allowed, every address the URL's host name resolves to now
    must be public (the sender checks again at each delivery: answers change)."""
    name = webhook_host_name(url)
    if deps.policies.webhooks.allow_private_urls or name is None:
        return
    answers = await deps.addresses.resolve(name) if deps.addresses is not None else ()
    if not are_public_addresses(answers):
        raise WebhookUrlNotAllowed(NAME_NOT_ALLOWED, field="url")


async def list_webhook_endpoints(
    deps: Deps, environment_id: str, window: Window = FIRST_PAGE
) -> Page[WebhookEndpoint]:
    """The environment's endpoints, oldest first (deleted ones are no longer listed)."""
    async with deps.uow(read_only=True) as uow:
        endpoints = await uow.webhook_endpoints.list(environment_id)
    listed = [e for e in endpoints if e.deleted_at is None]
    return window_of(listed, window, lambda endpoint: endpoint.id)


async def get_webhook_endpoint(
    deps: Deps, environment_id: str, endpoint_id: str
) -> WebhookEndpoint:
    return await deps.read(lambda uow: _endpoint(uow, environment_id, endpoint_id))


async def delete_webhook_endpoint(
    deps: Deps, environment_id: str, endpoint_id: str
) -> WebhookEndpoint:
    """Stop sending to the endpoint; what was still pending for it is given up."""

    async def delete(uow: UnitOfWork) -> WebhookEndpoint:
        endpoint = await _endpoint(uow, environment_id, endpoint_id)
        deleted = endpoint.deleted(deps.clock.now())
        await uow.webhook_endpoints.update(deleted)
        await uow.commit()
        return deleted

    return await transaction(deps, delete)


async def webhook_deliveries(
    deps: Deps, environment_id: str, endpoint_id: str, window: Window = FIRST_PAGE
) -> Page[WebhookDelivery]:
    """The endpoint's deliveries, newest first, each with its attempts."""
    query = DeliveryQuery(environment_id, endpoint_id, window)
    async with deps.uow(read_only=True) as uow:
        await _endpoint(uow, environment_id, endpoint_id)
        return await uow.webhook_deliveries.list(query)


async def _endpoint(uow: UnitOfWork, environment_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await uow.webhook_endpoints.get(environment_id, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None:
        raise NotFound(f"No webhook endpoint {endpoint_id} exists in this environment.",
                       endpoint_id=endpoint_id)  # fmt: skip
    return endpoint
