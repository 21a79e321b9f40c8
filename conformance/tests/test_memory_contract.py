"""The store contract against the reference memory store (in memory and on disk)."""

from __future__ import annotations

import pytest
from vpa.stores.memory import MemoryStore
from vpa_conformance import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MemoryStore()


class TestPersistedMemoryStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return MemoryStore(tmp_path / "memory")

    @pytest.fixture
    def store_factory(self, tmp_path):
        return lambda: MemoryStore(tmp_path / "memory")
