"""Environments and API keys: who may do what, where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from core.errors import Forbidden, MissingEnvironment, NotFound, Unauthorized, ValidationError
from core.lists import FIRST_PAGE, Page, Window, window_of
from core.model import ApiKey, Environment, EnvironmentMode, Role
from core.ports import UnitOfWork
from core.usecases.common import Deps, environment_of, transaction

ROLE_RANK: Final = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}


async def create_environment(
    deps: Deps,
    tenant_id: str,
    name: str,
    *,
    environment_id: str | None = None,
    mode: EnvironmentMode = EnvironmentMode.TEST,
) -> Environment:
    """A new environment, with the given id (it must start with `env_`) or a fresh one."""
    if environment_id is not None and (
        not environment_id.startswith("env_") or not 5 <= len(environment_id) <= 64
    ):
        raise ValidationError(
            "An environment id starts with env_ and has at most 64 characters.",
            field="environment",
        )
    environment = Environment(
        id=environment_id or deps.ids.new_id("env"),
        tenant_id=tenant_id,
        name=name,
        created_at=deps.clock.now(),
        mode=mode,
    )
    async with deps.uow() as uow:
        if await uow.environments.get(environment.id) is not None:
            raise ValidationError(f"{environment.id} already exists.", field="environment")
        await uow.environments.add(environment)
        await uow.commit()
    return environment


async def get_environment(deps: Deps, environment_id: str) -> Environment:
    return await deps.read(lambda uow: environment_of(uow, environment_id))


async def create_api_key(
    deps: Deps, tenant_id: str, environment_ids: Sequence[str], role: Role
) -> tuple[ApiKey, str]:
    """A new key for the tenant's environments; the key itself is returned only here."""
    if not environment_ids:
        raise ValidationError("A key needs at least one environment.", field="environment")
    async with deps.uow() as uow:
        for environment_id in environment_ids:
            environment = await uow.environments.get(environment_id)
            if environment is None or environment.tenant_id != tenant_id:
                raise ValidationError(
                    f"No environment {environment_id} for this tenant.", field="environment"
                )
        raw_key = deps.ids.new_secret("ck")
        key = ApiKey(
            id=deps.ids.new_id("key"),
            tenant_id=tenant_id,
            key_hash=ApiKey.hash(raw_key),
            role=role,
            environment_ids=frozenset(environment_ids),
            created_at=deps.clock.now(),
        )
        await uow.api_keys.add(key)
        await uow.commit()
    return key, raw_key


def _reaches(key: ApiKey, tenant_id: str, environment_id: str) -> bool:
    """Whether an admin of the environment answers for the key: a key of its tenant that
    may use it (revoked or not). Keys that cannot use the environment stay out of sight."""
    return key.tenant_id == tenant_id and environment_id in key.environment_ids


async def list_api_keys(
    deps: Deps, environment_id: str, window: Window = FIRST_PAGE
) -> Page[ApiKey]:
    """The keys that may use the environment (revoked ones too), newest first. A tenant has
    few keys: they are read whole and paged here, as a key's environments are a set."""
    async with deps.uow(read_only=True) as uow:
        environment = await environment_of(uow, environment_id)
        keys = [
            key
            for key in await uow.api_keys.of_tenant(environment.tenant_id)
            if _reaches(key, environment.tenant_id, environment_id)
        ]
    return window_of(keys, window, lambda key: key.id)


async def revoke_api_key(deps: Deps, key_id: str, *, environment_id: str | None = None) -> ApiKey:
    """Revoke the key: refused at once here, within the key cache's time elsewhere. Given
    `environment_id` (an admin of it asks), only a key that may use it is found."""

    async def revoke(uow: UnitOfWork) -> ApiKey:
        key = await uow.api_keys.get(key_id)
        if key is not None and environment_id is not None:
            environment = await uow.environments.get(environment_id)
            if environment is None or not _reaches(key, environment.tenant_id, environment_id):
                key = None
        if key is None:
            raise NotFound(f"No API key {key_id}.", api_key_id=key_id)
        revoked = key if not key.active else key.revoked(deps.clock.now())
        if revoked is not key:
            await uow.api_keys.update(revoked)
            await uow.commit()
        deps.api_keys.forget(key)
        return revoked

    return await transaction(deps, revoke)


async def authorize(
    deps: Deps, raw_key: str | None, environment_id: str | None, needs: Role
) -> ApiKey:
    """The key that may do `needs` in the environment: 401 unless it is a live key, then
    400 `missing_environment` without an environment, 403 unless it may use the environment
    with that role. The key comes first, as at Stripe: a caller without one learns only that."""
    if not raw_key:
        raise Unauthorized()
    key = await deps.api_keys.find(ApiKey.hash(raw_key))
    if key is None or not key.active:
        raise Unauthorized("The API key is unknown or revoked.")
    if not environment_id:
        raise MissingEnvironment()
    if not key.may_use(environment_id):
        raise Forbidden("This API key may not use that environment.",
                        environment_id=environment_id)  # fmt: skip
    if ROLE_RANK[key.role] < ROLE_RANK[needs]:
        raise Forbidden(f"This API key's role ({key.role.value}) may not do that.",
                        expected=needs.value, actual=key.role.value)  # fmt: skip
    return key
