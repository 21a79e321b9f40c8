"""Listing documents (GET /documents, a cursor page at a time) and changing their metadata in place
(PATCH /documents/{id}) over real HTTP — store contract 1.1 — with typed JSON dates both ways,
tenants kept apart, declared limits, and a 1.0 store's typed refusal."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from server_helpers import error, ok

KEYS = {
    "north_writer": ("writer", "north"),
    "north_reader": ("reader", "north"),
    "south_writer": ("writer", "south"),
}


@pytest.fixture(scope="module")
def lifecycle(server_factory: Any) -> tuple[Any, dict[str, str]]:
    """A server of its own: its tenants' documents are exactly what these tests add."""
    server, made = server_factory("lifecycle", keys=KEYS)
    return server, {label: info["key"] for label, info in made.items()}


@pytest.fixture(scope="module")
def filled(lifecycle: Any) -> tuple[Any, dict[str, str]]:
    server, keys = lifecycle
    documents = [
        {"id": f"notes/{i:02}.md", "title": f"Note {i}", "content": "the quick brown fox jumps " * (1 + 10 * (i % 3)),
         "metadata": {"n": i, "published": {"$date": f"2024-03-{i + 1:02}T09:30:00+01:00"},
                      **({"source-url": f"https://example.org/{i}", "og:title": "Größe"} if i % 4 == 0 else {})}}
        for i in range(25)
    ]
    with server.client(keys["north_writer"]) as north, server.client(keys["south_writer"]) as south:
        ok(north.post("/documents/batch", json={"documents": documents}), 201)
        ok(south.post("/documents", json={"id": "notes/00.md", "title": "South", "content": "south only",
                                          "metadata": {"n": 0}}), 201)
    return server, keys


def _list(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    response = client.get("/documents", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and set(body) == {"status", "data", "pagination"}
    return body["data"], body["pagination"]


def _everything(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        data, pagination = _list(client, cursor=cursor, **params)
        assert pagination["count"] == len(data) <= pagination["limit"]
        seen.extend(data)
        cursor = pagination["next_cursor"]
        if cursor is None:
            return seen


def test_pages_follow_the_cursor_and_list_each_document_once(filled):
    server, keys = filled
    with server.client(keys["north_reader"]) as north:
        data, pagination = _list(north, limit=10)
        assert len(data) == 10 and pagination["limit"] == 10 and pagination["next_cursor"]
        seen = _everything(north, limit=7)
    assert [d["id"] for d in seen] == [f"notes/{i:02}.md" for i in range(25)]
    first = seen[0]
    assert set(first) == {"id", "title", "metadata", "chunks"}  # no text, no vectors
    assert first["title"] == "Note 0" and first["chunks"] == 1 and seen[1]["chunks"] >= 2
    assert first["metadata"] == {"n": 0, "published": {"$date": "2024-03-01T08:30:00Z"},
                                 "source-url": "https://example.org/0", "og:title": "Größe"}


def test_the_filter_takes_typed_dates_exists_and_loader_keys(filled):
    server, keys = filled
    with server.client(keys["north_reader"]) as north:
        since = json.dumps({"published": {"$gte": {"$date": "2024-03-20T00:00:00Z"}}})
        assert [d["metadata"]["n"] for d in _everything(north, filter=since)] == list(range(19, 25))
        wide = json.dumps({"source-url": {"$exists": True}, "og:title": "Größe"})
        assert [d["metadata"]["n"] for d in _everything(north, filter=wide)] == [0, 4, 8, 12, 16, 20, 24]
        absent = json.dumps({"source-url": None, "n": {"$lt": 4}})
        assert [d["metadata"]["n"] for d in _everything(north, filter=absent)] == [1, 2, 3]
        assert _everything(north, filter="") == _everything(north)  # empty: no filter


def test_a_tenant_lists_only_its_own_and_its_cursors_are_its_own(filled):
    server, keys = filled
    with server.client(keys["south_writer"]) as south, server.client(keys["north_reader"]) as north:
        assert [(d["id"], d["title"]) for d in _everything(south)] == [("notes/00.md", "South")]
        for spec in ({"vpa_tenant": "north"}, {"vpa_tenant": {"$ne": "south"}}, {"$not": {"vpa_tenant": "south"}},
                     {"$or": [{"vpa_tenant": "north"}, {"n": {"$gte": 0}}]}):
            assert [d["title"] for d in _everything(south, filter=json.dumps(spec))] in (["South"], [])
        cursor = _list(north, limit=2)[1]["next_cursor"]
        failure = error(south.get("/documents", params={"limit": 2, "cursor": cursor}), 400, "invalid_cursor")
        assert failure["field"] == "cursor"
        error(south.patch("/documents/notes%2F05.md", json={"set": {"owner": "south"}}), 404, "document_not_found")
        assert ok(south.patch("/documents/notes%2F00.md", json={"set": {"owner": "south"}}))["chunks"] == 1
        assert "owner" not in _list(north, limit=1)[0][0]["metadata"]  # north's notes/00.md untouched


def test_patch_changes_metadata_in_place_with_typed_dates(filled):
    server, keys = filled
    path = "/documents/notes%2F07.md"
    with server.client(keys["north_writer"]) as north:
        before = ok(north.get(path))
        changed = ok(north.patch(path, json={
            "set": {"status": "reviewed", "reviewed_at": {"$date": "2024-06-01T12:00:00-04:00"}, "n": None},
            "unset": ["published"],
        }))
        assert changed["document_id"] == "notes/07.md" and changed["chunks"] >= 2
        after = ok(north.get(path))
        assert after["content"] == before["content"] and after["title"] == before["title"]
        assert after["metadata"] == {"status": "reviewed", "reviewed_at": {"$date": "2024-06-01T16:00:00Z"}}
        found = ok(north.post("/search", json={"query": "quick brown fox", "filters": {"status": "reviewed"}}))
        assert [r["document_id"] for r in found["results"]] == ["notes/07.md"]
        assert found["results"][0]["metadata"]["reviewed_at"] == {"$date": "2024-06-01T16:00:00Z"}
        listed = _everything(north, filter=json.dumps({"reviewed_at": {"$lt": {"$date": "2024-07-01T00:00:00Z"}}}))
        assert [d["id"] for d in listed] == ["notes/07.md"]
        ok(north.patch(path, json={"set": {"n": 7, "published": {"$date": "2024-03-08T08:30:00Z"}},
                                   "unset": ["status", "reviewed_at"]}))
        assert ok(north.get(path))["metadata"] == {"n": 7, "published": {"$date": "2024-03-08T08:30:00Z"}}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"set": {"vpa_title": "x"}}, 422, "invalid_input"),
        ({"unset": ["vpa_document_id"]}, 422, "invalid_input"),
        ({"set": {"when": {"$date": "2024-06-01T12:00:00"}}}, 422, "invalid_input"),  # naive
        ({"set": {"when": {"$date": "0001-01-01T00:00:00Z"}}}, 422, "invalid_input"),  # out of range
        ({"set": {"nested": {"a": 1}}}, 422, "invalid_input"),
        ({"set": {"a": 1}, "unset": ["a"]}, 422, "invalid_input"),
        ({"unset": ["$op"]}, 422, "invalid_metadata"),
        ({}, 422, "invalid_input"),
        ({"title": "not here"}, 422, "invalid_input"),
    ],
)
def test_patch_refusals(filled, body, status, code):
    server, keys = filled
    with server.client(keys["north_writer"]) as north:
        error(north.patch("/documents/notes%2F03.md", json=body), status, code)
        assert ok(north.get("/documents/notes%2F03.md"))["metadata"]["n"] == 3


