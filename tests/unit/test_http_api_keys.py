"""`GET /api/v1/api_keys` and `DELETE /api/v1/api_keys/{id}`: an admin of an environment sees
and revokes only the keys that may use it, never a key itself; a revoked key is refused at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from adapters.clock import ManualClock
from core.model import ApiKey
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, OTHER_ENV, keyed_client

ROUTE = "/api/v1/api_keys"


class Keys:
    """Keys by name: their ids and the keys themselves."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.raw: dict[str, str] = {}
        self.hashes: list[str] = []

    async def make(self, checkout: CardCheckout, name: str, tenant: str, envs: list[str],
                   role: str) -> None:  # fmt: skip
        key, raw = await checkout.create_api_key(tenant, envs, role)
        self.ids[name], self.raw[name] = key.id, raw
        self.hashes.append(key.key_hash)


@pytest.fixture
async def keys(checkout: CardCheckout, clock: ManualClock) -> Keys:
    await checkout.create_environment("t", "test", environment_id=ENV)
    await checkout.create_environment("t", "other", environment_id=OTHER_ENV)
    await checkout.create_environment("t2", "theirs", environment_id="env_theirs")
    keys = Keys()
    for name, tenant, envs, role in (
        ("admin", "t", [ENV], "admin"),
        ("read", "t", [ENV], "read"),
        ("write", "t", [ENV], "write"),
        ("both", "t", [ENV, OTHER_ENV], "write"),
        ("other_admin", "t", [OTHER_ENV], "admin"),
        ("theirs", "t2", ["env_theirs"], "admin"),
    ):
        await keys.make(checkout, name, tenant, envs, role)
        clock.advance(timedelta(seconds=1))  # each newer than the one before
    return keys


@pytest.fixture
async def client(checkout: CardCheckout, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with keyed_client(checkout, keys.raw["admin"]) as client:
        yield client


def _as(keys: Keys, name: str, environment: str = ENV) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.raw[name]}", "X-Environment-ID": environment}


def _ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def test_an_admin_lists_the_keys_that_may_use_its_environment_newest_first(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    listed = await client.get(ROUTE)
    assert _ids(listed) == [keys.ids[name] for name in ("both", "write", "read", "admin")]
    assert listed.json()["has_more"] is False
    first: dict[str, Any] = listed.json()["items"][0]
    assert set(first) == {"id", "object", "role", "created_at", "revoked_at"}
    assert first["object"] == "api_key"
    assert first["role"] == "write"
    assert first["revoked_at"] is None
    # Neither a key nor its hash ever leaves, nor another environment's id.
    for secret in [*keys.raw.values(), *keys.hashes, OTHER_ENV]:
        assert secret not in listed.text


async def test_the_other_environments_admin_sees_only_the_keys_that_may_use_that_one(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    theirs = await client.get(ROUTE, headers=_as(keys, "other_admin", OTHER_ENV))
    assert _ids(theirs) == [keys.ids["other_admin"], keys.ids["both"]]
    # Nor may it ask about this environment with its key.
    refused = await client.get(ROUTE, headers=_as(keys, "other_admin", ENV))
    assert refused.status_code == 403


async def test_an_admin_cannot_revoke_a_key_that_cannot_use_its_environment(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for name in ("admin", "read"):
        answer = await client.delete(
            f"{ROUTE}/{keys.ids[name]}", headers=_as(keys, "other_admin", OTHER_ENV)
        )
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "not_found"
    other_tenant = await client.delete(f"{ROUTE}/{keys.ids['theirs']}")
    assert other_tenant.status_code == 404
    # All still work.
    assert (await client.get(ROUTE, headers=_as(keys, "read"))).status_code == 403  # read role
    assert (await client.get("/api/v1/payments", headers=_as(keys, "read"))).status_code == 200
    theirs = _as(keys, "theirs", "env_theirs")
    assert (await client.get(ROUTE, headers=theirs)).status_code == 200


@pytest.mark.parametrize("role", ["read", "write"])
async def test_only_admin_keys_list_or_revoke(
    client: httpx.AsyncClient, keys: Keys, role: str
) -> None:
    for answer in (
        await client.get(ROUTE, headers=_as(keys, role)),
        await client.delete(f"{ROUTE}/{keys.ids['read']}", headers=_as(keys, role)),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "forbidden"


async def test_a_revoked_key_is_refused_at_once_though_it_was_just_trusted(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    write = _as(keys, "write")
    # Trusted, so remembered by this process (API_KEY_CACHE_SECONDS: the clock stands still).
    assert (await client.get("/api/v1/payments", headers=write)).status_code == 200

    revoked = await client.delete(f"{ROUTE}/{keys.ids['write']}")

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == keys.ids["write"]
    assert revoked.json()["revoked_at"] is not None
    refused = await client.get("/api/v1/payments", headers=write)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    # Listed with its revocation; revoking again answers it as it is.
    listed = (await client.get(ROUTE)).json()["items"]
    assert {item["id"]: item["revoked_at"] for item in listed}[keys.ids["write"]] == (
        revoked.json()["revoked_at"]
    )
    again = await client.delete(f"{ROUTE}/{keys.ids['write']}")
    assert again.json() == revoked.json()


async def test_an_unknown_key_is_not_found(client: httpx.AsyncClient) -> None:
    answer = await client.delete(f"{ROUTE}/key_nothing")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_the_list_pages_as_every_list_does(client: httpx.AsyncClient, keys: Keys) -> None:
    first = await client.get(ROUTE, params={"limit": 3})
    assert _ids(first) == [keys.ids[name] for name in ("both", "write", "read")]
    assert first.json()["has_more"] is True
    rest = await client.get(ROUTE, params={"limit": 3, "starting_after": _ids(first)[-1]})
    assert _ids(rest) == [keys.ids["admin"]]
    assert rest.json()["has_more"] is False
    before = await client.get(ROUTE, params={"ending_before": keys.ids["read"]})
    assert _ids(before) == [keys.ids["both"], keys.ids["write"]]
    assert before.json()["has_more"] is False
    for query, field in (
        ({"starting_after": keys.ids["other_admin"]}, "starting_after"),  # not in this list
        ({"starting_after": "key_nothing"}, "starting_after"),
        ({"limit": 0}, "limit"),
    ):
        refused = await client.get(ROUTE, params=query)
        assert refused.status_code == 400, (query, refused.text)
        assert refused.json()["error"]["details"]["field"] == field


async def test_the_library_lists_what_the_cli_shows(checkout: CardCheckout, keys: Keys) -> None:
    page = await checkout.list_api_keys(OTHER_ENV)
    assert [key.id for key in page.items] == [keys.ids["other_admin"], keys.ids["both"]]
    assert all(isinstance(key, ApiKey) for key in page.items)
