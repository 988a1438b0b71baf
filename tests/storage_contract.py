"""The contract every storage adapter keeps, as one suite.

Subclass `StorageContract` with a `units` fixture that returns a fresh, empty
`UnitOfWorkFactory`; the same tests then prove the same guarantees for that adapter.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from core.errors import (
    ConcurrentUpdate,
    CustomerAlreadyExists,
    GatewayCustomerNotOwned,
    IdempotencyKeyInUse,
    InvoiceAlreadyPaid,
    PaymentInProgress,
)
from core.lists import Window
from core.model import (
    Actor,
    ApiKey,
    Customer,
    Environment,
    Invoice,
    InvoiceStatus,
    Notification,
    NotificationType,
    Payment,
    PaymentEvent,
    PaymentMethodType,
    PaymentStatus,
    Refund,
    RefundStatus,
    Role,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.money import Money
from core.ports import (
    CustomerQuery,
    DeliveryQuery,
    IdempotencyRecord,
    IdempotencyState,
    InvoiceQuery,
    PaymentQuery,
    ReadOnlyUnitOfWork,
    UnitOfWork,
    UnitOfWorkFactory,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENV = "env_a"


def customer(number: int = 1, env: str = ENV) -> Customer:
    return Customer(
        id=f"cust_{number:04d}",
        environment_id=env,
        external_id=f"ext-{number}",
        created_at=T0,
        gateway_customer_id=f"cus_{env}_{number}",
    )


def invoice(number: int = 1, env: str = ENV, amount: str = "150.00") -> Invoice:
    return Invoice(
        id=f"inv_{number:04d}",
        environment_id=env,
        customer_id="cust_0001",
        amount_due=Money.of(amount, "usd"),
        status=InvoiceStatus.FINALIZED,
        created_at=T0 + timedelta(seconds=number),
        updated_at=T0,
    )


def paid(i: Invoice) -> Invoice:
    """The invoice's next version, paid in full (storage checks no rule of the model's)."""
    return attrs.evolve(
        i, amount_paid=i.amount_due, paid_at=T0, updated_at=T0, version=i.version + 1
    )


def payment(number: int, invoice_id: str = "inv_0001", env: str = ENV) -> Payment:
    started, _ = Payment.start(
        at=T0 + timedelta(seconds=number),
        id=f"pay_{number:04d}",
        environment_id=env,
        invoice_id=invoice_id,
        customer_id="cust_0001",
        amount=Money.of("150.00", "usd"),
        method_type=PaymentMethodType.CARD,
    )
    return started


def started_then_processing(
    payment_id: str,
) -> tuple[Payment, PaymentEvent, Payment, PaymentEvent]:
    """A new payment of invoice 1 and its event, then the same payment processing and its event."""
    started, created = Payment.start(
        at=T0, id=payment_id, environment_id=ENV, invoice_id="inv_0001",
        customer_id="cust_0001", amount=Money.of("150.00", "usd"),
        method_type=PaymentMethodType.CARD,
    )  # fmt: skip
    processing, event = started.transition(
        PaymentStatus.PROCESSING, at=T0, reason="charge started", actor=Actor.API
    )
    return started, created, processing, event


def moved(p: Payment, *targets: PaymentStatus) -> Payment:
    for target in targets:
        p, _ = p.transition(target, at=T0, reason="test", actor=Actor.API)
    return p


def refund(number: int, payment_id: str = "pay_0001", env: str = ENV) -> Refund:
    return Refund(
        id=f"re_{number:04d}",
        environment_id=env,
        payment_id=payment_id,
        invoice_id="inv_0001",
        amount=Money.of("50.00", "usd"),
        status=RefundStatus.PENDING,
        created_at=T0 + timedelta(seconds=number),
        updated_at=T0 + timedelta(seconds=number),
    )


def settled(r: Refund, status: RefundStatus) -> Refund:
    return attrs.evolve(r, status=status, updated_at=T0 + timedelta(hours=1), version=r.version + 1)


def record(key: str = "k", version: int = 1) -> IdempotencyRecord:
    return IdempotencyRecord(
        environment_id=ENV,
        key=key,
        operation="create_payment",
        fingerprint="f",
        state=IdempotencyState.IN_PROGRESS,
        created_at=T0,
        expires_at=T0 + timedelta(hours=24),
        version=version,
    )


def endpoint(number: int = 1, env: str = ENV, *events: NotificationType) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=f"we_{number:04d}",
        environment_id=env,
        url=f"https://example.com/hooks/{number}",
        events=frozenset(events),
        secret=f"whsec_{number}",
        created_at=T0 + timedelta(seconds=number),
    )


def delivery(
    number: int, endpoint_id: str = "we_0001", env: str = ENV, *, due: timedelta = timedelta()
) -> WebhookDelivery:
    note = Notification(
        f"evt_{number}", env, NotificationType.PAYMENT_FAILED, T0,
        {"payment_id": f"pay_{number}", "error_code": "card_declined", "refunded": None},
    )  # fmt: skip
    return WebhookDelivery(
        id=f"whd_{number:04d}",
        environment_id=env,
        endpoint_id=endpoint_id,
        notification=note,
        created_at=T0 + timedelta(seconds=number),
        next_attempt_at=T0 + due,
    )


async def _write_and_commit(uow: UnitOfWork, write: Awaitable[None]) -> None:
    """A storage may refuse a write at once or at the commit; either way nothing lands."""
    await write
    await uow.commit()


class StorageContract:
    @pytest.fixture
    def units(self) -> UnitOfWorkFactory:
        raise NotImplementedError

    async def _seed(self, units: UnitOfWorkFactory, *payments: Payment) -> None:
        """Customer 1 and invoice 1 of ENV, each payment, and the invoices they pay."""
        environments = {ENV} | {p.environment_id for p in payments}
        invoices = {(ENV, "inv_0001")} | {(p.environment_id, p.invoice_id) for p in payments}
        async with units() as uow:
            for env in sorted(environments):
                await uow.customers.add(customer(env=env))
            for env, invoice_id in sorted(invoices):
                number = int(invoice_id.removeprefix("inv_"))
                await uow.invoices.add(attrs.evolve(invoice(number, env=env), id=invoice_id))
            for p in payments:
                await uow.payments.add(p)
            await uow.commit()

    async def test_environments_and_api_keys_are_kept_with_only_the_key_hash(
        self, units: UnitOfWorkFactory
    ) -> None:
        environment = Environment(id="env_a", tenant_id="t1", name="test", created_at=T0)
        key = ApiKey(
            id="key_1", tenant_id="t1", key_hash=ApiKey.hash("ck_secret"), role=Role.WRITE,
            environment_ids=frozenset({"env_a", "env_b"}), created_at=T0,
        )  # fmt: skip
        async with units() as uow:
            await uow.environments.add(environment)
            await uow.api_keys.add(key)
            await uow.commit()
        async with units() as uow:
            assert await uow.environments.get("env_a") == environment
            rotated = attrs.evolve(environment, webhook_secrets=("whsec_a", "whsec_b"), version=2)
            await uow.environments.update(rotated)
            await uow.commit()
        async with units() as uow:
            assert await uow.environments.get("env_a") == rotated
            assert await uow.api_keys.get_by_hash(ApiKey.hash("ck_secret")) == key
            assert await uow.api_keys.get_by_hash(ApiKey.hash("ck_other")) is None
            await uow.api_keys.update(key.revoked(T0))
            await uow.commit()
        async with units() as uow:
            stored = await uow.api_keys.get("key_1")
            assert stored is not None
            assert stored.revoked_at == T0
            assert not stored.active

    async def test_a_tenants_api_keys_are_listed_newest_first_revoked_ones_too(
        self, units: UnitOfWorkFactory
    ) -> None:
        def key(key_id: str, tenant: str, created: datetime) -> ApiKey:
            return ApiKey(
                id=key_id, tenant_id=tenant, key_hash=ApiKey.hash(f"ck_{key_id}"),
                role=Role.READ, environment_ids=frozenset({"env_a"}), created_at=created,
            )  # fmt: skip

        # key_b and key_c were made in the same instant: the greater id comes first.
        later = T0 + timedelta(hours=1)
        oldest, b, c = key("key_a", "t1", T0), key("key_b", "t1", later), key("key_c", "t1", later)
        async with units() as uow:
            for made in (b, key("key_x", "t2", later), oldest, c):
                await uow.api_keys.add(made)
            await uow.commit()
        async with units() as uow:
            await uow.api_keys.update(oldest.revoked(later))
            await uow.commit()
        async with units(read_only=True) as uow:
            listed = await uow.api_keys.of_tenant("t1")
            assert [k.id for k in listed] == ["key_c", "key_b", "key_a"]
            assert listed[2].revoked_at == later
            assert [k.id for k in await uow.api_keys.of_tenant("t2")] == ["key_x"]
            assert await uow.api_keys.of_tenant("t3") == []

    async def test_nothing_is_kept_unless_committed(self, units: UnitOfWorkFactory) -> None:
        async with units() as uow:
            await uow.customers.add(customer())
        async with units() as uow:
            assert await uow.customers.get(ENV, "cust_0001") is None

    async def test_a_commit_keeps_every_change_exactly(self, units: UnitOfWorkFactory) -> None:
        await self._seed(units, payment(1))
        async with units() as uow:
            assert await uow.customers.get(ENV, "cust_0001") == customer()
            assert await uow.invoices.get(ENV, "inv_0001") == invoice()
            assert await uow.payments.get(ENV, "pay_0001") == payment(1)

    async def test_an_invoice_is_read_with_its_customer(self, units: UnitOfWorkFactory) -> None:
        await self._seed(units)
        async with units() as uow:
            await uow.customers.add(customer(2))
            await uow.invoices.add(attrs.evolve(invoice(2), customer_id="cust_0002"))
            await uow.commit()
        async with units() as uow:
            assert await uow.invoices.get_with_customer(ENV, "inv_0001") == (invoice(), customer())
            assert await uow.invoices.get_with_customer(ENV, "inv_0002") == (
                attrs.evolve(invoice(2), customer_id="cust_0002"),
                customer(2),
            )
            assert await uow.invoices.get_with_customer(ENV, "inv_0404") is None
            assert await uow.invoices.get_with_customer("env_b", "inv_0001") is None

    async def test_a_read_only_unit_reads_but_never_writes(self, units: UnitOfWorkFactory) -> None:
        await self._seed(units)
        async with units(read_only=True) as uow:
            assert await uow.invoices.get(ENV, "inv_0001") == invoice()
            assert await uow.customers.get(ENV, "cust_0001") == customer()
            with pytest.raises(ReadOnlyUnitOfWork):
                await _write_and_commit(uow, uow.customers.add(customer(2)))
        async with units(read_only=True) as uow:
            with pytest.raises(ReadOnlyUnitOfWork):
                await _write_and_commit(uow, uow.invoices.update(paid(invoice())))
        async with units() as uow:
            assert await uow.customers.get(ENV, "cust_0002") is None
            assert await uow.invoices.get(ENV, "inv_0001") == invoice()

    async def test_rows_are_invisible_from_another_environment(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(units, payment(1))
        async with units() as uow:
            assert await uow.customers.get("env_b", "cust_0001") is None
            assert await uow.invoices.get("env_b", "inv_0001") is None
            assert await uow.payments.get("env_b", "pay_0001") is None

    async def test_a_lost_update_is_refused_and_the_loser_changes_nothing(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(units)
        first, second = units(), units()
        async with first, second:
            read_first = await first.invoices.get(ENV, "inv_0001")
            read_second = await second.invoices.get(ENV, "inv_0001")
            assert read_first is not None
            assert read_second is not None
            await first.invoices.update(read_first.void(T0))
            await first.commit()
            await second.customers.add(customer(2))
            stale = attrs.evolve(read_second, version=2)
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(second, second.invoices.update(stale))
        async with units() as uow:
            assert await uow.customers.get(ENV, "cust_0002") is None
            stored = await uow.invoices.get(ENV, "inv_0001")
            assert stored is not None
            assert stored.status is InvoiceStatus.VOIDED

    async def test_an_invoice_never_has_two_live_payments(self, units: UnitOfWorkFactory) -> None:
        await self._seed(units, payment(1))
        async with units() as uow:
            with pytest.raises(PaymentInProgress):
                await _write_and_commit(uow, uow.payments.add(payment(2)))
        async with units() as uow:
            assert await uow.payments.get(ENV, "pay_0002") is None
            live = await uow.payments.live_for_invoice(ENV, "inv_0001")
            assert live is not None
            assert live.id == "pay_0001"

    async def test_an_invoice_never_has_two_paid_payments(self, units: UnitOfWorkFactory) -> None:
        paid = moved(payment(1), PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED)
        await self._seed(units, paid)
        async with units() as uow:
            second = moved(payment(2), PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED)
            with pytest.raises(InvoiceAlreadyPaid):
                await _write_and_commit(uow, uow.payments.add(second))

    async def test_a_failed_payment_does_not_block_the_next(self, units: UnitOfWorkFactory) -> None:
        await self._seed(units, moved(payment(1), PaymentStatus.FAILED))
        async with units() as uow:
            await uow.payments.add(payment(2))
            await uow.commit()
        async with units() as uow:
            live = await uow.payments.live_for_invoice(ENV, "inv_0001")
            assert live is not None
            assert live.id == "pay_0002"

    async def test_a_payment_moves_only_from_the_version_it_was_read_at(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(units, payment(1))
        first, second = units(), units()
        async with first, second:
            a = await first.payments.get(ENV, "pay_0001")
            b = await second.payments.get(ENV, "pay_0001")
            assert a is not None
            assert b is not None
            await first.payments.update(moved(a, PaymentStatus.PROCESSING))
            await first.commit()
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(
                    second, second.payments.update(moved(b, PaymentStatus.FAILED))
                )
        async with units() as uow:
            stored = await uow.payments.get(ENV, "pay_0001")
            assert stored is not None
            assert stored.status is PaymentStatus.PROCESSING

    async def test_writes_without_reads_land_whole_or_not_at_all(
        self, units: UnitOfWorkFactory
    ) -> None:
        """A transaction of writes only (a payment's outcome, written over the rows as read
        before): one stale row refuses all of them."""
        processing = moved(payment(1), PaymentStatus.PROCESSING)
        await self._seed(units, processing)
        async with units() as uow:
            read = await uow.invoices.get(ENV, "inv_0001")
            assert read is not None
        succeeded, event = processing.transition(
            PaymentStatus.SUCCEEDED, at=T0, reason="charge succeeded", actor=Actor.API
        )
        stale_invoice = attrs.evolve(paid(read), version=5)
        async with units() as uow:
            await uow.payments.update(succeeded)
            await uow.payments.add_event(event)
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(uow, uow.invoices.update(stale_invoice))
        async with units() as uow:
            assert await uow.payments.get(ENV, "pay_0001") == processing
            assert list(await uow.payments.events(ENV, "pay_0001")) == []
        async with units() as uow:
            await uow.payments.update(succeeded)
            await uow.payments.add_event(event)
            await uow.invoices.update(paid(read))
            await uow.commit()
        async with units() as uow:
            assert await uow.payments.get(ENV, "pay_0001") == succeeded
            assert list(await uow.payments.events(ENV, "pay_0001")) == [event]
            stored = await uow.invoices.get(ENV, "inv_0001")
            assert stored is not None
            assert stored.amount_remaining.is_zero

    async def test_a_row_added_then_changed_reads_back_changed_within_and_after(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(units)
        p, created, processing, event = started_then_processing("pay_0009")
        async with units() as uow:
            await uow.payments.add(p)
            await uow.payments.add_event(created)
            await uow.payments.update(processing)
            await uow.payments.add_event(event)
            assert await uow.payments.get(ENV, "pay_0009") == processing
            assert await uow.payments.live_for_invoice(ENV, "inv_0001") == processing
            assert list(await uow.payments.events(ENV, "pay_0009")) == [created, event]
            stale = attrs.evolve(processing, version=processing.version + 5)
            with pytest.raises(ConcurrentUpdate):  # at once, or at commit at the latest
                await _write_and_commit(uow, uow.payments.update(stale))
        async with units() as uow:
            assert await uow.payments.get(ENV, "pay_0009") is None  # never committed
            await uow.payments.add(p)
            await uow.payments.update(processing)
            await uow.payments.add_event(created)
            await uow.payments.add_event(event)
            await uow.commit()
        async with units() as uow:
            assert await uow.payments.get(ENV, "pay_0009") == processing
            assert list(await uow.payments.events(ENV, "pay_0009")) == [created, event]

    async def test_events_are_kept_in_order(self, units: UnitOfWorkFactory) -> None:
        await self._seed(units)
        _, created, processing, event = started_then_processing("pay_0009")
        async with units() as uow:
            await uow.payments.add(processing)
            await uow.payments.add_event(created)
            await uow.payments.add_event(event)
            await uow.commit()
        async with units() as uow:
            assert list(await uow.payments.events(ENV, "pay_0009")) == [created, event]
            assert list(await uow.payments.events("env_b", "pay_0009")) == []

    async def test_an_idempotency_key_is_taken_once_per_environment(
        self, units: UnitOfWorkFactory
    ) -> None:
        async with units() as uow:
            await uow.idempotency.put(record())
            await uow.commit()
        async with units() as uow:
            with pytest.raises(IdempotencyKeyInUse):
                await _write_and_commit(uow, uow.idempotency.put(record()))
        async with units() as uow:
            await uow.idempotency.put(attrs.evolve(record(), environment_id="env_b"))
            await uow.commit()
            stored = await uow.idempotency.get(ENV, "k")
            assert stored == record()

    async def test_an_expired_claim_is_taken_over_by_one_retry_only(
        self, units: UnitOfWorkFactory
    ) -> None:
        claim = attrs.evolve(record(), lease_expires_at=T0 + timedelta(seconds=30))
        async with units() as uow:
            await uow.idempotency.put(claim)
            await uow.commit()
        first, second = units(), units()
        async with first, second:
            a = await first.idempotency.get(ENV, "k")
            b = await second.idempotency.get(ENV, "k")
            assert a == b == claim
            held_until = T0 + timedelta(minutes=2)
            taken = attrs.evolve(claim, version=2, resource_id="pay_1", lease_expires_at=held_until)
            await first.idempotency.put(taken)
            await first.commit()
            lost = attrs.evolve(claim, version=2, resource_id="pay_2", lease_expires_at=held_until)
            with pytest.raises(IdempotencyKeyInUse):
                await _write_and_commit(second, second.idempotency.put(lost))
        async with units() as uow:
            assert await uow.idempotency.get(ENV, "k") == taken

    async def test_a_lease_is_renewed_only_for_the_claim_still_held(
        self, units: UnitOfWorkFactory
    ) -> None:
        claim = attrs.evolve(record(), resource_id="pay_1", lease_expires_at=T0)

        async def renew(version: int, until: datetime) -> IdempotencyRecord | None:
            async with units() as uow:
                await uow.idempotency.renew(ENV, "k", version, until)
                await uow.commit()
            async with units() as uow:
                return await uow.idempotency.get(ENV, "k")

        async with units() as uow:
            await uow.idempotency.put(claim)
            await uow.commit()
        renewed = attrs.evolve(claim, lease_expires_at=T0 + timedelta(minutes=1))
        assert await renew(1, T0 + timedelta(minutes=1)) == renewed  # the version stays
        assert await renew(2, T0 + timedelta(minutes=2)) == renewed  # not the claim held
        done = attrs.evolve(renewed, state=IdempotencyState.COMPLETED, version=2)
        async with units() as uow:
            await uow.idempotency.put(done)
            await uow.commit()
        assert await renew(2, T0 + timedelta(minutes=3)) == done  # finished: nothing to hold

    async def test_keys_in_progress_are_found_by_what_their_request_recorded(
        self, units: UnitOfWorkFactory
    ) -> None:
        about = {"k1": "pay_1", "k2": "pay_1", "k3": "pay_2", "k4": None}
        async with units() as uow:
            for key, resource_id in about.items():
                await uow.idempotency.put(attrs.evolve(record(key), resource_id=resource_id))
            await uow.idempotency.put(
                attrs.evolve(record("k5"), environment_id="env_b", resource_id="pay_1")
            )
            await uow.commit()
        async with units() as uow:
            k2 = await uow.idempotency.get(ENV, "k2")
            assert k2 is not None
            await uow.idempotency.put(attrs.evolve(k2, state=IdempotencyState.COMPLETED, version=2))
            await uow.commit()
        async with units() as uow:
            found = await uow.idempotency.in_progress_for(ENV, "pay_1")
            assert found == [attrs.evolve(record("k1"), resource_id="pay_1")]
            assert await uow.idempotency.in_progress_for(ENV, "pay_3") == []

    async def test_a_customer_external_id_is_unique_per_environment(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(units)
        async with units() as uow:
            twin = attrs.evolve(customer(), id="cust_0099")
            with pytest.raises(CustomerAlreadyExists):
                await _write_and_commit(uow, uow.customers.add(twin))
        async with units() as uow:
            await uow.customers.add(
                attrs.evolve(customer(env="b"), id="cust_0098", external_id=customer().external_id)
            )
            await uow.commit()

    async def test_a_gateway_customer_is_held_by_one_environment_only(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(units)
        held = customer().gateway_customer_id
        async with units() as uow:
            adopter = attrs.evolve(customer(7, env="env_b"), gateway_customer_id=held)
            with pytest.raises(GatewayCustomerNotOwned):
                await _write_and_commit(uow, uow.customers.add(adopter))
        async with units() as uow:
            twin = attrs.evolve(customer(8), gateway_customer_id=held)
            with pytest.raises(CustomerAlreadyExists):
                await _write_and_commit(uow, uow.customers.add(twin))
        async with units() as uow:
            # Customers not linked yet hold nothing.
            for number, env in ((5, ENV), (6, "env_b"), (7, "env_b")):
                unlinked = attrs.evolve(customer(number, env=env), gateway_customer_id=None)
                await uow.customers.add(unlinked)
            await uow.commit()
        async with units() as uow:
            assert await uow.customers.get("env_b", "cust_0007") is not None
            assert await uow.customers.get(ENV, "cust_0008") is None
            assert await uow.customers.get(ENV, "cust_0001") == customer()

    async def test_two_environments_linking_one_gateway_customer_at_once_one_lands(
        self, units: UnitOfWorkFactory
    ) -> None:
        mine = attrs.evolve(customer(1), gateway_customer_id="cus_x")
        theirs = attrs.evolve(customer(1, env="env_b"), gateway_customer_id="cus_x")
        first, second = units(), units()
        async with first, second:
            await first.customers.add(mine)
            await second.customers.add(theirs)  # neither sees the other's yet
            await first.commit()
            # A unique index cannot say which of the table's it is: any refusal will do.
            with pytest.raises((GatewayCustomerNotOwned, CustomerAlreadyExists, ConcurrentUpdate)):
                await second.commit()
        async with units() as uow:
            assert await uow.customers.get(ENV, "cust_0001") == mine
            assert await uow.customers.get("env_b", "cust_0001") is None

    async def test_a_gateway_event_is_recorded_once_per_environment(
        self, units: UnitOfWorkFactory
    ) -> None:
        async with units() as uow:
            await uow.gateway_events.add(ENV, "evt_1", "payment_intent.succeeded", T0)
            await uow.commit()
        async with units() as uow:
            assert await uow.gateway_events.seen(ENV, "evt_1")
            assert not await uow.gateway_events.seen(ENV, "evt_2")
            assert not await uow.gateway_events.seen("env_b", "evt_1")
            again = uow.gateway_events.add(ENV, "evt_1", "payment_intent.succeeded", T0)
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(uow, again)
        async with units() as uow:  # the same event id, delivered for another environment
            await uow.gateway_events.add("env_b", "evt_1", "payment_intent.succeeded", T0)
            await uow.commit()
        async with units() as uow:
            assert await uow.gateway_events.seen("env_b", "evt_1")
            assert not await uow.gateway_events.seen("env_c", "evt_1")

    async def test_two_environments_recording_one_event_id_at_once_both_land(
        self, units: UnitOfWorkFactory
    ) -> None:
        first, second = units(), units()
        async with first, second:
            await first.gateway_events.add(ENV, "evt_1", "checkout_completed", T0)
            await second.gateway_events.add("env_b", "evt_1", "checkout_completed", T0)
            await first.commit()
            await second.commit()
        async with units() as uow:
            assert await uow.gateway_events.seen(ENV, "evt_1")
            assert await uow.gateway_events.seen("env_b", "evt_1")

    async def test_a_gateway_customer_is_found_only_in_the_environment_linking_it(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(units)
        held = customer().gateway_customer_id
        assert held is not None
        async with units() as uow:
            assert await uow.customers.get_by_gateway_customer_id(ENV, held) == customer()
            assert await uow.customers.get_by_gateway_customer_id("env_b", held) is None
            assert await uow.customers.get_by_gateway_customer_id(ENV, "cus_unknown") is None
            linked_now = attrs.evolve(customer(2), gateway_customer_id="cus_new")
            await uow.customers.add(linked_now)  # seen by its own transaction before commit
            assert await uow.customers.get_by_gateway_customer_id(ENV, "cus_new") == linked_now

    async def test_the_outbox_hands_out_each_notification_until_delivered(
        self, units: UnitOfWorkFactory
    ) -> None:
        notes = [
            Notification(f"evt_{i}", ENV, NotificationType.PAYMENT_CREATED, T0, {"n": str(i)})
            for i in range(3)
        ]
        async with units() as uow:
            for note in notes:
                await uow.outbox.add(note)
            await uow.commit()
        async with units() as uow:
            assert list(await uow.outbox.undelivered(2)) == notes[:2]
            await uow.outbox.remove_delivered(["evt_0", "evt_1"])
            await uow.commit()
        async with units() as uow:
            assert list(await uow.outbox.undelivered(10)) == notes[2:]

    async def test_payments_list_newest_first_with_keyset_pages(
        self, units: UnitOfWorkFactory
    ) -> None:
        failed = [moved(payment(i, f"inv_{i:04d}"), PaymentStatus.FAILED) for i in range(1, 6)]
        await self._seed(units, *failed)
        async with units() as uow:
            first = await uow.payments.list(PaymentQuery(ENV, Window(2)))
            assert [p.id for p in first.items] == ["pay_0005", "pay_0004"]
            assert first.has_more
            rest = await uow.payments.list(PaymentQuery(ENV, Window(10, "pay_0004")))
            assert [p.id for p in rest.items] == ["pay_0003", "pay_0002", "pay_0001"]
            assert not rest.has_more
            one = await uow.payments.list(PaymentQuery(ENV, invoice_id="inv_0002"))
            assert [p.id for p in one.items] == ["pay_0002"]
            window = await uow.payments.list(
                PaymentQuery(ENV, created_gte=T0 + timedelta(seconds=2),
                             created_lt=T0 + timedelta(seconds=4))
            )  # fmt: skip
            assert [p.id for p in window.items] == ["pay_0003", "pay_0002"]
            assert not (await uow.payments.list(PaymentQuery("env_b"))).items

    async def test_payments_list_by_status_and_invoice_each_query_its_own(
        self, units: UnitOfWorkFactory
    ) -> None:
        kept = [
            moved(payment(1, "inv_0001"), PaymentStatus.FAILED),
            moved(payment(2, "inv_0002"), PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED),
            moved(payment(3, "inv_0003"), PaymentStatus.PROCESSING),
        ]
        await self._seed(units, *kept)

        async def ids(**filters: Any) -> list[str]:
            async with units(read_only=True) as uow:
                page = await uow.payments.list(PaymentQuery(ENV, **filters))
            return [p.id for p in page.items]

        # Queries alike but for their values, one after another: each gets its own rows.
        assert await ids(statuses=frozenset({PaymentStatus.FAILED})) == ["pay_0001"]
        assert await ids(statuses=frozenset({PaymentStatus.SUCCEEDED})) == ["pay_0002"]
        both = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING})
        assert await ids(statuses=both) == ["pay_0003", "pay_0002"]
        assert await ids(statuses=frozenset()) == []
        for n in (1, 2, 3):
            assert await ids(invoice_id=f"inv_{n:04d}") == [f"pay_{n:04d}"]

    async def test_invoices_list_newest_first(self, units: UnitOfWorkFactory) -> None:
        async with units() as uow:
            await uow.customers.add(customer())
            for i in range(1, 4):
                await uow.invoices.add(invoice(i))
            await uow.commit()
        async with units() as uow:
            page = await uow.invoices.list(InvoiceQuery(ENV, Window(2)))
            assert [i.id for i in page.items] == ["inv_0003", "inv_0002"]
            assert page.has_more

    async def test_customers_list_newest_first_by_external_id_and_environment(
        self, units: UnitOfWorkFactory
    ) -> None:
        async with units() as uow:
            for i in range(1, 4):
                await uow.customers.add(
                    attrs.evolve(customer(i), created_at=T0 + timedelta(seconds=i))
                )
            await uow.customers.add(customer(9, env="env_b"))
            await uow.commit()
        async with units(read_only=True) as uow:
            first = await uow.customers.list(CustomerQuery(ENV, Window(2)))
            assert [c.id for c in first.items] == ["cust_0003", "cust_0002"]
            assert first.has_more
            rest = await uow.customers.list(CustomerQuery(ENV, Window(2, "cust_0002")))
            assert ([c.id for c in rest.items], rest.has_more) == (["cust_0001"], False)
            found = await uow.customers.list(CustomerQuery(ENV, external_id="ext-2"))
            assert [c.id for c in found.items] == ["cust_0002"]
            elsewhere = await uow.customers.list(CustomerQuery(ENV, external_id="ext-9"))
            assert elsewhere.items == []

    async def test_processing_payments_are_found_across_environments(
        self, units: UnitOfWorkFactory
    ) -> None:
        stuck = moved(payment(1), PaymentStatus.PROCESSING)
        other = moved(payment(2, "inv_0002", env="env_b"), PaymentStatus.PROCESSING)
        await self._seed(units, stuck, other)
        async with units() as uow:
            found = await uow.payments.processing(T0 + timedelta(minutes=1), 10)
            assert {p.id for p in found} == {"pay_0001", "pay_0002"}
            assert not await uow.payments.processing(T0 - timedelta(minutes=1), 10)

    async def test_a_tracking_id_finds_a_payment_only_in_its_own_environment(
        self, units: UnitOfWorkFactory
    ) -> None:
        processing = moved(payment(1), PaymentStatus.PROCESSING)
        mine = attrs.evolve(processing, gateway_tracking_id="cs_X")
        theirs = attrs.evolve(
            moved(payment(2, "inv_0002", env="env_b"), PaymentStatus.PROCESSING),
            gateway_tracking_id="cs_shared",
        )
        also_mine = attrs.evolve(payment(3, "inv_0003"), gateway_tracking_id="cs_shared")
        await self._seed(units, mine, theirs, also_mine)
        async with units(read_only=True) as uow:
            assert await uow.payments.get_by_tracking_id(ENV, "cs_X") == mine
            assert await uow.payments.get_by_tracking_id("env_b", "cs_X") is None
            assert await uow.payments.get_by_tracking_id("env_unknown", "cs_X") is None
            assert await uow.payments.get_by_tracking_id("env_b", "cs_shared") == theirs
            assert await uow.payments.get_by_tracking_id(ENV, "cs_shared") == also_mine

    async def test_a_refund_moves_only_from_the_version_it_was_read_at(
        self, units: UnitOfWorkFactory
    ) -> None:
        await self._seed(
            units, moved(payment(1), PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED)
        )
        async with units() as uow:
            await uow.refunds.add(refund(1))
            await uow.commit()
        first, second = units(), units()
        async with first, second:
            a = await first.refunds.get(ENV, "re_0001")
            b = await second.refunds.get(ENV, "re_0001")
            assert a is not None
            assert b is not None
            succeeded = settled(a, RefundStatus.SUCCEEDED)
            await first.refunds.update(succeeded)
            await first.commit()
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(
                    second, second.refunds.update(settled(b, RefundStatus.FAILED))
                )
        async with units() as uow:
            assert await uow.refunds.get(ENV, "re_0001") == succeeded
            assert list(await uow.refunds.for_payment(ENV, "pay_0001")) == [succeeded]

    async def test_webhook_endpoints_are_kept_per_environment_and_change_by_version(
        self, units: UnitOfWorkFactory
    ) -> None:
        first = endpoint(1, ENV, NotificationType.PAYMENT_FAILED, NotificationType.INVOICE_PAID)
        async with units() as uow:
            await uow.webhook_endpoints.add(first)
            await uow.webhook_endpoints.add(endpoint(2))
            await uow.webhook_endpoints.add(endpoint(3, "env_b"))
            await uow.commit()
        async with units() as uow:
            assert await uow.webhook_endpoints.get(ENV, "we_0001") == first
            assert await uow.webhook_endpoints.get("env_b", "we_0001") is None
            assert [e.id for e in await uow.webhook_endpoints.list(ENV)] == ["we_0001", "we_0002"]
            await uow.webhook_endpoints.update(first.failed(T0, disable=True))
            await uow.commit()
        async with units() as uow:
            stored = await uow.webhook_endpoints.get(ENV, "we_0001")
            assert stored == first.failed(T0, disable=True)
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(uow, uow.webhook_endpoints.update(first.deleted(T0)))

    async def test_due_deliveries_come_longest_waiting_first_across_environments(
        self, units: UnitOfWorkFactory
    ) -> None:
        later = delivery(1, due=timedelta(minutes=5))
        now = delivery(2)
        other_env = delivery(3, "we_0003", "env_b", due=timedelta(seconds=30))
        done = delivery(4).succeeded(T0)
        given_up = delivery(5).attempt_failed(T0, "HTTP 500", retry_at=None)
        async with units() as uow:
            await uow.webhook_endpoints.add(endpoint(1))
            await uow.webhook_endpoints.add(endpoint(3, "env_b"))
            for d in (later, now, other_env, done, given_up):
                await uow.webhook_deliveries.add(d)
            await uow.commit()
        async with units() as uow:
            due = await uow.webhook_deliveries.due(T0 + timedelta(minutes=10), 10)
            assert due == [now, other_env, later]
            assert await uow.webhook_deliveries.due(T0 + timedelta(minutes=1), 1) == [now]
            assert not await uow.webhook_deliveries.due(T0 - timedelta(seconds=1), 10)
            newest = await uow.webhook_deliveries.list(DeliveryQuery(ENV, "we_0001", Window(3)))
            assert [d.id for d in newest] == ["whd_0005", "whd_0004", "whd_0002"]
            assert await uow.webhook_deliveries.get(ENV, "whd_0005") == given_up
            assert await uow.webhook_deliveries.get("env_b", "whd_0001") is None

    async def test_a_notification_is_queued_once_per_endpoint(
        self, units: UnitOfWorkFactory
    ) -> None:
        async with units() as uow:
            await uow.webhook_endpoints.add(endpoint(1))
            await uow.webhook_endpoints.add(endpoint(2))
            await uow.webhook_deliveries.add(delivery(1))
            await uow.webhook_deliveries.add(attrs.evolve(delivery(1), id="whd_0002",
                                                          endpoint_id="we_0002"))  # fmt: skip
            await uow.commit()
        async with units() as uow:
            twin = attrs.evolve(delivery(1), id="whd_0009")
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(uow, uow.webhook_deliveries.add(twin))
        async with units() as uow:
            assert await uow.webhook_deliveries.get(ENV, "whd_0009") is None

    async def test_a_delivery_moves_only_from_the_version_it_was_read_at(
        self, units: UnitOfWorkFactory
    ) -> None:
        async with units() as uow:
            await uow.webhook_endpoints.add(endpoint(1))
            await uow.webhook_deliveries.add(delivery(1))
            await uow.commit()
        first, second = units(), units()
        async with first, second:
            a = await first.webhook_deliveries.get(ENV, "whd_0001")
            b = await second.webhook_deliveries.get(ENV, "whd_0001")
            assert a is not None
            assert b is not None
            leased = a.rescheduled(T0 + timedelta(minutes=2))
            await first.webhook_deliveries.update(leased)
            await first.commit()
            with pytest.raises(ConcurrentUpdate):
                await _write_and_commit(second, second.webhook_deliveries.update(b.rescheduled(T0)))
        async with units() as uow:
            assert await uow.webhook_deliveries.get(ENV, "whd_0001") == leased
