"""The VPA conformance suite against Qdrant: local mode always, server mode when one is given.

Server mode needs a running Qdrant server (none can be installed on the development machine):
``VPA_QDRANT_URL=http://host:6333 [VPA_QDRANT_API_KEY=...] pytest plugins/vpa-qdrant/tests``.
"""

from __future__ import annotations

import os

import pytest
from vpa_conformance import StoreContract
from vpa_qdrant import QdrantStore

SERVER_URL = os.environ.get("VPA_QDRANT_URL")


class TestQdrantLocalConformance(StoreContract):
    """The embedded engine, persisted to a fresh folder."""

    @pytest.fixture
    def store(self, tmp_path):
        return QdrantStore(path=tmp_path / "qdrant")


@pytest.mark.skipif(
    not SERVER_URL,
    reason="no Qdrant server: set VPA_QDRANT_URL (and VPA_QDRANT_API_KEY if needed) to run server mode",
)
class TestQdrantServerConformance(StoreContract):
    """A Qdrant server (REST, HNSW search as declared)."""

    @pytest.fixture
    def store(self):
        return QdrantStore(url=SERVER_URL, api_key=os.environ.get("VPA_QDRANT_API_KEY"))
