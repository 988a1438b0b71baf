"""The use cases: what Card Checkout does, on any storage and any gateway.

Rule of thumb for every method: read and validate, call the gateway with no transaction
open, then record the outcome in one short transaction. A CARD payment that succeeds costs
two commits: one that records it as `processing` before the charge, one for the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import attrs

from core.commands import CreateCustomer, CreateInvoice, CreatePayment, RefundPayment, SetupCard
from core.errors import (
    CheckoutError,
    ConcurrentUpdate,
    CustomerAlreadyExists,
    CustomerNotFound,
    CustomerNotLinked,
    Forbidden,
    GatewayError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidStateTransition,
    InvoiceNotFound,
    NoDefaultPaymentMethod,
    NotFound,
    PaymentFailed,
    PaymentInProgress,
    PaymentMethodNotFound,
    PaymentNotFound,
    RefundExceedsPayment,
    Unauthorized,
    ValidationError,
    error_from_code,
    payment_failure,
)
from core.gateway import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
    GatewayEvent,
    GatewayEventType,
    GatewayFailure,
    GatewayPaymentMethod,
    GatewayRefund,
    GatewayUnavailable,
    RefundOutcome,
    RefundRequest,
)
from core.model import (
    NOTIFICATION_FOR_STATUS,
    Actor,
    ApiKey,
    Customer,
    Environment,
    Failure,
    Invoice,
    InvoicePaymentStatus,
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
    Clock,
    IdempotencyRecord,
    IdempotencyState,
    IdGenerator,
    InvoiceQuery,
    Notifier,
    Page,
    PaymentGateway,
    PaymentQuery,
    Resource,
    StoredError,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookSender,
)
from core.rules import check_payment_matches_invoice, check_webhook_events, check_webhook_url

R = TypeVar("R")

# What the gateway said about a payment in flight; None when its answer is unknown.
GatewayAnswer = ChargeResult | CheckoutSession | GatewayFailure | None

IDEMPOTENCY_TTL: Final = timedelta(hours=24)
# A transaction that lost a race is re-run from a fresh read this many times.
MAX_ATTEMPTS: Final = 3
CHECKOUT_EXPIRED: Final = "checkout_expired"
ROLE_RANK: Final = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}
MAX_WEBHOOK_ENDPOINTS: Final = 16  # per environment, not counting deleted ones
MAX_WEBHOOK_ERROR_LENGTH: Final = 500


# Set when the current task's last idempotent request was answered from its record.
_replayed: ContextVar[bool] = ContextVar("card_checkout_replayed", default=False)


def replayed() -> bool:
    """Whether the last idempotent call in this task replayed a stored answer."""
    return _replayed.get()


@attrs.frozen
class IdempotentRequest:
    environment_id: str
    key: str
    operation: str
    fingerprint: str


@attrs.frozen
class ReconcileReport:
    """What a reconciliation pass did; `unresolved` still needs the gateway (or a person)."""

    examined: int = 0
    succeeded: int = 0
    failed: int = 0
    refunds_settled: int = 0
    unresolved: tuple[str, ...] = ()
    needs_attention: tuple[str, ...] = ()


@attrs.frozen
class WebhookPolicy:
    """When a failed webhook delivery is tried again, and when it (and its endpoint) stop.

    With the defaults a delivery is tried 15 times over about 24 hours: after 30 s, 1 min,
    2 min... then every 4 hours. It is given up after 15 failed attempts or 24 hours of failing,
    and its endpoint is disabled if it answered no delivery at all in that time.
    """

    retry_base: timedelta = timedelta(seconds=30)
    retry_cap: timedelta = timedelta(hours=4)
    max_attempts: int = 15
    give_up_after: timedelta = timedelta(hours=24)
    # A dispatcher holds the deliveries it sends for this long; past it (a crash) another may.
    lease: timedelta = timedelta(minutes=2)
    # Endpoints called at once in a pass (each endpoint's deliveries go one after another).
    parallel_endpoints: int = 8

    def retry_delay(self, failures: int) -> timedelta:
        """The wait after the `failures`-th failed attempt: base, 2 base, 4 base... capped."""
        return min(self.retry_base * (1 << min(max(failures - 1, 0), 30)), self.retry_cap)


@attrs.frozen
class WebhookReport:
    """What a pass of webhook sending did."""

    delivered: int = 0
    failed: int = 0  # attempts that failed and will be tried again
    given_up: int = 0  # deliveries that will not be tried again
    disabled: tuple[str, ...] = ()  # endpoints disabled by this pass

    def __add__(self, other: WebhookReport) -> WebhookReport:
        return WebhookReport(
            self.delivered + other.delivered,
            self.failed + other.failed,
            self.given_up + other.given_up,
            self.disabled + other.disabled,
        )


@attrs.define
class ApiKeyCache:
    """Live API keys seen lately, by hash, so that most requests skip a database read.

    A key revoked through this service is dropped at once; one revoked by another process
    stops working here within `ttl`. Unknown and revoked keys are never cached.
    """

    ttl: timedelta = timedelta(seconds=5)
    capacity: int = 10_000
    _keys: dict[str, tuple[ApiKey, datetime]] = attrs.field(factory=dict, init=False)

    def get(self, key_hash: str, now: datetime) -> ApiKey | None:
        found = self._keys.get(key_hash)
        if found is None:
            return None
        key, expires_at = found
        if now >= expires_at:
            del self._keys[key_hash]
            return None
        return key

    def put(self, key: ApiKey, now: datetime) -> None:
        if self.ttl <= timedelta(0) or not key.active:
            return
        if len(self._keys) >= self.capacity:
            self._keys.clear()  # rare, and cheaper than tracking recency
        self._keys[key.key_hash] = (key, now + self.ttl)

    def drop(self, key: ApiKey) -> None:
        self._keys.pop(key.key_hash, None)


def validate_idempotency_key(key: str) -> str:
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ValidationError(
            "Idempotency-Key must be 1 to 255 printable characters.", field="Idempotency-Key"
        )
    return key


@attrs.define
class CheckoutService:
    uow: UnitOfWorkFactory
    gateway: PaymentGateway
    clock: Clock
    ids: IdGenerator
    # Past this, a payment still `processing` after reconciliation is reported for a person.
    attention_after: timedelta = timedelta(hours=1)
    webhooks: WebhookPolicy = attrs.Factory(WebhookPolicy)
    api_keys: ApiKeyCache = attrs.Factory(ApiKeyCache)

    # Environments and API keys ----------------------------------------------------------

    async def create_environment(
        self, tenant_id: str, name: str, *, environment_id: str | None = None
    ) -> Environment:
        """A new environment, with the given id (it must start with `env_`) or a fresh one."""
        if environment_id is not None and (
            not environment_id.startswith("env_") or not 5 <= len(environment_id) <= 64
        ):
            raise ValidationError(
                "An environment id starts with env_ and has at most 64 characters.",
                field="environment",
            )
        environment = Environment(
            id=environment_id or self.ids.new_id("env"),
            tenant_id=tenant_id,
            name=name,
            created_at=self.clock.now(),
        )
        async with self.uow() as uow:
            if await uow.environments.get(environment.id) is not None:
                raise ValidationError(f"{environment.id} already exists.", field="environment")
            await uow.environments.add(environment)
            await uow.commit()
        return environment

    async def get_environment(self, environment_id: str) -> Environment:
        async with self.uow(read_only=True) as uow:
            environment = await uow.environments.get(environment_id)
        if environment is None:
            raise NotFound(f"No environment {environment_id}.", environment_id=environment_id)
        return environment

    async def set_webhook_secrets(self, environment_id: str, secrets: Sequence[str]) -> Environment:
        """The secrets that sign the gateway's webhooks for this environment (empty: none)."""
        cleaned = tuple(secret.strip() for secret in secrets if secret.strip())
        if any(not secret.startswith("whsec_") for secret in cleaned):
            raise ValidationError("A webhook secret starts with whsec_.", field="secret")

        async def store(uow: UnitOfWork) -> Environment:
            environment = await uow.environments.get(environment_id)
            if environment is None:
                raise NotFound(f"No environment {environment_id}.", environment_id=environment_id)
            changed = attrs.evolve(
                environment, webhook_secrets=cleaned, version=environment.version + 1
            )
            await uow.environments.update(changed)
            await uow.commit()
            return changed

        return await self._transaction(store)

    async def create_api_key(
        self, tenant_id: str, environment_ids: Sequence[str], role: Role
    ) -> tuple[ApiKey, str]:
        """A new key for the tenant's environments; the key itself is returned only here."""
        if not environment_ids:
            raise ValidationError("A key needs at least one environment.", field="environment")
        async with self.uow() as uow:
            for environment_id in environment_ids:
                environment = await uow.environments.get(environment_id)
                if environment is None or environment.tenant_id != tenant_id:
                    raise ValidationError(
                        f"No environment {environment_id} for this tenant.", field="environment"
                    )
            raw_key = self.ids.new_secret("ck")
            key = ApiKey(
                id=self.ids.new_id("key"),
                tenant_id=tenant_id,
                key_hash=ApiKey.hash(raw_key),
                role=role,
                environment_ids=frozenset(environment_ids),
                created_at=self.clock.now(),
            )
            await uow.api_keys.add(key)
            await uow.commit()
        return key, raw_key

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        async def revoke(uow: UnitOfWork) -> ApiKey:
            key = await uow.api_keys.get(key_id)
            if key is None:
                raise NotFound(f"No API key {key_id}.")
            revoked = key if not key.active else key.revoked(self.clock.now())
            if revoked is not key:
                await uow.api_keys.update(revoked)
                await uow.commit()
            self.api_keys.drop(key)
            return revoked

        return await self._transaction(revoke)

    async def authorize(
        self, raw_key: str | None, environment_id: str | None, needs: Role
    ) -> ApiKey:
        """The key that may do `needs` in the environment: 401 unless it is a live key,
        403 unless it may use the environment with that role."""
        if not raw_key:
            raise Unauthorized()
        key_hash, now = ApiKey.hash(raw_key), self.clock.now()
        key = self.api_keys.get(key_hash, now)
        if key is None:
            async with self.uow() as uow:
                key = await uow.api_keys.get_by_hash(key_hash)
            if key is not None:
                self.api_keys.put(key, now)
        if key is None or not key.active:
            raise Unauthorized("The API key is unknown or revoked.")
        if not environment_id or not key.may_use(environment_id):
            raise Forbidden("This API key may not use that environment.",
                            environment_id=environment_id)  # fmt: skip
        if ROLE_RANK[key.role] < ROLE_RANK[needs]:
            raise Forbidden(f"This API key's role ({key.role.value}) may not do that.",
                            expected=needs.value, actual=key.role.value)  # fmt: skip
        return key

    # Customers -------------------------------------------------------------------------

    async def create_customer(
        self, environment_id: str, command: CreateCustomer, *, idempotency_key: str | None = None
    ) -> Customer:
        request = self._idempotent(
            environment_id, "create_customer", idempotency_key, command.fingerprint
        )
        async with self.uow() as uow:
            if request and (done := await self._find_replay(uow, request)):
                return self._replay(done, Customer)
            await self._ensure_new_customer(uow, environment_id, command.external_id)
        customer_id = self.ids.new_id("cust")
        gateway_id = command.gateway_customer_id
        if gateway_id is None:
            gateway_id = await self._gateway_call(
                self.gateway.create_customer(
                    customer_id=customer_id,
                    environment_id=environment_id,
                    name=command.name,
                    email=command.email,
                    idempotency_key=f"{customer_id}:customer",
                )
            )
        else:
            await self._gateway_call(self.gateway.get_customer(gateway_id))
        customer = Customer(
            id=customer_id,
            environment_id=environment_id,
            external_id=command.external_id,
            name=command.name,
            email=command.email,
            gateway_customer_id=gateway_id,
            created_at=self.clock.now(),
        )
        async with self.uow() as uow:
            if request:
                claim = await self._claim(uow, request)
                if isinstance(claim, Customer):
                    return claim
            await self._ensure_new_customer(uow, environment_id, command.external_id)
            await uow.customers.add(customer)
            if request:
                await self._finish(uow, request, resource=customer)
            await uow.commit()
        return customer

    async def _ensure_new_customer(
        self, uow: UnitOfWork, environment_id: str, external_id: str
    ) -> None:
        existing = await uow.customers.get_by_external_id(environment_id, external_id)
        if existing is not None:
            raise CustomerAlreadyExists(customer_id=existing.id)

    async def get_customer(self, environment_id: str, customer_id: str) -> Customer:
        async with self.uow(read_only=True) as uow:
            return await self._customer(uow, environment_id, customer_id)

    async def list_payment_methods(
        self, environment_id: str, customer_id: str
    ) -> Sequence[GatewayPaymentMethod]:
        customer = await self.get_customer(environment_id, customer_id)
        return await self._gateway_call(
            self.gateway.list_payment_methods(self._gateway_customer_id(customer))
        )

    async def setup_card(
        self, environment_id: str, command: SetupCard, *, idempotency_key: str | None = None
    ) -> CheckoutSession:
        """A hosted page that saves a card and makes it the customer's default."""
        customer = await self.get_customer(environment_id, command.customer_id)
        key = idempotency_key or self.ids.new_id("setup")
        return await self._gateway_call(
            self.gateway.create_checkout_session(
                CheckoutSessionRequest(
                    mode=CheckoutMode.SETUP,
                    gateway_customer_id=self._gateway_customer_id(customer),
                    idempotency_key=f"{environment_id}:{customer.id}:setup:{key}",
                    save_card_and_make_default=True,
                    success_url=command.success_url,
                    cancel_url=command.cancel_url,
                    metadata={"environment_id": environment_id, "customer_id": customer.id},
                )
            )
        )

    # Invoices --------------------------------------------------------------------------

    async def create_invoice(
        self, environment_id: str, command: CreateInvoice, *, idempotency_key: str | None = None
    ) -> Invoice:
        request = self._idempotent(
            environment_id, "create_invoice", idempotency_key, command.fingerprint
        )
        async with self.uow() as uow:
            if request:
                claim = await self._claim(uow, request)
                if isinstance(claim, Invoice):
                    return claim
            await self._customer(uow, environment_id, command.customer_id)
            now = self.clock.now()
            finalized = command.status is InvoiceStatus.FINALIZED
            invoice = Invoice(
                id=self.ids.new_id("inv"),
                environment_id=environment_id,
                customer_id=command.customer_id,
                amount_due=command.amount_due,
                status=command.status,
                external_id=command.external_id,
                created_at=now,
                updated_at=now,
                finalized_at=now if finalized else None,
            )
            await uow.invoices.add(invoice)
            if request:
                await self._finish(uow, request, resource=invoice)
            await uow.commit()
        return invoice

    async def finalize_invoice(
        self, environment_id: str, invoice_id: str, *, idempotency_key: str | None = None
    ) -> Invoice:
        async def finalize(uow: UnitOfWork, invoice: Invoice) -> Invoice:
            return invoice.finalize(self.clock.now())

        return await self._change_invoice(
            environment_id, invoice_id, "finalize_invoice", finalize, idempotency_key
        )

    async def void_invoice(
        self, environment_id: str, invoice_id: str, *, idempotency_key: str | None = None
    ) -> Invoice:
        async def void(uow: UnitOfWork, invoice: Invoice) -> Invoice:
            live = await uow.payments.live_for_invoice(environment_id, invoice_id)
            if live is not None:
                raise PaymentInProgress(
                    "The invoice has a payment in progress and cannot be voided.",
                    invoice_id=invoice_id,
                    payment_id=live.id,
                )
            return invoice.void(self.clock.now())

        return await self._change_invoice(
            environment_id, invoice_id, "void_invoice", void, idempotency_key
        )

    async def get_invoice(self, environment_id: str, invoice_id: str) -> Invoice:
        async with self.uow(read_only=True) as uow:
            return await self._invoice(uow, environment_id, invoice_id)

    async def list_invoices(self, query: InvoiceQuery) -> Page[Invoice]:
        async with self.uow(read_only=True) as uow:
            return await uow.invoices.list(query)

    async def _change_invoice(
        self,
        environment_id: str,
        invoice_id: str,
        operation: str,
        change: Callable[[UnitOfWork, Invoice], Awaitable[Invoice]],
        idempotency_key: str | None,
    ) -> Invoice:
        """Change an invoice in one transaction, with its idempotency record if keyed."""
        request = self._idempotent(environment_id, operation, idempotency_key, lambda: invoice_id)

        async def apply(uow: UnitOfWork) -> Invoice:
            if request:
                claim = await self._claim(uow, request)
                if isinstance(claim, Invoice):
                    return claim
            invoice = await self._invoice(uow, environment_id, invoice_id, for_update=True)
            changed = await change(uow, invoice)
            await uow.invoices.update(changed)
            if request:
                await self._finish(uow, request, resource=changed)
            await uow.commit()
            return changed

        return await self._transaction(apply)

    # Payments --------------------------------------------------------------------------

    async def create_payment(
        self, environment_id: str, command: CreatePayment, *, idempotency_key: str | None = None
    ) -> Payment:
        """Record a payment for an invoice and, if asked, charge it now.

        Returns the payment (`succeeded`, `initiated`, or `processing` when the gateway's
        answer is unknown or pending); raises `PaymentFailed` or `GatewayError` when it was
        recorded and failed.
        """
        request = self._idempotent(
            environment_id, "create_payment", idempotency_key, command.fingerprint
        )
        # Not read-only, though it only reads: PostgreSQL counts even a lone SELECT as a
        # committed transaction; this one rolls back, so a payment still costs two commits.
        async with self.uow() as uow:
            if request and (done := await self._find_replay(uow, request)):
                return self._replay(done, Payment)
            found = await uow.invoices.get_with_customer(environment_id, command.destination_id)
            if found is None:
                raise InvoiceNotFound(invoice_id=command.destination_id)
            invoice, customer = found
            check_payment_matches_invoice(command, invoice)
        card, refusal = None, None
        charge_now = command.process_payment and command.method_type is PaymentMethodType.CARD
        if charge_now:
            card, refusal = await self._select_card(customer, command.payment_method_id)

        # Processing a payment always writes its invoice's next version, so the first attempt
        # may go on the invoice as read above: its versioned update fails if it changed since,
        # and the work is re-run on a fresh, locked read.
        as_read: list[Invoice] = [invoice] if command.process_payment else []

        async def record(uow: UnitOfWork) -> tuple[Payment, Invoice | None, bool]:
            if request:
                claim = await self._claim(uow, request)
                if isinstance(claim, Payment):
                    return claim, None, False
            if as_read:
                invoice = as_read.pop()
            else:
                invoice = await self._invoice(
                    uow, environment_id, command.destination_id, for_update=True
                )
                check_payment_matches_invoice(command, invoice)
            # A second live payment is refused by storage at commit (a unique index in SQL):
            # one read fewer on every payment, and it holds across processes.
            now = self.clock.now()
            payment, created = Payment.start(
                at=now,
                id=self.ids.new_id("pay"),
                environment_id=environment_id,
                invoice_id=invoice.id,
                customer_id=invoice.customer_id,
                amount=command.amount,
                method_type=command.method_type,
                gateway=command.gateway,
                payment_method_id=command.payment_method_id,
                save_card_and_make_default=command.save_card_and_make_default,
                success_url=command.success_url,
                cancel_url=command.cancel_url,
                metadata=dict(command.metadata),
            )
            await uow.payments.add(payment)
            await self._record_event(uow, payment, created)
            processing_invoice: Invoice | None = None
            if command.process_payment:
                payment, processing_invoice = await self._begin_processing(
                    uow, payment, invoice, card, refusal
                )
            if request and (not command.process_payment or payment.failure):
                await self._finish(uow, request, payment=payment)
            await uow.commit()
            return payment, processing_invoice, True

        try:
            payment, processing_invoice, fresh = await self._transaction(record)
        except PaymentInProgress as busy:
            raise await self._naming_live_payment(
                busy, environment_id, command.destination_id
            ) from None
        if not fresh:
            return self._outcome(payment)
        return await self._after_recorded(payment, customer, request, processing_invoice)

    async def process_payment(
        self, environment_id: str, payment_id: str, *, idempotency_key: str | None = None
    ) -> Payment:
        """Charge a payment left `initiated` (same outcomes as `create_payment`)."""
        request = self._idempotent(
            environment_id, "process_payment", idempotency_key, lambda: payment_id
        )
        async with self.uow() as uow:
            if request and (done := await self._find_replay(uow, request)):
                return self._replay(done, Payment)
            payment = await self._payment(uow, environment_id, payment_id)
            self._ensure_initiated(payment)
            customer = await self._customer(uow, environment_id, payment.customer_id)
            await self._payable_for(uow, payment)
        card, refusal = None, None
        if payment.method_type is PaymentMethodType.CARD:
            card, refusal = await self._select_card(customer, payment.payment_method_id)

        async def record(uow: UnitOfWork) -> tuple[Payment, Invoice | None, bool]:
            if request:
                claim = await self._claim(uow, request)
                if isinstance(claim, Payment):
                    return claim, None, False
            current = await self._payment(uow, environment_id, payment_id, for_update=True)
            self._ensure_initiated(current)
            invoice = await self._payable_for(uow, current)
            current, processing_invoice = await self._begin_processing(
                uow, current, invoice, card, refusal
            )
            if request and current.failure:
                await self._finish(uow, request, payment=current)
            await uow.commit()
            return current, processing_invoice, True

        payment, processing_invoice, fresh = await self._transaction(record)
        if not fresh:
            return self._outcome(payment)
        return await self._after_recorded(payment, customer, request, processing_invoice)

    async def get_payment(self, environment_id: str, payment_id: str) -> Payment:
        async with self.uow(read_only=True) as uow:
            return await self._payment(uow, environment_id, payment_id)

    async def list_payments(self, query: PaymentQuery) -> Page[Payment]:
        async with self.uow(read_only=True) as uow:
            return await uow.payments.list(query)

    async def payment_events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]:
        async with self.uow(read_only=True) as uow:
            await self._payment(uow, environment_id, payment_id)
            return await uow.payments.events(environment_id, payment_id)

    async def _select_card(
        self, customer: Customer, payment_method_id: str | None
    ) -> tuple[GatewayPaymentMethod | None, PaymentFailed | None]:
        """The card to charge (given, or the customer's default), or why there is none."""
        gateway_customer = await self._gateway_call(
            self.gateway.get_customer(self._gateway_customer_id(customer))
        )
        if payment_method_id is None:
            card = gateway_customer.default_payment_method
            if card is None:
                return None, NoDefaultPaymentMethod(customer_id=customer.id)
            return card, None
        card = await self._gateway_call(
            self.gateway.get_payment_method(gateway_customer.id, payment_method_id)
        )
        if card is None:
            return None, PaymentMethodNotFound(
                customer_id=customer.id, payment_method_id=payment_method_id
            )
        return card, None

    async def _begin_processing(
        self,
        uow: UnitOfWork,
        payment: Payment,
        invoice: Invoice,
        card: GatewayPaymentMethod | None,
        refusal: PaymentFailed | None,
    ) -> tuple[Payment, Invoice | None]:
        """Within the first transaction: move to `processing` before any charge, or fail.
        Returns the payment and, when it is processing, its invoice as this transaction
        leaves it."""
        if refusal is not None:
            failure = Failure(code=refusal.code, message=refusal.message)
            failed = await self._settle(uow, payment, PaymentStatus.FAILED, "no usable card",
                                        Actor.API, failure=failure, invoice=invoice)  # fmt: skip
            return failed, None
        changes: dict[str, Any] = {}
        if card is not None:
            changes = {
                "payment_method_id": card.id,
                "card_brand": card.brand,
                "card_last4": card.last4,
            }
        moved = await self._move(
            uow, payment, PaymentStatus.PROCESSING, "charge started", Actor.API, **changes
        )
        processing = invoice.with_payment_status(InvoicePaymentStatus.PROCESSING, moved.updated_at)
        await uow.invoices.update(processing)
        return moved, processing

    async def _after_recorded(
        self,
        payment: Payment,
        customer: Customer,
        request: IdempotentRequest | None,
        invoice: Invoice | None,
    ) -> Payment:
        """Charge (or open the hosted page for) a payment just moved to `processing`.

        The outcome is first recorded over the payment and invoice as the first transaction
        left them, without reading them again: their versioned updates fail if anything
        (a webhook, the reconciler) changed them since, and the work is then re-run on
        fresh reads."""
        if payment.status is not PaymentStatus.PROCESSING:
            return self._outcome(payment)
        if payment.method_type is PaymentMethodType.PAYMENT_LINK:
            answer = await self._open_payment_link(payment, customer)
        else:
            answer = await self._gateway_answer(
                self.gateway.charge(self._charge_request(payment, customer))
            )

        as_left: list[tuple[Payment, Invoice | None]] = [(payment, invoice)]

        async def record(uow: UnitOfWork) -> Payment:
            if as_left:  # the first attempt only
                current, known_invoice = as_left.pop()
            else:
                current, known_invoice = (
                    await self._payment(uow, payment.environment_id, payment.id, for_update=True),
                    None,
                )
            current = await self._apply_answer(
                uow, current, answer, Actor.API, invoice=known_invoice
            )
            if request:
                await self._finish(uow, request, payment=current)
            await uow.commit()
            return current

        if request is None and answer is None:
            return payment
        return self._outcome(await self._transaction(record))

    async def _apply_answer(
        self,
        uow: UnitOfWork,
        payment: Payment,
        answer: GatewayAnswer,
        actor: Actor,
        *,
        invoice: Invoice | None = None,
    ) -> Payment:
        """Record what the gateway said about a payment in flight (None: it said nothing)."""
        if isinstance(answer, CheckoutSession):
            if payment.status is PaymentStatus.PROCESSING and payment.gateway_tracking_id is None:
                payment = payment.updated(
                    at=self.clock.now(), gateway_tracking_id=answer.id, payment_url=answer.url
                )
                await uow.payments.update(payment)
            return await self._apply_session(uow, payment, answer, actor)
        if answer is not None:
            return await self._apply_charge(uow, payment, answer, actor, invoice=invoice)
        return payment

    @staticmethod
    async def _gateway_answer(call: Awaitable[ChargeResult | CheckoutSession]) -> GatewayAnswer:
        """A gateway call's answer: a refusal as a failure, None when the outcome is unknown."""
        try:
            return await call
        except GatewayUnavailable:
            return None
        except CheckoutError as error:
            return GatewayFailure(code=GatewayError.code, message=error.message)

    async def _open_payment_link(self, payment: Payment, customer: Customer) -> GatewayAnswer:
        return await self._gateway_answer(
            self.gateway.create_checkout_session(self._checkout_request(payment, customer))
        )

    def _charge_request(self, payment: Payment, customer: Customer) -> ChargeRequest:
        assert payment.payment_method_id is not None, "a processing card payment has a card"
        return ChargeRequest(
            amount=payment.amount,
            gateway_customer_id=self._gateway_customer_id(customer),
            payment_method_id=payment.payment_method_id,
            idempotency_key=payment.charge_idempotency_key,
            metadata=self._gateway_metadata(payment),
        )

    def _checkout_request(self, payment: Payment, customer: Customer) -> CheckoutSessionRequest:
        return CheckoutSessionRequest(
            mode=CheckoutMode.PAYMENT,
            gateway_customer_id=self._gateway_customer_id(customer),
            idempotency_key=f"{payment.id}:checkout",
            amount=payment.amount,
            save_card_and_make_default=payment.save_card_and_make_default,
            success_url=payment.success_url,
            cancel_url=payment.cancel_url,
            metadata=self._gateway_metadata(payment),
        )

    @staticmethod
    def _gateway_metadata(payment: Payment) -> dict[str, str]:
        return {
            "payment_id": payment.id,
            "invoice_id": payment.invoice_id,
            "environment_id": payment.environment_id,
        }

    async def _apply_charge(
        self,
        uow: UnitOfWork,
        payment: Payment,
        result: ChargeResult | GatewayFailure,
        actor: Actor,
        *,
        invoice: Invoice | None = None,
    ) -> Payment:
        """Record a definite answer from the gateway; a payment never moves backwards.
        `invoice`: the payment's invoice if already known in this transaction."""
        if payment.status is not PaymentStatus.PROCESSING:
            return payment
        if isinstance(result, GatewayFailure):
            result = ChargeResult(status=ChargeStatus.FAILED, failure=result)
        found: dict[str, Any] = {}
        for field, value in (
            ("gateway_tracking_id", result.intent_id),
            ("payment_method_id", result.payment_method_id),
            ("card_brand", result.card_brand),
            ("card_last4", result.card_last4),
        ):
            if value is not None:
                found[field] = value
        if result.status is ChargeStatus.SUCCEEDED:
            return await self._settle(
                uow, payment, PaymentStatus.SUCCEEDED, "charge succeeded", actor,
                invoice=invoice, **found,
            )  # fmt: skip
        if result.status is ChargeStatus.FAILED:
            failure = result.failure or GatewayFailure(GatewayError.code, "The charge failed.")
            return await self._settle(
                uow,
                payment,
                PaymentStatus.FAILED,
                f"charge failed: {failure.code}",
                actor,
                invoice=invoice,
                failure=Failure(
                    code=failure.code,
                    message=failure.message,
                    gateway_code=failure.gateway_code,
                    decline_code=failure.decline_code,
                ),
                **found,
            )
        if found and any(getattr(payment, k) != v for k, v in found.items()):
            payment = payment.updated(at=self.clock.now(), **found)
            await uow.payments.update(payment)
        return payment

    async def _settle(
        self,
        uow: UnitOfWork,
        payment: Payment,
        target: PaymentStatus,
        reason: str,
        actor: Actor,
        *,
        invoice: Invoice | None = None,
        **changes: Any,
    ) -> Payment:
        """Succeed or fail a payment and reconcile its invoice in the same transaction."""
        moved = await self._move(uow, payment, target, reason, actor, **changes)
        invoice = invoice or await self._invoice(
            uow, payment.environment_id, payment.invoice_id, for_update=True
        )
        now = moved.updated_at  # the invoice changes at the same moment as its payment
        if target is PaymentStatus.SUCCEEDED:
            paid = invoice.record_payment(moved.amount, now)
            await uow.invoices.update(paid)
            await self._notify(
                uow,
                NotificationType.INVOICE_PAID,
                paid.environment_id,
                now,
                invoice_id=paid.id,
                payment_id=moved.id,
                customer_id=paid.customer_id,
                amount_paid=str(paid.amount_paid),
                currency=paid.currency.code,
            )
        else:
            await uow.invoices.update(invoice.with_payment_status(InvoicePaymentStatus.FAILED, now))
        return moved

    async def _move(
        self,
        uow: UnitOfWork,
        payment: Payment,
        target: PaymentStatus,
        reason: str,
        actor: Actor,
        **changes: Any,
    ) -> Payment:
        moved, event = payment.transition(
            target, at=self.clock.now(), reason=reason, actor=actor, **changes
        )
        await uow.payments.update(moved)
        await self._record_event(uow, moved, event)
        return moved

    async def _record_event(self, uow: UnitOfWork, payment: Payment, event: PaymentEvent) -> None:
        await uow.payments.add_event(event)
        await self._notify(
            uow,
            NOTIFICATION_FOR_STATUS[event.to_status],
            payment.environment_id,
            event.occurred_at,
            payment_id=payment.id,
            invoice_id=payment.invoice_id,
            customer_id=payment.customer_id,
            payment_status=payment.status.value,
            amount=str(payment.amount),
            currency=payment.currency.code,
            amount_refunded=str(payment.amount_refunded),
            error_code=payment.failure.code if payment.failure else None,
        )

    async def _notify(
        self,
        uow: UnitOfWork,
        kind: NotificationType,
        environment_id: str,
        at: datetime,
        **data: str | None,
    ) -> None:
        """Queue a notification of a change made `at` (in this transaction's outbox)."""
        await uow.outbox.add(
            Notification(
                id=self.ids.new_id("evt"),
                environment_id=environment_id,
                type=kind,
                occurred_at=at,
                data=data,
            )
        )

    def _outcome(self, payment: Payment) -> Payment:
        """Return the payment, or raise the error that says why it failed."""
        if payment.status is PaymentStatus.FAILED and payment.failure is not None:
            raise self._failure_error(payment)
        return payment

    @staticmethod
    def _failure_error(payment: Payment) -> CheckoutError:
        failure = payment.failure
        assert failure is not None
        return payment_failure(
            failure.code,
            failure.message,
            payment_id=payment.id,
            customer_id=payment.customer_id,
            invoice_id=payment.invoice_id,
            stripe_error_code=failure.gateway_code,
            decline_code=failure.decline_code,
        )

    def _ensure_initiated(self, payment: Payment) -> None:
        if payment.status is not PaymentStatus.INITIATED:
            raise InvalidStateTransition(
                f"Only an initiated payment can be processed; this one is {payment.status.value}.",
                payment_id=payment.id,
                expected=PaymentStatus.INITIATED.value,
                actual=payment.status.value,
            )

    async def _payable_for(self, uow: UnitOfWork, payment: Payment) -> Invoice:
        invoice = await self._invoice(
            uow, payment.environment_id, payment.invoice_id, for_update=True
        )
        invoice.ensure_payable()
        if payment.amount != invoice.amount_remaining:
            raise ValidationError(
                "The invoice changed since this payment was created; its amount no longer "
                "matches what remains.",
                field="amount",
                expected=str(invoice.amount_remaining),
                actual=str(payment.amount),
            )
        return invoice

    async def _naming_live_payment(
        self, busy: PaymentInProgress, environment_id: str, invoice_id: str
    ) -> PaymentInProgress:
        """Storage refused a second live payment for the invoice: say which one is live."""
        if "payment_id" in busy.details:
            return busy
        async with self.uow(read_only=True) as uow:
            live = await uow.payments.live_for_invoice(environment_id, invoice_id)
        if live is None:  # it settled meanwhile; the refusal stands as it was
            return busy
        return PaymentInProgress(invoice_id=invoice_id, payment_id=live.id)

    # Refunds ---------------------------------------------------------------------------

    async def refund_payment(
        self, environment_id: str, command: RefundPayment, *, idempotency_key: str | None = None
    ) -> Refund:
        """Refund all (the default) or part of a succeeded payment, never more than paid."""
        request = self._idempotent(
            environment_id, "refund_payment", idempotency_key, command.fingerprint
        )

        async def reserve(uow: UnitOfWork) -> tuple[Refund, bool]:
            if request:
                claim = await self._claim(uow, request)
                if isinstance(claim, Refund):
                    return claim, False
            payment = await self._payment(uow, environment_id, command.payment_id, for_update=True)
            if payment.status not in (
                PaymentStatus.SUCCEEDED,
                PaymentStatus.PARTIALLY_REFUNDED,
            ):
                raise InvalidStateTransition(
                    f"Only a succeeded payment can be refunded; this one is "
                    f"{payment.status.value}.",
                    payment_id=payment.id,
                    actual=payment.status.value,
                )
            amount = (
                Money.of(command.amount, payment.currency)
                if command.amount is not None
                else payment.refundable
            )
            if amount > payment.refundable or not amount.is_positive:
                raise RefundExceedsPayment(
                    payment_id=payment.id,
                    field="amount",
                    expected=f"at most {payment.refundable}",
                    actual=str(amount),
                )
            now = self.clock.now()
            refund = Refund(
                id=self.ids.new_id("re"),
                environment_id=environment_id,
                payment_id=payment.id,
                invoice_id=payment.invoice_id,
                amount=amount,
                status=RefundStatus.PENDING,
                reason=command.reason,
                created_at=now,
                updated_at=now,
            )
            await uow.refunds.add(refund)
            await uow.payments.update(
                payment.updated(at=now, refund_reserved=payment.refund_reserved + amount)
            )
            await uow.commit()
            return refund, True

        refund, fresh = await self._transaction(reserve)
        if not fresh:
            return self._refund_outcome(refund)
        answer = await self._send_refund(refund)

        async def record(uow: UnitOfWork) -> Refund:
            current = await self._refund(uow, environment_id, refund.id)
            if answer is not None:
                current = await self._apply_refund(uow, current, answer, Actor.API)
            if request:
                await self._finish(uow, request, resource=current)
            await uow.commit()
            return current

        if answer is None and request is None:
            return refund
        return self._refund_outcome(await self._transaction(record))

    async def _send_refund(self, refund: Refund) -> GatewayRefund | None:
        async with self.uow() as uow:
            payment = await self._payment(uow, refund.environment_id, refund.payment_id)
        assert payment.gateway_tracking_id is not None, "a succeeded payment has its charge id"
        try:
            return await self.gateway.refund(
                RefundRequest(
                    intent_id=payment.gateway_tracking_id,
                    amount=refund.amount,
                    idempotency_key=refund.idempotency_key,
                    reason=refund.reason,
                    metadata={
                        "refund_id": refund.id,
                        "payment_id": payment.id,
                        "environment_id": payment.environment_id,
                    },
                )
            )
        except GatewayUnavailable:
            return None
        except CheckoutError as error:
            return GatewayRefund(
                id="",
                outcome=RefundOutcome.FAILED,
                failure=GatewayFailure(GatewayError.code, error.message),
            )

    async def _apply_refund(
        self, uow: UnitOfWork, refund: Refund, answer: GatewayRefund, actor: Actor
    ) -> Refund:
        if refund.status is not RefundStatus.PENDING or answer.outcome is RefundOutcome.PENDING:
            if answer.id and refund.gateway_refund_id is None:
                refund = attrs.evolve(
                    refund, gateway_refund_id=answer.id, version=refund.version + 1
                )
                await uow.refunds.update(refund)
            return refund
        now = self.clock.now()
        payment = await self._payment(
            uow, refund.environment_id, refund.payment_id, for_update=True
        )
        released = payment.refund_reserved - refund.amount
        if answer.outcome is RefundOutcome.FAILED:
            failure = answer.failure or GatewayFailure(GatewayError.code, "The refund failed.")
            settled = refund.settled(
                RefundStatus.FAILED,
                at=now,
                gateway_refund_id=answer.id or None,
                failure=Failure(failure.code, failure.message, failure.gateway_code),
            )
            await uow.refunds.update(settled)
            await uow.payments.update(payment.updated(at=now, refund_reserved=released))
            return settled
        settled = refund.settled(RefundStatus.SUCCEEDED, at=now, gateway_refund_id=answer.id)
        await uow.refunds.update(settled)
        refunded = payment.amount_refunded + refund.amount
        fully = refunded == payment.amount
        target = PaymentStatus.REFUNDED if fully else PaymentStatus.PARTIALLY_REFUNDED
        await self._move(
            uow,
            payment,
            target,
            f"refund {refund.id} of {refund.amount}",
            actor,
            amount_refunded=refunded,
            refund_reserved=released,
        )
        invoice = await self._invoice(
            uow, refund.environment_id, refund.invoice_id, for_update=True
        )
        await uow.invoices.update(
            invoice.record_refund(refund.amount, fully_refunded=fully, at=now)
        )
        return settled

    def _refund_outcome(self, refund: Refund) -> Refund:
        if refund.status is RefundStatus.FAILED and refund.failure is not None:
            raise GatewayError(
                refund.failure.message,
                refund_id=refund.id,
                payment_id=refund.payment_id,
                stripe_error_code=refund.failure.gateway_code,
            )
        return refund

    async def get_refund(self, environment_id: str, refund_id: str) -> Refund:
        async with self.uow(read_only=True) as uow:
            return await self._refund(uow, environment_id, refund_id)

    async def list_refunds(self, environment_id: str, payment_id: str) -> Sequence[Refund]:
        async with self.uow(read_only=True) as uow:
            await self._payment(uow, environment_id, payment_id)
            return await uow.refunds.for_payment(environment_id, payment_id)

    # Gateway events and reconciliation --------------------------------------------------

    async def handle_gateway_event(self, event: GatewayEvent) -> bool:
        """Apply a verified gateway event exactly once; never moves a payment backwards.

        Returns False when the event names nothing this service knows (it is still recorded,
        so a repeat is not looked at again).
        """
        async with self.uow(read_only=True) as uow:
            if await uow.gateway_events.seen(event.id):
                return True
        if event.type is GatewayEventType.CHECKOUT_COMPLETED and event.session is not None:
            await self._make_saved_card_default(event.session)

        async def apply(uow: UnitOfWork) -> bool:
            if await uow.gateway_events.seen(event.id):
                return True
            known = await self._apply_event(uow, event)
            await uow.gateway_events.add(event.id, event.type.value, self.clock.now())
            await uow.commit()
            return known

        return await self._transaction(apply)

    async def _make_saved_card_default(self, session: CheckoutSession) -> None:
        """A completed setup page, or a paid link asked to save its card: make it the default.

        Idempotent at the gateway, so a repeated event or reconciliation may do it again.
        """
        card = session.charge.payment_method_id if session.charge else None
        saves = session.mode is CheckoutMode.SETUP or session.save_card_and_make_default
        if card and saves and session.status is CheckoutSessionStatus.COMPLETE:
            await self._gateway_call(
                self.gateway.set_default_payment_method(session.gateway_customer_id, card)
            )

    async def _apply_event(self, uow: UnitOfWork, event: GatewayEvent) -> bool:
        """Apply the event to what it names; False when it names nothing known here."""
        payment = await self._event_payment(uow, event)
        if event.type is GatewayEventType.REFUND_UPDATED:
            refund_id = event.metadata.get("refund_id")
            environment_id = event.metadata.get("environment_id")
            if event.refund is None or refund_id is None or environment_id is None:
                return False
            refund = await uow.refunds.get(environment_id, refund_id)
            if refund is not None:
                await self._apply_refund(uow, refund, event.refund, Actor.WEBHOOK)
            return refund is not None
        if payment is None:
            # A completed card setup names no payment: the card was made the default above.
            return event.session is not None and event.session.mode is CheckoutMode.SETUP
        if event.type in (GatewayEventType.PAYMENT_SUCCEEDED, GatewayEventType.PAYMENT_FAILED):
            if event.charge is not None:
                await self._apply_charge(uow, payment, event.charge, Actor.WEBHOOK)
        elif event.session is not None and event.type in (
            GatewayEventType.CHECKOUT_COMPLETED,
            GatewayEventType.CHECKOUT_EXPIRED,
        ):
            await self._apply_session(uow, payment, event.session, Actor.WEBHOOK)
        return True

    async def _event_payment(self, uow: UnitOfWork, event: GatewayEvent) -> Payment | None:
        payment_id = event.metadata.get("payment_id")
        environment_id = event.metadata.get("environment_id")
        if payment_id and environment_id:
            return await uow.payments.get(environment_id, payment_id, for_update=True)
        tracking = (event.charge.intent_id if event.charge else None) or (
            event.session.id if event.session else None
        )
        return await uow.payments.get_by_tracking_id(tracking) if tracking else None

    async def _apply_session(
        self, uow: UnitOfWork, payment: Payment, session: CheckoutSession, actor: Actor
    ) -> Payment:
        if session.mode is not CheckoutMode.PAYMENT:
            return payment
        if session.status is CheckoutSessionStatus.COMPLETE and session.paid:
            charge = session.charge or ChargeResult(status=ChargeStatus.SUCCEEDED)
            return await self._apply_charge(
                uow, payment, attrs.evolve(charge, status=ChargeStatus.SUCCEEDED), actor
            )
        if session.status is CheckoutSessionStatus.EXPIRED:
            return await self._apply_charge(
                uow,
                payment,
                GatewayFailure(CHECKOUT_EXPIRED, "The payment link expired before it was paid."),
                actor,
            )
        return payment

    async def reconcile(
        self, *, older_than: timedelta = timedelta(seconds=30), limit: int = 100
    ) -> ReconcileReport:
        """Ask the gateway about payments and refunds left in flight; apply definite answers."""
        now = self.clock.now()
        async with self.uow() as uow:
            stuck = await uow.payments.processing(now - older_than, limit)
            pending_refunds = await uow.refunds.pending(now - older_than, limit)
        succeeded = failed = refunds_settled = 0
        unresolved: list[str] = []
        attention: list[str] = []
        for payment in stuck:
            settled = await self._reconcile_payment(payment)
            if settled is PaymentStatus.SUCCEEDED:
                succeeded += 1
            elif settled is PaymentStatus.FAILED:
                failed += 1
            else:
                unresolved.append(payment.id)
                card = payment.method_type is PaymentMethodType.CARD
                if card and now - payment.updated_at >= self.attention_after:
                    attention.append(payment.id)
        for refund in pending_refunds:
            answer = await self._send_refund(refund)
            if answer is None or answer.outcome is RefundOutcome.PENDING:
                unresolved.append(refund.id)
                continue

            async def record(uow: UnitOfWork, refund: Refund = refund,
                             answer: GatewayRefund = answer) -> None:  # fmt: skip
                current = await self._refund(uow, refund.environment_id, refund.id)
                await self._apply_refund(uow, current, answer, Actor.RECONCILER)
                await uow.commit()

            await self._transaction(record)
            refunds_settled += 1
        return ReconcileReport(
            examined=len(stuck) + len(pending_refunds),
            succeeded=succeeded,
            failed=failed,
            refunds_settled=refunds_settled,
            unresolved=tuple(unresolved),
            needs_attention=tuple(attention),
        )

    async def _reconcile_payment(self, payment: Payment) -> PaymentStatus | None:
        """Settle one `processing` payment if the gateway knows its outcome."""
        answer: GatewayAnswer
        if payment.method_type is PaymentMethodType.PAYMENT_LINK and payment.gateway_tracking_id:
            answer = await self._gateway_answer(
                self.gateway.get_checkout_session(payment.gateway_tracking_id)
            )
        else:
            async with self.uow() as uow:
                customer = await self._customer(uow, payment.environment_id, payment.customer_id)
            if payment.method_type is PaymentMethodType.PAYMENT_LINK:
                answer = await self._open_payment_link(payment, customer)
            else:
                answer = await self._gateway_answer(
                    self.gateway.find_charge(
                        self._charge_request(payment, customer), payment.gateway_tracking_id
                    )
                )
        if answer is None or isinstance(answer, GatewayFailure):
            return None  # a look-up that failed says nothing about the payment
        if isinstance(answer, CheckoutSession):
            await self._make_saved_card_default(answer)

        async def record(uow: UnitOfWork) -> Payment:
            current = await self._payment(uow, payment.environment_id, payment.id, for_update=True)
            current = await self._apply_answer(uow, current, answer, Actor.RECONCILER)
            await uow.commit()
            return current

        settled = await self._transaction(record)
        return settled.status if settled.status is not PaymentStatus.PROCESSING else None

    # Notifications ---------------------------------------------------------------------

    async def deliver_notifications(self, notifier: Notifier, *, limit: int = 100) -> int:
        """Deliver what the outbox holds, at least once; returns how many were delivered.

        The transaction that removes delivered notifications also queues one webhook delivery
        per endpoint that wants each, so no event is lost between the two.
        """
        async with self.uow(read_only=True) as uow:
            pending = await uow.outbox.undelivered(limit)
        delivered: list[Notification] = []
        for notification in pending:
            try:
                await notifier.notify(notification)
            except Exception:  # noqa: BLE001 - a failing notifier is retried on the next pass
                break
            delivered.append(notification)
        if not delivered:
            return 0
        try:
            async with self.uow() as uow:
                await uow.outbox.remove_delivered([n.id for n in delivered])
                await self._queue_webhooks(uow, delivered)
                await uow.commit()
        except ConcurrentUpdate:
            # Another dispatcher delivered (some of) them first; the next pass sees the rest.
            return 0
        return len(delivered)

    async def _queue_webhooks(self, uow: UnitOfWork, notifications: Sequence[Notification]) -> None:
        endpoints: dict[str, Sequence[WebhookEndpoint]] = {}
        now = self.clock.now()
        for notification in notifications:
            environment_id = notification.environment_id
            if environment_id not in endpoints:
                endpoints[environment_id] = await uow.webhook_endpoints.list(environment_id)
            for endpoint in endpoints[environment_id]:
                if endpoint.wants(notification.type):
                    await uow.webhook_deliveries.add(
                        WebhookDelivery(
                            id=self.ids.new_id("whd"),
                            environment_id=environment_id,
                            endpoint_id=endpoint.id,
                            notification=notification,
                            created_at=now,
                            next_attempt_at=now,
                        )
                    )

    # Webhook endpoints -----------------------------------------------------------------

    async def create_webhook_endpoint(
        self, environment_id: str, url: str, events: Iterable[str] = ()
    ) -> WebhookEndpoint:
        """A new endpoint for the environment's events (none named: all of them)."""
        endpoint = WebhookEndpoint(
            id=self.ids.new_id("we"),
            environment_id=environment_id,
            url=check_webhook_url(url),
            events=check_webhook_events(events),
            secret=self.ids.new_secret("whsec"),
            created_at=self.clock.now(),
        )
        async with self.uow() as uow:
            existing = await uow.webhook_endpoints.list(environment_id)
            if sum(e.deleted_at is None for e in existing) >= MAX_WEBHOOK_ENDPOINTS:
                raise ValidationError(
                    f"An environment may have at most {MAX_WEBHOOK_ENDPOINTS} webhook endpoints.",
                    field="url",
                )
            await uow.webhook_endpoints.add(endpoint)
            await uow.commit()
        return endpoint

    async def list_webhook_endpoints(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        async with self.uow(read_only=True) as uow:
            endpoints = await uow.webhook_endpoints.list(environment_id)
        return [e for e in endpoints if e.deleted_at is None]

    async def get_webhook_endpoint(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint:
        async with self.uow(read_only=True) as uow:
            return await self._webhook_endpoint(uow, environment_id, endpoint_id)

    async def delete_webhook_endpoint(
        self, environment_id: str, endpoint_id: str
    ) -> WebhookEndpoint:
        """Stop sending to the endpoint; what was still pending for it is given up."""

        async def delete(uow: UnitOfWork) -> WebhookEndpoint:
            endpoint = await self._webhook_endpoint(uow, environment_id, endpoint_id)
            deleted = endpoint.deleted(self.clock.now())
            await uow.webhook_endpoints.update(deleted)
            await uow.commit()
            return deleted

        return await self._transaction(delete)

    async def webhook_deliveries(
        self, environment_id: str, endpoint_id: str, *, limit: int = 20
    ) -> Sequence[WebhookDelivery]:
        """The endpoint's deliveries, newest first, each with its attempts."""
        async with self.uow() as uow:
            await self._webhook_endpoint(uow, environment_id, endpoint_id)
            return await uow.webhook_deliveries.for_endpoint(environment_id, endpoint_id, limit)

    async def _webhook_endpoint(
        self, uow: UnitOfWork, environment_id: str, endpoint_id: str
    ) -> WebhookEndpoint:
        endpoint = await uow.webhook_endpoints.get(environment_id, endpoint_id)
        if endpoint is None or endpoint.deleted_at is not None:
            raise NotFound(f"No webhook endpoint {endpoint_id} exists in this environment.",
                           endpoint_id=endpoint_id)  # fmt: skip
        return endpoint

    # Webhook sending -------------------------------------------------------------------

    async def send_webhooks(self, sender: WebhookSender, *, limit: int = 100) -> WebhookReport:
        """Send the deliveries that are due, each at least once.

        The due ones are leased in one short transaction, sent with no transaction open, and
        each outcome recorded in its own. An endpoint that fails gets nothing more in this pass:
        its other deliveries wait for the failed one's retry.
        """
        try:
            leased, report = await self._transaction(
                lambda uow: self._lease_due_deliveries(uow, limit)
            )
        except ConcurrentUpdate:
            return WebhookReport()  # other dispatchers hold them; the next pass tries again
        by_endpoint: dict[tuple[str, str], list[WebhookDelivery]] = {}
        endpoints: dict[tuple[str, str], WebhookEndpoint] = {}
        for delivery, endpoint in leased:
            key = (endpoint.environment_id, endpoint.id)
            by_endpoint.setdefault(key, []).append(delivery)
            endpoints[key] = endpoint
        gate = asyncio.Semaphore(self.webhooks.parallel_endpoints)

        async def to_endpoint(key: tuple[str, str]) -> WebhookReport:
            async with gate:
                return await self._send_to_endpoint(sender, endpoints[key], by_endpoint[key])

        # Not a TaskGroup: one endpoint's failure to record must not cancel the others' sends
        # half-way, and the caller gets the error itself, not a group.
        outcomes = await asyncio.gather(
            *(to_endpoint(key) for key in by_endpoint), return_exceptions=True
        )
        errors: list[BaseException] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                errors.append(outcome)
            else:
                report += outcome
        if errors:
            if len(errors) > 1:
                errors[0].add_note(f"{len(errors) - 1} other endpoint(s) failed in this pass too")
            raise errors[0]
        return report

    async def _lease_due_deliveries(
        self, uow: UnitOfWork, limit: int
    ) -> tuple[list[tuple[WebhookDelivery, WebhookEndpoint]], WebhookReport]:
        now = self.clock.now()
        endpoints: dict[tuple[str, str], WebhookEndpoint | None] = {}
        leased: list[tuple[WebhookDelivery, WebhookEndpoint]] = []
        given_up = 0
        for delivery in await uow.webhook_deliveries.due(now, limit):
            key = (delivery.environment_id, delivery.endpoint_id)
            if key not in endpoints:
                endpoints[key] = await uow.webhook_endpoints.get(*key)
            endpoint = endpoints[key]
            if endpoint is None or not endpoint.active:
                gone = endpoint is None or endpoint.deleted_at is not None
                why = "deleted" if gone else "disabled"
                await uow.webhook_deliveries.update(
                    delivery.abandoned(now, f"The webhook endpoint was {why}.")
                )
                given_up += 1
                continue
            held = delivery.rescheduled(now + self.webhooks.lease)
            await uow.webhook_deliveries.update(held)
            leased.append((held, endpoint))
        await uow.commit()
        return leased, WebhookReport(given_up=given_up)

    async def _send_to_endpoint(
        self, sender: WebhookSender, endpoint: WebhookEndpoint, deliveries: list[WebhookDelivery]
    ) -> WebhookReport:
        report = WebhookReport()
        for index, delivery in enumerate(deliveries):
            try:
                await sender.send(endpoint, delivery)
            except Exception as error:  # noqa: BLE001 - any failure is recorded and retried
                reason = (str(error) or type(error).__name__)[:MAX_WEBHOOK_ERROR_LENGTH]
                return report + await self._record_webhook_failure(
                    delivery, reason, waiting=deliveries[index + 1 :]
                )
            await self._record_webhook_sent(delivery)
            report += WebhookReport(delivered=1)
        return report

    async def _record_webhook_sent(self, delivery: WebhookDelivery) -> None:
        async def record(uow: UnitOfWork) -> None:
            current = await uow.webhook_deliveries.get(delivery.environment_id, delivery.id)
            if current is None or current.version != delivery.version:
                return  # its lease ran out and another dispatcher took it over
            await uow.webhook_deliveries.update(current.succeeded(self.clock.now()))
            endpoint = await uow.webhook_endpoints.get(delivery.environment_id,
                                                       delivery.endpoint_id)  # fmt: skip
            if endpoint is not None and (healthy := endpoint.answered()) is not endpoint:
                await uow.webhook_endpoints.update(healthy)
            await uow.commit()

        await self._transaction(record)

    async def _record_webhook_failure(
        self, delivery: WebhookDelivery, reason: str, *, waiting: Sequence[WebhookDelivery]
    ) -> WebhookReport:
        """Back off (or give up), and hold the endpoint's `waiting` deliveries until then."""
        policy = self.webhooks

        async def record(uow: UnitOfWork) -> WebhookReport:
            current = await uow.webhook_deliveries.get(delivery.environment_id, delivery.id)
            if current is None or current.version != delivery.version:
                return WebhookReport()  # another dispatcher took it over
            now = self.clock.now()
            first = current.first_attempt_at or now
            failures = current.attempts + 1
            gives_up = failures >= policy.max_attempts or now - first >= policy.give_up_after
            retry_at = None if gives_up else now + policy.retry_delay(failures)
            await uow.webhook_deliveries.update(
                current.attempt_failed(now, reason, retry_at=retry_at)
            )
            disabled: tuple[str, ...] = ()
            endpoint = await uow.webhook_endpoints.get(delivery.environment_id,
                                                       delivery.endpoint_id)  # fmt: skip
            if endpoint is not None:
                # Failing for all of this delivery's tries, not one answer: the endpoint is off.
                silent = (endpoint.failing_since or now) <= first
                failed = endpoint.failed(now, disable=gives_up and silent)
                if failed is not endpoint:
                    await uow.webhook_endpoints.update(failed)
                if endpoint.active and not failed.active:
                    disabled = (endpoint.id,)
            for held in waiting:
                other = await uow.webhook_deliveries.get(held.environment_id, held.id)
                if other is not None and other.version == held.version:
                    await uow.webhook_deliveries.update(other.rescheduled(retry_at or now))
            await uow.commit()
            if gives_up:
                return WebhookReport(given_up=1, disabled=disabled)
            return WebhookReport(failed=1)

        return await self._transaction(record)

    # Shared helpers --------------------------------------------------------------------

    async def _transaction(self, work: Callable[[UnitOfWork], Awaitable[R]]) -> R:
        """Run `work` in a fresh unit of work, re-running it if it lost a race."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self.uow() as uow:
                    return await work(uow)
            except ConcurrentUpdate:
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _gateway_call(self, call: Awaitable[R]) -> R:
        """A gateway call that charges nothing: an unknown outcome is just a gateway error."""
        try:
            return await call
        except GatewayUnavailable:
            raise GatewayError(
                "The payment gateway did not answer in time; nothing was charged."
            ) from None

    @staticmethod
    def _gateway_customer_id(customer: Customer) -> str:
        if customer.gateway_customer_id is None:
            raise CustomerNotLinked(customer_id=customer.id)
        return customer.gateway_customer_id

    async def _invoice(
        self, uow: UnitOfWork, environment_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice:
        """The invoice; `for_update` locks its row until the transaction ends, where it can."""
        invoice = await uow.invoices.get(environment_id, invoice_id, for_update=for_update)
        if invoice is None:
            raise InvoiceNotFound(invoice_id=invoice_id)
        return invoice

    async def _customer(self, uow: UnitOfWork, environment_id: str, customer_id: str) -> Customer:
        customer = await uow.customers.get(environment_id, customer_id)
        if customer is None:
            raise CustomerNotFound(customer_id=customer_id)
        return customer

    async def _payment(
        self, uow: UnitOfWork, environment_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment:
        payment = await uow.payments.get(environment_id, payment_id, for_update=for_update)
        if payment is None:
            raise PaymentNotFound(payment_id=payment_id)
        return payment

    async def _refund(self, uow: UnitOfWork, environment_id: str, refund_id: str) -> Refund:
        refund = await uow.refunds.get(environment_id, refund_id)
        if refund is None:
            raise NotFound(
                f"No refund {refund_id} exists in this environment.", refund_id=refund_id
            )
        return refund

    # Idempotency -----------------------------------------------------------------------

    def _idempotent(
        self,
        environment_id: str,
        operation: str,
        key: str | None,
        fingerprint: Callable[[], str],
    ) -> IdempotentRequest | None:
        """The request an idempotency key names, if one was given (the fingerprint of its
        body is computed only then)."""
        _replayed.set(False)
        if key is None:
            return None
        return IdempotentRequest(
            environment_id, validate_idempotency_key(key), operation, fingerprint()
        )

    async def _find_replay(
        self, uow: UnitOfWork, request: IdempotentRequest
    ) -> IdempotencyRecord | None:
        """The finished record to replay; raises if the key is busy or was used otherwise."""
        record = await uow.idempotency.get(request.environment_id, request.key)
        return self._replayable(record, request)

    def _replayable(
        self, record: IdempotencyRecord | None, request: IdempotentRequest
    ) -> IdempotencyRecord | None:
        if record is None or record.expires_at <= self.clock.now():
            return None
        if record.operation != request.operation or record.fingerprint != request.fingerprint:
            raise IdempotencyKeyReused()
        if record.state is IdempotencyState.IN_PROGRESS:
            raise IdempotencyKeyInUse()
        return record

    async def _claim(self, uow: UnitOfWork, request: IdempotentRequest) -> Resource | None:
        """Take the key inside this transaction, or return what it already answered."""
        existing = await uow.idempotency.get(request.environment_id, request.key)
        done = self._replayable(existing, request)
        if done is not None:
            return self._stored_resource(done)
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
        return None

    async def _finish(
        self,
        uow: UnitOfWork,
        request: IdempotentRequest,
        *,
        resource: Resource | None = None,
        payment: Payment | None = None,
    ) -> None:
        """Store the final answer to an idempotent request, with the change it made."""
        error: StoredError | None = None
        if payment is not None:
            resource = payment
            if payment.status is PaymentStatus.FAILED and payment.failure is not None:
                failed = self._failure_error(payment)
                error = StoredError(failed.code, failed.message, dict(failed.details))
        if isinstance(resource, Refund) and resource.status is RefundStatus.FAILED:
            try:
                self._refund_outcome(resource)
            except CheckoutError as failed:
                error = StoredError(failed.code, failed.message, dict(failed.details))
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

    @staticmethod
    def _stored_resource(record: IdempotencyRecord) -> Resource:
        """What a finished request answered: its resource, or its error raised again."""
        _replayed.set(True)
        if record.error is not None:
            raise error_from_code(record.error.code, record.error.message, record.error.details)
        assert record.resource is not None, "a finished record holds its answer"
        return record.resource

    def _replay(self, record: IdempotencyRecord, kind: type[R]) -> R:
        resource = self._stored_resource(record)
        if not isinstance(resource, kind):
            raise IdempotencyKeyReused()
        return resource
