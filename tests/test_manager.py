"""The original interface's VPAVectorDatabaseManager, a façade over the store registry."""

from __future__ import annotations

import pytest
from vpa.errors import DimensionMismatch, PluginNotFound
from vpa.manager import (
    VectorDatabaseConfig,
    VectorDatabaseProvider,
    VPAVectorDatabaseManager,
    create_vector_database_manager,
)


async def test_the_original_manager_connects_upserts_queries_and_deletes(tmp_path):
    config = VectorDatabaseConfig(provider=VectorDatabaseProvider.MEMORY, index_name="docs", dimension=3,
                                  options={"persist": False})
    manager = create_vector_database_manager(config)
    assert isinstance(manager, VPAVectorDatabaseManager) and not manager.is_connected
    await manager.connect()
    written = await manager.upsert_vectors([
        {"id": "a", "values": [1.0, 0.0, 0.0], "metadata": {"k": "x"}, "text": "alpha"},
        {"id": "b", "values": [0.0, 1.0, 0.0], "metadata": {"k": "y"}},
    ])
    assert written == 2 and await manager.count() == 2
    hits = await manager.query([1.0, 0.1, 0.0], top_k=2, filter={"k": "x"})
    assert [h["id"] for h in hits] == ["a"] and hits[0]["text"] == "alpha"
    assert (await manager.health_check())["healthy"] is True
    assert (await manager.get_stats())["total_vectors"] == 2
    with pytest.raises(DimensionMismatch):
        await manager.upsert_vectors([{"id": "c", "values": [1.0, 2.0]}])
    assert await manager.delete(ids=["a"]) == 1
    await manager.disconnect()


def test_the_original_provider_names_resolve_to_installed_plugins():
    assert VectorDatabaseConfig(provider=VectorDatabaseProvider.CHROMADB).provider_name == "chroma"
    assert VectorDatabaseConfig(provider="qdrant").provider_name == "qdrant"
    with pytest.raises(PluginNotFound, match="unknown store 'nosuch'"):
        create_vector_database_manager(provider="nosuch")


async def test_the_manager_passes_its_settings_to_the_plugin(tmp_path):
    pytest.importorskip("vpa_chroma")
    manager = create_vector_database_manager(provider="chromadb", index_name="idx", dimension=4,
                                             options={"path": str(tmp_path / "chroma")})
    async with manager:
        await manager.upsert([{"id": "v", "values": [0.1, 0.2, 0.3, 0.4]}])
        assert await manager.count() == 1
    assert (tmp_path / "chroma").exists()
