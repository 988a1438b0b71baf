"""How a use case's answer becomes a response: its status, its body, its replay header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.responses import JSONResponse, Response

from core.errors import CheckoutError
from core.model import Payment, PaymentMethodType, PaymentStatus
from core.usecases import Answer
from entrypoints.http import wire
from entrypoints.http.errors import error_response
from entrypoints.http.observability import Metrics

T = TypeVar("T")


def replay_headers(replayed: bool) -> dict[str, str]:
    """`Idempotent-Replayed: true` when a keyed request got the key's stored answer."""
    return {"Idempotent-Replayed": "true"} if replayed else {}


def payment_status_code(payment: Payment) -> int:
    """201 when the answer is known (or a link is open), 202 while the gateway's is unknown."""
    if payment.status is PaymentStatus.PROCESSING and (
        payment.method_type is PaymentMethodType.CARD or payment.payment_url is None
    ):
        return 202
    return 201


async def answer(
    work: Awaitable[Answer[T]], render: Callable[[T], wire.Json], status: int = 201
) -> Response:
    """Run an idempotent use case; a replay answers with what the first answered."""
    try:
        answered = await work
    except CheckoutError as error:
        return error_response(error, headers=replay_headers(error.replayed))
    return JSONResponse(
        render(answered.value), status_code=status, headers=replay_headers(answered.replayed)
    )


async def payment_answer(work: Awaitable[Answer[Payment]], metrics: Metrics) -> Response:
    """`answer` for a payment: its status says 201 or 202, and the outcome is counted."""
    try:
        answered = await work
    except CheckoutError as error:
        metrics.payments.labels(error.code).inc()
        return error_response(error, headers=replay_headers(error.replayed))
    payment = answered.value
    metrics.payments.labels(payment.status.value).inc()
    return JSONResponse(
        wire.payment_json(payment),
        status_code=payment_status_code(payment),
        headers=replay_headers(answered.replayed),
    )
