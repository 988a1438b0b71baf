"""Clocks: the system's, and one that tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@attrs.define
class ManualClock:
    """A clock that only moves when told to (tests, simulations)."""

    current: datetime = attrs.field(factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, by: timedelta) -> None:
        self.current += by
