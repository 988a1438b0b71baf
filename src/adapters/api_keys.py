"""Finding API keys by hash, remembering live ones a few seconds so most requests skip a read."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

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
    capacity: int = 10_000
    _keys: dict[str, tuple[ApiKey, datetime]] = attrs.field(factory=dict, init=False)

    async def find(self, key_hash: str) -> ApiKey | None:
        now = self.clock.now()
        remembered = self._keys.get(key_hash)
        if remembered is not None:
            key, expires_at = remembered
            if now < expires_at:
                return key
            del self._keys[key_hash]
        async with self.uow(read_only=True) as uow:
            stored = await uow.api_keys.get_by_hash(key_hash)
        if stored is not None and stored.active and self.ttl > timedelta(0):
            if len(self._keys) >= self.capacity:
                self._keys.clear()  # rare, and cheaper than tracking recency
            self._keys[key_hash] = (stored, now + self.ttl)
        return stored

    def forget(self, key: ApiKey) -> None:
        self._keys.pop(key.key_hash, None)
