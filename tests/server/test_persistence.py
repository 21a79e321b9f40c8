"""Restarts lose nothing; encryption at rest keeps text off the disk; a store that is down is a 503."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from server_helpers import Server, base_env, error, free_port, make_key, ok
from vpa.crypto import generate_key

DOCS = [
    {
        "id": f"kb/{i:02d}.md",
        "title": f"Entry {i}",
        "content": f"Entry {i}: " + "the quick brown fox jumps. " * (i + 1),
        "metadata": {"i": i, "parity": "even" if i % 2 == 0 else "odd", "tags": [f"t{i}"]},
    }
    for i in range(15)
]
MARKER = "zanzibar-quokka-marmalade"  # text that must never appear on disk when encrypted


def _snapshot(client) -> dict:
    """Every document, the stats and a search, as seen through the API."""
    docs = {}
    for doc in DOCS:
        response = client.get(f"/documents/{doc['id'].replace('/', '%2F')}")
        docs[doc["id"]] = ok(response) if response.status_code == 200 else response.status_code
    stats = ok(client.get("/stats"))
    found = [
        (r["chunk_id"], round(r["similarity"], 5))
        for r in ok(client.post("/search", json={"query": "quick fox", "top_k": 10}))["results"]
    ]
    return {"docs": docs, "documents": stats["documents"], "chunks": stats["chunks"], "search": found}


def _write(client) -> None:
    ok(client.post("/documents/batch", json={"documents": DOCS[:10]}), 201)
    for doc in DOCS[10:]:
        ok(client.post("/documents", json=doc), 201)
    ok(
        client.put(
            "/documents/kb%2F03.md", json={"content": "Entry 3 was rewritten entirely.", "metadata": {"i": 3}}
        )
    )
    ok(client.delete("/documents/kb%2F04.md"))


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "kill-9"])
def test_restart_loses_nothing(server_factory, how):
    server, made = server_factory(f"restart-{how.name}", keys={"w": ("writer", "kb")})
    key = made["w"]["key"]
    with server.client(key) as client:
        _write(client)
        before = _snapshot(client)
    assert (
        before["docs"]["kb/04.md"] == 404
        and before["docs"]["kb/03.md"]["content"] == "Entry 3 was rewritten entirely."
    )
    assert before["documents"] == 14
    server.stop(how)
    server.start()
    with server.client(key) as client:  # the same key works: keys are on disk too
        assert _snapshot(client) == before
        ok(client.post("/documents", json={"id": "after-restart", "content": "still writable"}), 201)


def test_memory_store_encrypted_at_rest(tmp_path):
    env = base_env(tmp_path / "data", VPA_ENCRYPT_AT_REST="true", VPA_ENCRYPTION_KEY=generate_key())
    key = make_key(env, "writer", "enc")["key"]
    server = Server(tmp_path, env)
    try:
        server.start()
        with server.client(key) as client:
            ok(
                client.post(
                    "/documents",
                    json={
                        "id": "secret",
                        "title": f"title {MARKER}",
                        "content": f"body {MARKER}",
                        "metadata": {"label": MARKER},
                    },
                ),
                201,
            )
        server.stop(signal.SIGKILL)  # the write is only in the journal
        _assert_not_on_disk(tmp_path / "data" / "memory")
        server.start()
        with server.client(key) as client:
            assert ok(client.get("/documents/secret"))["content"] == f"body {MARKER}"
        server.stop()  # graceful: folded into the snapshot
        _assert_not_on_disk(tmp_path / "data" / "memory")

        wrong = Server(tmp_path, {**env, "VPA_ENCRYPTION_KEY": generate_key()})
        with pytest.raises(AssertionError, match="exited"):
            wrong.start()
        assert "decrypt" in wrong.log() and env["VPA_ENCRYPTION_KEY"] not in wrong.log()
    finally:
        server.stop()


def test_bad_encryption_key_is_refused_before_start(tmp_path):
    env = base_env(tmp_path / "data", VPA_ENCRYPT_AT_REST="true", VPA_ENCRYPTION_KEY="hunter2")
    server = Server(tmp_path, env)
    with pytest.raises(AssertionError, match="exited with 2"):
        server.start()
    assert "VPA_ENCRYPTION_KEY must be 32 random bytes" in server.log() and "hunter2" not in server.log()


def _assert_not_on_disk(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files, f"nothing written under {folder}"
    for path in files:
        data = path.read_bytes()
        assert MARKER.encode() not in data, path


def test_remote_store_text_encrypted_by_the_rag_layer(server_factory):
    """qdrant (local mode) does not encrypt: the RAG layer seals each chunk's text before upsert."""
    server, made = server_factory(
        "qdrant-enc",
        keys={"w": ("writer", "enc")},
        VPA_VECTOR_DB_PROVIDER="qdrant",
        VPA_ENCRYPT_AT_REST="true",
        VPA_ENCRYPTION_KEY=generate_key(),
    )
    with server.client(made["w"]["key"]) as client:
        ok(
            client.post(
                "/documents",
                json={
                    "id": "q",
                    "title": "Quokkas",
                    "content": f"quokkas smile {MARKER}",
                    "metadata": {"kind": "animal"},
                },
            ),
            201,
        )
        assert ok(client.get("/documents/q"))["content"] == f"quokkas smile {MARKER}"
        hits = ok(
            client.post("/search", json={"query": f"quokkas smile {MARKER}", "filters": {"kind": "animal"}})
        )["results"]
        assert hits[0]["content"] == f"quokkas smile {MARKER}" and hits[0]["similarity"] > 0.9
    server.stop()
    _assert_not_on_disk(server.folder / "data" / "qdrant")


def test_store_down_is_503_never_500(server_factory):
    closed = free_port()  # nothing listens there
    server, made = server_factory(
        "down",
        keys={"w": ("writer", "t")},
        VPA_VECTOR_DB_PROVIDER="qdrant",
        VPA_VECTOR_DB_HOST="127.0.0.1",
        VPA_VECTOR_DB_PORT=str(closed),
    )
    with server.client() as anonymous:
        err = error(anonymous.get("/health"), 503, "store_unavailable")
        assert {d["field"] for d in err["details"]} == {"store", "embedder"}
    with server.client(made["w"]["key"]) as client:
        error(client.post("/documents", json={"id": "a", "content": "b"}), 503, "store_unavailable")
        error(client.post("/search", json={"query": "b"}), 503, "store_unavailable")
        error(client.get("/documents/a"), 503, "store_unavailable")
        error(client.get("/stats"), 503, "store_unavailable")
