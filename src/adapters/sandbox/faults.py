"""Faults the sandbox can be told to inject: latency, errors, lost answers."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from enum import StrEnum
from typing import Final

import attrs

from core.errors import GatewayError
from core.gateway import GatewayUnavailable


class Fault(StrEnum):
    # The call fails before the gateway does anything (nothing charged); outcome unknown.
    ERROR_BEFORE = "error_before"
    # The gateway does the work, then the answer is lost (a timeout): charged, unknown.
    TIMEOUT_AFTER = "timeout_after"
    # The gateway refuses the request for a reason that is not the card's.
    REJECT = "reject"
    # The gateway does the work, then this process dies at once (SIGKILL): a crash drill.
    CRASH_AFTER = "crash_after"


# The operations a fault or the latency can be set on; "*" names every one.
OPERATIONS: Final = frozenset({
    "create_customer", "get_customer", "list_payment_methods", "get_payment_method",
    "set_default_payment_method", "charge", "find_charge", "refund", "create_checkout_session",
})  # fmt: skip
EVERY_OPERATION: Final = "*"


@attrs.define
class SandboxFaults:
    """Planned faults (`plan`, consumed in order per operation) and random ones (`rates`,
    the chance of each fault per operation). Each strikes only the operation it names, or
    every one when named "*"."""

    latency: float = 0.0
    # The operations that wait `latency` (None: every one).
    latency_on: frozenset[str] | None = None
    plan: dict[str, list[Fault]] = attrs.Factory(dict)
    rates: dict[str, dict[Fault, float]] = attrs.Factory(dict)
    seed: int | None = None
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def schedule(self, operation: str, *faults: Fault) -> None:
        self.plan.setdefault(operation, []).extend(faults)

    def clear(self) -> None:
        self.plan.clear()
        self.rates.clear()
        self.latency = 0.0

    def _next(self, operation: str) -> Fault | None:
        for named in (operation, EVERY_OPERATION):
            planned = self.plan.get(named)
            if planned:
                return planned.pop(0)
        for named in (operation, EVERY_OPERATION):
            for fault, rate in self.rates.get(named, {}).items():
                if self._random.random() < rate:
                    return fault
        return None

    async def before(self, operation: str) -> Fault | None:
        """Wait the latency and raise a fault that strikes before the work; return the rest."""
        if self.latency and (self.latency_on is None or operation in self.latency_on):
            await asyncio.sleep(self.latency)
        fault = self._next(operation)
        if fault is Fault.ERROR_BEFORE:
            raise GatewayUnavailable(f"sandbox: injected connection error before {operation}")
        if fault is Fault.REJECT:
            raise GatewayError(f"sandbox: injected gateway refusal of {operation}")
        return fault

    @staticmethod
    def after(fault: Fault | None, operation: str) -> None:
        if fault is Fault.TIMEOUT_AFTER:
            raise GatewayUnavailable(f"sandbox: injected timeout after {operation}")
        if fault is Fault.CRASH_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)

    @classmethod
    def parse(cls, spec: str, latency_ms: float = 0.0, latency_on: str = "") -> SandboxFaults:
        """Faults from settings: "charge:timeout_after,refund:error_before" plans one fault
        per entry; "charge:timeout_after@0.2" strikes charges at random, a fifth of them;
        "*:error_before@0.1" strikes every operation. `latency_on` names the operations that
        wait (empty: all)."""
        waiting = frozenset(op.strip() for op in latency_on.split(",") if op.strip())
        for operation in waiting - OPERATIONS:
            raise ValueError(f"unknown sandbox operation {operation!r} in {latency_on!r}")
        faults = cls(latency=latency_ms / 1000, latency_on=waiting or None)
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            operation, fault, rate = _parsed(entry)
            if rate is None:
                faults.schedule(operation, fault)
            else:
                faults.rates.setdefault(operation, {})[fault] = rate
        return faults


def _parsed(entry: str) -> tuple[str, Fault, float | None]:
    """One "operation:fault" or "operation:fault@rate" of `SANDBOX_FAULTS`."""
    operation, _, rest = entry.partition(":")
    name, at, rate = rest.partition("@")
    if operation not in OPERATIONS | {EVERY_OPERATION}:
        raise ValueError(f"unknown sandbox operation {operation!r} in sandbox fault {entry!r}")
    try:
        fault = Fault(name)
    except ValueError:
        raise ValueError(f"unknown sandbox fault {name!r} in {entry!r}") from None
    if not at:
        return operation, fault, None
    try:
        chance = float(rate)
    except ValueError:
        chance = -1.0
    if not 0 <= chance <= 1:
        raise ValueError(f"the rate of sandbox fault {entry!r} is not between 0 and 1")
    return operation, fault, chance
