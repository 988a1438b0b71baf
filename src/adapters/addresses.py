"""Resolving webhook URLs' host names: the system's resolver, or a table (tests, drills)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Final

import attrs
import httpx

# A name that has not resolved in this long is treated as one that does not resolve.
DEFAULT_RESOLVE_TIMEOUT_SECONDS: Final = 2.0


class SystemAddressResolver:
    """The event loop's getaddrinfo: what the system's resolver (hosts file, DNS) answers.

    The name is encoded (IDNA) as `httpx` encodes it when it connects, so that the name
    checked is the name a delivery goes to. Past `timeout` the name counts as unresolved;
    the lookup's thread itself runs on until the system's resolver gives up.
    """

    def __init__(self, *, timeout: float = DEFAULT_RESOLVE_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout

    async def resolve(self, host: str) -> Sequence[str]:
        try:
            name = httpx.URL(scheme="http", host=host).raw_host.decode("ascii")
            async with asyncio.timeout(self._timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    name, None, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError, UnicodeError, ValueError, httpx.InvalidURL):
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@attrs.define
class StaticAddressResolver:
    """Answers from `answers` (change them to play a name re-pointed), else `default`;
    notes each name asked."""

    answers: dict[str, Sequence[str]] = attrs.Factory(dict)
    default: Sequence[str] = ()
    asked: list[str] = attrs.Factory(list)

    async def resolve(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        return self.answers.get(host.rstrip(".").lower(), self.default)
