"""The VPA conformance suite against Qdrant: qdrant-client's local mode (the default embedded
engine) always, a server when one is given.

Server mode needs a running Qdrant server (none can be installed on the development machine):
``VPA_QDRANT_URL=http://host:6333 [VPA_QDRANT_API_KEY=...] pytest plugins/vpa-qdrant/tests``.

Qdrant Edge (``engine = "edge"``, opt-in) is not run through the whole suite: qdrant-edge-py 0.9
stores about one in eight drawn 17-significant-digit floats one ulp off, so the suite's "every
record comes back as written" fails on it by that known defect (the README; the strict xfail
``test_store.py::test_edge_keeps_17_digit_floats_exactly``). It runs the suite's lexical and
hybrid clauses (`TestQdrantEdgeLexicalConformance`: the lexical search this plugin adds, on
Qdrant's Rust engine), and the plugin's own tests cover the rest: filters on random trees against
the reference (`test_filters.py`), scroll and update (`test_qdrant_scroll_update.py`), payload
layout, folder lock and ``kill -9`` durability (`test_store.py`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import attrs
import pytest
from vpa.models import MetadataType
from vpa_conformance import StoreContract
from vpa_conformance.store.lexical import LexicalClauses
from vpa_qdrant.settings import QdrantSettings
from vpa_qdrant.store import QdrantStore

SERVER_URL = os.environ.get("VPA_QDRANT_URL")
SERVER_API_KEY = os.environ.get("VPA_QDRANT_API_KEY")


@pytest.fixture
def data_dir(tmp_path):
    """A fresh data folder, on tmpfs when the machine has one.

    The client's local mode commits every point to SQLite separately; on a disk each commit waits
    for an fsync (about 5 ms here), which makes the suite's 5,000-record clauses take minutes.
    The behaviour under test is the same on tmpfs; the folder is removed afterwards.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / "qdrant"
        return
    folder = Path(tempfile.mkdtemp(prefix="vpa-qdrant-", dir=shm))
    try:
        yield folder / "qdrant"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class TestQdrantLocalConformance(StoreContract):
    """qdrant-client's local mode, the default embedded engine, persisted to a fresh folder."""

    @pytest.fixture
    def store(self, data_dir):
        return QdrantStore(QdrantSettings(path=str(data_dir)))

    @pytest.fixture
    def store_factory(self, data_dir):
        return lambda: QdrantStore(QdrantSettings(path=str(data_dir)))


class TestQdrantEdgeLexicalConformance(LexicalClauses):
    """Qdrant Edge, persisted to a fresh folder: the suite's lexical and hybrid clauses only (see
    the module docstring), with the suite's own harness fixture.

    Float metadata is left out of what the clauses draw (the store's declared metadata types,
    for this run only): a drawn 17-digit float stored one ulp off (the known defect) fails
    ``test_lexical_filters`` by a ``$ne`` on it, which says nothing about lexical search. Edge's
    float filters are covered, defect and all, by ``test_filters.py``."""

    vpa_store = StoreContract.vpa_store

    @pytest.fixture
    def store(self, data_dir):
        store = QdrantStore(QdrantSettings(path=str(data_dir.with_name("qdrant-edge")), engine="edge"))
        caps = store.capabilities
        store.capabilities = attrs.evolve(caps, metadata_types=caps.metadata_types - {MetadataType.FLOAT})
        return store


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
