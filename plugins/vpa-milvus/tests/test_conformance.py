"""The VPA conformance suite against Milvus: Milvus Lite always, a Milvus server when given one.

No Milvus server can run on the development machine (no Docker), so server mode runs only when
``VPA_MILVUS_URI`` names one (``VPA_MILVUS_TOKEN`` for a server with authentication on)::

    VPA_MILVUS_URI=http://localhost:19530 pytest plugins/vpa-milvus/tests/test_conformance.py
"""

from __future__ import annotations

import os

import pytest
from vpa_conformance import StoreContract
from vpa_milvus.store import MilvusStore

SERVER_URI = os.environ.get("VPA_MILVUS_URI", "")
SERVER_TOKEN = os.environ.get("VPA_MILVUS_TOKEN") or None
SERVER_SKIP_REASON = (
    "no Milvus server configured: set VPA_MILVUS_URI=http://host:19530 (and VPA_MILVUS_TOKEN if "
    "authentication is on) to run the server-mode conformance tests"
)


class TestMilvusLiteConformance(StoreContract):
    """Milvus Lite on a fresh .db file, served by the store's helper process."""

    @pytest.fixture
    def db_path(self, tmp_path):
        return str(tmp_path / "milvus" / "vpa.db")

    @pytest.fixture
    def store(self, db_path):
        return MilvusStore(db_path)

    @pytest.fixture
    def store_factory(self, db_path):
        """Another instance over the same file (after the first is closed)."""
        return lambda: MilvusStore(db_path)


@pytest.mark.skipif(not SERVER_URI, reason=SERVER_SKIP_REASON)
class TestMilvusServerConformance(StoreContract):
    """A Milvus standalone or distributed server (FLAT index, Strong consistency)."""

    @pytest.fixture
    def store(self):
        return MilvusStore(SERVER_URI, token=SERVER_TOKEN)

    @pytest.fixture
    def store_factory(self):
        return lambda: MilvusStore(SERVER_URI, token=SERVER_TOKEN)
