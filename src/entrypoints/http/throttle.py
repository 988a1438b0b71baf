"""Failed authentication, counted per client: a client that keeps presenting bad API keys is
refused (429) until its window frees up.

In process: each server process counts on its own. A client is the peer address as the server
sees it (the forwarded one behind a trusted proxy), an IPv6 client its /64: one host holds a
whole /64.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

# Failed attempts a client may make within the window before it is refused.
MAX_FAILURES: Final = 20
WINDOW_SECONDS: Final = 60.0
# Clients tracked at most; the one whose last failure is oldest is forgotten first.
MAX_CLIENTS: Final = 10_000


@functools.lru_cache(maxsize=4096)  # parsed once per address, not on every request
def client_of(address: str) -> str:
    """The client an address belongs to: itself, or for IPv6 its /64 network."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class AuthThrottle:
    """Counts failed authentication per client in a sliding window.

    A client with `max_failures` failures in the last `window` seconds is refused until the
    oldest of them leaves the window. Memory stays bounded: at most `max_failures` times per
    client, and at most `max_clients` clients.
    """

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 0 or window <= 0 or max_clients < 1:
            raise ValueError("the throttle's limits must be positive (0 failures: no limit)")
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Whole seconds `client` must wait before trying again, or None if it may now."""
        if not self.max_failures:
            return None
        failures = self._failures.get(client)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        if len(failures) < self.max_failures:
            return None
        return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, client: str) -> None:
        """Count one failed authentication of `client`."""
        if not self.max_failures:
            return
        failures = self._failures.pop(client, None)
        if failures is None:
            failures = deque(maxlen=self.max_failures)
        failures.append(self._clock())
        self._failures[client] = failures  # now the most recent
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    @property
    def clients(self) -> int:
        """Clients tracked now."""
        return len(self._failures)