def test_roles_and_unknown_documents(filled):
    server, keys = filled
    with server.client(keys["north_reader"]) as reader, server.client() as nobody:
        error(reader.patch("/documents/notes%2F03.md", json={"set": {"a": 1}}), 403, "forbidden")
        error(nobody.get("/documents"), 401, "unauthenticated")
    with server.client(keys["north_writer"]) as north:
        error(north.patch("/documents/missing", json={"set": {"a": 1}}), 404, "document_not_found")


def test_listing_limits_and_malformed_parameters(filled):
    server, keys = filled
    with server.client(keys["north_reader"]) as north:
        for limit in (0, 1001, "many"):
            error(north.get("/documents", params={"limit": limit}), 422, "invalid_input")
        assert len(_list(north, limit=1000)[0]) == 25
        for cursor in ("garbage", "W1swXQ", "x" * 5000):
            assert error(north.get("/documents", params={"cursor": cursor}), 400, "invalid_cursor")["field"] == "cursor"
        for bad in ("{not json", "[1, 2]", json.dumps({"n": {"$near": 1}})):
            assert error(north.get("/documents", params={"filter": bad}), 422, "invalid_filter")["field"] == "filter"
        deep: Any = {"n": 1}
        for _ in range(40):
            deep = {"$not": deep}
        error(north.get("/documents", params={"filter": json.dumps(deep)}), 413, "limit_exceeded")
        error(north.get("/documents", params={"filter": "[" * 4000}), 413, "limit_exceeded")
        too_long = json.dumps({"s": "x" * 4096})  # over the 4,096 characters a query parameter takes
        assert error(north.get("/documents", params={"filter": too_long}), 422, "invalid_input")["field"] == "filter"
    schema = httpx.get(f"{server.url}/openapi.json").json()
    listing = schema["paths"]["/api/v1/documents"]["get"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000 and limit["schema"]["minimum"] == 1
    assert "400" in listing["responses"] and "patch" in schema["paths"]["/api/v1/documents/{document_id}"]


def test_a_1_0_store_answers_422_unsupported_operation(tmp_path):
    """In process (no 1.0 store plugin is installed to serve): the same application and routes."""
    from fastapi.testclient import TestClient

    from vpa.config import load_config
    from vpa.models import StoreCapabilities
    from vpa.rag import RAGSystem
    from vpa.server.app import create_app
    from vpa.stores.memory import MemoryStore

    class LegacyStore(MemoryStore):
        capabilities = StoreCapabilities(exact=True, persistent=True)

    config = load_config({"data_dir": tmp_path / "data", "embedder": "hashing", "auth_enabled": False}, environ={})
    app = create_app(config, system=RAGSystem(config, store=LegacyStore()))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        ok(client.post("/api/v1/documents", json={"id": "a", "content": "text", "metadata": {"k": 1}}), 201)
        failure = error(client.get("/api/v1/documents"), 422, "unsupported_operation")
        assert "1.1" in failure["message"]
        error(client.patch("/api/v1/documents/a", json={"set": {"k": 2}}), 422, "unsupported_operation")
        error(client.post("/api/v1/documents", json={"id": "b", "content": "t", "metadata": {"source-url": "x"}}),
              422, "invalid_metadata")  # a 1.0 store keeps 1.0 keys
        assert ok(client.get("/api/v1/documents/a"))["metadata"] == {"k": 1}
