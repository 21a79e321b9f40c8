"""The cache interface: values by (namespace, key), with whole namespaces invalidated at once.

The RAG layer keeps query embeddings under the embedder's fingerprint and search results under
the collection's name, and invalidates the collection's namespace on every write to it.
"""

from __future__ import annotations

import abc
from typing import Any

import attrs


@attrs.frozen
class CacheStats:
    hits: int
    misses: int
    size: int
    maxsize: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class Cache(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def get(self, namespace: str, key: str) -> Any | None:
        """The cached value, or None when absent or expired (so None itself cannot be cached)."""

    @abc.abstractmethod
    def set(self, namespace: str, key: str, value: Any) -> None: ...

    @abc.abstractmethod
    def invalidate(self, namespace: str) -> None:
        """Forget every entry of the namespace."""

    @abc.abstractmethod
    def clear(self) -> None: ...

    @abc.abstractmethod
    def stats(self) -> CacheStats: ...
