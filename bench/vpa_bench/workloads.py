"""The measurements for one provider: ingest, re-ingest, memory, search latency and throughput,
and the same work done by the bare vendor client and by LangChain, in the same process.

`run_provider` is what a worker process runs (or the harness in-process, with ``--no-isolate``).
Everything it returns is plain JSON.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import statistics
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from vpa.config import VPAConfig, load_config
from vpa.embedders.hashing import HashingEmbedder
from vpa.log import configure_logging
from vpa.models import Document, Record
from vpa.plugins import get_registry
from vpa.rag import RAGSystem
from vpa.stores.base import VectorStore

from vpa_bench import data
from vpa_bench.baselines import BASELINES
from vpa_bench.machine import folder_bytes, rss_bytes
from vpa_bench.providers import LIMITS
from vpa_bench.timing import PUBLIC_METHODS, Recorder, TimedEmbedder, instrument_store

DIMENSION = 384
#: Stores that score with numpy in this process (their query time depends on the BLAS threads).
BLAS_BOUND = {"memory", "qdrant"}


@dataclass
class Params:
    mode: str = "full"
    ingest_sizes: list[int] = field(default_factory=lambda: [1_000, 10_000])
    ingest_batch: int = 500
    search_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])
    load_batch: int = 2_000
    #: a search size is skipped when loading it at the provider's measured write rate would take longer
    load_budget_s: float = 300.0
    cold_queries: int = 300
    cached_distinct: int = 20
    cached_repeats: int = 10
    store_queries: int = 300
    levels: list[int] = field(default_factory=lambda: [1, 8, 50])
    level_queries: int = 300
    compare_records: int = 10_000
    #: the store-level comparison's record count is cut so that its upserts fit this budget
    compare_budget_s: float = 100.0
    compare_docs: int = 1_000
    compare_queries: int = 200
    rounds: int = 2
    #: each latency loop (cold, store, one concurrency level, comparison queries) stops after this
    phase_seconds: float = 15.0
    top_k: int = 10
    st_docs: int = 300
    overhead_records: int = 5_000
    overhead_docs: int = 1_000
    blas_threads: int | None = None

    @classmethod
    def preset(cls, mode: str) -> Params:
        if mode == "quick":
            return cls(
                mode="quick",
                ingest_sizes=[100, 300],
                search_sizes=[500, 2_000],
                load_batch=1_000,
                load_budget_s=6.0,
                cold_queries=40,
                cached_distinct=5,
                cached_repeats=4,
                store_queries=40,
                level_queries=30,
                compare_records=500,
                compare_budget_s=6.0,
                compare_docs=30,
                compare_queries=15,
                rounds=1,
                phase_seconds=1.0,
                st_docs=20,
                overhead_records=1_000,
                overhead_docs=200,
            )
        if mode == "tiny":
            return cls(
                mode="tiny",
                ingest_sizes=[20, 60],
                search_sizes=[300, 1_000],
                load_batch=500,
                load_budget_s=5.0,
                cold_queries=10,
                cached_distinct=4,
                cached_repeats=3,
                store_queries=10,
                levels=[1, 8],
                level_queries=16,
                compare_records=200,
                compare_budget_s=3.0,
                compare_docs=20,
                compare_queries=5,
                rounds=1,
                phase_seconds=1.0,
                st_docs=0,
                overhead_records=300,
                overhead_docs=50,
            )
        return cls()


def summarize(latencies_s: Sequence[float]) -> dict[str, Any]:
    """Latency statistics in milliseconds."""
    if not latencies_s:
        return {"n": 0}
    ms = np.asarray(latencies_s) * 1000.0
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "min_ms": round(float(ms.min()), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def make_config(provider: str, workdir: Path, overrides: dict[str, Any], **extra: Any) -> VPAConfig:
    """A configuration that depends on nothing outside the run (no VPA_* variables, no vpa.toml)."""
    values: dict[str, Any] = {
        "provider": provider,
        "embedder": "hashing",
        "data_dir": str(workdir),
        "log_level": "WARNING",
        "collection": "bench",
    }
    values.update(overrides)
    values.update(extra)
    return load_config(values, environ={}, config_file=os.devnull)


class Context:
    """One provider's run: its config, data folder, recorder and the notes it collects."""

    def __init__(
        self, provider: str, params: Params, root: Path, workdir: Path, overrides: dict[str, Any]
    ) -> None:
        self.provider = provider
        self.params = params
        self.root = root
        self.workdir = workdir
        self.overrides = overrides
        self.config = make_config(provider, workdir / "vpa", overrides)
        self.registry = get_registry()
        self.recorder = Recorder()
        self.limits = LIMITS.get(provider, {})
        self.skipped: list[dict[str, str]] = []
        #: the best measured rate at which the store takes records (records per second of store time)
        self.write_rate: float | None = None

    def note_rate(self, records: int, seconds: float) -> None:
        if records and seconds > 0:
            rate = records / seconds
            self.write_rate = rate if self.write_rate is None else max(self.write_rate, rate)

    def store(self) -> Any:
        return instrument_store(self.registry.create("store", self.provider, self.config), self.recorder)

    def embedder(self, name: str = "hashing") -> TimedEmbedder:
        return TimedEmbedder(self.registry.create("embedder", name, self.config), self.recorder)

    def rag(self, collection: str, store: Any = None, embedder: Any = None, **config: Any) -> RAGSystem:
        cfg = self.config.replace(collection=collection, **config)
        return RAGSystem(
            cfg, store=store or self.store(), embedder=embedder or self.embedder(), registry=self.registry
        )

    def skip(self, what: str, why: str) -> None:
        self.skipped.append({"provider": self.provider, "what": what, "why": why})


