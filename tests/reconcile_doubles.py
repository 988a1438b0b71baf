"""Test doubles for reconciliation: a gateway that misbehaves on cue, storage that goes down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs

from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import Fault, SandboxFaults
from core.errors import ServiceUnavailable
from core.gateway import GatewayUnavailable
from core.model import PaymentStatus
from core.ports import UnitOfWorkFactory
from entrypoints.bootstrap import CardCheckout, bootstrap
from tests.helpers import ENV, card_payment, customer_with_card, finalized_invoice

Hook = Callable[[], Awaitable[None]]


@attrs.define
class HookedFaults(SandboxFaults):
    """Sandbox faults that run `hook` once, at the next call of `operation` that gets
    through; and operations in `down` never get through (the gateway is unreachable)."""

    operation: str = ""
    hook: Hook | None = None
    down: set[str] = attrs.Factory(set)

    def arm(self, operation: str, hook: Hook) -> None:
        self.operation, self.hook = operation, hook

    async def before(self, operation: str) -> Fault | None:
        if operation in self.down:
            raise GatewayUnavailable(f"test: the gateway is unreachable for {operation}")
        fault = await super().before(operation)
        if operation == self.operation and self.hook is not None:
            hook, self.hook = self.hook, None
            await hook()
        return fault


@attrs.define
class FailingStorage:
    """In-memory storage that can be taken down: every new unit of work then raises."""

    units: InMemoryUnitOfWorkFactory = attrs.Factory(InMemoryUnitOfWorkFactory)
    down: bool = False
    opened_while_down: int = 0

    def __call__(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        if self.down:
            self.opened_while_down += 1
            raise ServiceUnavailable("the database is not answering")
        return self.units(read_only=read_only)


def hooked_checkout(
    faults: SandboxFaults, clock: ManualClock, storage: UnitOfWorkFactory | None = None
) -> CardCheckout:
    return bootstrap(
        uow=storage or InMemoryUnitOfWorkFactory(),
        clock=clock,
        notifier=RecordingNotifier(),
        sandbox_faults=faults,
        # Storage that is down would fail the notifications sent after the pass, too.
        dispatch_inline=storage is None,
    )


async def stuck_payments(checkout: CardCheckout, faults: SandboxFaults, count: int) -> list[str]:
    """`count` card payments charged at the gateway whose answers were lost: `processing`."""
    customer = await customer_with_card(checkout)
    ids = []
    for _ in range(count):
        invoice = await finalized_invoice(checkout, customer)
        faults.schedule("charge", Fault.TIMEOUT_AFTER)
        payment = await checkout.create_payment(ENV, card_payment(invoice))
        assert payment.status is PaymentStatus.PROCESSING
        ids.append(payment.id)
    return ids
