"""The tenant's snapshot over real HTTP (GET /admin/export and /admin/backup): a `.tar` that
`portability.import_snapshot` reads, holding exactly the caller's tenant's records (the filter
narrows it; another tenant's record is never in it, whatever the filter says), admin keys only,
typed one-line errors for a bad filter and for an export over VPA_MAX_EXPORT_RECORDS, nothing left
on disk, an audit line without text — and, with encryption at rest, a sealed snapshot."""

from __future__ import annotations

import asyncio
import json
import tarfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import error, ok

pytest.importorskip("pyarrow")

from vpa.layout import DOC_ID, TENANT, assemble, is_head
from vpa.models import Record
from vpa.portability import ImportSummary, SnapshotSealer, import_snapshot
from vpa.stores.memory import MemoryStore
from vpa.typedjson import decode_metadata

LIMIT = 40
KEYS = {
    "north_admin": ("admin", "north"),
    "north_writer": ("writer", "north"),
    "north_reader": ("reader", "north"),
    "south_admin": ("admin", "south"),
    "big_admin": ("admin", "big"),
    "operator": ("operator", None),
}


def north_documents() -> list[dict[str, Any]]:
    return [
        {"id": f"notes/{i:02}.md", "title": f"North {i}",
         "content": f"north note {i}: the quick brown fox jumps over the lazy dog. " * (1 + 4 * (i % 3)),
         "metadata": {"n": i, "kind": "a" if i % 2 else "b",
                      "published": {"$date": f"2024-03-{i + 1:02}T09:30:00Z"}}}
        for i in range(12)
    ]


SOUTH = [{"id": "notes/00.md", "title": "South 0", "content": "south only: hammocks in spring",
          "metadata": {"n": 0, "kind": "a"}},
         {"id": "south/plan", "title": "South plan", "content": "the south corners the hammock market",
          "metadata": {"n": 1, "kind": "b"}}]


@pytest.fixture(scope="module")
def portability_server(server_factory: Any) -> tuple[Any, dict[str, str]]:
    """A server of its own (its tenants hold exactly what these tests add), exports bounded to 40."""
    server, made = server_factory("portability", keys=KEYS, VPA_MAX_EXPORT_RECORDS=str(LIMIT))
    keys = {label: info["key"] for label, info in made.items()}
    with server.client(keys["north_writer"]) as north, server.client(keys["south_admin"]) as south, \
            server.client(keys["big_admin"]) as big:
        ok(north.post("/documents/batch", json={"documents": north_documents()}), 201)
        ok(south.post("/documents/batch", json={"documents": SOUTH}), 201)
        many = [{"id": f"b{i}", "title": "", "content": f"short {i}", "metadata": {"n": i}}
                for i in range(LIMIT + 5)]
        ok(big.post("/documents/batch", json={"documents": many}), 201)
    return server, keys


