"""Idempotency keys: one wrapper that runs a use case once per key and replays its answer.

A use case gets an `Idempotency` for its request. It claims the key in the transaction of its
first write, naming what that transaction records, and stores its final answer in the
transaction of its last, so that the key, the change and the answer commit together. Without
a key every step is a no-op.

A claim holds the key for a short lease, renewed while its request runs. A request that died
stops renewing: once its lease has run out a retry answers what it recorded, as it is now
(reconciliation may have settled it since), or runs again if it recorded nothing.
"""

from __future__ import annotations

import asyncio
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
from core.model import Customer, Invoice, Payment, PaymentStatus, Refund, RefundStatus
from core.ports import (
    Clock,
    IdempotencyRecord,
    IdempotencyState,
    Resource,
    StoredError,
    UnitOfWork,
)
from core.rules import MAX_IDEMPOTENCY_KEY_LENGTH
from core.usecases.common import Deps
from core.usecases.policies import IdempotencyPolicy

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
    kind: type  # what the use case answers: the kind of resource a claim records


@attrs.define
class _Held:
    """The version this request claimed the key at: its lease is renewed only there."""

    version: int | None = None


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
    policy: IdempotencyPolicy = attrs.Factory(IdempotencyPolicy)
    held: _Held = attrs.Factory(_Held)

    @property
    def keyed(self) -> bool:
        return self.request is not None

    async def replay_if_done(self, uow: UnitOfWork) -> None:
        """Before any work: give the stored answer if the key has one."""
        if self.request is not None:
            record = await uow.idempotency.get(self.request.environment_id, self.request.key)
            await self._refuse_or_replay(uow, record)

    async def claim(self, uow: UnitOfWork, about: str | None = None) -> None:
        """Take the key inside this transaction (or give the answer it holds by now).
        `about`: the id of what this transaction records, for a retry to find if the request
        dies. Over a claim whose lease ran out, the write is conditional on the version read:
        of two retries taking it over, the second fails at commit."""
        request = self.request
        if request is None:
            return
        existing = await uow.idempotency.get(request.environment_id, request.key)
        await self._refuse_or_replay(uow, existing)
        now = self.clock.now()
        version = existing.version + 1 if existing else 1
        await uow.idempotency.put(
            IdempotencyRecord(
                environment_id=request.environment_id,
                key=request.key,
                operation=request.operation,
                fingerprint=request.fingerprint,
                state=IdempotencyState.IN_PROGRESS,
                created_at=now,
                expires_at=now + IDEMPOTENCY_TTL,
                version=version,
                resource_id=about,
                lease_expires_at=now + self.policy.lease,
            )
        )
        self.held.version = version

    async def finish(self, uow: UnitOfWork, resource: Resource) -> None:
        """Store the final answer, with the change it made: the resource, or the error
        that a failed payment or refund answers."""
        request = self.request
        if request is None:
            return
        record = await uow.idempotency.get(request.environment_id, request.key)
        if record is not None and record.resource_id in (None, resource.id):
            if record.state is IdempotencyState.IN_PROGRESS:
                await uow.idempotency.put(completed(record, resource))
                return
            if record.resource_id == resource.id:
                return  # reconciliation settled it first, and stored its answer
        raise IdempotencyKeyInUse()  # another request took the key over

    async def _refuse_or_replay(self, uow: UnitOfWork, record: IdempotencyRecord | None) -> None:
        """Nothing if the key is free (expired, or its request died having recorded
        nothing); else refuse a reuse or a key in use, or unwind with its finished answer
        (for a request that died: what it recorded, as it is now)."""
        request = self.request
        assert request is not None
        now = self.clock.now()
        if record is None or record.expires_at <= now:
            return
        if record.operation != request.operation or record.fingerprint != request.fingerprint:
            raise IdempotencyKeyReused()
        if record.state is IdempotencyState.COMPLETED:
            raise _Replay(await _as_now(uow, request, record))
        if record.lease_expires_at is None or record.lease_expires_at > now:
            # Its request may be alive; a claim from before leases is held to its expiry,
            # as then: an instance of that version may still be working on it.
            raise IdempotencyKeyInUse()
        if record.resource_id is None:
            return
        current = await _resource(uow, request.kind, request.environment_id, record.resource_id)
        if current is not None:
            raise _Replay(completed(record, current))


