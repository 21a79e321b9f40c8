"""The main job on the embedded default: ingest the sample corpus, then search it.

    python examples/demo.py [--provider memory] [--embedder sentence-transformers]

Uses the async API directly (what an app would do); the `vpa` command does the same from a shell.
"""

from __future__ import annotations

import argparse
import asyncio
import textwrap
import time
from pathlib import Path

from vpa.ingest import read_documents
from vpa.rag import create_enhanced_rag_system

CORPUS = Path(__file__).parent / "corpus"

SEARCHES = [
    ("How do plants turn sunlight into energy?", None),
    ("Why should I avoid taking antibiotics I don't need?", None),
    ("cheap way to invest for retirement", {"category": "finance"}),
    ("how computers find similar vectors quickly", {"category": "technology", "year": {"$gte": 2020}}),
    ("ancient trade routes", {"$or": [{"category": "history"}, {"tags": {"$in": ["trade", "economics"]}}]}),
    ("what makes browned food taste good", {"difficulty": {"$ne": "advanced"}, "category": "cooking"}),
]


def show(query: str, filters: object, results: list, ms: float) -> None:
    print(f"\n🔎 {query}" + (f"\n   filter: {filters}" if filters else ""))
    print(f"   {len(results)} results in {ms:.1f} ms")
    for rank, r in enumerate(results, 1):
        snippet = " ".join(r.content.split())[:160]
        meta = ", ".join(f"{k}={r.metadata[k]}" for k in ("category", "year", "difficulty") if k in r.metadata)
        print(f"   {rank}. [{r.similarity:.3f}] {r.title} ({meta})")
        print(textwrap.indent(textwrap.fill(snippet + "…", 92), "      "))


async def main(provider: str | None, embedder: str | None, data_dir: str | None) -> None:
    overrides = {"provider": provider, "embedder": embedder, "data_dir": data_dir, "collection": "demo",
                 "chunk_size": 800, "chunk_overlap": 120, "log_level": "WARNING"}
    system = create_enhanced_rag_system({k: v for k, v in overrides.items() if v is not None})
    async with system:
        info = await system.initialize()
        print(f"VPA demo: provider={system.config.provider}, collection={info.name}, "
              f"embedder={system.embedder.fingerprint.describe()}")
        await system.embedder.aembed(["warm up"])  # load the model now, not inside the first timing
        documents = list(read_documents([CORPUS]))
        documents = [d for d in documents if not d.id.endswith("README.md")]
        started = time.perf_counter()
        results = await system.add_documents(documents)
        took = time.perf_counter() - started
        chunks = sum(r.chunks for r in results)
        unchanged = sum(r.unchanged for r in results)
        print(f"ingested {len(results)} documents ({chunks} chunks, {unchanged} unchanged) in {took:.1f} s")
        for query, filters in SEARCHES:
            started = time.perf_counter()
            hits = await system.search_knowledge("demo-user", query, top_k=3, filters=filters)
            show(query, filters, hits, (time.perf_counter() - started) * 1000)
        stats = await system.get_system_stats()
        print(f"\nstats: {stats['documents']} documents, {stats['chunks']} chunks, "
              f"{stats['total_searches']} searches, p95 {stats['p95_latency_ms']} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", help="store plugin name (default: VPA_VECTOR_DB_PROVIDER or memory)")
    parser.add_argument("--embedder", help="embedder name (default: sentence-transformers)")
    parser.add_argument("--data-dir", help="data folder (default: VPA_DATA_DIR or .vpa)")
    args = parser.parse_args()
    asyncio.run(main(args.provider, args.embedder, args.data_dir))
