"""Direct tests of the Chroma store: round trips, replacement semantics, names, persistence,
batching, errors and configuration, in embedded and server mode."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import uuid
from pathlib import Path

import attrs
import chromadb
import httpx
import numpy as np
import pytest
from chromadb import errors as chroma_errors
from chromadb.config import Settings
from conftest import _free_port
from vpa.config import VPAConfig
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from vpa.models import EmbedderFingerprint, Record
from vpa.plugins import Registry
from vpa.stores.definition import DEFINITION_KEY, load_definition
from vpa_chroma.codec import chroma_name, vpa_name
from vpa_chroma.errors import translate_error
from vpa_chroma.settings import ChromaSettings
from vpa_chroma.store import CHROMA_MAX_BATCH, ChromaStore


def _name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


EDGE_METADATA = {
    "s": "caf\u00e9 \U0001f600 \u6f22",
    "empty": "",
    "i": 2**53,
    "neg": -(2**53),
    "zero": 0,
    "f": 0.1,
    "whole": 3.0,
    "third": 1 / 3,
    "seventeen": 123456789.12345679,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "t": True,
    "no": False,
    "tags": ["a", "", "\u00fc"],
    "none_yet": [],
}


def _same(got: dict, want: dict) -> bool:
    return set(got) == set(want) and all(type(got[k]) is type(want[k]) and got[k] == want[k] for k in want)


async def test_round_trip_keeps_types_text_and_vectors(chroma_store) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    await chroma_store.create_collection(name, 3)
    vector = np.array([0.1, -2.5, 1e-3], dtype=np.float32)
    records = [
        Record("edge", vector, "text \u00e9\n\U0001f600", EDGE_METADATA),
        Record("bare", [1, 0, 0], "", {}),
        Record("\u00fcnicode id", [0, 1, 0], "t", {"k": "v"}),
    ]
    try:
        assert await chroma_store.upsert(name, records) == 3
        got = await chroma_store.get(name, ["bare", "edge", "missing", "\u00fcnicode id"])
        assert [r.id for r in got] == ["bare", "edge", "\u00fcnicode id"]
        edge = got[1]
        assert edge.text == records[0].text
        assert _same(edge.metadata, EDGE_METADATA), edge.metadata
        assert np.array_equal(edge.vector, vector)
        assert got[0].metadata == {} and got[0].text == ""
        hits = await chroma_store.query(name, [0.1, -2.5, 1e-3], top_k=1)
        assert hits[0].id == "edge" and _same(hits[0].metadata, EDGE_METADATA)
    finally:
        await chroma_store.drop_collection(name)


async def test_upsert_replaces_metadata(chroma_store) -> None:  # type: ignore[no-untyped-def]
    """Chroma merges metadata on upsert; the store must replace it (and change types freely)."""
    name = _name()
    await chroma_store.create_collection(name, 2)
    try:
        await chroma_store.upsert(
            name, [Record("a", [1, 0], "one", {"x": 1, "gone": "y", "l": ["p"], "e": []})]
        )
        await chroma_store.upsert(name, [Record("a", [0, 1], "two", {"x": 1.5, "l": []})])
        (record,) = await chroma_store.get(name, ["a"])
        assert record.text == "two" and _same(record.metadata, {"x": 1.5, "l": []})
        assert await chroma_store.count(name, {"gone": "y"}) == 0
        assert await chroma_store.count(name, {"x": {"$gt": 1}}) == 1
        await chroma_store.upsert(name, [Record("a", [0, 1], "three", {})])
        (record,) = await chroma_store.get(name, ["a"])
        assert record.metadata == {} and record.text == "three"
        assert await chroma_store.count(name, {"$not": {"x": {"$gt": 1}}}) == 1
    finally:
        await chroma_store.drop_collection(name)


async def test_scores_are_cosine_similarity(chroma_store) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((30, 8)).astype(np.float32) * rng.uniform(0.01, 100, (30, 1)).astype(
        np.float32
    )
    await chroma_store.create_collection(name, 8)
    try:
        await chroma_store.upsert(name, [Record(f"v{i}", v, "", {"i": i}) for i, v in enumerate(vectors)])
        q = rng.standard_normal(8)
        hits = await chroma_store.query(name, q, top_k=30)
        reference = vectors.astype(np.float64) @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
        assert len(hits) == 30
        for hit in hits:
            assert abs(hit.score - reference[int(hit.id[1:])]) < 1e-5
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        filtered = await chroma_store.query(name, q, top_k=5, filter={"i": {"$lt": 10}})
        best = sorted(range(10), key=lambda i: -reference[i])[:5]
        assert [h.id for h in filtered] == [f"v{i}" for i in best]
    finally:
        await chroma_store.drop_collection(name)


async def test_persistence_in_a_new_instance(make_store) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    fingerprint = EmbedderFingerprint("hashing", "m1", 3)
    first = make_store()
    await first.create_collection(name, 3, fingerprint=fingerprint)
    await first.upsert(name, [Record("a", [1, 2, 3], "x", {"f": 2.5, "l": []})])
    await first.close()
    second = make_store()
    try:
        assert name in await second.list_collections()
        info = await second.open_collection(name)
        assert (info.dimension, info.fingerprint) == (3, fingerprint)
        with pytest.raises(EmbedderMismatch):
            await second.create_collection(name, 3, fingerprint=EmbedderFingerprint("hashing", "m2", 3))
        with pytest.raises(DimensionMismatch):
            await second.create_collection(name, 4)
        (record,) = await second.get(name, ["a"])
        assert _same(record.metadata, {"f": 2.5, "l": []})
    finally:
        await second.drop_collection(name)
        await second.close()


@pytest.mark.parametrize("short", ["a", "ab", "x_", "y-", "z9"])
async def test_names_chroma_refuses_are_mapped(chroma_store, short: str) -> None:  # type: ignore[no-untyped-def]
    name = short + uuid.uuid4().hex[:4] + short[-1] if len(short) > 2 else short
    assert vpa_name(chroma_name(name)) == name
    await chroma_store.drop_collection(name)
    await chroma_store.create_collection(name, 2)
    try:
        assert name in await chroma_store.list_collections()
        await chroma_store.upsert(name, [Record("r", [1, 1], "", {})])
        assert await chroma_store.count(name) == 1
    finally:
        assert await chroma_store.drop_collection(name) is True
    assert name not in await chroma_store.list_collections()


def test_name_mapping_is_one_to_one() -> None:
    names = ["a", "ab", "abc", "a_", "a-", "ab_c", "A1", "x" * 63, "q-"]
    mapped = {chroma_name(n) for n in names}
    assert len(mapped) == len(names)
    assert all(vpa_name(chroma_name(n)) == n for n in names)
    assert all(len(m) >= 3 and m[-1].isalnum() for m in mapped)


async def test_foreign_collection_is_not_listed_nor_adopted(tmp_path: Path) -> None:
    raw = chromadb.PersistentClient(str(tmp_path), settings=Settings(anonymized_telemetry=False))
    raw.create_collection("foreign", embedding_function=None)
    store = ChromaStore(path=tmp_path)
    try:
        assert "foreign" not in await store.list_collections()
        with pytest.raises(InvalidCollection, match="not created by VPA"):
            await store.create_collection("foreign", 3)
    finally:
        await store.close()
        raw.close()


async def test_orphaned_list_metadata_does_not_leak(tmp_path: Path) -> None:
    """chroma-core/chroma#7594: delete_collection leaves list metadata that new records inherit.
    A collection dropped through the store leaves nothing behind, and a new record written by
    the store sheds what a collection dropped by someone else left."""
    raw = chromadb.PersistentClient(str(tmp_path), settings=Settings(anonymized_telemetry=False))
    foreign = raw.create_collection("foreign", embedding_function=None)
    foreign.add(
        ids=["x1", "x2"], embeddings=[[1, 2], [2, 1]], metadatas=[{"tags": ["ghost"]}, {"tags": ["g2"]}]
    )
    raw.delete_collection("foreign")  # leaves the orphans
    store = ChromaStore(path=tmp_path)
    try:
        name = _name()
        await store.create_collection(name, 2)
        await store.upsert(name, [Record("a", [1, 0], "", {"k": "v"}), Record("b", [0, 1], "", {})])
        got = await store.get(name, ["a", "b"])
        assert [r.metadata for r in got] == [{"k": "v"}, {}]
        assert await store.count(name, {"tags": "ghost"}) == 0
        await store.upsert(name, [Record(f"r{i}", [1, i], "", {"l": ["mine", str(i)]}) for i in range(5)])
        assert await store.drop_collection(name) is True
        # nothing left behind by our drop: a fresh raw collection's records stay clean
        probe = raw.create_collection("probe", embedding_function=None)
        probe.add(ids=[f"p{i}" for i in range(8)], embeddings=[[1, i] for i in range(8)])
        assert probe.get(include=["metadatas"])["metadatas"] == [None] * 8
    finally:
        await store.close()
        raw.close()


async def test_dropped_or_recreated_by_another_instance(make_store) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    a, b = make_store(), make_store()
    try:
        await a.create_collection(name, 2)
        await a.upsert(name, [Record("r", [1, 0], "", {})])
        assert await b.count(name) == 1
        await a.drop_collection(name)
        with pytest.raises(CollectionNotFound):
            await b.count(name)
        await a.create_collection(name, 2)
        await a.upsert(name, [Record("s", [0, 1], "", {}), Record("t", [1, 1], "", {})])
        assert await b.count(name) == 2  # b re-opens it
    finally:
        await a.drop_collection(name)
        await a.close()
        await b.close()


async def test_batches_are_split_to_the_runtime_limit(make_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Deployments may report a lower batch limit than the declared one: once connected, the
    store declares that limit, and every call it makes respects it."""
    from chromadb.api.client import Client
    from chromadb.api.models.Collection import Collection

    assert ChromaStore.capabilities.max_batch_size == CHROMA_MAX_BATCH
    monkeypatch.setattr(Client, "get_max_batch_size", lambda self: 7)
    sizes: list[tuple[str, int]] = []
    for method in ("upsert", "update", "delete", "get"):
        original = getattr(Collection, method)

        def spy(self, *args, _original=original, _method=method, **kwargs):  # type: ignore[no-untyped-def]
            ids = kwargs.get("ids")
            if ids is not None:
                sizes.append((_method, len(ids)))
            result = _original(self, *args, **kwargs)
            if _method == "get":
                sizes.append(("got", len(result["ids"])))
            return result

        monkeypatch.setattr(Collection, method, spy)
    store = make_store()
    name = _name()
    await store.create_collection(name, 2)
    assert store.capabilities.max_batch_size == 7
    assert ChromaStore.capabilities.max_batch_size == CHROMA_MAX_BATCH  # the class keeps its declaration
    try:
        records = [Record(f"r{i}", [1, i + 1], f"t{i}", {"i": i, "even": i % 2 == 0}) for i in range(50)]
        assert await store.upsert(name, records) == 50
        assert len(await store.get(name, [f"r{i}" for i in range(50)])) == 50
        assert await store.delete(name, filter={"even": True}) == 25
        assert (
            await store.delete(name, ids=[f"r{i}" for i in range(0, 50, 3)], filter={"i": {"$gt": 20}})
            == 5
        )
        assert await store.count(name) == 20
        written = [n for method, n in sizes if method in ("upsert", "update", "delete")]
        assert written and max(written) <= 7, sizes
        assert max(n for method, n in sizes if method == "get") <= 7, sizes
        sizes.clear()
        assert await store.drop_collection(name) is True  # reads and deletes the records, 7 at a time
        assert sizes and max(n for _, n in sizes) <= 7, sizes
    finally:
        await store.drop_collection(name)
        await store.close()


