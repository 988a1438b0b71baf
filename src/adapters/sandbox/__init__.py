"""The sandbox gateway: an in-process simulation of Stripe's test mode."""

from adapters.sandbox.cards import TEST_CARDS, TestCard
from adapters.sandbox.faults import Fault, SandboxFaults
from adapters.sandbox.gateway import SandboxPaymentGateway
from adapters.sandbox.store import InMemorySandboxStore, SandboxStore

__all__ = [
    "TEST_CARDS",
    "Fault",
    "InMemorySandboxStore",
    "SandboxFaults",
    "SandboxPaymentGateway",
    "SandboxStore",
    "TestCard",
]
