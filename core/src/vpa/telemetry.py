"""Search telemetry: counts, latencies and per-user history, kept per tenant, bounded in memory.

One tenant's traffic never evicts another's history or shows in another's figures: each tenant
(``None`` is the untenanted scope) has its own bounded history of users and its own latency
window; the figures of the whole process are the operator's view (``scope=ALL``). The least
recently active tenants and users are forgotten first, so random ids cannot grow memory.
Queries are kept as short hashes, never as text. Figures are per process (they are not stored
with the collection) and say so in their field names' documentation.
"""

from __future__ import annotations

import collections
import hashlib
import time
from typing import Any

import attrs
import numpy as np

MAX_TENANTS = 10_000
MAX_USERS_PER_TENANT = 10_000
LATENCY_WINDOW = 10_000
#: ``scope`` meaning every tenant (the operator's view).
ALL = object()


@attrs.frozen
class SearchHistoryEntry:
    query_hash: str
    top_k: int
    results: int
    latency_ms: float
    timestamp: float
    filtered: bool


@attrs.define
class _Scope:
    searches: int = 0
    latencies: collections.deque[float] = attrs.field(
        factory=lambda: collections.deque(maxlen=LATENCY_WINDOW)
    )
    users: collections.OrderedDict[str, collections.deque[SearchHistoryEntry]] = attrs.field(
        factory=collections.OrderedDict
    )

    def add_latency(self, latency_ms: float) -> None:
        self.searches += 1
        self.latencies.append(latency_ms)

    def figures(self) -> dict[str, Any]:
        latencies = np.fromiter(self.latencies, dtype=np.float64, count=len(self.latencies))
        return {
            "total_searches": self.searches,
            "avg_latency_ms": round(float(latencies.mean()), 3) if latencies.size else 0.0,
            "p95_latency_ms": round(float(np.percentile(latencies, 95)), 3) if latencies.size else 0.0,
        }


class SearchTelemetry:
    """Observes searches; the RAG layer and the REST server read its figures."""

    def __init__(self, history_size: int = 100) -> None:
        self.history_size = history_size
        self._all = _Scope()
        self._tenants: collections.OrderedDict[str | None, _Scope] = collections.OrderedDict()

    def record(
        self, tenant: str | None, user_id: str, query: str, top_k: int, results: int, latency_ms: float,
        filtered: bool,
    ) -> None:
        self._all.add_latency(latency_ms)
        scope = self._tenants.pop(tenant, None) or _Scope()
        self._tenants[tenant] = scope
        if len(self._tenants) > MAX_TENANTS:
            self._tenants.popitem(last=False)
        scope.add_latency(latency_ms)
        history = scope.users.pop(user_id, None) or collections.deque(maxlen=self.history_size)
        scope.users[user_id] = history
        if len(scope.users) > MAX_USERS_PER_TENANT:
            scope.users.popitem(last=False)
        query_hash = hashlib.sha256(query.encode("utf-8")).hexdigest()[:16]
        entry = SearchHistoryEntry(query_hash, top_k, results, round(latency_ms, 3), time.time(), filtered)
        history.append(entry)

    def history(
        self, user_id: str, *, tenant: str | None = None, limit: int | None = None
    ) -> list[SearchHistoryEntry]:
        """A user's most recent searches within a tenant, newest first."""
        scope = self._tenants.get(tenant)
        entries = list(reversed(scope.users.get(user_id, ()))) if scope is not None else []
        return entries[:limit] if limit is not None else entries

    def figures(self, scope: Any = ALL) -> dict[str, Any]:
        """Search count and latency of one tenant (``None``: untenanted), or of all (``ALL``)."""
        if scope is ALL:
            return self._all.figures()
        return (self._tenants.get(scope) or _Scope()).figures()