# --- errors ------------------------------------------------------------------------------------


async def test_unreachable_server_is_store_unavailable() -> None:
    store = ChromaStore(host="127.0.0.1", port=_free_port(), timeout=10)  # nothing listens there
    with pytest.raises(StoreUnavailable):
        await store.list_collections()
    with pytest.raises(StoreUnavailable):
        await store.create_collection("abc", 3)
    status = await store.health()
    assert not status.ok
    await store.close()


async def test_a_server_that_does_not_answer_is_store_timeout() -> None:
    """chromadb's HTTP client waits for ever; ``timeout`` bounds every call in server mode."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel's backlog), never answers
    store = ChromaStore(host="127.0.0.1", port=listener.getsockname()[1], timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(StoreTimeout, match="list collections"):
            await store.list_collections()
        assert time.monotonic() - started < 5
        status = await store.health()
        assert not status.ok and "StoreTimeout" in status.detail
    finally:
        listener.close()
        await store.close()


async def test_health_and_constructor_without_io(tmp_path: Path, chroma_server) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "later"
    store = ChromaStore(path=folder)
    assert not folder.exists()  # nothing happens before first use
    assert (await store.health()).ok and folder.exists()
    await store.close()
    remote = ChromaStore(host=chroma_server.host, port=chroma_server.port)
    status = await remote.health()
    assert status.ok and status.latency_ms is not None
    await remote.close()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A listener that records request headers and answers like a Chroma server refusing a key."""

    seen: list[dict[str, str]] = []

    def _refuse(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"error": "AuthError", "message": "invalid token"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("header", "sent"), [("Authorization", "Bearer s3cret"), ("X-Chroma-Token", "s3cret")]
)
async def test_api_key_header_and_auth_error(header: str, sent: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    try:
        store = ChromaStore(
            host="127.0.0.1", port=server.server_address[1], api_key="s3cret", api_key_header=header
        )
        assert "s3cret" not in repr(store)
        with pytest.raises(StoreAuthError) as caught:
            await store.list_collections()
        assert "s3cret" not in str(caught.value)
        assert any(h.get(header) == sent for h in _Recorder.seen)
        await store.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (chroma_errors.ChromaAuthError("no"), StoreAuthError),
        (chroma_errors.AuthorizationError("no"), StoreAuthError),
        (chroma_errors.NotFoundError("gone"), CollectionNotFound),
        (chroma_errors.RateLimitError("slow down"), StoreUnavailable),
        (chroma_errors.InternalError("boom"), StoreError),
        (httpx.ConnectError("refused"), StoreUnavailable),
        (httpx.ReadTimeout("slow"), StoreTimeout),
        (ValueError("Could not connect to a Chroma server. Are you sure it is running?"), StoreUnavailable),
        (RuntimeError("x" * 1000), StoreError),
    ],
)
def test_error_mapping(exc: Exception, expected: type) -> None:
    error = translate_error(exc, where="query", collection="coll")
    assert type(error) is expected
    assert len(str(error)) < 400
    assert type(ChromaStore(path="unused").translate_error(exc, where="query", collection="coll")) is expected


