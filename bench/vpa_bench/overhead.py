"""Micro-measurements of VPA's own per-record and per-call costs on the hot paths, so that the
overhead seen in the end-to-end figures can be attributed to a function. Each figure is the
median of a few repetitions on the synthetic data; ``*_ms_per_1000`` is per 1,000 records or
documents, ``*_us`` per call.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from vpa.embedders.hashing import HashingEmbedder
from vpa.filters import canonical_json, parse_filter
from vpa.log import get_logger
from vpa.models import ALL_METADATA_TYPES, Hit, Record, SearchResult
from vpa.rag import RAGSystem, _Prepared
from vpa.stores.memory import MemoryStore
from vpa.validation import check_records

from vpa_bench import data
from vpa_bench.workloads import DIMENSION, make_config


def _median_time(fn: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def _median_async(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def measure(root: Path, workdir: Path, n_records: int = 5_000, n_docs: int = 1_000) -> dict[str, Any]:
    out: dict[str, Any] = {}
    vectors = np.ascontiguousarray(data.synthetic_vectors(root, n_records, DIMENSION))
    rows = [data.synthetic_chunk(i) for i in range(n_records)]
    per_k = 1000.0 / n_records

    records = [Record(i, v, t, m) for (i, t, m), v in zip(rows, vectors, strict=True)]
    out["record_construction_ms_per_1000"] = round(
        _median_time(lambda: [Record(i, v, t, m) for (i, t, m), v in zip(rows, vectors, strict=True)])
        * 1000
        * per_k,
        3,
    )
    out["check_records_ms_per_1000"] = round(
        _median_time(lambda: check_records(records, DIMENSION, ALL_METADATA_TYPES, None)) * 1000 * per_k, 3
    )
    out["check_records_with_size_limit_ms_per_1000"] = round(
        _median_time(lambda: check_records(records, DIMENSION, ALL_METADATA_TYPES, 4 * 1024 * 1024))
        * 1000
        * per_k,
        3,
    )
    out["vectors_stack_ms_per_1000"] = round(
        _median_time(lambda: np.stack([r.vector for r in records])) * 1000 * per_k, 3
    )

    config = make_config("memory", workdir, {}, collection="overhead")
    rag = RAGSystem(config, embedder=HashingEmbedder(DIMENSION))
    docs = data.synthetic_corpus(n_docs)
    per_doc_k = 1000.0 / n_docs
    out["content_hash_ms_per_1000_docs"] = round(
        _median_time(lambda: [rag._content_hash(d, None) for d in docs]) * 1000 * per_doc_k, 3
    )
    out["chunker_ms_per_1000_docs"] = round(
        _median_time(lambda: [rag.chunker.split(d.content) for d in docs]) * 1000 * per_doc_k, 3
    )
    prepared = [_Prepared(d, None, "h") for d in docs]
    out["chunk_records_ms_per_1000_docs"] = round(
        _median_time(lambda: [rag._chunk_records(p) for p in prepared]) * 1000 * per_doc_k, 3
    )

    texts = [f"{m['vpa_title']}\n{t}" for _, t, m in rows[:300]]
    cold = _median_time(lambda: HashingEmbedder(DIMENSION).embed(texts), 3)  # empty feature cache
    warm_embedder = HashingEmbedder(DIMENSION)
    warm_embedder.embed(texts)
    warm = _median_time(lambda: warm_embedder.embed(texts), 3)  # features seen before
    out["hashing_embedder_chunks_per_s"] = round(len(texts) / cold, 1)
    out["hashing_embedder_warm_cache_chunks_per_s"] = round(len(texts) / warm, 1)

    async def noop_hop() -> None:
        await asyncio.to_thread(lambda: None)

    hops = 200
    out["to_thread_hop_us"] = round(await _median_async(noop_hop, hops) * 1e6, 1)

    log = get_logger("vpa.bench")
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        log.debug("bench.event", user_id="u", top_k=10, results=10, ms=1.0)
    out["filtered_debug_log_call_us"] = round((time.perf_counter() - t) / n * 1e6, 2)

    hits = [Hit(r.id, 0.5, r.text, r.metadata) for r in records[:1000]]
    out["hit_construction_us_per_hit"] = round(
        _median_time(lambda: [Hit(r.id, 0.5, r.text, r.metadata) for r in records[:1000]]) * 1e3, 3
    )
    out["search_result_construction_us_per_hit"] = round(
        _median_time(lambda: [SearchResult(h.id, h.id, h.score, h.text, h.metadata) for h in hits]) * 1e3, 3
    )
    node = parse_filter(None)
    out["filter_parse_and_key_us"] = round(
        _median_time(lambda: [canonical_json(parse_filter(None)) for _ in range(1000)]) * 1e3, 3
    )
    del node

    # The memory store's upsert of the same records: persisted (the default) and in memory only,
    # against the share of it that is VPA's own validation (check_records above).
    for label, path in (("persisted", workdir / "memory-upsert"), ("in_memory", None)):
        store = MemoryStore(path)
        await store.create_collection("u", DIMENSION, fingerprint=HashingEmbedder(DIMENSION).fingerprint)
        t = time.perf_counter()
        await store.upsert("u", records)
        out[f"memory_store_upsert_{label}_ms_per_1000"] = round((time.perf_counter() - t) * 1000 * per_k, 3)
        await store.drop_collection("u")
        await store.close()

    # A cached search_knowledge on the memory store, and what one costs without the store.
    async with rag:
        await rag.add_documents(docs[:200])
        await rag.search_knowledge("u", "warm query", 10)
        calls = 500
        t = time.perf_counter()
        for _ in range(calls):
            await rag.search_knowledge("u", "warm query", 10)
        out["cached_search_us"] = round((time.perf_counter() - t) / calls * 1e6, 1)
        store = rag.store
        name = rag.collection
        v = vectors[0]
        t = time.perf_counter()
        for _ in range(calls):
            await store.query(name, v, 10)
        out["memory_store_query_small_us"] = round((time.perf_counter() - t) / calls * 1e6, 1)
        await store.drop_collection(name)
    return out