# --- ingest ------------------------------------------------------------------------------------


def split_times(recorder: Recorder, window: tuple[float, float]) -> dict[str, float]:
    """Where the wall time of an ingest went (seconds); see bench/README.md for each term."""
    wall = window[1] - window[0]
    embed = recorder.union(["embedder.aembed"], window)
    compute = recorder.union(["embedder.embed"], window)
    store = recorder.union(["store.public."], window)
    backend = recorder.union(["store.backend."], window)
    either = recorder.union(["embedder.aembed", "store.public."], window)
    return {
        "wall": round(wall, 4),
        "embedder": round(embed, 4),
        "embedder_compute": round(compute, 4),
        "store": round(store, 4),
        "store_backend": round(backend, 4),
        "store_vpa_base": round(max(store - backend, 0.0), 4),
        "vpa_exclusive": round(max(wall - either, 0.0), 4),
        "overlap_embedder_store": round(max(embed + store - either, 0.0), 4),
    }


async def ingest_run(
    ctx: Context,
    documents: list[Document],
    collection: str,
    rag: RAGSystem | None = None,
    measure_memory: bool = False,
) -> dict[str, Any]:
    rag = rag or ctx.rag(collection)
    await rag.initialize()
    store = rag.store
    batch = ctx.params.ingest_batch
    gc.collect()
    rss0 = rss_bytes()
    ctx.recorder.reset()
    chunks = 0
    t0 = time.perf_counter()
    for s in range(0, len(documents), batch):
        results = await rag.add_documents(documents[s : s + batch])
        chunks += sum(r.chunks for r in results)
    await store.settle(collection)
    t1 = time.perf_counter()
    split = split_times(ctx.recorder, (t0, t1))
    ctx.note_rate(chunks, split["store"])
    texts = ctx.recorder.counters.get("embedder.texts", 0)
    out: dict[str, Any] = {
        "documents": len(documents),
        "chunks": chunks,
        "seconds": round(t1 - t0, 3),
        "docs_per_s": round(len(documents) / (t1 - t0), 1),
        "chunks_per_s": round(chunks / (t1 - t0), 1),
        "embedded_texts": texts,
        "split_s": split,
        "split_share": {k: round(v / split["wall"], 4) for k, v in split.items() if k != "wall"},
        "store_calls": {
            n.removeprefix("store.backend."): ctx.recorder.count(n)
            for n in ctx.recorder.names("store.backend.")
        },
    }
    if measure_memory:
        gc.collect()
        rss1 = rss_bytes()
        out["rss_mb_before"] = round(rss0 / 2**20, 1)
        out["rss_mb_after"] = round(rss1 / 2**20, 1)
        out["rss_mb_per_1000_docs"] = round((rss1 - rss0) / 2**20 / (len(documents) / 1000), 2)
        out["disk_mb_per_1000_docs"] = round(
            folder_bytes(ctx.config.data_dir) / 2**20 / (len(documents) / 1000), 2
        )
    # Re-ingest the unchanged corpus: every document must be recognised by its content hash.
    ctx.recorder.reset()
    t2 = time.perf_counter()
    unchanged = 0
    for s in range(0, len(documents), batch):
        results = await rag.add_documents(documents[s : s + batch])
        unchanged += sum(1 for r in results if r.unchanged)
    t3 = time.perf_counter()
    out["reingest"] = {
        "seconds": round(t3 - t2, 3),
        "docs_per_s": round(len(documents) / (t3 - t2), 1),
        "unchanged": unchanged,
        "embedded_texts": ctx.recorder.counters.get("embedder.texts", 0),
        "split_s": split_times(ctx.recorder, (t2, t3)),
    }
    return out


