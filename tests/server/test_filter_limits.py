"""Declared bounds over real HTTP: a filter past them, or a document with too many metadata keys,
is a 4xx ``limit_exceeded`` naming the bound — never a 5xx, never a dead server — and the server
(and the collection) keep working. Against the memory store and, when the plugin is installed,
embedded Chroma, whose engine crashes (SIGSEGV) on wide filters and breaks a collection for good
on a record with too many metadata keys when nothing stops them first."""

from __future__ import annotations

import pytest
from server_helpers import error, ok

DOC = {
    "id": "limits/doc",
    "title": "Limits",
    "content": "Every input has a declared bound, enforced before any I/O. " * 3,
    "metadata": {"n": 1, "lang": "en"},
}


def nested(depth: int) -> dict:
    spec: dict = {"n": 1}
    for _ in range(depth - 1):
        spec = {"$not": spec}
    return spec


def wide_filters() -> dict[str, dict]:
    return {
        "$in of 10,000 values": {"n": {"$in": list(range(10_000))}},
        "$in of 10,000 strings": {"lang": {"$in": [f"l{i}" for i in range(10_000)]}},
        "$or of 5,000 children": {"$or": [{"n": i} for i in range(5_000)]},
        "$in of 200,000 values": {"n": {"$in": list(range(200_000))}},
        "$or of 1,500 string $eq": {"$or": [{"lang": f"l{i}"} for i in range(1_500)]},
        "500 levels": nested(500),
    }


def results(data) -> list[dict]:
    """Search results, in either envelope (a list, or the original interface's ``{"results": ...}``)."""
    return data["results"] if isinstance(data, dict) else data


def check_bounds_hold(server, key: str) -> None:
    with server.client(key, timeout=60) as client:
        ok(client.post("/documents", json=DOC), 201)
        for label, spec in wide_filters().items():
            response = client.post("/search", json={"query": "declared bound", "filters": spec})
            assert response.status_code in (400, 413), (label, response.status_code, response.text[:300])
            body = error(response, response.status_code, "limit_exceeded")
            assert "max_filter_" in body["message"] and body.get("field") == "filters", (label, body)
        many_keys = {**DOC, "id": "limits/many-keys", "metadata": {f"k{i}": i for i in range(6_000)}}
        body = error(client.post("/documents", json=many_keys), 413, "limit_exceeded")
        assert "max_metadata_keys" in body["message"], body
        # still alive, and the collection still works: reads, writes and filtered searches
        assert server.process is not None and server.process.poll() is None
        ok(client.get("/health"))
        ok(client.post("/documents", json={**DOC, "id": "limits/after", "metadata": {"n": 2}}), 201)
        either = {"query": "declared bound", "filters": {"n": {"$in": [1, 2]}}}
        found = ok(client.post("/search", json=either))["results"]
        assert {r["document_id"] for r in found} == {"limits/doc", "limits/after"}
        assert client.get("/documents/limits%2Fmany-keys").status_code == 404


def test_filter_and_metadata_bounds_over_http_memory(server_factory):
    server, keys = server_factory("limits-memory", keys={"w": ("writer", "acme")})
    check_bounds_hold(server, keys["w"]["key"])


def test_filter_and_metadata_bounds_over_http_embedded_chroma(server_factory):
    pytest.importorskip("vpa_chroma")
    server, keys = server_factory(
        "limits-chroma", keys={"w": ("writer", "acme")}, VPA_VECTOR_DB_PROVIDER="chroma"
    )
    check_bounds_hold(server, keys["w"]["key"])
    # a restart opens the same collection: stats, get and search work (the unguarded engine
    # failed all three after the 6,000-key document)
    server.stop()
    server.start()
    with server.client(keys["w"]["key"], timeout=60) as client:
        assert ok(client.get("/stats"))["documents"] == 2
        assert ok(client.get("/documents/limits%2Fdoc"))["metadata"] == DOC["metadata"]
        found = ok(client.post("/search", json={"query": "declared bound", "filters": {"n": 2}}))["results"]
        assert [r["document_id"] for r in found] == ["limits/after"]
