"""Faults the sandbox can be told to inject: latency, errors, lost answers."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from enum import StrEnum

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


@attrs.define
class SandboxFaults:
    """Planned faults (`plan`, consumed in order per operation) and random ones (`rates`)."""

    latency: float = 0.0
    # The operations that wait `latency` (None: every one).
    latency_on: frozenset[str] | None = None
    plan: dict[str, list[Fault]] = attrs.Factory(dict)
    rates: dict[Fault, float] = attrs.Factory(dict)
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
        planned = self.plan.get(operation)
        if planned:
            return planned.pop(0)
        for fault, rate in self.rates.items():
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
        per entry; "charge:timeout_after@0.2" strikes at random a fifth of the time.
        `latency_on` names the operations that wait (empty: all)."""
        waiting = frozenset(op.strip() for op in latency_on.split(",") if op.strip())
        faults = cls(latency=latency_ms / 1000, latency_on=waiting or None)
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            operation, _, rest = entry.partition(":")
            name, _, rate = rest.partition("@")
            try:
                fault = Fault(name)
            except ValueError:
                raise ValueError(f"unknown sandbox fault {name!r} in {entry!r}") from None
            if rate:
                faults.rates[fault] = float(rate)
            else:
                faults.schedule(operation, fault)
        return faults
