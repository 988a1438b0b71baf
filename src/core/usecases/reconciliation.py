"""Reconciliation: ask the gateway about payments and refunds left in flight.

A pass reports only what it changed itself: a payment or refund that another process settled
between this pass's read and its record is counted apart (`already_settled`), so two passes
racing add up to the true number of changes. One item's error is reported and the pass goes
on; storage that stops answering ends the pass (every item after would fail the same way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from datetime import timedelta
from enum import Enum, auto

import attrs

from core.errors import CheckoutError, ServiceUnavailable
from core.gateway import CheckoutSession, GatewayFailure, GatewayRefund, RefundOutcome
from core.model import Actor, Payment, PaymentMethodType, PaymentStatus, Refund, RefundStatus
from core.ports import UnitOfWork
from core.usecases.charging import charge_request, open_payment_link
from core.usecases.common import Deps, customer_of, payment_of, refund_of, transaction
from core.usecases.gateway_events import make_saved_card_default
from core.usecases.idempotency import finish_keys_of
from core.usecases.recording import GatewayAnswer, apply_answer, gateway_answer
from core.usecases.refunds import apply_refund, send_refund


@attrs.frozen
class NeedsAttention:
    """A card payment still unknown past `Policies.attention_after`: a person should look."""

    payment_id: str
    environment_id: str
    in_flight_for: timedelta


@attrs.frozen
class ItemError:
    """A payment or refund this pass could not handle (the next pass tries it again)."""

    id: str
    environment_id: str
    error: str  # one line: the error's code (or type) and message


@attrs.frozen
class Settled:
    """A payment or refund this pass settled, and the status it recorded."""

    kind: str  # "payment" or "refund"
    id: str
    environment_id: str
    status: str  # succeeded or failed


@attrs.frozen
class ReconcileReport:
    """What a reconciliation pass changed.

    Each item examined is counted once: settled here (`succeeded`, `failed`,
    `refunds_settled`), settled first by another process (`already_settled`), not known to
    the gateway yet (`unresolved`), or failed here (`errors`). `settled` lists what was
    settled here, in the order it was, with its new status. `needs_attention` lists the
    card payments of the last two in flight too long. `stopped_by`: the storage failure
    that ended the pass early (the counts say what it did before).
    """

    examined: int = 0
    succeeded: int = 0
    failed: int = 0
    refunds_settled: int = 0
    already_settled: int = 0
    settled: tuple[Settled, ...] = ()
    unresolved: tuple[str, ...] = ()
    needs_attention: tuple[NeedsAttention, ...] = ()
    errors: tuple[ItemError, ...] = ()
    stopped_by: ServiceUnavailable | None = None


class _Outcome(Enum):
    SUCCEEDED = auto()
    FAILED = auto()
    REFUND_SUCCEEDED = auto()
    REFUND_FAILED = auto()
    ALREADY_SETTLED = auto()  # by another process, after this pass read it
    UNKNOWN = auto()  # the gateway did not say
    ERROR = auto()


# What each outcome that settled an item recorded: (kind, status).
_SETTLED: dict[_Outcome, tuple[str, str]] = {
    _Outcome.SUCCEEDED: ("payment", PaymentStatus.SUCCEEDED.value),
    _Outcome.FAILED: ("payment", PaymentStatus.FAILED.value),
    _Outcome.REFUND_SUCCEEDED: ("refund", RefundStatus.SUCCEEDED.value),
    _Outcome.REFUND_FAILED: ("refund", RefundStatus.FAILED.value),
}


async def reconcile(
    deps: Deps, *, older_than: timedelta = timedelta(seconds=30), limit: int = 100
) -> ReconcileReport:
    """Ask the gateway about payments and refunds left in flight; apply definite answers."""
    now = deps.clock.now()
    async with deps.uow(read_only=True) as uow:
        stuck = await uow.payments.processing(now - older_than, limit)
        pending_refunds = await uow.refunds.pending(now - older_than, limit)
    tally = _Tally()
    attention: list[NeedsAttention] = []
    stopped_by: ServiceUnavailable | None = None
    try:
        for payment in stuck:
            outcome = await tally.count(payment, _reconcile_payment(deps, payment))
            if outcome in (_Outcome.UNKNOWN, _Outcome.ERROR):
                in_flight_for = now - payment.updated_at  # since its charge started
                # A customer may take their time on a payment link; a card charge may not.
                card = payment.method_type is PaymentMethodType.CARD
                if card and in_flight_for >= deps.policies.attention_after:
                    attention.append(
                        NeedsAttention(payment.id, payment.environment_id, in_flight_for)
                    )
        for refund in pending_refunds:
            await tally.count(refund, _reconcile_refund(deps, refund))
    except ServiceUnavailable as outage:
        stopped_by = outage
    outcomes = tally.outcomes
    return ReconcileReport(
        examined=outcomes.total(),
        succeeded=outcomes[_Outcome.SUCCEEDED],
        failed=outcomes[_Outcome.FAILED],
        refunds_settled=outcomes[_Outcome.REFUND_SUCCEEDED] + outcomes[_Outcome.REFUND_FAILED],
        already_settled=outcomes[_Outcome.ALREADY_SETTLED],
        settled=tuple(tally.settled),
        unresolved=tuple(tally.unresolved),
        needs_attention=tuple(attention),
        errors=tuple(tally.errors),
        stopped_by=stopped_by,
    )


@attrs.define
class _Tally:
    """What a pass did, item by item."""

    outcomes: Counter[_Outcome] = attrs.Factory(Counter)
    settled: list[Settled] = attrs.Factory(list)
    unresolved: list[str] = attrs.Factory(list)
    errors: list[ItemError] = attrs.Factory(list)

    async def count(self, item: Payment | Refund, work: Awaitable[_Outcome]) -> _Outcome:
        """`work`'s outcome, noted; an error is this item's alone, unless storage is down."""
        try:
            outcome = await work
        except ServiceUnavailable:
            raise  # storage is down: every item after this one would fail the same way
        except Exception as error:  # noqa: BLE001 - reported; the next pass tries it again
            self.errors.append(ItemError(item.id, item.environment_id, _one_line(error)))
            outcome = _Outcome.ERROR
        self.outcomes[outcome] += 1
        if outcome in _SETTLED:
            kind, status = _SETTLED[outcome]
            self.settled.append(Settled(kind, item.id, item.environment_id, status))
        elif outcome is _Outcome.UNKNOWN:
            self.unresolved.append(item.id)
        return outcome


def _one_line(error: Exception) -> str:
    if isinstance(error, CheckoutError):
        said = f"{error.code}: {error.message}"
    else:
        said = f"{type(error).__name__}: {error}"
    return " ".join(said.split())


async def _reconcile_payment(deps: Deps, payment: Payment) -> _Outcome:
    """Settle one `processing` payment if the gateway knows its outcome."""
    answer: GatewayAnswer
    gateway = await deps.gateways.for_environment(payment.environment_id)
    if payment.method_type is PaymentMethodType.PAYMENT_LINK and payment.gateway_tracking_id:
        answer = await gateway_answer(gateway.get_checkout_session(payment.gateway_tracking_id))
    else:
        async with deps.uow(read_only=True) as uow:
            customer = await customer_of(uow, payment.environment_id, payment.customer_id)
        if payment.method_type is PaymentMethodType.PAYMENT_LINK:
            answer = await open_payment_link(gateway, payment, customer)
        else:
            answer = await gateway_answer(
                gateway.find_charge(charge_request(payment, customer), payment.gateway_tracking_id)
            )
    if answer is None or isinstance(answer, GatewayFailure):
        return _Outcome.UNKNOWN  # a look-up that failed says nothing about the payment
    if isinstance(answer, CheckoutSession):
        await make_saved_card_default(deps, payment.environment_id, answer)

    async def record(uow: UnitOfWork) -> Payment | None:
        """The payment as recorded; None when another process had settled it already."""
        current = await payment_of(uow, payment.environment_id, payment.id, for_update=True)
        in_flight = current.status is PaymentStatus.PROCESSING
        current = await apply_answer(deps, uow, current, answer, Actor.RECONCILER)
        if in_flight and current.status is not PaymentStatus.PROCESSING:
            await finish_keys_of(uow, current)  # their requests died before they could
        await uow.commit()
        return current if in_flight else None

    recorded = await transaction(deps, record)
    if recorded is None:
        return _Outcome.ALREADY_SETTLED
    if recorded.status is PaymentStatus.SUCCEEDED:
        return _Outcome.SUCCEEDED
    if recorded.status is PaymentStatus.FAILED:
        return _Outcome.FAILED
    return _Outcome.UNKNOWN


async def _reconcile_refund(deps: Deps, refund: Refund) -> _Outcome:
    """Settle one pending refund if the gateway knows its outcome."""
    gateway = await deps.gateways.for_environment(refund.environment_id)
    answer = await send_refund(deps, gateway, refund)
    if answer is None or answer.outcome is RefundOutcome.PENDING:
        return _Outcome.UNKNOWN

    async def record(uow: UnitOfWork, answer: GatewayRefund = answer) -> RefundStatus | None:
        """The status recorded; None when another process had settled the refund first."""
        # The payment's lock first (settling takes it anyway): the refund read after it shows
        # what a racing pass committed, instead of a refund it settled meanwhile as pending.
        await payment_of(uow, refund.environment_id, refund.payment_id, for_update=True)
        current = await refund_of(uow, refund.environment_id, refund.id)
        pending = current.status is RefundStatus.PENDING
        recorded = await apply_refund(deps, uow, current, answer, Actor.RECONCILER)
        await uow.commit()
        return recorded.status if pending else None

    status = await transaction(deps, record)
    if status is None:
        return _Outcome.ALREADY_SETTLED
    return {RefundStatus.SUCCEEDED: _Outcome.REFUND_SUCCEEDED,
            RefundStatus.FAILED: _Outcome.REFUND_FAILED}.get(status, _Outcome.UNKNOWN)  # fmt: skip