# --- configuration and registration --------------------------------------------------------------


def test_from_config_modes(tmp_path: Path) -> None:
    embedded = ChromaStore.from_config(VPAConfig(data_dir=tmp_path))
    assert embedded.mode == "embedded" and embedded.path == tmp_path / "chroma"
    assert embedded.index_options == {"ef_search": 200}
    chosen = ChromaStore.from_config(
        VPAConfig(
            data_dir=tmp_path, providers={"chroma": {"path": str(tmp_path / "elsewhere"), "ef_search": 300}}
        )
    )
    assert chosen.path == tmp_path / "elsewhere" and chosen.index_options == {"ef_search": 300}
    server = ChromaStore.from_config(
        VPAConfig(
            host="chroma.internal",
            port=8443,
            api_key="k",
            providers={
                "chroma": {"ssl": True, "tenant": "t1", "database": "d1", "api_key_header": "X-Chroma-Token"}
            },
        )
    )
    s = server.settings
    assert (server.mode, s.host, s.port, s.ssl) == ("server", "chroma.internal", 8443, True)
    assert (s.tenant, s.database, s.api_key_header) == ("t1", "d1", "X-Chroma-Token")
    assert "k" not in repr(server).replace("chroma", "")
    with pytest.raises(ConfigError, match="unknown option"):
        ChromaStore.from_config(VPAConfig(providers={"chroma": {"colour": "blue"}}))
    with pytest.raises(ConfigError):
        ChromaStore.from_config(VPAConfig(providers={"chroma": {"index": "ivf"}}))
    batch_job = ChromaStore.from_config(
        VPAConfig(data_dir=tmp_path, providers={"chroma": {"write_call_seconds": 2}})
    )
    assert batch_job.settings.write_call_seconds == 2.0 and embedded.settings.write_call_seconds == 0.2
    for bad in (0, -1, "fast", True):
        with pytest.raises(ConfigError, match="write_call_seconds"):
            ChromaStore.from_config(VPAConfig(providers={"chroma": {"write_call_seconds": bad}}))


