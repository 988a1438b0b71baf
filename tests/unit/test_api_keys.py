"""Environments and API keys: a key is stored as a hash and may do only what its role allows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.api_keys import CachedApiKeyLookup
from adapters.clock import ManualClock
from core.errors import CheckoutError
from core.model import ApiKey, Role
from entrypoints.bootstrap import CardCheckout


async def _code(checkout: CardCheckout, key: str | None, env: str | None, needs: Role) -> str:
    try:
        await checkout.authorize(key, env, needs)
    except CheckoutError as error:
        return error.code
    return "ok"


async def test_a_key_is_shown_once_and_stored_only_as_its_hash(checkout: CardCheckout) -> None:
    env = await checkout.create_environment("tenant-1", "test")
    key, raw = await checkout.create_api_key("tenant-1", [env.id], "write")
    assert raw.startswith("ck_")
    assert len(raw) > 40
    assert key.key_hash == ApiKey.hash(raw)
    assert raw not in repr(key)
    assert (await checkout.authorize(raw, env.id, Role.WRITE)).id == key.id


@pytest.mark.parametrize(
    ("role", "needs", "expected"),
    [
        ("read", Role.READ, "ok"),
        ("read", Role.WRITE, "forbidden"),
        ("write", Role.WRITE, "ok"),
        ("write", Role.ADMIN, "forbidden"),
        ("admin", Role.ADMIN, "ok"),
        ("admin", Role.READ, "ok"),
    ],
)
async def test_a_role_allows_only_its_own_and_lesser_work(
    checkout: CardCheckout, role: str, needs: Role, expected: str
) -> None:
    env = await checkout.create_environment("tenant-1", "test")
    _, raw = await checkout.create_api_key("tenant-1", [env.id], role)
    assert await _code(checkout, raw, env.id, needs) == expected


async def test_unknown_missing_and_revoked_keys_are_unauthorized(checkout: CardCheckout) -> None:
    env = await checkout.create_environment("tenant-1", "test")
    key, raw = await checkout.create_api_key("tenant-1", [env.id], "admin")
    assert await _code(checkout, None, env.id, Role.READ) == "unauthorized"
    assert await _code(checkout, "ck_guess", env.id, Role.READ) == "unauthorized"
    await checkout.revoke_api_key(key.id)
    assert await _code(checkout, raw, env.id, Role.READ) == "unauthorized"


async def test_a_key_in_use_revoked_here_is_refused_at_once(checkout: CardCheckout) -> None:
    env = await checkout.create_environment("tenant-1", "test")
    key, raw = await checkout.create_api_key("tenant-1", [env.id], "write")
    assert await _code(checkout, raw, env.id, Role.WRITE) == "ok"  # now trusted for a while
    await checkout.revoke_api_key(key.id)
    assert await _code(checkout, raw, env.id, Role.WRITE) == "unauthorized"


async def test_a_key_revoked_by_another_process_is_refused_once_trust_expires(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    env = await checkout.create_environment("tenant-1", "test")
    key, raw = await checkout.create_api_key("tenant-1", [env.id], "write")
    assert await _code(checkout, raw, env.id, Role.WRITE) == "ok"
    async with checkout.deps.uow() as uow:  # as another server would, past this one's cache
        await uow.api_keys.update(key.revoked(clock.now()))
        await uow.commit()
    lookup = checkout.deps.api_keys
    assert isinstance(lookup, CachedApiKeyLookup)
    clock.advance(lookup.ttl - timedelta(milliseconds=1))
    assert await _code(checkout, raw, env.id, Role.WRITE) == "ok"
    clock.advance(timedelta(milliseconds=1))
    assert await _code(checkout, raw, env.id, Role.WRITE) == "unauthorized"


async def test_a_key_may_not_use_another_environment(checkout: CardCheckout) -> None:
    mine = await checkout.create_environment("tenant-1", "mine")
    other = await checkout.create_environment("tenant-1", "other")
    _, raw = await checkout.create_api_key("tenant-1", [mine.id], "admin")
    assert await _code(checkout, raw, other.id, Role.READ) == "forbidden"
    assert await _code(checkout, raw, None, Role.READ) == "missing_environment"


async def test_a_key_cannot_name_another_tenants_environment(checkout: CardCheckout) -> None:
    theirs = await checkout.create_environment("tenant-2", "theirs")
    with pytest.raises(CheckoutError) as refused:
        await checkout.create_api_key("tenant-1", [theirs.id], "read")
    assert refused.value.code == "validation_error"
    with pytest.raises(CheckoutError) as bad_role:
        await checkout.create_api_key("tenant-2", [theirs.id], "owner")
    assert bad_role.value.details["field"] == "role"
