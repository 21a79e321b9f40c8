"""Tenant isolation: one tenant can never read, find, count, change or delete another's documents,
whatever id, filter or user id it sends."""

from __future__ import annotations

import pytest
from server_helpers import error, ok

SECRET = {
    "id": "plan",
    "title": "Globex plan",
    "content": "Globex will corner the hammock market in spring.",
    "metadata": {"owner": "globex", "year": 2024, "tags": ["strategy"]},
}
DECOY = {
    "id": "plan",
    "title": "Acme plan",
    "content": "Acme sells anvils and rockets to coyotes.",
    "metadata": {"owner": "acme", "year": 2024},
}

ADVERSARIAL_FILTERS = [
    None,
    {},
    {"vpa_tenant": "globex"},
    {"vpa_tenant": {"$ne": "acme"}},
    {"vpa_tenant": {"$in": ["globex", "acme"]}},
    {"$or": [{"vpa_tenant": "globex"}, {"owner": "globex"}]},
    {"$or": [{"owner": "globex"}, {"$not": {"owner": "globex"}}]},
    {"$not": {"vpa_tenant": "acme"}},
    {"$not": {"$and": [{"vpa_tenant": "acme"}]}},
    {"owner": "globex"},
    {"vpa_document_id": "plan"},
    {"vpa_document_id": {"$nin": ["nothing"]}},
    {"year": {"$gte": 0}, "$or": [{"vpa_tenant": {"$ne": "x"}}, {"vpa_tenant": {"$eq": "globex"}}]},
]


@pytest.fixture(scope="module")
def planted(server, keys):
    with server.client(keys["globex_writer"]) as globex, server.client(keys["acme_writer"]) as acme:
        ok(globex.post("/documents", json=SECRET), 201)
        ok(
            globex.post(
                "/documents", json={**SECRET, "id": "globex-only", "content": "hammocks hammocks hammocks"}
            ),
            201,
        )
        ok(acme.post("/documents", json=DECOY), 201)
    return True


def test_same_id_in_two_tenants_are_two_documents(planted, acme, globex):
    assert ok(acme.get("/documents/plan"))["content"] == DECOY["content"]
    assert ok(globex.get("/documents/plan"))["content"] == SECRET["content"]


@pytest.mark.parametrize("filters", ADVERSARIAL_FILTERS)
def test_search_never_crosses_tenants(planted, acme, filters):
    body = {"query": "Globex hammock market spring strategy", "top_k": 50}
    if filters is not None:
        body["filters"] = filters
    results = ok(acme.post("/search", json=body))["results"]
    assert all("hammock" not in r["content"] and r["metadata"].get("owner") != "globex" for r in results), (
        results
    )
    assert all(r["document_id"] != "globex-only" for r in results)


@pytest.mark.parametrize(
    "document_id",
    [
        "globex-only",
        "globex/globex-only",
        "../globex/globex-only",
        "/globex/globex-only",
        "globex%2Fglobex-only",
        "globex-only#0",
        "globex/globex-only#0",
    ],
)
def test_ids_cannot_reach_another_tenant(planted, acme, globex, document_id):
    path = "/documents/" + document_id.replace("/", "%2F").replace("#", "%23")
    error(acme.get(path), 404, "document_not_found")
    error(acme.put(path, json={"title": "hijacked"}), 404, "document_not_found")
    error(acme.delete(path), 404, "document_not_found")
    assert ok(globex.get("/documents/globex-only"))["title"] == SECRET["title"]


def test_writing_someone_elses_id_stays_in_own_tenant(planted, acme, globex):
    ok(acme.post("/documents", json={"id": "globex/plan", "content": "acme pretending to be globex"}), 201)
    assert ok(globex.get("/documents/plan"))["content"] == SECRET["content"]
    error(globex.get("/documents/globex%2Fplan"), 404)
    ok(acme.delete("/documents/globex%2Fplan"))
    ok(
        acme.post("/documents/batch", json={"documents": [{"id": "globex-only", "content": "acme's own"}]}),
        201,
    )
    assert ok(globex.get("/documents/globex-only"))["content"] == "hammocks hammocks hammocks"
    ok(acme.delete("/documents/globex-only"))
    assert ok(globex.get("/documents/globex-only"))["content"] == "hammocks hammocks hammocks"


def test_counts_and_history_are_per_tenant_and_key(planted, server, keys):
    with (
        server.client(keys["globex_admin"]) as globex_admin,
        server.client(keys["acme_reader"]) as acme_reader,
    ):
        globex_docs = ok(globex_admin.get("/stats"))["documents"]
        acme_docs = ok(acme_reader.get("/stats"))["documents"]
        ok(globex_admin.post("/search", json={"query": "secret globex query", "user_id": "shared-name"}))
        assert ok(acme_reader.get("/search/history", params={"user_id": "shared-name"})) == []
        assert len(ok(globex_admin.get("/search/history", params={"user_id": "shared-name"}))) == 1
    with server.client(keys["acme_writer"]) as acme:
        ok(acme.post("/documents", json={"id": "count-me", "content": "one more acme doc"}), 201)
        with server.client(keys["globex_admin"]) as globex_admin:
            assert ok(globex_admin.get("/stats"))["documents"] == globex_docs
        with server.client(keys["acme_reader"]) as acme_reader:
            assert ok(acme_reader.get("/stats"))["documents"] == acme_docs + 1
        ok(acme.delete("/documents/count-me"))
