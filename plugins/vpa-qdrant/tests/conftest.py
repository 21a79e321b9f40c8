from __future__ import annotations

import os
from pathlib import Path

import pytest
from vpa_qdrant.settings import QdrantSettings
from vpa_qdrant.store import QdrantStore

SERVER_URL = os.environ.get("VPA_QDRANT_URL")
SERVER_API_KEY = os.environ.get("VPA_QDRANT_API_KEY")
SERVER_SKIP = (
    "no Qdrant server: set VPA_QDRANT_URL=http://host:6333 (and VPA_QDRANT_API_KEY if it needs one) "
    "to run the server-mode tests; no Qdrant server binary is installable on this machine"
)


def make_store(mode: str, tmp_path) -> QdrantStore:
    """``local`` (qdrant-client's local mode, the default), ``edge`` (Qdrant Edge, opt-in),
    ``memory`` or ``server``."""
    if mode == "local":
        return QdrantStore(QdrantSettings(path=str(tmp_path / "qdrant")))
    if mode == "edge":
        return QdrantStore(QdrantSettings(path=str(tmp_path / "qdrant-edge"), engine="edge"))
    if mode == "memory":
        return QdrantStore(QdrantSettings(in_memory=True))
    if not SERVER_URL:
        pytest.skip(SERVER_SKIP)
    return QdrantStore(QdrantSettings(url=SERVER_URL), api_key=SERVER_API_KEY)


def assert_vectors(point, dense: list[float], text: str, avg_len: float) -> None:
    """A stored point's two vectors: the unit dense vector, and the sparse BM25 terms of ``text``
    normalised with ``avg_len`` (`vpa_qdrant.lexical`), on either engine's point class."""
    import numpy as np
    from vpa_qdrant import lexical

    vectors = point.vector
    assert set(vectors) == {"", lexical.SPARSE_VECTOR}
    np.testing.assert_allclose(vectors[""], dense, rtol=1e-6)
    want = lexical.document_vector(text, avg_len)
    sparse = vectors[lexical.SPARSE_VECTOR]
    assert list(sparse.indices) == want.indices
    np.testing.assert_allclose(list(sparse.values), want.values, rtol=1e-6)


def edge_points(root: Path, collection: str, point_ids: list[str]) -> list:
    """The points as Qdrant Edge stores them, read from the shard itself (the store closed)."""
    import qdrant_edge

    shard = qdrant_edge.EdgeShard.load(str(Path(root) / "collections" / collection / "shard"))
    try:
        return shard.retrieve(point_ids, True, True)
    finally:
        shard.close()


@pytest.fixture(params=["local", "edge", "server"])
async def store(request, tmp_path):
    """A fresh store on each engine (server mode only when VPA_QDRANT_URL is set)."""
    s = make_store(request.param, tmp_path)
    yield s
    for name in await s.list_collections():
        if name.startswith("t_"):
            await s.drop_collection(name)
    await s.close()


@pytest.fixture
async def local_store(tmp_path):
    """qdrant-client's local mode, the default embedded engine."""
    s = make_store("local", tmp_path)
    yield s
    await s.close()
