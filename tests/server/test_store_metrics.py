"""Per-provider store metrics on /metrics (the operator's, whole-process view): a latency
histogram of every backend call by operation, and an error counter by the error's class — from a
real `vpa serve` over the memory store, and over a Qdrant address where nothing listens."""

from __future__ import annotations

import re

from server_helpers import free_port, ok


def _samples(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        m = re.match(rf"{name}\{{([^}}]*)\}} ([0-9.e+-]+)$", line)
        if m:
            found[m.group(1)] = float(m.group(2))
    return found


def test_store_calls_are_timed_by_provider_and_operation(server_factory) -> None:
    server, made = server_factory("store-metrics", keys={"w": ("writer", "t"), "op": ("operator", "")})
    with server.client(made["w"]["key"]) as writer, server.client(made["op"]["key"]) as operator:
        ok(writer.post("/documents", json={"id": "a", "content": "platypus venom"}), 201)
        ok(writer.post("/search", json={"query": "platypus"}))
        text = operator.get("/metrics").text
    counts = _samples(text, "vpa_store_call_duration_seconds_count")
    assert counts.get('operation="upsert",provider="memory"', 0) >= 1, counts
    assert counts.get('operation="query",provider="memory"', 0) >= 1, counts
    assert not _samples(text, "vpa_store_errors_total")  # nothing failed


def test_store_errors_are_counted_by_class(server_factory) -> None:
    server, made = server_factory(
        "store-metrics-down", keys={"w": ("writer", "t"), "op": ("operator", "")},
        VPA_VECTOR_DB_PROVIDER="qdrant", VPA_VECTOR_DB_HOST="127.0.0.1", VPA_VECTOR_DB_PORT=str(free_port()),
    )
    with server.client(made["w"]["key"]) as writer, server.client(made["op"]["key"]) as operator:
        assert writer.post("/search", json={"query": "anything"}).status_code == 503
        text = operator.get("/metrics").text
    errors = _samples(text, "vpa_store_errors_total")
    assert any('provider="qdrant"' in k and 'error="StoreUnavailable"' in k for k in errors), errors
    assert "platypus" not in text and "anything" not in text  # no query text in metrics
