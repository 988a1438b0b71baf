"""Each adapter really implements its port: same methods, same parameters, same async-ness."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from adapters.addresses import StaticAddressResolver, SystemAddressResolver
from adapters.clock import ManualClock, SystemClock
from adapters.ids import UlidIdGenerator
from adapters.memory import (
    InMemoryApiKeyRepository,
    InMemoryCustomerRepository,
    InMemoryEnvironmentRepository,
    InMemoryGatewayEventLog,
    InMemoryIdempotencyRepository,
    InMemoryInvoiceRepository,
    InMemoryOutboxRepository,
    InMemoryPaymentRepository,
    InMemoryRefundRepository,
    InMemoryStore,
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
    InMemoryWebhookDeliveryRepository,
    InMemoryWebhookEndpointRepository,
)
from adapters.notifiers import LoggingNotifier, RecordingNotifier
from adapters.sandbox import InMemorySandboxStore, SandboxPaymentGateway, SandboxStore
from adapters.sql import SqlSandboxStore, SqlUnitOfWork
from adapters.sql.repositories import (
    SqlApiKeyRepository,
    SqlCustomerRepository,
    SqlEnvironmentRepository,
    SqlGatewayEventLog,
    SqlIdempotencyRepository,
    SqlInvoiceRepository,
    SqlOutboxRepository,
    SqlPaymentRepository,
    SqlRefundRepository,
    SqlWebhookDeliveryRepository,
    SqlWebhookEndpointRepository,
)
from adapters.webhooks import HttpWebhookSender
from core import ports

IMPLEMENTATIONS: list[tuple[type[Any], type[Any]]] = [
    (ports.PaymentGateway, SandboxPaymentGateway),
    (ports.UnitOfWork, InMemoryUnitOfWork),
    (ports.UnitOfWork, SqlUnitOfWork),
    (ports.EnvironmentRepository, InMemoryEnvironmentRepository),
    (ports.EnvironmentRepository, SqlEnvironmentRepository),
    (ports.ApiKeyRepository, InMemoryApiKeyRepository),
    (ports.ApiKeyRepository, SqlApiKeyRepository),
    (ports.CustomerRepository, SqlCustomerRepository),
    (ports.InvoiceRepository, SqlInvoiceRepository),
    (ports.PaymentRepository, SqlPaymentRepository),
    (ports.RefundRepository, SqlRefundRepository),
    (ports.IdempotencyRepository, SqlIdempotencyRepository),
    (ports.OutboxRepository, SqlOutboxRepository),
    (ports.GatewayEventLog, SqlGatewayEventLog),
    (ports.CustomerRepository, InMemoryCustomerRepository),
    (ports.InvoiceRepository, InMemoryInvoiceRepository),
    (ports.PaymentRepository, InMemoryPaymentRepository),
    (ports.RefundRepository, InMemoryRefundRepository),
    (ports.IdempotencyRepository, InMemoryIdempotencyRepository),
    (ports.OutboxRepository, InMemoryOutboxRepository),
    (ports.GatewayEventLog, InMemoryGatewayEventLog),
    (ports.WebhookEndpointRepository, InMemoryWebhookEndpointRepository),
    (ports.WebhookEndpointRepository, SqlWebhookEndpointRepository),
    (ports.WebhookDeliveryRepository, InMemoryWebhookDeliveryRepository),
    (ports.WebhookDeliveryRepository, SqlWebhookDeliveryRepository),
    (ports.WebhookSender, HttpWebhookSender),
    (ports.AddressResolver, SystemAddressResolver),
    (ports.AddressResolver, StaticAddressResolver),
    (ports.Clock, SystemClock),
    (ports.Clock, ManualClock),
    (ports.IdGenerator, UlidIdGenerator),
    (ports.Notifier, RecordingNotifier),
    (ports.Notifier, LoggingNotifier),
    (SandboxStore, InMemorySandboxStore),
    (SandboxStore, SqlSandboxStore),
]


def _members(protocol: type[Any]) -> dict[str, Any]:
    own = {
        name: value
        for name, value in vars(protocol).items()
        if callable(value) and (not name.startswith("_") or name in {"__aenter__", "__aexit__"})
    }
    assert own, f"{protocol.__name__} declares no methods"
    return own


def _parameters(function: Any) -> list[tuple[str, Any]]:
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(
    ("protocol", "adapter"), IMPLEMENTATIONS, ids=lambda c: getattr(c, "__name__", "")
)
def test_adapter_has_every_method_of_its_port_with_the_same_signature(
    protocol: type[Any], adapter: type[Any]
) -> None:
    for name, declared in _members(protocol).items():
        implemented = getattr(adapter, name, None)
        assert implemented is not None, f"{adapter.__name__} lacks {name}"
        assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared), (
            f"{adapter.__name__}.{name}: async-ness differs from {protocol.__name__}"
        )
        assert _parameters(implemented) == _parameters(declared), (
            f"{adapter.__name__}.{name} parameters differ from {protocol.__name__}"
        )


@pytest.mark.parametrize(
    "repository",
    [
        "environments",
        "api_keys",
        "customers",
        "invoices",
        "payments",
        "refunds",
        "idempotency",
        "outbox",
        "gateway_events",
        "webhook_endpoints",
        "webhook_deliveries",
    ],
)
def test_unit_of_work_exposes_each_repository(repository: str) -> None:
    unit = InMemoryUnitOfWorkFactory(InMemoryStore())()
    assert repository in {name for name, _ in inspect.getmembers(ports.UnitOfWork)}
    assert getattr(unit, repository) is not None
