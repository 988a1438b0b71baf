"""The storage contract on in-memory storage."""

from __future__ import annotations

import pytest

from adapters.memory import InMemoryUnitOfWorkFactory
from core.ports import UnitOfWorkFactory
from tests.storage_contract import StorageContract


class TestInMemoryStorage(StorageContract):
    @pytest.fixture
    def units(self) -> UnitOfWorkFactory:
        return InMemoryUnitOfWorkFactory()
