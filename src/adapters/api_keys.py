"""Finding API keys by hash, remembering live ones a few seconds so most requests skip a read."""

from __future__ import annotations

from datetime import timedelta

import attrs

from adapters.remembered import Remembered
from core.model import ApiKey
from core.ports import Clock, UnitOfWorkFactory


@attrs.define
class CachedApiKeyLookup:
    """Live API keys seen lately, by hash, read from storage when not remembered.

    A key revoked through this process is forgotten at once; one revoked by another process
    stops working here within `ttl` (0: read on every request). Unknown and revoked keys are
    never remembered.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    ttl: timedelta = timedelta(seconds=5)
    _keys: Remembered[str, ApiKey] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._keys = Remembered(self.ttl)

    async def find(self, key_hash: str) -> ApiKey | None:
        now = self.clock.now()
        if remembered := self._keys.get(key_hash, now):
            return remembered[0]
        async with self.uow(read_only=True) as uow:
            stored = await uow.api_keys.get_by_hash(key_hash)
        if stored is not None and stored.active:
            self._keys.put(key_hash, stored, now)
        return stored

    def forget(self, key: ApiKey) -> None:
        self._keys.forget(key.key_hash)
