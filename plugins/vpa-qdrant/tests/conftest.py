from __future__ import annotations

import os

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
    if mode == "local":
        return QdrantStore(QdrantSettings(path=str(tmp_path / "qdrant")))
    if mode == "memory":
        return QdrantStore(QdrantSettings(in_memory=True))
    if not SERVER_URL:
        pytest.skip(SERVER_SKIP)
    return QdrantStore(QdrantSettings(url=SERVER_URL), api_key=SERVER_API_KEY)


@pytest.fixture(params=["local", "server"])
async def store(request, tmp_path):
    """A fresh store in each mode (server mode only when VPA_QDRANT_URL is set)."""
    s = make_store(request.param, tmp_path)
    yield s
    for name in await s.list_collections():
        if name.startswith("t_"):
            await s.drop_collection(name)
    await s.close()


@pytest.fixture
async def local_store(tmp_path):
    s = make_store("local", tmp_path)
    yield s
    await s.close()
