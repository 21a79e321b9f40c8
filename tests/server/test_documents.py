"""The document lifecycle, search, history and stats over real HTTP, and validation of every body."""

from __future__ import annotations

import json

import pytest
from server_helpers import error, ok

DOC = {
    "id": "docs/photosynthesis.md",
    "title": "Photosynthesis",
    "content": "Plants turn light into sugar. Chlorophyll absorbs red and blue light; "
    "the Calvin cycle fixes carbon dioxide into glucose. " * 4,
    "metadata": {"category": "science", "year": 2024, "score": 0.5, "draft": False, "tags": ["biology", "é"]},
}


def test_lifecycle(acme):
    added = ok(acme.post("/documents", json=DOC), 201)
    assert added["document_id"] == DOC["id"] and added["chunks"] >= 2 and not added["unchanged"]
    assert ok(acme.post("/documents", json=DOC), 201)["unchanged"] is True

    path = "/documents/docs%2Fphotosynthesis.md"  # ids may hold '/': sent percent-encoded
    got = ok(acme.get(path))
    assert got == {
        "id": DOC["id"],
        "title": DOC["title"],
        "content": DOC["content"],
        "metadata": DOC["metadata"],
    }
    assert type(got["metadata"]["year"]) is int and type(got["metadata"]["score"]) is float

    found = acme.post(
        "/search",
        json={
            "query": "how do plants make sugar from light",
            "top_k": 3,
            "filters": {"year": {"$gte": 2020}},
        },
    )
    results = ok(found)["results"]  # the original interface's envelope: data.results
    assert results[0]["document_id"] == DOC["id"] and -1 <= results[0]["similarity"] <= 1
    assert not results[0]["chunk_id"].startswith("acme/")  # the tenant prefix is the server's business
    assert results[0]["metadata"]["tags"] == ["biology", "é"]
    pagination = found.json()["pagination"]
    assert pagination == {"offset": 0, "limit": 3, "count": len(results), "total": pagination["total"],
                          "page": 1, "per_page": 3}
    assert pagination["total"] >= len(results)  # every matching chunk of the tenant
    assert ok(acme.post("/search", json={"query": "sugar", "filters": {"year": {"$lt": 2020}}})) == {"results": []}

    updated = ok(acme.put(path, json={"metadata": {"category": "botany", "year": 2025}}))
    assert updated["document_id"] == DOC["id"] and not updated["unchanged"]
    got = ok(acme.get(path))
    assert got["metadata"] == {"category": "botany", "year": 2025} and got["content"] == DOC["content"]
    ok(acme.put(path, json={"content": "Short now.", "title": "Renamed"}))
    assert ok(acme.get(path))["content"] == "Short now."
    assert ok(acme.get(path))["title"] == "Renamed"

    assert ok(acme.delete(path)) == {"document_id": DOC["id"], "deleted": True}
    error(acme.get(path), 404, "document_not_found")
    error(acme.delete(path), 404, "document_not_found")
    error(acme.put(path, json={"title": "x"}), 404, "document_not_found")


def test_batch_search_paging_history_and_stats(server, keys):
    with server.client(keys["globex_admin"]) as client:
        before = ok(client.get("/stats"))["documents"]  # the server is shared with other modules' tests
        docs = [
            {
                "id": f"note-{i}",
                "title": f"Note {i}",
                "content": f"note number {i} about rivers and lakes",
                "metadata": {"n": i, "kind": "even" if i % 2 == 0 else "odd"},
            }
            for i in range(12)
        ]
        results = ok(client.post("/documents/batch", json={"documents": docs}), 201)
        assert [r["document_id"] for r in results] == [d["id"] for d in docs]

        first = client.post("/search", json={"query": "rivers and lakes", "top_k": 5, "user_id": "alice"})
        second = client.post(
            "/search", json={"query": "rivers and lakes", "top_k": 5, "offset": 5, "user_id": "alice"}
        )
        ids = [r["chunk_id"] for r in ok(first)["results"] + ok(second)["results"]]
        assert len(ids) == len(set(ids)) == 10
        total = ok(client.get("/stats"))["chunks"]
        assert second.json()["pagination"] == {"offset": 5, "limit": 5, "count": 5, "total": total,
                                               "page": 2, "per_page": 5}
        # the original interface's page/per_page: the same window
        paged = client.post("/search", json={"query": "rivers and lakes", "page": 2, "per_page": 5, "user_id": "bob"})
        assert [r["chunk_id"] for r in ok(paged)["results"]] == ids[5:]
        assert paged.json()["pagination"]["total"] == total
        error(client.post("/search", json={"query": "x", "page": 2, "top_k": 5, "user_id": "bob"}), 422, "invalid_input")
        odd = ok(client.post("/search", json={"query": "rivers", "top_k": 20, "filters": {"kind": "odd"}}))["results"]
        assert len(odd) == 6 and all(r["metadata"]["kind"] == "odd" for r in odd)

        history = client.get("/search/history", params={"user_id": "alice", "limit": 1})
        entries = ok(history)
        assert len(entries) == 1 and history.json()["pagination"]["total"] == 2
        assert "rivers" not in json.dumps(entries)  # queries are kept as hashes only
        assert len(ok(client.get("/search/history"))) == 1  # the key's own searches without a user id

        stats = ok(client.get("/stats"))
        assert stats["documents"] == before + 12 and stats["chunks"] >= 12 and stats["provider"] == "memory"
        assert stats["total_searches"] >= 3


