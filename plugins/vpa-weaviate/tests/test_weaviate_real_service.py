"""Against a real Weaviate, when ``VPA_WEAVIATE_URL`` is set (skipped otherwise, saying how to run
them). The conformance suite runs there too (`test_conformance.TestWeaviateRealServiceConformance`);
these add what only a real server can tell: its version, and that its errors map as on the
stand-in. Every class is created under a prefix unique to the run and dropped at the end."""

from __future__ import annotations

import pytest
from vpa.errors import CollectionNotFound, StoreAuthError
from vpa.models import EmbedderFingerprint, Record
from weaviate_support import RealWeaviate


async def test_round_trip_filters_and_persistence(real_weaviate: RealWeaviate, unique_name: str) -> None:
    store = real_weaviate.store()
    fingerprint = EmbedderFingerprint("hashing", "real", 3)
    try:
        health = await store.health()
        assert health.ok, health.detail
        await store.create_collection(unique_name, 3, fingerprint=fingerprint)
        records = [
            Record("a", [1, 0, 0], " café ", {"n": 1, "f": 1.0, "s": " x", "b": True, "l": ["p"], "e": []}),
            Record("b", [0, 1, 0], "", {"n": 2, "s": "x"}),
            Record("c", [0, 0, 1], "\U0001f600", {}),
        ]
        assert await store.upsert(unique_name, records) == 3
        assert await store.get(unique_name, ["a", "b", "c"]) == records
        assert await store.count(unique_name, {"s": "x"}) == 1
        assert await store.count(unique_name, {"s": {"$ne": "x"}}) == 2
        assert await store.count(unique_name, {"l": "p"}) == 1
        assert await store.count(unique_name, {"n": {"$gt": 1.5}}) == 1
        hits = await store.query(unique_name, [1, 0.1, 0], 2)
        assert [h.id for h in hits] == ["a", "b"] and hits[0].score > hits[1].score
        other = real_weaviate.store()
        try:
            info = await other.open_collection(unique_name)
            assert info.fingerprint == fingerprint
        finally:
            await other.close()
        assert await store.delete(unique_name, filter={"b": True}) == 1
        assert await store.drop_collection(unique_name)
        with pytest.raises(CollectionNotFound):
            await store.count(unique_name)
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_wrong_api_key_is_store_auth_error(real_weaviate: RealWeaviate) -> None:
    if not real_weaviate.api_key:
        pytest.skip("the Weaviate in VPA_WEAVIATE_URL has no API key (VPA_WEAVIATE_API_KEY is not set)")
    store = real_weaviate.store(api_key="not-the-key")
    try:
        with pytest.raises(StoreAuthError):
            await store.list_collections()
    finally:
        await store.close()