def download(client: httpx.Client, path: Path, route: str = "/admin/export", **params: Any) -> httpx.Headers:
    """Stream an export into ``path``; its response headers."""
    with client.stream("GET", route, params=params) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(response.text)
        with open(path, "wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
        return response.headers


def imported(
    snapshot: Path, folder: Path, sealer: SnapshotSealer | None = None
) -> tuple[ImportSummary, list[Record]]:
    """Import ``snapshot`` into a fresh memory store in ``folder``; the summary and every record."""

    async def run() -> tuple[ImportSummary, list[Record]]:
        store = MemoryStore(folder)
        try:
            summary = await import_snapshot(store, snapshot, sealer=sealer)
            records: list[Record] = []
            async for page in store.scroll(summary.collection):
                records.extend(page.records)
            return summary, records
        finally:
            await store.close()

    return asyncio.run(run())


def documents_of(records: list[Record]) -> dict[str, Any]:
    """The documents the records hold, rebuilt as the RAG layer does (every chunk must be there)."""
    heads = {r.metadata[DOC_ID]: r for r in records if is_head(r.id, r.metadata)}
    bodies: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if not is_head(record.id, record.metadata):
            bodies[record.metadata[DOC_ID]].append(record)
    assert set(bodies) <= set(heads), "a body chunk without its head"
    return {doc_id: assemble(head, bodies[doc_id]) for doc_id, head in heads.items()}


def check_documents(found: dict[str, Any], wanted: list[dict[str, Any]]) -> None:
    assert sorted(found) == sorted(d["id"] for d in wanted)
    for doc in wanted:
        got = found[doc["id"]]
        assert (got.title, got.content) == (doc["title"], doc["content"])
        assert got.metadata == decode_metadata(doc["metadata"])


def test_an_admin_export_holds_exactly_its_tenants_records(portability_server, tmp_path):
    server, keys = portability_server
    with server.client(keys["north_admin"]) as north:
        headers = download(north, tmp_path / "north.tar")
        chunks = sum(d["chunks"] for d in ok(north.get("/documents", params={"limit": 100})))
    assert headers["content-type"] == "application/x-tar"
    assert headers["content-disposition"] == 'attachment; filename="vpa-north.tar"'
    assert int(headers["content-length"]) == (tmp_path / "north.tar").stat().st_size
    with tarfile.open(tmp_path / "north.tar") as tar:
        assert "manifest.json" in tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["collection"] == "vpa" and manifest["records"] == chunks
    assert manifest["encryption"] is None and manifest["filter"] == {"vpa_tenant": "north"}
    summary, records = imported(tmp_path / "north.tar", tmp_path / "store-north")
    assert summary.records == summary.written == len(records) == chunks > len(north_documents())
    assert {r.metadata[TENANT] for r in records} == {"north"}
    assert all(r.id.startswith("north/") for r in records)
    check_documents(documents_of(records), north_documents())
    # the other tenant, with a document of the same id: its own records only
    with server.client(keys["south_admin"]) as south:
        download(south, tmp_path / "south.tar")
    _, records = imported(tmp_path / "south.tar", tmp_path / "store-south")
    assert {r.metadata[TENANT] for r in records} == {"south"}
    check_documents(documents_of(records), SOUTH)


@pytest.mark.parametrize(
    ("spec", "wanted"),
    [
        ({"kind": "a"}, lambda d: d["metadata"]["kind"] == "a"),
        ({"n": {"$gte": 9}}, lambda d: d["metadata"]["n"] >= 9),
        ({"published": {"$lt": {"$date": "2024-03-04T00:00:00Z"}}}, lambda d: d["metadata"]["n"] < 3),
        # a filter naming another tenant reaches nothing of it
        ({"vpa_tenant": "south"}, lambda d: False),
        ({"$or": [{"vpa_tenant": "south"}, {"kind": "b"}]}, lambda d: d["metadata"]["kind"] == "b"),
        ({"$not": {"vpa_tenant": "north"}}, lambda d: False),
        ({}, lambda d: True),
    ],
)
def test_the_filter_narrows_the_export_within_the_tenant(portability_server, tmp_path, spec, wanted):
    server, keys = portability_server
    with server.client(keys["north_admin"]) as north:
        download(north, tmp_path / "narrow.tar", filter=json.dumps(spec))
    _, records = imported(tmp_path / "narrow.tar", tmp_path / "store")
    assert {r.metadata[TENANT] for r in records} <= {"north"}
    check_documents(documents_of(records), [d for d in north_documents() if wanted(d)])
    with tarfile.open(tmp_path / "narrow.tar") as tar:  # the manifest says what was exported
        recorded = json.load(tar.extractfile("manifest.json"))["filter"]
    owner = {"vpa_tenant": "north"}
    assert recorded == owner if spec == {} else recorded == {"$and": [owner, spec]}


def test_the_backup_route_is_the_tenant_export(portability_server, tmp_path):
    server, keys = portability_server
    with server.client(keys["north_admin"]) as north:
        headers = download(north, tmp_path / "backup.tar", route="/admin/backup")
        download(north, tmp_path / "export.tar")
    assert headers["content-type"] == "application/x-tar"
    _, backed_up = imported(tmp_path / "backup.tar", tmp_path / "one")
    _, exported = imported(tmp_path / "export.tar", tmp_path / "two")
    assert sorted(r.id for r in backed_up) == sorted(r.id for r in exported)
    assert {r.metadata[TENANT] for r in backed_up} == {"north"}


def test_only_an_admin_key_may_export(portability_server):
    server, keys = portability_server
    for label in ("north_reader", "north_writer", "operator"):
        with server.client(keys[label]) as client:
            for route in ("/admin/export", "/admin/backup"):
                failure = error(client.get(route), 403, "forbidden")
                assert "admin" in failure["message"], failure
    with server.client() as anonymous:
        error(anonymous.get("/admin/export"), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("text", "status", "code"),
    [
        ("not json", 422, "invalid_filter"),
        ("[1, 2]", 422, "invalid_filter"),
        ('{"n": {"$bogus": 1}}', 422, "invalid_filter"),
        ('{"$and": 3}', 422, "invalid_filter"),
        ("[" * 4000, 413, "limit_exceeded"),  # nested past any reader
        (json.dumps({"n": {"$in": [0] * 1100}}), 413, "limit_exceeded"),  # past max_filter_terms
        ("x" * 4097, 422, "invalid_input"),  # over the 4,096-character bound
    ],
)
def test_a_bad_filter_is_a_one_line_typed_error(portability_server, text, status, code):
    server, keys = portability_server
    with server.client(keys["north_admin"]) as north:
        failure = error(north.get("/admin/export", params={"filter": text}), status, code)
    assert failure["field"] == "filter" and "\n" not in failure["message"], failure


def test_an_export_over_the_limit_is_refused_naming_it(portability_server, tmp_path):
    server, keys = portability_server
    with server.client(keys["big_admin"]) as big:
        for route in ("/admin/export", "/admin/backup"):
            failure = error(big.get(route), 413, "limit_exceeded")
            assert "VPA_MAX_EXPORT_RECORDS" in failure["message"], failure
            assert f"limit is {LIMIT}" in failure["message"] and failure["field"] == "filter"
            assert f"holds {LIMIT + 5} records" in failure["message"] and "\n" not in failure["message"]
        # the bound counts what would be exported: a filter that narrows it below is served
        download(big, tmp_path / "some.tar", filter=json.dumps({"n": {"$lt": 10}}))
    summary, records = imported(tmp_path / "some.tar", tmp_path / "store")
    assert summary.records == 10 and {r.metadata["n"] for r in records} == set(range(10))


def test_nothing_stays_on_disk_and_the_audit_line_has_no_text(portability_server, tmp_path):
    server, keys = portability_server
    with server.client(keys["south_admin"]) as south:
        download(south, tmp_path / "south.tar")
        error(south.get("/admin/export", params={"filter": "not json"}), 422)
    exports = Path(server.env["VPA_DATA_DIR"]) / "exports"
    assert exports.is_dir() and (exports.stat().st_mode & 0o077) == 0
    assert list(exports.iterdir()) == []  # the temporary snapshot is gone once it is streamed
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30  # the line is written as the response ends: wait for it
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in server.audit_path.read_text().splitlines()
                 if '"export_tenant"' in line and '"south"' in line and '"status": 200' in line]
        if lines:
            break
        time.sleep(0.1)
    assert lines, "no audit line for the export"
    line = lines[-1]
    assert line["role"] == "admin" and line["tenant"] == "south" and line["route"] == "/api/v1/admin/export"
    assert line["records"] == line["exported"] == 2 and line["bytes"] > 0 and line["encrypted"] is False
    text = server.audit_path.read_text()
    for doc in SOUTH:
        assert doc["content"] not in text and doc["title"] not in text