def completed(record: IdempotencyRecord, resource: Resource) -> IdempotencyRecord:
    """The record finished with `resource` as its answer (or the error that a failed payment
    or refund answers)."""
    failed: CheckoutError | None = None
    if isinstance(resource, Payment | Refund):
        failed = resource.failure_error()
    error = StoredError(failed.code, failed.message, dict(failed.details)) if failed else None
    return attrs.evolve(
        record,
        state=IdempotencyState.COMPLETED,
        resource=resource,
        resource_id=resource.id,
        error=error,
        lease_expires_at=None,
        version=record.version + 1,
    )


async def _as_now(uow: UnitOfWork, request: _Request,
                  record: IdempotencyRecord) -> IdempotencyRecord:  # fmt: skip
    """The stored answer, or, if it was still in flight (a payment `processing`, a refund
    `pending`), the same resource as it is now: reconciliation or a gateway event may have
    settled it since, and a retry must learn the outcome through its key."""
    resource = record.resource
    in_flight = (isinstance(resource, Payment) and resource.status is PaymentStatus.PROCESSING) or (
        isinstance(resource, Refund) and resource.status is RefundStatus.PENDING
    )
    if not in_flight or resource is None:
        return record
    current = await _resource(uow, request.kind, request.environment_id, resource.id)
    return record if current is None else completed(record, current)


async def finish_keys_of(uow: UnitOfWork, payment: Payment) -> None:
    """Store the settled payment as the answer of the keys still in progress about it (their
    requests died before they could), in the transaction that settles it."""
    for record in await uow.idempotency.in_progress_for(payment.environment_id, payment.id):
        await uow.idempotency.put(completed(record, payment))


async def _resource(uow: UnitOfWork, kind: type, environment_id: str,
                    resource_id: str) -> Resource | None:  # fmt: skip
    if kind is Payment:
        return await uow.payments.get(environment_id, resource_id)
    if kind is Refund:
        return await uow.refunds.get(environment_id, resource_id)
    if kind is Customer:
        return await uow.customers.get(environment_id, resource_id)
    if kind is Invoice:
        return await uow.invoices.get(environment_id, resource_id)
    return None


class _KeepAlive:
    """Renews a claim's lease every `renew_every` while its request runs. A timer starts each
    renewal, so a request that ends sooner (nearly all) costs no task."""

    def __init__(self, deps: Deps, idempotency: Idempotency) -> None:
        self._deps = deps
        self._idempotency = idempotency
        self._loop = asyncio.get_running_loop()
        self._every = idempotency.policy.renew_every.total_seconds()
        self._renewing: asyncio.Task[None] | None = None
        self._stopped = False
        self._timer = self._loop.call_later(self._every, self._start_renewal)

    def _start_renewal(self) -> None:
        if not self._stopped:
            self._renewing = self._loop.create_task(self._renew())

    async def _renew(self) -> None:
        request, version = self._idempotency.request, self._idempotency.held.version
        assert request is not None
        if version is not None:  # else: not claimed yet
            try:
                async with self._deps.uow() as uow:
                    until = self._deps.clock.now() + self._idempotency.policy.lease
                    await uow.idempotency.renew(request.environment_id, request.key, version, until)
                    await uow.commit()
            except Exception:  # noqa: BLE001 - the request goes on; the next renewal tries again
                pass
        if not self._stopped:
            self._timer = self._loop.call_later(self._every, self._start_renewal)

    async def stop(self) -> None:
        """The request ended (or died): renew no more."""
        self._stopped = True
        self._timer.cancel()
        renewing = self._renewing
        if renewing is not None and not renewing.done():
            renewing.cancel()
            await asyncio.wait([renewing])


async def idempotent(
    deps: Deps,
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
    policy = deps.policies.idempotency
    if key is None:
        return Answer(await work(Idempotency(None, deps.clock, policy)))
    keyed = _Request(environment_id, validate_idempotency_key(key), operation, fingerprint(), kind)
    idempotency = Idempotency(keyed, deps.clock, policy)
    keep_alive = _KeepAlive(deps, idempotency)
    try:
        return Answer(await work(idempotency))
    except _Replay as replay:
        record = replay.record
    finally:
        await keep_alive.stop()
    if record.error is not None:
        error = error_from_code(record.error.code, record.error.message, record.error.details)
        error.replayed = True
        raise error
    if not isinstance(record.resource, kind):
        raise IdempotencyKeyReused()
    return Answer(record.resource, replayed=True)