def test_settings_keep_the_01_options_and_defaults(tmp_path: Path) -> None:
    """Every option 0.1 read, with its default; wrong types name the option; the host and port
    of the environment win over the table's."""
    from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT

    assert ChromaSettings() == ChromaSettings(
        path=None, host=None, port=8000, ssl=False, headers={}, api_key_header="Authorization",
        tenant=DEFAULT_TENANT, database=DEFAULT_DATABASE, timeout=60.0, index="hnsw", ef_search=None,
        ef_construction=None, max_neighbors=None, write_call_seconds=0.2,
    )
    for option, bad in [("port", "eighty"), ("ssl", "maybe"), ("headers", {"X": 1}), ("timeout", "soon"),
                        ("ef_search", 1.5), ("tenant", 3)]:
        with pytest.raises(ConfigError, match=rf"\[providers\.chroma\]\.{option}"):
            ChromaStore.from_config(VPAConfig(providers={"chroma": {option: bad}}))
    with pytest.raises(ConfigError, match="timeout"):
        ChromaStore.from_config(VPAConfig(providers={"chroma": {"timeout": 0}}))
    table = {"host": "from-table", "port": 9000, "headers": {"X-Team": "search"}, "timeout": 5,
             "ef_construction": 64, "max_neighbors": 8, "index": "hnsw"}
    from_table = ChromaStore.from_config(VPAConfig(providers={"chroma": table}))
    assert (from_table.mode, from_table.settings.host) == ("server", "from-table")
    assert from_table.settings.port == 9000
    assert from_table.settings.headers == {"X-Team": "search"} and from_table.settings.timeout == 5.0
    assert from_table.index_options == {"ef_search": 200, "ef_construction": 64, "max_neighbors": 8}
    env_wins = ChromaStore.from_config(VPAConfig(host="env-host", port=1234, providers={"chroma": table}))
    assert (env_wins.settings.host, env_wins.settings.port) == ("env-host", 1234)
    spann = ChromaStore.from_config(VPAConfig(data_dir=tmp_path, providers={"chroma": {"index": "spann"}}))
    assert spann.index_options == {}
    with pytest.raises(ConfigError, match="either a path"):
        ChromaStore()
    with pytest.raises(ConfigError, match="index"):
        ChromaStore(path=tmp_path, index="ivf")


