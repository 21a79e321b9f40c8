"""The template store against the whole store contract."""

import pytest
from vpa_conformance import StoreContract
from vpa_dictstore.store import DictStore


class TestDictStore(StoreContract):
    @pytest.fixture
    def store(self):
        return DictStore()  # a fresh instance; no I/O here. The suite closes it.