async def phase_ingest(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sizes = ctx.params.ingest_sizes
    cap = ctx.limits.get("max_ingest_docs")
    corpus = data.synthetic_corpus(max(sizes))
    for n in sizes:
        if cap is not None and n > cap:
            ctx.skip(f"ingest {n} documents", ctx.limits["why"])
            continue
        collection = f"ingest{n}"
        rag = ctx.rag(collection)
        try:
            out[str(n)] = await ingest_run(ctx, corpus[:n], collection, rag, measure_memory=True)
            await rag.store.drop_collection(collection)
        finally:
            await rag.shutdown()
        gc.collect()
    return out


# --- search ------------------------------------------------------------------------------------


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t = time.perf_counter()
    await fn()
    return time.perf_counter() - t


async def load_collection(ctx: Context, store: Any, collection: str, size: int) -> dict[str, Any]:
    vectors = data.synthetic_vectors(ctx.root, size, DIMENSION)
    spent = 0.0
    for s in range(0, size, ctx.params.load_batch):
        records = data.synthetic_records(vectors, s, min(s + ctx.params.load_batch, size))
        t = time.perf_counter()
        await store.upsert(collection, records)
        spent += time.perf_counter() - t
    t = time.perf_counter()
    await store.settle(collection)
    spent += time.perf_counter() - t
    ctx.note_rate(size, spent)
    return {"records": size, "seconds": round(spent, 3), "records_per_s": round(size / spent, 1)}


async def throughput(
    rag: RAGSystem, queries: list[str], callers: int, top_k: int, deadline_s: float
) -> dict[str, Any]:
    """``callers`` concurrent tasks issue distinct (uncached) searches until the queries run out
    or ``deadline_s`` passes; queries per second over the wall time."""
    pending = list(reversed(queries))
    latencies: list[float] = []
    stop_at = time.perf_counter() + deadline_s

    async def caller() -> None:
        while pending and time.perf_counter() < stop_at:
            q = pending.pop()
            t = time.perf_counter()
            await rag.search_knowledge("bench", q, top_k)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    wall = time.perf_counter() - t0
    return {
        "callers": callers,
        "queries": len(latencies),
        "seconds": round(wall, 3),
        "qps": round(len(latencies) / wall, 1) if wall > 0 else None,
        "latency": summarize(latencies),
    }


async def search_size(ctx: Context, size: int) -> dict[str, Any]:
    p = ctx.params
    collection = f"search{size}"
    loader = ctx.rag(collection)
    await loader.initialize()
    store = loader.store
    out: dict[str, Any] = {"chunks": size}
    try:
        out["load"] = await load_collection(ctx, store, collection, size)
        n_queries = 1 + p.cold_queries + sum(p.level_queries for _ in p.levels) + p.store_queries
        queries = data.synthetic_queries(n_queries, salt=size)
        cold_q = queries[1 : 1 + p.cold_queries]
        level_q = queries[1 + p.cold_queries : 1 + p.cold_queries + p.level_queries * len(p.levels)]
        store_q = queries[len(queries) - p.store_queries :]
        # A new RAG system on the loaded collection (as a new app process would open it).
        rag = ctx.rag(collection, store=store)
        t = time.perf_counter()
        first = await rag.search_knowledge("bench", queries[0], p.top_k)
        out["first_search_ms"] = round((time.perf_counter() - t) * 1000, 3)
        out["first_search_hits"] = len(first)
        deadline = time.perf_counter() + p.phase_seconds
        cold = []
        for q in cold_q:
            if time.perf_counter() > deadline and len(cold) >= 5:
                break
            cold.append(await _timed(lambda q=q: rag.search_knowledge("bench", q, p.top_k)))
        out["cold"] = summarize(cold)
        cached = []
        for _ in range(p.cached_repeats):
            for q in cold_q[: p.cached_distinct]:
                cached.append(await _timed(lambda q=q: rag.search_knowledge("bench", q, p.top_k)))
        out["cached"] = summarize(cached)
        vectors = HashingEmbedder(DIMENSION).embed(store_q)
        deadline = time.perf_counter() + p.phase_seconds
        direct = []
        for v in vectors:
            if time.perf_counter() > deadline and len(direct) >= 5:
                break
            direct.append(await _timed(lambda v=v: store.query(collection, v, p.top_k)))
        out["store_query"] = summarize(direct)
        if p.blas_threads != 1 and ctx.provider in BLAS_BOUND:
            # The same queries with numpy's BLAS held to one thread: on a small, busy machine a
            # multi-threaded matrix-vector product called from a worker thread can wait for a
            # descheduled BLAS thread (see bench/README.md).
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                threadpool_limits = None
            if threadpool_limits is not None:
                single = []
                deadline = time.perf_counter() + p.phase_seconds
                with threadpool_limits(1, user_api="blas"):
                    for v in vectors:
                        if time.perf_counter() > deadline and len(single) >= 5:
                            break
                        single.append(await _timed(lambda v=v: store.query(collection, v, p.top_k)))
                out["store_query_blas_1_thread"] = summarize(single)
        levels = {}
        for i, callers in enumerate(p.levels):
            qs = level_q[i * p.level_queries : (i + 1) * p.level_queries]
            levels[str(callers)] = await throughput(rag, qs, callers, p.top_k, p.phase_seconds)
        out["throughput"] = levels
        await store.drop_collection(collection)
    finally:
        await loader.shutdown()
    return out


async def phase_search(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cap = ctx.limits.get("max_search_chunks")
    for size in ctx.params.search_sizes:
        if cap is not None and size > cap:
            ctx.skip(f"search over {size:,} chunks", ctx.limits["why"])
            continue
        budget = ctx.params.load_budget_s
        if ctx.write_rate is not None and size / ctx.write_rate > budget:
            ctx.skip(
                f"search over {size:,} chunks",
                f"loading it at the {ctx.write_rate:,.0f} records/s this store took here would take "
                f"~{size / ctx.write_rate:,.0f} s, over the {budget:.0f} s budget of this mode"
                + (f"; {ctx.limits['why']}" if "why" in ctx.limits else ""),
            )
            continue
        out[str(size)] = await search_size(ctx, size)
        gc.collect()
    return out


# --- against the bare client and LangChain -----------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


async def phase_compare(ctx: Context) -> dict[str, Any]:
    """Same upserts and queries through VPA and the bare client; the same documents and searches
    through VPA's RAG layer, the bare client plus the embedder, and LangChain."""
    p = ctx.params
    specs = BASELINES.get(ctx.provider)
    if not specs:
        return {}
    available = {}
    for kind, (module, factory) in specs.items():
        try:
            __import__(module)
            available[kind] = factory
        except ImportError as exc:
            ctx.skip(f"{kind} comparison", f"{module} is not installed ({exc.__class__.__name__})")
    out: dict[str, Any] = {"libraries": {}}
    hashing = ctx.registry.create("embedder", "hashing", ctx.config)
    fingerprint = hashing.fingerprint
    n = min(p.compare_records, ctx.limits.get("compare_records", p.compare_records))
    if n and ctx.write_rate is not None:
        fit = int(ctx.write_rate * p.compare_budget_s / (2 * p.rounds)) // 100 * 100
        if fit < n:
            out["store_level_records_cut"] = (
                f"{n:,} → {max(fit, 100):,} to fit the {p.compare_budget_s:.0f} s budget"
            )
            n = max(fit, 100)

    # 1. Store level: precomputed vectors, the same records, fresh collections, alternating order.
    if "bare" in available and n > 0:
        bare_cls = available["bare"]
        vectors = np.ascontiguousarray(data.synthetic_vectors(ctx.root, n, DIMENSION))
        rows = [data.synthetic_chunk(i) for i in range(n)]
        ids = [r[0] for r in rows]
        texts = [r[1] for r in rows]
        metas = [r[2] for r in rows]
        records = [Record(i, v, t, m) for i, v, t, m in zip(ids, vectors, texts, metas, strict=True)]
        store = ctx.store()
        vpa_times, bare_times = [], []
        keep: tuple[str, Any] | None = None
        try:
            for r in range(p.rounds):
                last = r == p.rounds - 1
                vname, bname = f"cmpv{r}", f"cmpb{r}"

                async def run_vpa(vname: str = vname) -> None:
                    await store.create_collection(vname, DIMENSION, fingerprint=fingerprint)
                    t = time.perf_counter()
                    await store.upsert(vname, records)
                    await store.settle(vname)
                    vpa_times.append(time.perf_counter() - t)

                def run_bare(bname: str = bname) -> Any:
                    b = bare_cls(ctx.workdir, bname, DIMENSION, hashing)
                    t = time.perf_counter()
                    b.upsert(ids, vectors, texts, metas)
                    bare_times.append(time.perf_counter() - t)
                    return b

                if r % 2 == 0:
                    await run_vpa()
                    bare = run_bare()
                else:
                    bare = run_bare()
                    await run_vpa()
                if last:
                    keep = (vname, bare)
                else:
                    bare.close()
                    await store.drop_collection(vname)
            assert keep is not None
            vname, bare = keep
            out["libraries"]["bare"] = bare.label
            qvecs = HashingEmbedder(DIMENSION).embed(data.synthetic_queries(p.compare_queries, salt=7))
            vq: list[float] = []
            bq: list[float] = []
            baq: list[float] = []  # the bare call in a worker thread, as an asyncio app must run it
            overlap = []
            deadline = time.perf_counter() + p.phase_seconds
            for i, v in enumerate(qvecs):
                if time.perf_counter() > deadline and len(vq) >= 5:
                    break

                async def one_vpa(v: np.ndarray = v) -> list[str]:
                    t = time.perf_counter()
                    hits = await store.query(vname, v, p.top_k)
                    vq.append(time.perf_counter() - t)
                    return [h.id for h in hits]

                def one_bare(v: np.ndarray = v) -> list[str]:
                    t = time.perf_counter()
                    hits = bare.query(v, p.top_k)
                    bq.append(time.perf_counter() - t)
                    return [h[0] for h in hits]

                async def one_bare_async(v: np.ndarray = v) -> None:
                    t = time.perf_counter()
                    await asyncio.to_thread(bare.query, v, p.top_k)
                    baq.append(time.perf_counter() - t)

                if i % 2 == 0:
                    a = await one_vpa()
                    b = one_bare()
                    await one_bare_async()
                else:
                    await one_bare_async()
                    b = one_bare()
                    a = await one_vpa()
                overlap.append(len(set(a) & set(b)) / max(len(b), 1))
            bare.close()
            await store.drop_collection(vname)
        finally:
            await store.close()
        vu, bu = statistics.median(vpa_times), statistics.median(bare_times)
        out["store_level"] = {
            "records": n,
            "rounds": p.rounds,
            "upsert_s": {"vpa": round(vu, 3), "bare": round(bu, 3)},
            "upsert_records_per_s": {"vpa": round(n / vu, 1), "bare": round(n / bu, 1)},
            "upsert_ratio": _ratio(vu, bu),
            "query": {"vpa": summarize(vq), "bare": summarize(bq), "bare_in_thread": summarize(baq)},
            "query_ratio_p50": _ratio(float(np.median(vq)), float(np.median(bq))),
            "query_ratio_mean": _ratio(float(np.mean(vq)), float(np.mean(bq))),
            "query_ratio_p50_vs_bare_in_thread": _ratio(float(np.median(vq)), float(np.median(baq))),
            "top_k_agreement": round(float(np.mean(overlap)), 4),
        }
    elif n == 0:
        ctx.skip("store-level comparison with the bare client", ctx.limits.get("why", "disabled"))

    # 2. Pipeline level: documents → chunks → embeddings → upserts; text query → hits.
    if available and p.compare_docs > 0:
        docs = data.synthetic_corpus(p.compare_docs)
        chunker = ctx.registry.create("chunker", ctx.config.chunker, ctx.config)
        ingest: dict[str, float] = {}
        frameworks: dict[str, Any] = {}

        def chunk_rows() -> tuple[list[str], list[str], list[dict[str, Any]]]:
            ids, inputs, metas = [], [], []
            for d in docs:
                parts = chunker.split(d.content)
                for c in parts:
                    ids.append(f"{d.id}#{c.index}")
                    inputs.append(f"{d.title}\n{c.text}" if d.title else c.text)
                    metas.append(
                        {
                            **d.metadata,
                            "vpa_document_id": d.id,
                            "vpa_chunk_index": c.index,
                            "vpa_chunk_count": len(parts),
                            "vpa_start": c.start,
                            "vpa_end": c.end,
                            "vpa_title": d.title,
                        }
                    )
            return ids, inputs, metas

        rag = ctx.rag("pipevpa", embedder=hashing)
        try:
            await rag.initialize()
            t = time.perf_counter()  # VPA first: any first-use cost of the process falls on VPA
            for s in range(0, len(docs), p.ingest_batch):
                await rag.add_documents(docs[s : s + p.ingest_batch])
            await rag.store.settle("pipevpa")
            ingest["vpa"] = time.perf_counter() - t
            for kind, factory in available.items():
                lib = factory(ctx.workdir, f"pipe{kind}", DIMENSION, hashing)
                frameworks[kind] = lib
                t = time.perf_counter()
                ids, inputs, metas = chunk_rows()
                lib.add_texts(inputs, metas, ids)
                ingest[kind] = time.perf_counter() - t
                out["libraries"][kind] = lib.label
            queries = data.synthetic_queries(p.compare_queries, salt=11)
            lat: dict[str, list[float]] = {k: [] for k in ["vpa", *frameworks]}
            if "bare" in frameworks:
                lat["bare_in_thread"] = []
            order = list(lat)
            deadline = time.perf_counter() + p.phase_seconds
            for i, q in enumerate(queries):
                if time.perf_counter() > deadline and len(lat["vpa"]) >= 5:
                    break
                for kind in order[i % len(order) :] + order[: i % len(order)]:
                    t = time.perf_counter()
                    if kind == "vpa":
                        await rag.search_knowledge("bench", q, p.top_k)
                    elif kind == "bare_in_thread":
                        await asyncio.to_thread(frameworks["bare"].search, q, p.top_k)
                    else:
                        frameworks[kind].search(q, p.top_k)
                    lat[kind].append(time.perf_counter() - t)
            await rag.store.drop_collection("pipevpa")
        finally:
            await rag.shutdown()
            for lib in frameworks.values():
                lib.close()
        out["pipeline"] = {
            "documents": p.compare_docs,
            "ingest_s": {k: round(v, 3) for k, v in ingest.items()},
            "ingest_ratio": {k: _ratio(ingest["vpa"], v) for k, v in ingest.items() if k != "vpa"},
            "search": {k: summarize(v) for k, v in lat.items()},
            "search_ratio_p50": {
                k: _ratio(float(np.median(lat["vpa"])), float(np.median(v)))
                for k, v in lat.items()
                if k != "vpa"
            },
        }
    return out


# --- the sentence-transformers end-to-end figure ----------------------------------------------


async def phase_st_ingest(ctx: Context) -> dict[str, Any]:
    """One end-to-end ingest with the real model (memory store): where time goes when embedding
    is expensive. The model is loaded (and warmed) before the clock starts."""
    embedder = ctx.embedder("sentence-transformers")
    embedder.inner.embed(["warm-up"])
    rag = ctx.rag("stingest", embedder=embedder)
    try:
        result = await ingest_run(ctx, data.synthetic_corpus(ctx.params.st_docs), "stingest", rag)
        await rag.store.drop_collection("stingest")
    finally:
        await rag.shutdown()
    result["embedder"] = embedder.fingerprint.describe()
    return result


async def phase_overhead(ctx: Context) -> dict[str, Any]:
    from vpa_bench.overhead import measure  # imports this module

    return await measure(
        ctx.root, ctx.workdir / "overhead", ctx.params.overhead_records, ctx.params.overhead_docs
    )


# --- the worker entry point --------------------------------------------------------------------


async def run_provider(
    provider: str,
    params: Params,
    root: Path,
    workdir: Path,
    overrides: dict[str, Any] | None = None,
    phases: Sequence[str] = ("ingest", "search", "compare"),
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    configure_logging("WARNING", "console")
    blas = None
    if params.blas_threads:
        from threadpoolctl import threadpool_limits

        blas = threadpool_limits(params.blas_threads)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(provider, params, root, workdir, overrides or {})
    result: dict[str, Any] = {"provider": provider, "errors": {}, "timings_s": {}, "skipped": ctx.skipped}
    registration = ctx.registry.get("store", provider)
    capabilities = registration.capabilities
    store_cls = type(ctx.registry.create("store", provider, ctx.config))
    result["capabilities"] = {
        "exact": capabilities.exact,
        "max_batch_size": capabilities.max_batch_size,
        "eventually_consistent": capabilities.eventually_consistent,
    }
    result["package"] = f"{registration.package} {registration.version}"
    # Public store methods the plugin overrides: their time counts as "store outside the backend".
    result["public_overrides"] = [
        m for m in PUBLIC_METHODS if getattr(store_cls, m) is not getattr(VectorStore, m)
    ]
    runners = {
        "ingest": phase_ingest,
        "search": phase_search,
        "compare": phase_compare,
        "st_ingest": phase_st_ingest,
        "overhead": phase_overhead,
    }
    try:
        for phase in phases:
            t = time.perf_counter()
            try:
                result[phase] = await runners[phase](ctx)
            except Exception as exc:  # one phase failing must not lose the others' figures
                result["errors"][phase] = f"{type(exc).__name__}: {exc}"
                result["errors"][phase + "_traceback"] = traceback.format_exc(limit=8)
            result["timings_s"][phase] = round(time.perf_counter() - t, 1)
            if on_progress is not None:
                on_progress(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if blas is not None:
            blas.restore_original_limits()
    return result