async def test_connection_pool_size(chroma_server) -> None:  # type: ignore[no-untyped-def]
    """VPA_CONNECTION_POOL_SIZE sizes the httpx pool of chromadb's HttpClient (0: its default)."""
    sized = ChromaStore.from_config(
        VPAConfig(host=chroma_server.host, port=chroma_server.port, connection_pool_size=3)
    )
    default = ChromaStore(host=chroma_server.host, port=chroma_server.port)
    try:
        await sized.list_collections()
        await default.list_collections()
        limits = sized._client._server.http_limits
        assert (limits.max_connections, limits.max_keepalive_connections) == (3, 3)
        assert default._client._server.http_limits.max_connections is None  # chromadb: unbounded
    finally:
        await sized.close()
        await default.close()
    with pytest.raises(ConfigError, match="connection_pool_size"):
        ChromaStore(host="h", connection_pool_size=-1)


def test_registered_through_the_entry_point(tmp_path: Path) -> None:
    registry = Registry()
    assert not [e for e in registry.errors if "chroma" in e.plugin]
    registration = registry.get("store", "chroma")
    assert registration.target == "vpa_chroma.store:ChromaStore"  # by class, imported on first use
    assert registration.legacy_capabilities is None and registration.legacy_capabilities_for is None
    assert registration.capabilities == ChromaStore.capabilities
    assert registration.package == "vpa-chroma"
    store = registration.factory(VPAConfig(data_dir=tmp_path / "data"))
    assert isinstance(store, ChromaStore) and not (tmp_path / "data").exists()
    assert store.capabilities == ChromaStore.capabilities


def test_capabilities_are_declared_once(tmp_path: Path) -> None:
    """One definition, the class's: the registry, both modes and a built store all see it (server
    mode without lexical search), with the bounds measured on Chroma 1.5 (see the README)."""
    caps = ChromaStore.capabilities
    assert (caps.exact, caps.min_recall, caps.max_batch_size, caps.persistent) == (False, 0.9, 5461, True)
    assert (caps.max_filter_terms, caps.max_filter_depth) == (200, 32)
    assert (caps.max_metadata_keys, caps.max_metadata_bytes) == (256, 12 * 1024)
    assert not caps.eventually_consistent and caps.max_request_bytes is None
    registration = Registry().get("store", "chroma")
    server = VPAConfig(host="chroma.internal", providers={"chroma": {"index": "spann"}})
    assert caps.lexical_search and caps.lexical_exact and not caps.native_fusion
    # lexical search is the embedded store's only (a side index cannot follow a server's other clients)
    remote = attrs.evolve(caps, lexical_search=False)
    for config, expected in ((VPAConfig(data_dir=tmp_path), caps), (server, remote)):
        assert registration.declared(config) == ChromaStore.declared(config) == expected
        assert ChromaStore.from_config(config).capabilities == expected
    import importlib.util

    assert importlib.util.find_spec("vpa_chroma.capabilities") is None


