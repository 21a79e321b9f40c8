"""The VPA conformance suite against Qdrant: Qdrant Edge (the embedded engine) always, a server
when one is given.

Server mode needs a running Qdrant server (none can be installed on the development machine):
``VPA_QDRANT_URL=http://host:6333 [VPA_QDRANT_API_KEY=...] pytest plugins/vpa-qdrant/tests``.
qdrant-client's local mode (``engine = "client"``, kept for 0.3 folders) is covered by the
store, filter and scroll tests, not by this run.
"""

from __future__ import annotations

import os

import pytest
from vpa_conformance import StoreContract
from vpa_qdrant.settings import QdrantSettings
from vpa_qdrant.store import QdrantStore

SERVER_URL = os.environ.get("VPA_QDRANT_URL")
SERVER_API_KEY = os.environ.get("VPA_QDRANT_API_KEY")


class TestQdrantEdgeConformance(StoreContract):
    """Qdrant Edge, persisted to a fresh folder on disk (it does not fsync per write)."""

    @pytest.fixture
    def store(self, tmp_path):
        return QdrantStore(QdrantSettings(path=str(tmp_path / "qdrant-edge")))

    @pytest.fixture
    def store_factory(self, tmp_path):
        return lambda: QdrantStore(QdrantSettings(path=str(tmp_path / "qdrant-edge")))


@pytest.mark.skipif(
    not SERVER_URL,
    reason="no Qdrant server: set VPA_QDRANT_URL (and VPA_QDRANT_API_KEY if needed) to run server mode",
)
class TestQdrantServerConformance(StoreContract):
    """A Qdrant server (REST, HNSW search as declared)."""

    @pytest.fixture
    def store(self):
        return QdrantStore(QdrantSettings(url=SERVER_URL), api_key=SERVER_API_KEY)

    @pytest.fixture
    def store_factory(self):
        return lambda: QdrantStore(QdrantSettings(url=SERVER_URL), api_key=SERVER_API_KEY)