def test_an_encrypted_server_exports_a_sealed_snapshot_of_untenanted_records(server_factory, tmp_path):
    """With auth off every caller is an unscoped admin: the untenanted records are its own (as the
    document routes read them), a tenant's are not. With encryption at rest the snapshot's text is
    sealed: it imports with the key, and without it is refused."""
    from server_helpers import base_env
    from vpa.config import load_config
    from vpa.crypto import EncryptionKeyMismatch, generate_key, parse_key
    from vpa.rag import create_enhanced_rag_system

    key = generate_key()
    env = base_env(tmp_path / "sealed" / "data", VPA_AUTH_ENABLED="false", VPA_ENCRYPT_AT_REST="true",
                   VPA_ENCRYPTION_KEY=key)

    async def seed() -> None:  # a tenant's document, written before the server starts
        config = load_config(environ=env)
        async with create_enhanced_rag_system(config) as system:
            await system.add_document("hidden", "Tenant", "a tenant's text", {}, tenant="t1")

    asyncio.run(seed())
    server, _ = server_factory("sealed-export", env=env)
    with server.client() as client:
        document = {"id": "open", "title": "Open title", "content": "untenanted text " * 20,
                    "metadata": {"n": 1}}
        ok(client.post("/documents", json=document), 201)
        assert ok(client.get("/stats"))["documents"] == 2  # the tenant's document is in the store
        download(client, tmp_path / "sealed.tar")
    with tarfile.open(tmp_path / "sealed.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        data = b"".join(tar.extractfile(name).read() for name in tar.getnames() if name.endswith(".parquet"))
    assert manifest["encryption"]["scheme"] == "aes-256-gcm"
    assert b"Open title" not in data and b"untenanted text" not in data
    with pytest.raises(EncryptionKeyMismatch):
        imported(tmp_path / "sealed.tar", tmp_path / "keyless")
    _, records = imported(tmp_path / "sealed.tar", tmp_path / "keyed", SnapshotSealer(parse_key(key)))
    assert {r.metadata[TENANT] for r in records} == {""}
    found = documents_of(records)
    assert list(found) == ["open"] and found["open"].content == "untenanted text " * 20
    assert found["open"].title == "Open title"


def test_a_dead_servers_export_folders_are_swept_at_start_and_a_fresh_one_is_kept(tmp_path):
    import os
    import time

    from vpa.server.app import EXPORTS_FOLDER, STALE_EXPORT_SECONDS, sweep_exports

    parent = tmp_path / EXPORTS_FOLDER
    stale, fresh = parent / "export-dead", parent / "export-live"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "docs.tar.partial-1").write_bytes(b"x" * 10)
    old = time.time() - STALE_EXPORT_SECONDS - 60
    os.utime(stale, (old, old))
    (parent / "not-an-export").mkdir()
    os.utime(parent / "not-an-export", (old, old))

    assert sweep_exports(tmp_path) == 1
    assert not stale.exists() and fresh.exists() and (parent / "not-an-export").exists()
    assert sweep_exports(tmp_path / "nowhere") == 0