def test_sync_calls_never_run_on_the_loop(tmp_path: Path) -> None:
    """Every chromadb call goes through a worker thread: the loop thread never enters chromadb."""
    loop_thread: list[int] = []
    store = ChromaStore(path=tmp_path)
    original = store._connect

    def spy():  # type: ignore[no-untyped-def]
        assert threading.get_ident() not in loop_thread
        return original()

    store._connect = spy  # type: ignore[method-assign]

    async def scenario() -> None:
        loop_thread.append(threading.get_ident())
        await store.create_collection("abc", 2)
        await store.upsert("abc", [Record("a", [1, 0], "", {})])
        await store.query("abc", [1, 0], 1)
        await store.close()

    asyncio.run(scenario())


async def test_collection_definition_in_chroma(chroma_store) -> None:  # type: ignore[no-untyped-def]
    """Cosine space, VPA's ef_search default, and the definition in the collection metadata."""
    name = _name()
    fingerprint = EmbedderFingerprint("st", "mini", 5)
    await chroma_store.create_collection(name, 5, fingerprint=fingerprint)
    try:
        handle = await asyncio.to_thread(chroma_store._handle, name)
        hnsw = handle.configuration_json["hnsw"]
        assert hnsw["space"] == "cosine" and hnsw["ef_search"] == 200
        info = load_definition(name, handle.metadata[DEFINITION_KEY])
        assert (info.dimension, str(info.metric), info.fingerprint) == (5, "cosine", fingerprint)
        assert not [k for k in handle.metadata if k.startswith("vpa:")]  # the 0.1 keys are not written
    finally:
        await chroma_store.drop_collection(name)


async def test_collections_created_by_01_still_open(tmp_path: Path) -> None:
    """A collection with vpa-chroma 0.1's definition (one ``vpa:*`` key per field) is listed,
    opened with its dimension and fingerprint, checked on create, read and written."""
    raw = chromadb.PersistentClient(str(tmp_path), settings=Settings(anonymized_telemetry=False))
    legacy = {
        "vpa:format": 1, "vpa:dimension": 3, "vpa:metric": "cosine",
        "vpa:embedder_name": "hashing", "vpa:embedder_model": "m1", "vpa:embedder_dimension": 3,
    }
    old = raw.create_collection("old", configuration={"hnsw": {"space": "cosine"}}, metadata=legacy,
                                embedding_function=None)
    old.add(ids=["a"], embeddings=[[1, 0, 0]], documents=["kept"],
            metadatas=[{"k": "v", "vpa:float:f": 4611686018427387904, "vpa:numeric": ["f"]}])
    # a short name, as 0.1 stored it
    raw.create_collection("ab.vpa", metadata={"vpa:dimension": 2}, embedding_function=None)
    store = ChromaStore(path=tmp_path)
    try:
        assert await store.list_collections() == ["ab", "old"]
        info = await store.open_collection("old")
        assert (info.dimension, info.fingerprint) == (3, EmbedderFingerprint("hashing", "m1", 3))
        assert (await store.open_collection("ab")).fingerprint is None
        with pytest.raises(EmbedderMismatch):
            await store.create_collection("old", 3, fingerprint=EmbedderFingerprint("hashing", "m2", 3))
        assert (await store.create_collection("old", 3)).dimension == 3
        (record,) = await store.get("old", ["a"])
        assert (record.text, record.metadata) == ("kept", {"k": "v", "f": 2.0})
        await store.upsert("old", [Record("b", [0, 1, 0], "", {"n": 1})])
        assert await store.count("old", {"n": 1}) == 1 and await store.count("old") == 2
    finally:
        await store.close()
        raw.close()


async def test_unreadable_definition_is_invalid_collection(tmp_path: Path) -> None:
    raw = chromadb.PersistentClient(str(tmp_path), settings=Settings(anonymized_telemetry=False))
    newer = {DEFINITION_KEY: '{"vpa": 99, "dimension": 3}'}
    raw.create_collection("newer", metadata=newer, embedding_function=None)
    raw.create_collection("broken", metadata={DEFINITION_KEY: "not json"}, embedding_function=None)
    store = ChromaStore(path=tmp_path)
    try:
        with pytest.raises(InvalidCollection, match="newer VPA"):
            await store.open_collection("newer")
        with pytest.raises(InvalidCollection, match="unreadable"):
            await store.open_collection("broken")
    finally:
        await store.close()
        raw.close()
