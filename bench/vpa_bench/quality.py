"""Retrieval quality on BEIR SciFact through VPA: memory store, all-MiniLM-L6-v2, one chunk per
abstract (the chunk size exceeds the longest abstract), compared with the published nDCG@10.

Corpus and query embeddings are cached under ``.vpa/bench-cache/`` keyed by the model and the
data files' checksum; the cache sits *behind* an `Embedder`, so every run still goes through
VPA's whole path: documents → chunker → embedder → records → store upsert → search_knowledge.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from vpa.embedders.base import Embedder
from vpa.log import configure_logging
from vpa.models import Document
from vpa.plugins import get_registry
from vpa.rag import RAGSystem

from vpa_bench import data
from vpa_bench.workloads import make_config

PUBLISHED_NDCG10 = 0.6451  # all-MiniLM-L6-v2 on SciFact (MTEB 64.51), see shared/data/SOURCES.md


class CachedEmbedder(Embedder):
    """The real embedder behind a persistent text → vector cache (same fingerprint).
    The model is loaded only if some text is missing from the cache."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self.computed = 0
        self.compute_seconds = 0.0
        if path.is_file():
            with np.load(path) as npz:
                for key, vec in zip(npz["keys"].tolist(), npz["vectors"], strict=True):
                    self.vectors[key] = vec

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def missing(self, texts: Sequence[str]) -> int:
        return sum(1 for t in texts if self.key(t) not in self.vectors)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}.items())
        if todo:
            t0 = time.perf_counter()
            fresh = self.inner.embed([t for _, t in todo])
            self.compute_seconds += time.perf_counter() - t0
            self.computed += len(todo)
            for (k, _), v in zip(todo, fresh, strict=True):
                self.vectors[k] = np.asarray(v, dtype=np.float32)
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.vectors[k] for k in keys])

    def save(self) -> None:
        keys = list(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        os.replace(tmp, self.path)


def _metrics(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    qids = [q for q in runs if q in qrels]
    return {
        "ndcg@10": round(float(np.mean([data.ndcg_at(runs[q], qrels[q], 10) for q in qids])), 4),
        "recall@10": round(float(np.mean([data.recall_at(runs[q], qrels[q], 10) for q in qids])), 4),
        "recall@100": round(float(np.mean([data.recall_at(runs[q], qrels[q], 100) for q in qids])), 4),
        "queries": len(qids),
    }


def _embed_input(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text  # what the RAG layer embeds for a chunk


async def run_quality(
    root: Path,
    scifact: Path,
    workdir: Path,
    *,
    max_queries: int | None = None,
    allow_compute: bool = True,
    chunked: bool = False,
    provider: str = "memory",
    modes: Sequence[str] = ("dense",),
) -> dict[str, Any]:
    """SciFact through VPA's public RAG API. ``modes``: the search modes to score (``dense``,
    ``lexical``, ``hybrid``); the first is also reported as ``vpa`` (the figures earlier runs
    compare). Each mode's nDCG@10, recall@10/@100 and mean search latency (ms) are in
    ``modes``."""
    configure_logging("WARNING", "console")
    ds = data.load_scifact(scifact)
    corpus, queries, qrels = ds["corpus"], ds["queries"], ds["qrels"]
    qids = [q for q in queries if q in qrels]
    if max_queries is not None:
        qids = qids[:max_queries]
    registry = get_registry()
    chunk_size = 1000 if chunked else max(len(text) for _, _, text in corpus) + 1
    config = make_config(
        provider,
        workdir,
        {},
        embedder="sentence-transformers",
        collection="scifact",
        chunk_size=chunk_size,
        chunk_overlap=200 if chunked else 0,
        max_batch_size=1000,
    )
    inner = registry.create("embedder", "sentence-transformers", config)
    model_key = inner.model.replace("/", "_")
    cache = (
        data.cache_dir(root) / f"scifact-{model_key}-{ds['checksum'][:16]}{'-chunked' if chunked else ''}.npz"
    )
    embedder = CachedEmbedder(inner, cache)
    out: dict[str, Any] = {
        "dataset": "BEIR SciFact (test)",
        "documents": len(corpus),
        "embedder": embedder.fingerprint.describe(),
        "store": provider,
        "chunk_size": chunk_size,
        "one_chunk_per_document": not chunked,
        "published_ndcg@10": PUBLISHED_NDCG10,
        "data_checksum": ds["checksum"][:16],
        "cache_file": cache.name,
        "cache_hit_before_run": cache.is_file(),
    }
    if not chunked:
        needed = [_embed_input(t, x) for _, t, x in corpus] + [queries[q] for q in qids]
        missing = embedder.missing(needed)
        out["embeddings_missing_before_run"] = missing
        if missing and not allow_compute:
            return {
                **out,
                "skipped": f"{missing} SciFact embeddings are not cached yet (quick mode does not compute "
                "them): run the full bench once to fill .vpa/bench-cache",
            }
    documents = [Document(id=i, title=t, content=x) for i, t, x in corpus]
    store = registry.create("store", provider, config)
    rag = RAGSystem(config, store=store, embedder=embedder, registry=registry)
    try:
        await rag.initialize()
        t0 = time.perf_counter()
        chunks = 0
        for s in range(0, len(documents), 1000):
            chunks += sum(r.chunks for r in await rag.add_documents(documents[s : s + 1000]))
        out["ingest_seconds"] = round(time.perf_counter() - t0, 2)
        out["chunks"] = chunks
        await store.settle("scifact")
        # Results are distinct documents (group_by="document", the default): 100 of them.
        out["modes"] = {}
        for mode in modes:
            runs: dict[str, list[str]] = {}
            t0 = time.perf_counter()
            for q in qids:
                hits = await rag.search_knowledge("bench", queries[q], 100, mode=mode)
                runs[q] = list(dict.fromkeys(h.document_id for h in hits))[:100]
            seconds = time.perf_counter() - t0
            out["modes"][mode] = {**_metrics(runs, qrels), "mean_ms": round(seconds * 1000 / max(1, len(qids)), 2)}
            if mode == modes[0]:
                out["search_seconds"] = round(seconds, 2)
                out["vpa"] = _metrics(runs, qrels)
        if not chunked:  # exact cosine in numpy over the very same vectors: VPA's store must match it
            doc_ids = [i for i, _, _ in corpus]
            matrix = embedder.embed([_embed_input(t, x) for _, t, x in corpus])
            matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
            qmat = embedder.embed([queries[q] for q in qids])
            scores = qmat @ matrix.T
            top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
            reference = {q: [doc_ids[j] for j in row] for q, row in zip(qids, top.tolist(), strict=True)}
            out["exact_numpy_same_vectors"] = _metrics(reference, qrels)
        await store.drop_collection("scifact")
    finally:
        await rag.shutdown()
    out["embeddings_computed"] = embedder.computed
    out["embedding_seconds"] = round(embedder.compute_seconds, 1)
    if embedder.computed:
        embedder.save()
    out["delta_vs_published"] = round(out["vpa"]["ndcg@10"] - PUBLISHED_NDCG10, 4)
    out["subset"] = max_queries is not None and len(qids) < len([q for q in queries if q in qrels])
    return out