def test_health_openapi_and_unknown_routes(server):
    with server.client() as client:
        health = ok(client.get("/health"))
        assert health["status"] == "ok" and health["store"]["ok"] and health["embedder"]["ok"]
        error(client.get("/nope"), 404, "not_found")
        error(client.delete("/search"), 405, "method_not_allowed")
        request_id = client.get("/health", headers={"X-Request-ID": "trace-123"}).headers["x-request-id"]
        assert request_id == "trace-123"

    schema = client = None
    import httpx

    schema = httpx.get(f"{server.url}/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {
        "/api/v1/documents",
        "/api/v1/documents/batch",
        "/api/v1/documents/{document_id}",
        "/api/v1/search",
        "/api/v1/search/history",
        "/api/v1/health",
        "/api/v1/live",
        "/api/v1/metrics",
        "/api/v1/stats",
        "/api/v1/keys",
        "/api/v1/keys/{key_id}",
        "/api/v1/admin/export",
        "/api/v1/admin/backup",
    }
    assert set(paths["/api/v1/documents/{document_id}"]) == {"get", "put", "patch", "delete"}
    assert set(paths["/api/v1/documents"]) == {"get", "post"}
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    post = paths["/api/v1/documents"]["post"]
    for status in ("201", "401", "403", "413", "422", "429", "503"):
        assert status in post["responses"], status
    error_ref = post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("/ErrorEnvelope")
    assert (
        "HTTPValidationError" not in schema["components"]["schemas"]
    )  # FastAPI's default 422 is not what we send


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("post", "/documents", {"title": "t", "content": "c"}, 422, "invalid_input", "id"),
        ("post", "/documents", {"id": 5, "content": "c"}, 422, "invalid_input", "id"),
        ("post", "/documents", {"id": "a", "content": "   "}, 422, "invalid_input", "content"),
        (
            "post",
            "/documents",
            {"id": "a", "content": "c", "metadata": {"nested": {"x": 1}}},
            422,
            "invalid_input",
            "metadata",
        ),
        (
            "post",
            "/documents",
            {"id": "a", "content": "c", "metadata": {"$bad": 1}},
            422,
            "invalid_input",
            "metadata",
        ),
        (
            "post",
            "/documents",
            {"id": "a", "content": "c", "metadata": {"n": 2**60}},
            422,
            "invalid_input",
            "metadata",
        ),
        (
            "post",
            "/documents",
            {"id": "a", "content": "c", "metadata": {"vpa_tenant": "globex"}},
            422,
            "invalid_input",
            "metadata",
        ),
        ("post", "/documents", {"id": "a", "content": "c", "extra": 1}, 422, "invalid_input", "extra"),
        ("post", "/documents", {"id": "a\u0000b", "content": "c"}, 422, "invalid_input", "id"),
        ("post", "/documents", {"id": "x" * 401, "content": "c"}, 422, "invalid_input", "id"),
        ("post", "/documents/batch", {"documents": []}, 422, "invalid_input", "documents"),
        (
            "post",
            "/documents/batch",
            {"documents": [{"id": "a", "content": "ok"}, {"id": "b", "content": 3}]},
            422,
            "invalid_input",
            "documents[1].content",
        ),
        ("post", "/search", {"query": ""}, 422, "invalid_input", "query"),
        ("post", "/search", {"query": "x", "top_k": 0}, 422, "invalid_input", "top_k"),
        ("post", "/search", {"query": "x", "top_k": "3"}, 422, "invalid_input", "top_k"),
        ("post", "/search", {"query": "x", "top_k": 1001}, 422, "invalid_input", "top_k"),
        ("post", "/search", {"query": "x", "top_k": 600, "offset": 600}, 422, "invalid_input", "offset"),
        ("post", "/search", {"query": "x", "filters": {"$bad": 1}}, 422, "invalid_input", "filters"),
        (
            "post",
            "/search",
            {"query": "x", "filters": {"year": {"$gt": "2020"}}},
            422,
            "invalid_input",
            "filters",
        ),
        (
            "post",
            "/search",
            {"query": "x", "filters": {"tags": {"$in": []}}},
            422,
            "invalid_input",
            "filters",
        ),
        ("post", "/search", {"query": "x", "filters": []}, 422, "invalid_input", "filters"),
        ("put", "/documents/a", {"metadata": {"x": [1, 2]}}, 422, "invalid_input", "metadata"),
        ("get", "/search/history?limit=0", None, 422, "invalid_input", "limit"),
    ],
)
def test_bad_input_is_4xx_naming_the_field(acme, method, path, body, status, code, field):
    response = (
        acme.request(method.upper(), path, json=body)
        if body is not None
        else acme.request(method.upper(), path)
    )
    err = error(response, status, code)
    assert err["field"] == field, err
    assert field.split(".")[0].split("[")[0] in err["message"], err


def test_malformed_bodies(acme):
    err = error(
        acme.post("/documents", content=b'{"id": "a", ', headers={"content-type": "application/json"}), 422
    )
    assert err["field"] == "body" and "JSON" in err["message"]
    err = error(
        acme.post(
            "/documents", content=b"id=a", headers={"content-type": "application/x-www-form-urlencoded"}
        ),
        415,
        "unsupported_media_type",
    )
    assert "application/json" in err["message"]
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["$not"] = {}
        node = node["$not"]
    node["a"] = 1
    error(acme.post("/search", json={"query": "x", "filters": deep}), 413, "limit_exceeded")
    err = error(
        acme.post("/search", content=b"[" * 100_000, headers={"content-type": "application/json"}),
        400,
        "bad_request",
    )
    assert err["field"] == "body"
    error(acme.post("/search", content=b'{"query": NaN}', headers={"content-type": "application/json"}), 422)
