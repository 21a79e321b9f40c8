"""The same RAG job on every embedded provider gives the same answers as the memory reference.

This is the promise of VPA to an app: switch `VPA_VECTOR_DB_PROVIDER` and nothing else changes.
Providers that need a server or a cloud account (pinecone, weaviate) are covered by their own
plugin tests against their stand-ins.
"""

from __future__ import annotations

import pytest

from vpa.plugins import get_registry
from vpa.rag import create_enhanced_rag_system

EMBEDDED = ["memory", "chroma", "qdrant", "milvus"]
INSTALLED = [name for name in EMBEDDED if name in get_registry().names("store")]

DOCS = [
    ("photosynthesis", "Photosynthesis", "Plants capture sunlight in chloroplasts and make sugar. " * 4,
     {"category": "science", "year": 2021, "tags": ["biology", "plants"], "score": 4.5, "draft": False}),
    ("index-funds", "Index funds", "An index fund buys every stock of a market index with low fees. " * 4,
     {"category": "finance", "year": 2019, "tags": ["investing"], "score": 3.0, "draft": True}),
    ("sourdough", "Sourdough", "Sourdough bread rises with wild yeast from a starter culture. " * 4,
     {"category": "cooking", "year": 2023, "tags": ["bread", "fermentation"], "score": 5, "draft": False}),
    ("unicode", "Ünïcödé ✓", "Texte en français, 日本語のテキスト, emoji 🎉 and Ελληνικά. " * 2,
     {"category": "languages", "year": 2022, "tags": [], "score": 1.5, "draft": False}),
]

QUERIES = [
    ("sunlight and sugar in leaves", None),
    ("bread yeast", {"year": {"$gte": 2020}}),
    ("low fee investing", {"$or": [{"category": "finance"}, {"tags": "plants"}]}),
    ("anything", {"draft": False, "score": {"$gt": 2}}),
    ("anything", {"tags": {"$nin": ["bread"]}, "category": {"$ne": "finance"}}),
    ("anything", {"$not": {"category": {"$in": ["science", "cooking"]}}}),
]


async def run_job(provider: str, tmp_path) -> dict:
    system = create_enhanced_rag_system(
        {"provider": provider, "embedder": "hashing", "data_dir": tmp_path / provider, "collection": "xprov",
         "chunk_size": 120, "chunk_overlap": 20, "log_level": "WARNING"}
    )
    out: dict = {}
    async with system:
        for doc_id, title, content, meta in DOCS:
            await system.add_document(doc_id, title, content, meta)
        await system.store.settle(system.collection)
        for query, filters in QUERIES:
            results = await system.search_knowledge("u", query, top_k=50, filters=filters)
            out[(query, str(filters))] = sorted({r.document_id for r in results})
            out[("top", query, str(filters))] = [round(r.similarity, 3) for r in results[:3]]
        out["documents"] = {d[0]: await system.get_document(d[0]) for d in DOCS}
        out["stats"] = {k: v for k, v in (await system.get_system_stats()).items() if k in ("documents", "chunks")}
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    import asyncio

    return asyncio.run(run_job("memory", tmp_path_factory.mktemp("ref")))


@pytest.mark.parametrize("provider", INSTALLED)
async def test_provider_answers_like_the_reference(provider, reference, tmp_path):
    result = await run_job(provider, tmp_path)
    for key, expected in reference.items():
        if key == "documents":
            for doc_id, document in expected.items():
                assert result["documents"][doc_id] == document, f"{provider}: document {doc_id} differs"
        elif key[0] == "top":
            assert result[key] == pytest.approx(expected, abs=2e-3), f"{provider}: scores for {key}"
        else:
            assert result[key] == expected, f"{provider}: {key}"
