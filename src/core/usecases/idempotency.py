"""Idempotency keys: one wrapper that runs a use case once per key and replays its answer.

A use case gets an `Idempotency` for its request. It claims the key in the transaction of its
first write and stores its final answer in the transaction of its last, so that the key, the
change and the answer commit together. Without a key every step is a no-op.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final, Generic, TypeVar

import attrs

from core.errors import (
    CheckoutError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    ValidationError,
    error_from_code,
)
from core.model import Payment, Refund
from core.ports import (
    Clock,
    IdempotencyRecord,
    IdempotencyState,
    Resource,
    StoredError,
    UnitOfWork,
)
from core.rules import MAX_IDEMPOTENCY_KEY_LENGTH

T = TypeVar("T")
IDEMPOTENCY_TTL: Final = timedelta(hours=24)


@attrs.frozen
class Answer(Generic[T]):
    """What a use case answered, and whether it was a keyed request's stored answer."""

    value: T
    replayed: bool = False


def validate_idempotency_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise ValidationError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters.",
            field="Idempotency-Key",
        )
    return key


@attrs.frozen
class _Request:
    environment_id: str
    key: str
    operation: str
    fingerprint: str


class _Replay(Exception):
    """The key already holds a finished answer: unwind the use case and give that instead."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(record.key)
        self.record = record


@attrs.frozen
class Idempotency:
    """One request's key, if it has one."""

    request: _Request | None
    clock: Clock

    @property
    def keyed(self) -> bool:
        return self.request is not None

    async def replay_if_done(self, uow: UnitOfWork) -> None:
        """Before any work: give the stored answer if the key has one."""
        if self.request is not None:
            record = await uow.idempotency.get(self.request.environment_id, self.request.key)
            self._refuse_or_replay(record)

    async def claim(self, uow: UnitOfWork) -> None:
        """Take the key inside this transaction (or give the answer it holds by now)."""
        request = self.request
        if request is None:
            return
        existing = await uow.idempotency.get(request.environment_id, request.key)
        self._refuse_or_replay(existing)
        now = self.clock.now()
        await uow.idempotency.put(
            IdempotencyRecord(
                environment_id=request.environment_id,
                key=request.key,
                operation=request.operation,
                fingerprint=request.fingerprint,
                state=IdempotencyState.IN_PROGRESS,
                created_at=now,
                expires_at=now + IDEMPOTENCY_TTL,
                version=existing.version + 1 if existing else 1,
            )
        )

    async def finish(self, uow: UnitOfWork, resource: Resource) -> None:
        """Store the final answer, with the change it made: the resource, or the error
        that a failed payment or refund answers."""
        request = self.request
        if request is None:
            return
        failed: CheckoutError | None = None
        if isinstance(resource, Payment | Refund):
            failed = resource.failure_error()
        error = StoredError(failed.code, failed.message, dict(failed.details)) if failed else None
        record = await uow.idempotency.get(request.environment_id, request.key)
        if record is None or record.state is not IdempotencyState.IN_PROGRESS:
            raise IdempotencyKeyInUse()
        await uow.idempotency.put(
            attrs.evolve(
                record,
                state=IdempotencyState.COMPLETED,
                resource=resource,
                error=error,
                version=record.version + 1,
            )
        )

    def _refuse_or_replay(self, record: IdempotencyRecord | None) -> None:
        """Nothing if the key is free (or expired); else refuse a reuse or a key in use, or
        unwind with its finished answer."""
        request = self.request
        assert request is not None
        if record is None or record.expires_at <= self.clock.now():
            return
        if record.operation != request.operation or record.fingerprint != request.fingerprint:
            raise IdempotencyKeyReused()
        if record.state is IdempotencyState.IN_PROGRESS:
            raise IdempotencyKeyInUse()
        raise _Replay(record)


async def idempotent(
    clock: Clock,
    key: str | None,
    request: tuple[str, str, Callable[[], str]],
    kind: type[T],
    work: Callable[[Idempotency], Awaitable[T]],
) -> Answer[T]:
    """Run `work` once per key: a retry with the same key and body gets the first answer
    (its resource, or its error raised again), marked as replayed.

    `request` is the environment, the operation's name and the body's fingerprint (computed
    only when there is a key)."""
    environment_id, operation, fingerprint = request
    keyed = None
    if key is not None:
        keyed = _Request(environment_id, validate_idempotency_key(key), operation, fingerprint())
    try:
        return Answer(await work(Idempotency(keyed, clock)))
    except _Replay as replay:
        record = replay.record
    if record.error is not None:
        error = error_from_code(record.error.code, record.error.message, record.error.details)
        error.replayed = True
        raise error
    if not isinstance(record.resource, kind):
        raise IdempotencyKeyReused()
    return Answer(record.resource, replayed=True)
