"""The backlog /metrics reads, on SQLite and PostgreSQL: the same counts as in memory."""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.addresses import StaticAddressResolver
from adapters.backlog import Backlog, read_backlog
from adapters.clock import ManualClock
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import Fault, SandboxFaults
from adapters.secrets import SecretBox
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from tests.helpers import (
    DECLINED,
    ENV,
    PUBLIC_ADDRESS,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
)


async def _waiting(checkout: CardCheckout, faults: SandboxFaults) -> None:
    """Five notifications in the outbox, one endpoint to send them to, one payment in flight."""
    await checkout.create_environment("t", "test", environment_id=ENV)
    await checkout.create_webhook_endpoint(ENV, {"url": "https://hooks.example.com/h"})
    declined = await finalized_invoice(checkout, await customer_with_card(checkout, DECLINED))
    await error_of(checkout.create_payment(ENV, card_payment(declined)))
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    unknown = await finalized_invoice(checkout, await customer_with_card(checkout))
    await checkout.create_payment(ENV, card_payment(unknown))


async def _backlogs(url: str | None) -> tuple[datetime, Backlog, Backlog]:
    """When the first notification was written, the backlog then, and after a delivery pass
    90 s later."""
    clock, faults = ManualClock(), SandboxFaults()
    checkout = bootstrap(
        Settings(database_url=url, encryption_keys=(SecretBox.new_key(),)),
        clock=clock,
        notifier=RecordingNotifier(),
        sandbox_faults=faults,
        dispatch_inline=False,
        address_resolver=StaticAddressResolver(default=[PUBLIC_ADDRESS]),
    )
    try:
        started = clock.now()
        await _waiting(checkout, faults)
        before = await read_backlog(checkout.deps.uow)
        clock.advance(timedelta(seconds=90))
        await checkout.deliver_notifications()
        after = await read_backlog(checkout.deps.uow)
    finally:
        await checkout.aclose()
    assert before is not None
    assert after is not None
    return started, before, after


async def test_the_backlog_counts_what_waits_as_in_memory(database_url: str) -> None:
    started, before, after = await _backlogs(database_url)

    assert before == Backlog(
        outbox_notifications=5,
        oldest_notification_at=started,
        webhook_deliveries_pending=0,
        payments_processing=1,
    )
    assert after == Backlog(
        outbox_notifications=0,
        oldest_notification_at=None,
        webhook_deliveries_pending=5,
        payments_processing=1,
    )
    _, *in_memory = await _backlogs(None)
    assert in_memory == [before, after]
