"""A bounded memory of values read lately, each trusted for a while."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Generic, TypeVar

import attrs

K = TypeVar("K")
V = TypeVar("V")


@attrs.define
class Remembered(Generic[K, V]):
    """Values by key, each answered until `ttl` after it was put (0: never remembered)."""

    ttl: timedelta
    capacity: int = 10_000
    _values: dict[K, tuple[V, datetime]] = attrs.field(factory=dict, init=False)

    def get(self, key: K, now: datetime) -> tuple[V] | None:
        """The value in a 1-tuple (so a remembered None is told from nothing remembered)."""
        remembered = self._values.get(key)
        if remembered is None:
            return None
        value, expires_at = remembered
        if now < expires_at:
            return (value,)
        del self._values[key]
        return None

    def put(self, key: K, value: V, now: datetime) -> None:
        if self.ttl <= timedelta(0):
            return
        if len(self._values) >= self.capacity:
            self._values.clear()  # rare, and cheaper than tracking recency
        self._values[key] = (value, now + self.ttl)

    def forget(self, key: K) -> None:
        self._values.pop(key, None)
