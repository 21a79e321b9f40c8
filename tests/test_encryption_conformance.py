"""The store contract holds through encryption at rest: `EncryptedTextStore` over the memory
store (in memory), and over a memory store that declares a record byte limit, so the lowered
limits it declares are checked exactly at their edge."""

from __future__ import annotations

import attrs
import pytest
from vpa.crypto import EncryptedTextStore, parse_key
from vpa.stores.memory import MemoryStore
from vpa_conformance import StoreContract

KEY = parse_key("q2Vn0QJ1cJgT3yDk1bOe7m5r4dY8sWm2vX6tZ9pL0aA=")


class BoundedMemoryStore(MemoryStore):
    capabilities = attrs.evolve(MemoryStore.capabilities, max_record_bytes=8192)


class TestEncryptedMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return EncryptedTextStore(MemoryStore(), KEY)


class TestEncryptedBoundedStore(StoreContract):
    @pytest.fixture
    def store(self):
        return EncryptedTextStore(BoundedMemoryStore(), KEY)
