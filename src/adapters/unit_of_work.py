"""The context manager every unit of work is, whatever storage it runs on."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class RollsBackOnExit:
    """`async with` a unit of work: leaving the block rolls back what was not committed."""

    __slots__ = ()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    async def rollback(self) -> None:
        raise NotImplementedError
