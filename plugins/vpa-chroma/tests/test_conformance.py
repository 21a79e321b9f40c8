"""The VPA store contract (vpa_conformance.StoreContract) against Chroma, in both modes."""

from __future__ import annotations

import pytest
from vpa_chroma.store import ChromaStore
from vpa_conformance import StoreContract


class TestChromaEmbedded(StoreContract):
    """chromadb.PersistentClient on a fresh folder."""

    @pytest.fixture
    def store(self, tmp_path):  # type: ignore[no-untyped-def]
        return ChromaStore(path=tmp_path / "chroma")

    @pytest.fixture
    def store_factory(self, tmp_path):  # type: ignore[no-untyped-def]
        return lambda: ChromaStore(path=tmp_path / "chroma")


class TestChromaServer(StoreContract):
    """chromadb.HttpClient against the session's `chroma run` server."""

    @pytest.fixture
    def store(self, chroma_server):  # type: ignore[no-untyped-def]
        return ChromaStore(host=chroma_server.host, port=chroma_server.port)

    @pytest.fixture
    def store_factory(self, chroma_server):  # type: ignore[no-untyped-def]
        return lambda: ChromaStore(host=chroma_server.host, port=chroma_server.port)
