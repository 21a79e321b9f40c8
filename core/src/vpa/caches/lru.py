"""The `lru` cache: least-recently-used eviction with a time to live, in this process.

Built on cachetools' TTLCache. Invalidation bumps the namespace's generation, which is part of
every key, so a whole namespace is dropped in O(1); its stale entries age out through LRU or TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import cachetools

from vpa.caches.base import Cache, CacheStats
from vpa.hookspecs import hookimpl


class LRUCache(Cache):
    name = "lru"

    def __init__(self, maxsize: int = 1024, ttl: float = 300.0, timer: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1 or ttl <= 0:
            raise ValueError("maxsize and ttl must be positive")
        self._data: cachetools.TTLCache[tuple[str, int, str], Any] = cachetools.TTLCache(maxsize, ttl, timer=timer)
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
            self._data[self._key(namespace, key)] = value

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


@hookimpl
def vpa_register_caches(register: Any) -> None:
    register(
        "lru",
        lambda config: LRUCache(config.cache_size, config.cache_ttl_seconds),
        description="in-process LRU with TTL, invalidated by writes",
    )
