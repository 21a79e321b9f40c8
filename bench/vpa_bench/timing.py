"""Timing proxies: where the time of an ingest or a search goes, without changing VPA.

- `instrument_store` swaps a store instance's class for a generated subclass whose public
  methods (``upsert``, ``query``, ... — VPA's base class: validation, batching) and backend
  methods (``_upsert``, ``_query``, ... — the plugin and the vendor client) record wall-clock
  spans. The instance, its state and its class's behaviour are otherwise untouched.
- `TimedEmbedder` is an `Embedder` that forwards to the real one and records spans of ``aembed``
  (what the RAG layer awaits, including the hop to a worker thread) and of ``embed`` (the model's
  own work in that thread).

`Recorder.union` measures the union of spans (overlapping spans count once), so time in the
embedder and time in the store can be told apart even though the RAG layer overlaps them.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from vpa.embedders.base import Embedder
from vpa.stores.base import VectorStore

PUBLIC_METHODS = (
    "create_collection",
    "open_collection",
    "upsert",
    "query",
    "get",
    "delete",
    "count",
    "settle",
)
BACKEND_METHODS = (
    "_describe_collection",
    "_create_collection",
    "_upsert",
    "_query",
    "_get",
    "_delete",
    "_count",
)


class Recorder:
    """Spans (start, end) in ``time.perf_counter`` seconds, by name. Thread-safe appends."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.counters: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, name: str, start: float, end: float) -> None:
        with self._lock:
            self.spans[name].append((start, end))

    def bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def reset(self) -> None:
        with self._lock:
            self.spans.clear()
            self.counters.clear()

    def names(self, prefix: str) -> list[str]:
        return [n for n in list(self.spans) if n.startswith(prefix)]

    def total(self, name: str) -> float:
        return sum(e - s for s, e in self.spans.get(name, ()))

    def count(self, name: str) -> int:
        return len(self.spans.get(name, ()))

    def union(self, prefixes: Sequence[str], window: tuple[float, float] | None = None) -> float:
        """Seconds covered by at least one span whose name starts with one of ``prefixes``."""
        spans = [sp for p in prefixes for n in self.names(p) for sp in self.spans[n]]
        return union_length(spans, window)


def union_length(spans: Iterable[tuple[float, float]], window: tuple[float, float] | None = None) -> float:
    items = sorted(spans)
    total, cur_s, cur_e = 0.0, None, None
    for s, e in items:
        if window is not None:
            s, e = max(s, window[0]), min(e, window[1])
            if e <= s:
                continue
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def _timed_async(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder: Recorder | None = self.__dict__.get("_bench_recorder")
        start = time.perf_counter()
        try:
            return await fn(self, *args, **kwargs)
        finally:
            if recorder is not None:
                recorder.add(name, start, time.perf_counter())

    return wrapper


@functools.cache
def _timed_class(cls: type) -> type:
    namespace: dict[str, Any] = {}
    for method in PUBLIC_METHODS:
        namespace[method] = _timed_async(f"store.public.{method}", getattr(cls, method))
    for method in BACKEND_METHODS:
        namespace[method] = _timed_async(f"store.backend.{method}", getattr(cls, method))
    return type(f"Timed{cls.__name__}", (cls,), namespace)


def instrument_store(store: VectorStore, recorder: Recorder) -> VectorStore:
    """Make ``store`` record its public and backend calls into ``recorder`` (in place)."""
    store.__class__ = _timed_class(type(store))
    store.__dict__["_bench_recorder"] = recorder
    return store


class TimedEmbedder(Embedder):
    """Forwards to ``inner``; records ``embedder.aembed`` and ``embedder.embed`` spans."""

    def __init__(self, inner: Embedder, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = inner.name
        self._inner_has_own_aembed = type(inner).aembed is not Embedder.aembed

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def fingerprint(self) -> Any:
        return self.inner.fingerprint

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.recorder.add("embedder.embed", start, time.perf_counter())
            self.recorder.bump("embedder.texts", len(texts))

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        try:
            if self._inner_has_own_aembed:
                return await self.inner.aembed(texts)
            return await asyncio.to_thread(self.embed, list(texts))  # what Embedder.aembed does
        finally:
            self.recorder.add("embedder.aembed", start, time.perf_counter())
