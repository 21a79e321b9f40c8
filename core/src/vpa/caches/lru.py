"""The `lru` cache: least-recently-used eviction with a time to live, in this process.

Built on cachetools' TTLCache. Invalidation bumps the namespace's generation, which is part of
every key, so a whole namespace is dropped in O(1); its stale entries age out through LRU or TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import cachetools
import numpy as np

from vpa.caches.base import Cache, CacheStats
from vpa.hookspecs import hookimpl


def approximate_bytes(value: Any) -> int:
    """Memory an entry holds, roughly (arrays by their buffers, results by their text): what
    ``VPA_CACHE_SIZE_MB`` bounds. Never less than 1."""
    if isinstance(value, np.ndarray):
        return value.nbytes + 112
    if isinstance(value, str):
        return len(value) + 49
    if isinstance(value, (list, tuple)):
        return 56 + 8 * len(value) + sum(approximate_bytes(v) for v in value)
    if isinstance(value, dict):
        return 64 + sum(approximate_bytes(k) + approximate_bytes(v) for k, v in value.items())
    if attrs.has(type(value)):
        return 56 + sum(approximate_bytes(getattr(value, f.name)) for f in attrs.fields(type(value)))
    return 32


class LRUCache(Cache):
    """``maxsize`` entries, or with ``max_bytes`` that many bytes of entries (`approximate_bytes`)."""

    name = "lru"

    def __init__(
        self, maxsize: int = 1024, ttl: float = 300.0, timer: Callable[[], float] = time.monotonic,
        *, max_bytes: int | None = None,
    ) -> None:
        if maxsize < 1 or ttl <= 0 or (max_bytes is not None and max_bytes < 1):
            raise ValueError("maxsize, max_bytes and ttl must be positive")
        self._data: cachetools.TTLCache[tuple[str, int, str], Any] = (
            cachetools.TTLCache(maxsize, ttl, timer=timer) if max_bytes is None
            else cachetools.TTLCache(max_bytes, ttl, timer=timer, getsizeof=approximate_bytes)
        )
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def _key(self, namespace: str, key: str) -> tuple[str, int, str]:
        return (namespace, self._generations.get(namespace, 0), key)

    def get(self, namespace: str, key: str) -> Any | None:
        with self._lock:
            value = self._data.get(self._key(namespace, key))
            if value is None:
                self._misses += 1
            else:
                self._hits += 1
            return value

    def set(self, namespace: str, key: str, value: Any) -> None:
        if value is None:
            return
        with self._lock:
            try:
                self._data[self._key(namespace, key)] = value
            except ValueError:  # larger than the whole byte budget: not cached
                pass

    def invalidate(self, namespace: str) -> None:
        with self._lock:
            self._generations[namespace] = self._generations.get(namespace, 0) + 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            self._data.expire()
            return CacheStats(self._hits, self._misses, len(self._data), int(self._data.maxsize))


def _from_config(config: Any) -> LRUCache:
    max_bytes = int(config.cache_size_mb * 1024 * 1024) if config.cache_size_mb else None
    return LRUCache(config.cache_size, config.cache_ttl_seconds, max_bytes=max_bytes)


@hookimpl
def vpa_register_caches(register: Any) -> None:
    register(
        "lru",
        _from_config,
        description="in-process LRU with TTL, invalidated by writes (VPA_CACHE_SIZE entries or VPA_CACHE_SIZE_MB)",
    )
