"""The RAG system end to end on the memory store with the hashing embedder."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpa.caches.lru import LRUCache
from vpa.embedders.hashing import HashingEmbedder
from vpa.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    EmbedderMismatch,
    InvalidFilter,
    InvalidMetadata,
    ValidationError,
)
from vpa.models import Document
from vpa.rag import create_enhanced_rag_system
from vpa.stores.memory import MemoryStore

DOCS = [
    Document("photosynthesis", "Plants capture sunlight in chloroplasts and make sugar from carbon dioxide and water. " * 6,
             "Photosynthesis", {"category": "science", "year": 2021, "tags": ["biology", "plants"]}),
    Document("index-funds", "An index fund buys every stock of a market index, so its fees stay low. " * 6,
             "Index funds", {"category": "finance", "year": 2019, "tags": ["investing"]}),
    Document("sourdough", "Sourdough bread rises with wild yeast and lactic acid bacteria from a starter. " * 6,
             "Sourdough", {"category": "cooking", "year": 2023, "tags": ["bread", "fermentation"]}),
]


@pytest.fixture
async def rag(config):
    system = create_enhanced_rag_system(config)
    await system.initialize()
    await system.add_documents(DOCS)
    yield system
    await system.shutdown()


async def test_search_finds_the_relevant_document_and_filters_apply(rag):
    results = await rag.search_knowledge("u", "sunlight sugar chloroplasts", top_k=3)
    assert results[0].document_id == "photosynthesis" and results[0].title == "Photosynthesis"
    assert results[0].metadata["tags"] == ["biology", "plants"]
    assert all(not k.startswith("vpa_") for r in results for k in r.metadata)
    filtered = await rag.search_knowledge("u", "sunlight sugar chloroplasts", top_k=10, filters={"year": {"$gte": 2022}})
    assert {r.document_id for r in filtered} == {"sourdough"}
    with pytest.raises(InvalidFilter):
        await rag.search_knowledge("u", "x", filters={"year": {"$near": 1}})
    with pytest.raises(ValidationError):
        await rag.search_knowledge("u", "  ")


async def test_changing_a_result_changes_nothing_stored(rag):
    first = await rag.search_knowledge("u", "sunlight sugar chloroplasts", top_k=1)
    first[0].metadata["tags"].append("mutated")
    first[0].metadata["category"] = "mutated"
    rag.cache.clear()
    again = await rag.search_knowledge("u", "sunlight sugar chloroplasts", top_k=1)
    assert again[0].metadata["tags"] == ["biology", "plants"] and again[0].metadata["category"] == "science"


async def test_re_ingesting_unchanged_documents_is_a_no_op(rag):
    before = await rag.get_system_stats()
    results = await rag.add_documents(DOCS)
    assert all(r.unchanged for r in results)
    assert await rag.get_system_stats() == before


async def test_replacing_a_document_leaves_no_old_chunks(rag):
    old = await rag.get_system_stats()
    result = await rag.add_document("photosynthesis", "Photosynthesis", "Short now.", {"category": "science"})
    assert result.chunks == 1 and not result.unchanged
    stats = await rag.get_system_stats()
    assert stats["documents"] == 3 and stats["chunks"] < old["chunks"]
    assert (await rag.get_document("photosynthesis")).content == "Short now."
    hits = await rag.search_knowledge("u", "chloroplasts carbon dioxide", top_k=20, filters={"category": "science"})
    assert [h.chunk_id for h in hits] == ["photosynthesis#0"]


async def test_results_cache_is_invalidated_by_writes(rag):
    first = await rag.search_knowledge("u", "wild yeast starter", top_k=1)
    again = await rag.search_knowledge("u", "wild yeast starter", top_k=1)
    assert first == again and rag.cache.stats().hits >= 1
    await rag.add_document("yeast", "Yeast", "wild yeast starter wild yeast starter", {})
    after = await rag.search_knowledge("u", "wild yeast starter", top_k=1)
    assert after[0].document_id == "yeast"
    await rag.delete_document("yeast")
    assert (await rag.search_knowledge("u", "wild yeast starter", top_k=1))[0].document_id == "sourdough"


async def test_update_delete_get_and_history(rag):
    await rag.update_document("index-funds", metadata={"category": "finance", "year": 2024})
    doc = await rag.get_document("index-funds")
    assert doc.metadata == {"category": "finance", "year": 2024} and doc.title == "Index funds"
    with pytest.raises(DocumentNotFound):
        await rag.update_document("nope", title="x")
    assert await rag.delete_document("index-funds") is True
    assert await rag.delete_document("index-funds") is False
    assert await rag.get_document("index-funds") is None
    await rag.search_knowledge("alice", "bread", top_k=2)
    await rag.search_knowledge("alice", "plants", top_k=2, filters={"category": "science"})
    history = rag.get_search_history("alice")
    assert len(history) == 2 and history[0].filtered and "plants" not in repr(history)
    stats = await rag.get_system_stats()
    assert stats["total_searches"] == 2 and stats["documents"] == 2 and stats["p95_latency_ms"] >= 0


async def test_tenants_are_isolated_whatever_the_filter(config):
    system = create_enhanced_rag_system(config)
    await system.add_document("same-id", "A", "alpha secret plans", {"k": 1}, tenant="a")
    await system.add_document("same-id", "B", "beta other plans", {"k": 1}, tenant="b")
    sneaky = {"$or": [{"vpa_tenant": "a"}, {"k": 1}]}
    hits = await system.search_knowledge("u", "alpha secret plans", top_k=10, filters=sneaky, tenant="b")
    assert {h.content for h in hits} == {"beta other plans"}
    assert (await system.get_document("same-id", tenant="a")).title == "A"
    assert (await system.get_system_stats(tenant="a"))["documents"] == 1
    assert await system.delete_document("same-id", tenant="b")
    assert await system.get_document("same-id", tenant="a") is not None
    await system.shutdown()


async def test_bad_documents_are_refused_before_any_write(config):
    system = create_enhanced_rag_system(config.replace(max_batch_size=3, max_document_bytes=100))
    good = Document("good", "fine text")
    cases = [
        ([good, Document("", "x")], ValidationError),
        ([good, Document("x", "   ")], ValidationError),
        ([good, Document("x", "y" * 101)], DocumentTooLarge),
        ([good, Document("x", "y", metadata={"vpa_tenant": "z"})], InvalidMetadata),
        ([good, Document("x", "y", metadata={"nested": {"a": 1}})], InvalidMetadata),
    ]
    for documents, error in cases:
        with pytest.raises(error):
            await system.add_documents(documents)
    assert (await system.get_system_stats())["chunks"] == 0
    await system.shutdown()


async def test_a_library_call_takes_any_number_of_documents(config, monkeypatch):
    """`add_documents` of more documents than VPA_MAX_BATCH_SIZE used to raise BatchTooLarge (8,674
    documents, limit 1,000): the limit is the HTTP route's; the library streams in groups."""
    import vpa.rag

    monkeypatch.setattr(vpa.rag, "INGEST_GROUP", 7)
    system = create_enhanced_rag_system(config.replace(max_batch_size=5))
    documents = [Document(f"d{i}", f"text number {i}") for i in range(40)]
    results = await system.add_documents(documents)
    assert [r.document_id for r in results] == [d.id for d in documents] and not any(r.unchanged for r in results)
    assert (await system.get_system_stats())["documents"] == 40
    assert all(r.unchanged for r in await system.add_documents(documents))
    await system.shutdown()


