"""Prometheus metrics (``prometheus-client``), one registry per application.

- ``vpa_http_requests_total{method,route,status}`` and
  ``vpa_http_request_duration_seconds{method,route,status}`` — every request, labelled by its route
  template (``/api/v1/documents/{document_id}``), never the raw path, so ids do not become labels;
- ``vpa_search_duration_seconds`` — time spent in ``search_knowledge``;
- ``vpa_errors_total{code}`` — error responses by their stable code;
- ``vpa_rate_limited_total``, ``vpa_requests_in_progress``;
- ``vpa_cache_hit_ratio``, ``vpa_documents``, ``vpa_chunks`` — read from the RAG system at scrape time;
- ``vpa_open_connections``, ``vpa_connections_closed_total{reason}`` — what the connection guard
  ended (header_timeout, body_timeout, headers_too_large, evicted, refused, idle).

That is the whole process's view, for an operator key. A tenant's admin key gets `TenantView`: the
same request, search, error and rate-limit metrics counting only that tenant's requests, and its
own documents and chunks — nothing that adds up other tenants' traffic.
"""

from __future__ import annotations

import collections
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from vpa.log import get_logger

log = get_logger("vpa.server.metrics")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


#: Tenants whose request metrics are kept; the least recently active are forgotten first (a
#: forgotten tenant's counters restart from zero, which Prometheus' rate() takes as a reset).
MAX_TENANT_VIEWS = 1000


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections_closed = Counter(
            "vpa_connections_closed_total",
            "Connections ended by the connection guard",
            ["reason"],
            registry=r,
        )
        self.open_connections = Gauge("vpa_open_connections", "Open client connections", registry=r)
        self.requests = Counter(
            "vpa_http_requests_total", "HTTP requests handled", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "vpa_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.search_latency = Histogram(
            "vpa_search_duration_seconds",
            "Latency of searches in the RAG layer",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("vpa_errors_total", "Error responses by error code", ["code"], registry=r)
        self.rate_limited = Counter(
            "vpa_rate_limited_total", "Requests refused by the rate limit", registry=r
        )
        self.in_progress = Gauge("vpa_requests_in_progress", "Requests being handled", registry=r)
        self.store_latency = Histogram(
            "vpa_store_call_duration_seconds",
            "Latency of calls to the vector store's backend, by provider and operation",
            ["provider", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "vpa_store_errors_total",
            "Calls to the vector store that raised, by provider, operation and error class",
            ["provider", "operation", "error"],
            registry=r,
        )
        self.cache_hit_ratio = Gauge("vpa_cache_hit_ratio", "Hit ratio of the RAG cache", registry=r)
        self.documents = Gauge("vpa_documents", "Documents in the collection (all tenants)", registry=r)
        self.chunks = Gauge("vpa_chunks", "Chunks in the collection (all tenants)", registry=r)

    def store_observer(self, provider: str) -> Any:
        """The observer `vpa.stores.observed.observe_store` reports ``provider``'s calls to."""

        def observe(operation: str, seconds: float, error: str | None) -> None:
            self.store_latency.labels(provider, operation).observe(seconds)
            if error is not None:
                self.store_errors.labels(provider, operation, error).inc()

        return observe

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    async def render(self, system: Any) -> bytes:
        """Refresh the gauges read from the RAG system, then the text exposition format."""
        self.cache_hit_ratio.set(system.cache.stats().hit_rate)
        try:
            stats = await system.get_system_stats()
        except Exception as exc:  # the store may be down: the request metrics are still worth serving
            log.warning("metrics.stats_unavailable", error=type(exc).__name__)
        else:
            self.documents.set(stats["documents"])
            self.chunks.set(stats["chunks"])
        return generate_latest(self.registry)


class TenantView:
    """One tenant's metrics, under the same names as the process's."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "vpa_http_requests_total",
            "HTTP requests of this tenant",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "vpa_http_request_duration_seconds",
            "HTTP request latency (this tenant)",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.search_latency = Histogram(
            "vpa_search_duration_seconds",
            "Latency of this tenant's searches",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "vpa_errors_total", "Error responses to this tenant by code", ["code"], registry=r
        )
        self.rate_limited = Counter(
            "vpa_rate_limited_total", "This tenant's requests refused by the rate limit", registry=r
        )
        self.documents = Gauge("vpa_documents", "Documents of this tenant", registry=r)
        self.chunks = Gauge("vpa_chunks", "Chunks of this tenant", registry=r)


class TenantMetrics:
    """A `TenantView` per tenant, for the most recently active ``max_tenants`` tenants."""

    def __init__(self, max_tenants: int = MAX_TENANT_VIEWS) -> None:
        self.max_tenants = max_tenants
        self._views: collections.OrderedDict[str, TenantView] = collections.OrderedDict()

    def of(self, tenant: str) -> TenantView:
        view = self._views.pop(tenant, None) or TenantView()
        self._views[tenant] = view
        if len(self._views) > self.max_tenants:
            self._views.popitem(last=False)
        return view

    def observe(
        self, tenant: str, method: str, route: str, status: int, seconds: float, error_code: str | None
    ) -> None:
        view = self.of(tenant)
        labels = (method, route, str(status))
        view.requests.labels(*labels).inc()
        view.latency.labels(*labels).observe(seconds)
        if error_code is not None:
            view.errors.labels(error_code).inc()

    async def render(self, tenant: str, system: Any) -> bytes:
        view = self.of(tenant)
        try:
            stats = await system.get_system_stats(tenant=tenant)
        except Exception as exc:  # the store may be down: the request metrics are still worth serving
            log.warning("metrics.stats_unavailable", error=type(exc).__name__)
        else:
            view.documents.set(stats["documents"])
            view.chunks.set(stats["chunks"])
        return generate_latest(view.registry)
