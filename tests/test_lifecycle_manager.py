"""The original manager's contract 1.1 calls: scroll, scroll_page, update_metadata, list_indexes."""

from __future__ import annotations

import pytest

from vpa.errors import UnsupportedOperation
from vpa.manager import create_vector_database_manager


async def test_scroll_and_update_through_the_manager():
    manager = create_vector_database_manager(provider="memory", index_name="docs", dimension=2,
                                             options={"persist": False})
    async with manager:
        await manager.upsert_vectors([{"id": f"v{i}", "values": [1.0, float(i)], "text": f"t{i}",
                                       "metadata": {"k": i}} for i in range(7)])
        pages = [page async for page in manager.scroll(batch_size=3, with_vectors=False)]
        assert [[r.id for r in p.records] for p in pages] == [["v0", "v1", "v2"], ["v3", "v4", "v5"], ["v6"]]
        first = await manager.scroll_page({"k": {"$gte": 2}}, batch_size=2)
        rest = await manager.scroll_page({"k": {"$gte": 2}}, batch_size=10, cursor=first.cursor)
        assert [r.id for r in first.records + rest.records] == ["v2", "v3", "v4", "v5", "v6"]
        assert await manager.update_metadata(filter={"k": {"$gte": 5}}, set={"late": True}) == 2
        assert await manager.update_metadata(["v0"], unset=["k"]) == 1
        found = {r.id: r for r in await manager.fetch(["v0", "v5", "v6"])}
        assert found["v0"].metadata == {} and found["v5"].metadata == {"k": 5, "late": True}
        assert found["v6"].text == "t6" and list(found["v6"].vector) == [1.0, 6.0]
        assert await manager.list_indexes() == ["docs"]


async def test_a_1_0_provider_refuses_them(monkeypatch):
    from vpa.models import StoreCapabilities
    from vpa.stores.memory import MemoryStore

    manager = create_vector_database_manager(provider="memory", index_name="docs", dimension=2,
                                             options={"persist": False})
    async with manager:
        monkeypatch.setattr(MemoryStore, "capabilities", StoreCapabilities(exact=True))
        with pytest.raises(UnsupportedOperation):
            await manager.scroll_page()
        with pytest.raises(UnsupportedOperation):
            await manager.update_metadata(["v0"], set={"k": 1})