async def test_switching_embedders_on_a_filled_collection_fails_at_once(config):
    system = create_enhanced_rag_system(config)
    await system.add_document("d", "", "some text")
    await system.shutdown()
    other = create_enhanced_rag_system(config, embedder=HashingEmbedder(dimension=256))
    with pytest.raises(Exception) as caught:
        await other.initialize()
    assert caught.type.__name__ in {"DimensionMismatch", "EmbedderMismatch"}
    await other.shutdown()
    same_dim = HashingEmbedder(384)
    same_dim.name = "hashing-v2"
    third = create_enhanced_rag_system(config, embedder=same_dim)
    with pytest.raises(EmbedderMismatch, match="re-index"):
        await third.initialize()
    await third.shutdown()


@given(st.text(min_size=1, max_size=600).filter(str.strip), st.integers(20, 120))
async def test_documents_are_rebuilt_exactly_from_their_chunks(text, size):
    store = MemoryStore()
    system = create_enhanced_rag_system(
        {"embedder": "hashing", "chunk_size": size, "chunk_overlap": size // 4}, store=store, cache=LRUCache()
    )
    await system.add_document("doc", "T", text, {"k": "v"})
    assert (await system.get_document("doc")).content == text


async def test_search_history_forgets_the_least_recent_users(config, monkeypatch):
    import vpa.telemetry

    monkeypatch.setattr(vpa.telemetry, "MAX_USERS_PER_TENANT", 3)
    system = create_enhanced_rag_system(config)
    await system.add_document("d", "", "some text")
    await system.add_document("d", "", "some text", tenant="other")
    await system.search_knowledge("keep", "text", tenant="other")
    for user in ["a", "b", "c", "a", "d"]:
        await system.search_knowledge(user, "text")
    assert [bool(system.get_search_history(u)) for u in "abcd"] == [True, False, True, True]
    # another tenant's traffic never evicts this tenant's history, nor shows in its figures
    assert len(system.get_search_history("keep", tenant="other")) == 1
    assert system.get_search_history("keep") == []
    assert (await system.get_system_stats(tenant="other"))["total_searches"] == 1
    assert (await system.get_system_stats())["total_searches"] == 6
    await system.shutdown()


async def test_a_tenant_never_reads_or_takes_over_untenanted_documents_with_its_prefix(config):
    """`vpa ingest` without a tenant stores `acme/secret.txt`; tenant `acme` asking for `secret.txt`
    used to read it (the chunk ids collided) and could overwrite it."""
    system = create_enhanced_rag_system(config)
    await system.add_document("acme/secret.txt", "Secret", "the untenanted secret text")
    assert await system.get_document("secret.txt", tenant="acme") is None
    hits = await system.search_knowledge("u", "untenanted secret", tenant="acme")
    assert hits == []
    await system.add_document("secret.txt", "Mine", "acme's own text", tenant="acme")
    assert (await system.get_document("acme/secret.txt")).content == "the untenanted secret text"
    assert (await system.get_document("secret.txt", tenant="acme")).content == "acme's own text"
    assert await system.delete_document("secret.txt", tenant="acme")
    assert (await system.get_document("acme/secret.txt")).content == "the untenanted secret text"
    assert not await system.delete_document("acme/secret.txt", tenant="acme")
    await system.shutdown()


@pytest.mark.parametrize("tenant", ["acme\x00", "acme\n", "", "a/b", "x" * 65, "\u200bacme\u0085"])
async def test_tenant_names_with_control_characters_are_refused(config, tenant):
    system = create_enhanced_rag_system(config)
    await system.add_document("d", "", "text", tenant="acme")
    for call in (
        system.add_document("d", "", "text", tenant=tenant),
        system.get_document("d", tenant=tenant),
        system.search_knowledge("u", "text", tenant=tenant),
        system.delete_document("d", tenant=tenant),
    ):
        with pytest.raises(ValidationError, match="tenant"):
            await call
    await system.shutdown()


async def test_a_document_interrupted_before_its_head_is_invisible_and_repaired(config):
    """Body chunks written, the head (completion marker) not: nothing is served; re-adding completes it."""
    from vpa.layout import CHUNK_INDEX

    system = create_enhanced_rag_system(config)
    await system.initialize()
    text = "Long text about glaciers and ice. " * 40
    real_upsert = system.store.upsert

    async def lose_heads(collection, records):
        return await real_upsert(collection, [r for r in records if r.metadata[CHUNK_INDEX] != 0])

    system.store.upsert = lose_heads
    await system.add_document("glacier", "Glaciers", text)
    system.store.upsert = real_upsert
    fresh = create_enhanced_rag_system(config, store=system.store)
    assert await fresh.get_document("glacier") is None
    assert await fresh.search_knowledge("u", "glaciers ice", top_k=10) == []
    assert not (await fresh.add_document("glacier", "Glaciers", text)).unchanged
    assert (await fresh.get_document("glacier")).content == text
    assert len(await fresh.search_knowledge("u", "glaciers ice", top_k=3, group_by="chunk")) == 3
    assert len(await fresh.search_knowledge("u", "glaciers ice", top_k=3)) == 1  # one result a document
    await system.shutdown()


async def test_system_stats_have_the_original_nested_shape(rag):
    await rag.search_knowledge("u", "sourdough starter")
    stats = await rag.get_system_stats()
    section = stats["search_statistics"]
    assert section["total_searches"] == stats["total_searches"] == 1
    assert section["avg_response_time"] == pytest.approx(stats["avg_latency_ms"] / 1000, abs=1e-6)
    assert section["scope"] == "process"
    assert stats["vector_database"]["total_documents"] == 3 and stats["vector_database"]["provider"] == "memory"
    assert stats["embedding_model"]["dimension"] == rag.embedder.fingerprint.dimension
    assert (await rag.get_system_stats(tenant="t"))["search_statistics"]["cache_hit_rate"] is None


async def test_a_filter_at_the_stores_bound_passes_with_a_tenant_and_one_past_names_the_callers_filter(config):
    from vpa.errors import LimitExceeded

    system = create_enhanced_rag_system(config)
    await system.add_document("d", "", "text about the bound", {"n": 1}, tenant="t")
    caps = system.store.capabilities
    at_bound = {"n": {"$in": list(range(caps.max_filter_terms - 1))}}  # the tenant term makes it the bound
    assert len(await system.search_knowledge("u", "bound", filters=at_bound, tenant="t")) == 1
    past = {"n": {"$in": list(range(caps.max_filter_terms))}}
    with pytest.raises(LimitExceeded, match="filters exceeds max_filter_terms"):
        await system.search_knowledge("u", "bound", filters=past, tenant="t")
    await system.shutdown()


async def test_metadata_past_the_stores_bounds_is_refused_before_embedding_naming_the_document(config):
    from vpa.errors import LimitExceeded
    from vpa.layout import RESERVED_KEYS

    system = create_enhanced_rag_system(config)
    await system.initialize()
    calls = []
    real = system.embedder.aembed

    async def counting(texts):
        calls.append(len(texts))
        return await real(texts)

    system.embedder.aembed = counting
    limit = system.store.capabilities.max_metadata_keys - len(RESERVED_KEYS)
    await system.add_document("fits", "", "text", {f"k{i}": i for i in range(limit)})
    calls.clear()
    with pytest.raises(LimitExceeded, match="metadata of document 'many'.*max_metadata_keys"):
        await system.add_document("many", "", "text", {f"k{i}": i for i in range(limit + 1)})
    with pytest.raises(LimitExceeded, match="metadata of document 'big'.*max_metadata_bytes"):
        await system.add_document("big", "x" * 70_000, "text")
    assert calls == [] and await system.get_document("many") is None
    await system.shutdown()



async def test_search_returns_distinct_documents_by_default(config):
    """A top-10 of chunks let one long document take several places (the demo showed one document
    three times): results are documents now, each its best chunk, with its other matches on request."""
    system = create_enhanced_rag_system(config)
    await system.add_document("long", "Glaciers", "Glaciers carve valleys and hold ice. " * 60)
    for i in range(6):
        await system.add_document(f"short-{i}", "", f"short note {i} about glaciers and ice")
    results = await system.search_knowledge("u", "glaciers ice valleys", top_k=5)
    ids = [r.document_id for r in results]
    assert len(ids) == 5 == len(set(ids)) and "long" in ids
    assert [r.similarity for r in results] == sorted((r.similarity for r in results), reverse=True)
    with_passages = await system.search_knowledge("u", "glaciers ice valleys", top_k=5, passages=True)
    long = next(r for r in with_passages if r.document_id == "long")
    assert long.passages and all(p.document_id == "long" and p.similarity <= long.similarity for p in long.passages)
    chunks = await system.search_knowledge("u", "glaciers ice valleys", top_k=5, group_by="chunk")
    assert [r.document_id for r in chunks].count("long") > 1
    with pytest.raises(ValidationError, match="group_by"):
        await system.search_knowledge("u", "x", group_by="paragraph")
    await system.shutdown()
