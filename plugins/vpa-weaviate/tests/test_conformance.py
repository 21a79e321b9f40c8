"""The VPA conformance suite against the Weaviate plugin.

- `TestWeaviateConformance`: the official client, unmodified, against the Weaviate *stand-in*
  (``tests/standin``: REST + gRPC on loopback ports, started by the session fixture).
- `TestWeaviateTenantConformance`: the same, with the store bound to a Weaviate tenant
  (multi-tenant collections).
- `TestWeaviateRealServiceConformance`: a real Weaviate, when ``VPA_WEAVIATE_URL`` is set (and
  ``VPA_WEAVIATE_API_KEY`` if it needs one; ``VPA_WEAVIATE_GRPC_URL`` if gRPC is not on the
  default host and port). Every run uses its own class prefix, and drops what it created.
"""

from __future__ import annotations

import pytest
from vpa_conformance import StoreContract


class TestWeaviateConformance(StoreContract):
    @pytest.fixture
    def store(self, standin):
        return standin.store()

    @pytest.fixture
    def store_factory(self, standin):
        return lambda: standin.store()


class TestWeaviateTenantConformance(StoreContract):
    @pytest.fixture
    def store(self, standin):
        return standin.store(tenant="tenant-a")

    @pytest.fixture
    def store_factory(self, standin):
        return lambda: standin.store(tenant="tenant-a")


class TestWeaviateRealServiceConformance(StoreContract):
    @pytest.fixture
    def store(self, real_weaviate):
        return real_weaviate.store()

    @pytest.fixture
    def store_factory(self, real_weaviate):
        return lambda: real_weaviate.store()
