"""The Milvus store on a real Milvus Lite file: round trips, batches, errors, config, persistence."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from vpa.config import load_config
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
    InvalidVector,
    RecordTooLarge,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    ValidationError,
)
from vpa.models import CollectionInfo, EmbedderFingerprint, Record
from vpa.plugins import Registry
from vpa_milvus import lite
from vpa_milvus.errors import translate_error
from vpa_milvus.settings import server_uri
from vpa_milvus.store import MilvusStore, without_lexical

METADATA = {
    "year": 2020,
    "score": 0.1,
    "whole": 2.0,
    "big": 2**53,
    "neg": -(2**53),
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "flag": True,
    "off": False,
    "lang": "é\u0301 😀 \"'\\\n\x00",
    "empty": "",
    "tags": ["a", "", "é"],
    "none": [],
}


def vec(*xs: float) -> list[float]:
    return list(xs)


async def test_round_trip_is_exact(lite_store):
    await lite_store.create_collection("docs", 4)
    vector = np.array([0.1234567, -3.3e-5, 12345.678, 1e-30], dtype=np.float32)
    text = "Ünïcödé text with \"quotes\", 'single', \\ backslash,\n newline, \x00 NUL, 😀 and \u200b"
    await lite_store.upsert(
        "docs", [Record("id-1", vector, text, METADATA), Record("e", [1, 0, 0, 0], "", {})]
    )
    [got, empty] = await lite_store.get("docs", ["id-1", "e"])
    assert np.array_equal(got.vector, vector)  # as written: not normalised
    assert got.text == text
    assert got.metadata == METADATA
    assert {k: type(v) for k, v in got.metadata.items()} == {k: type(v) for k, v in METADATA.items()}
    assert empty.text == "" and empty.metadata == {}
    [hit, _] = await lite_store.query("docs", vector, top_k=2)
    assert hit.id == "id-1" and hit.metadata == METADATA and hit.text == text


async def test_scores_are_cosine_similarity_best_first(lite_store):
    await lite_store.create_collection("cos", 3)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 3)).astype(np.float32) * rng.uniform(0.01, 100, size=(40, 1)).astype(
        np.float32
    )
    await lite_store.upsert("cos", [Record(f"r{i}", v) for i, v in enumerate(vectors)])
    q = np.array([0.3, -1.0, 2.0], dtype=np.float32)
    hits = await lite_store.query("cos", q, top_k=10)
    sims = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    best = np.argsort(-sims)[:10]
    assert [h.id for h in hits] == [f"r{i}" for i in best]
    assert np.allclose([h.score for h in hits], sims[best], atol=1e-5)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    # the opposite vector scores -1
    await lite_store.upsert("cos", [Record("opp", -q)])
    worst = (await lite_store.query("cos", -q, top_k=1))[0]
    assert worst.id == "opp" and worst.score == pytest.approx(1.0, abs=1e-6)


async def test_upsert_is_idempotent_and_newest_wins(lite_store):
    await lite_store.create_collection("up", 2)
    assert (
        await lite_store.upsert(
            "up", [Record("a", [1, 0], "old", {"v": 1}), Record("a", [0, 1], "new", {"v": "x"})]
        )
        == 1
    )
    await lite_store.upsert("up", [Record("a", [0, 1], "newer", {"w": 1.5})])
    assert await lite_store.count("up") == 1
    [a] = await lite_store.get("up", ["a"])
    assert (a.text, a.metadata) == ("newer", {"w": 1.5})
    assert await lite_store.count("up", {"v": 1}) == 0


async def test_large_batches_are_split(lite_store):
    await lite_store.create_collection("big", 8)
    rng = np.random.default_rng(1)
    records = [
        Record(f"r{i}", rng.normal(size=8) + 0.01, f"t{i}", {"i": i, "odd": bool(i % 2)}) for i in range(2345)
    ]
    client = lite_store._connected()
    requests = []
    real_upsert = client.upsert
    client.upsert = lambda name, rows, **k: requests.append(len(rows)) or real_upsert(name, rows, **k)
    assert await lite_store.upsert("big", records) == 2345
    assert requests == [1000, 1000, 345]  # max_batch_size rows per request
    assert await lite_store.count("big") == 2345
    assert await lite_store.count("big", {"odd": True}) == 1172
    got = await lite_store.get(
        "big", [f"r{i}" for i in range(2344, -1, -1)]
    )  # > one id chunk, in asked order
    assert [r.id for r in got] == [f"r{i}" for i in range(2344, -1, -1)]
    assert await lite_store.delete("big", filter={"i": {"$gte": 100}}) == 2245  # pages through the matches
    assert await lite_store.count("big") == 100


async def test_lite_flushes_before_searching_many_fresh_rows_and_only_then(lite_store):
    from vpa_milvus.store import LITE_FLUSH_AFTER_ROWS

    await lite_store.create_collection("fresh", 8)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(LITE_FLUSH_AFTER_ROWS + 88, 8)) + 0.01
    await lite_store.upsert("fresh", [Record(f"r{i}", v, f"t{i}") for i, v in enumerate(vectors)])
    client = lite_store._connected()
    flushes = []
    real_flush = client.flush
    client.flush = lambda *a, **k: flushes.append(a) or real_flush(*a, **k)
    hits = await lite_store.query("fresh", vectors[7], 3)  # flushes first: searches get fast
    assert hits[0].id == "r7" and len(flushes) == 1
    assert (await lite_store.query("fresh", vectors[9], 3))[0].id == "r9" and len(flushes) == 1
    await lite_store.upsert("fresh", [Record("late", vectors[0] * -1, "late")])  # a few rows: no flush
    assert (await lite_store.query("fresh", vectors[0] * -1, 1))[0].id == "late" and len(flushes) == 1


def test_requests_are_cut_below_the_byte_budget_without_encoding_rows(tmp_path, monkeypatch):
    """The base class cuts a batch by the declared max_request_bytes, each row bounded by this
    store's request_bytes (the JSON of id, text and typed metadata, the vector as float32)."""
    from vpa_milvus import codec
    from vpa_milvus.store import REQUEST_BYTES

    store = MilvusStore(str(tmp_path / "vpa.db"))
    info = CollectionInfo("c", 2)
    assert MilvusStore.capabilities.max_request_bytes == REQUEST_BYTES
    records = [Record(f"r{i}", [1.0, 0.0], "é" * 20_000, {"tags": ["x" * 100]}) for i in range(300)]
    with monkeypatch.context() as patch:  # splitting encodes no row
        patch.setattr(codec, "encode_metadata", lambda *_: pytest.fail("a row was encoded to split"))
        parts = list(store.split_batch(info, records))
    assert len(parts) > 1 and sum(len(p) for p in parts) == 300
    assert [r.id for p in parts for r in p] == [r.id for r in records]
    for part in parts:
        rows = [{k: v for k, v in codec.to_row(r).items() if k != codec.VECTOR_FIELD} for r in part]
        assert len(json.dumps(rows, ensure_ascii=False).encode()) + 4 * 2 * len(rows) <= REQUEST_BYTES


async def test_get_and_delete_semantics(lite_store):
    await lite_store.create_collection("gd", 2)
    await lite_store.upsert(
        "gd", [Record(i, [1, 1], metadata={"n": n}) for n, i in enumerate(["a", "b", 'c"\\', "d é"])]
    )
    assert [r.id for r in await lite_store.get("gd", ["d é", "zz", "a", "a"])] == ["d é", "a"]
    assert await lite_store.delete("gd", ["zz", "a", "a"]) == 1
    assert await lite_store.delete("gd", ["a"]) == 0
    assert await lite_store.delete("gd", ['c"\\', "b"], filter={"n": {"$gt": 1}}) == 1
    assert sorted(r.id for r in await lite_store.get("gd", ["a", "b", 'c"\\', "d é"])) == ["b", "d é"]
    with pytest.raises(ValidationError):
        await lite_store.delete("gd")


async def test_ids_up_to_512_characters(lite_store):
    await lite_store.create_collection("ids", 2)
    long_ids = ["x" * 512, "é" * 512, "😀" * 512, " leading", "123", "a'b\"c\\d\ne"]
    await lite_store.upsert("ids", [Record(i, [1, 2]) for i in long_ids])
    assert [r.id for r in await lite_store.get("ids", long_ids)] == long_ids
    assert await lite_store.delete("ids", long_ids[:3]) == 3


async def test_record_size_limit_is_declared_and_holds(lite_store):
    limit = MilvusStore.capabilities.max_record_bytes
    await lite_store.create_collection("sz", 2)
    text = "é" * ((limit - 10) // 2)  # two UTF-8 bytes each: near the limit in bytes
    await lite_store.upsert("sz", [Record("t", [1, 0], text)])
    meta = {f"k{i}": "v" * 200 for i in range(300)}
    while len(json.dumps(["", meta], ensure_ascii=False).encode()) > limit:
        meta.popitem()
    await lite_store.upsert("sz", [Record("m", [1, 0], "", meta)])
    got = {r.id: r for r in await lite_store.get("sz", ["t", "m"])}
    assert got["t"].text == text and got["m"].metadata == meta
    with pytest.raises(RecordTooLarge):
        await lite_store.upsert("sz", [Record("x", [1, 0], "a" * (limit + 1))])


async def test_collections_fingerprint_and_names(lite_path):
    fp = EmbedderFingerprint("hashing", "h-1", 3)
    store = MilvusStore(lite_path)
    try:
        info = await store.create_collection("my-docs_v2", 3, fingerprint=fp)
        assert info.fingerprint == fp
        assert await store.create_collection("my-docs_v2", 3, fingerprint=fp) == info  # get-or-create
        with pytest.raises(DimensionMismatch):
            await store.create_collection("my-docs_v2", 4)
        with pytest.raises(EmbedderMismatch):
            await store.create_collection("my-docs_v2", 3, fingerprint=EmbedderFingerprint("other", "m", 3))
        await store.create_collection("plain", 2)
        assert await store.list_collections() == ["my-docs_v2", "plain"]
        with pytest.raises(InvalidVector):
            await store.upsert("plain", [Record("nan", [float("nan"), 1])])
        with pytest.raises(DimensionMismatch):
            await store.query("plain", [1, 2, 3])
    finally:
        await store.close()
    # a new store instance (new Milvus Lite server on the same file) sees the same definition
    reopened = MilvusStore(lite_path)
    try:
        assert await reopened.open_collection("my-docs_v2") == info
        assert await reopened.drop_collection("my-docs_v2") is True
        assert await reopened.drop_collection("my-docs_v2") is False
        with pytest.raises(CollectionNotFound):
            await reopened.open_collection("my-docs_v2")
        assert await reopened.list_collections() == ["plain"]
    finally:
        await reopened.close()


async def test_foreign_collection_is_refused(lite_path):
    store = MilvusStore(lite_path)
    try:
        await store.list_collections()  # starts Milvus Lite on the file
        store._client.create_collection("foreign", dimension=2)  # made without VPA
        with pytest.raises(InvalidCollection, match="not created by VPA"):
            await store.create_collection("foreign", 2)
        await store.create_collection("ours", 2)
        assert await store.list_collections() == ["ours"]  # other apps' collections are not listed
    finally:
        await store.close()


async def test_collections_of_0_1_still_open(lite_path):
    """vpa-milvus 0.1 kept the definition in vpa.* properties: such a collection opens with its
    fingerprint, is listed and works; a new collection keeps one versioned definition."""
    from vpa.stores.definition import DEFINITION_KEY, load_definition
    from vpa_milvus import codec

    fp = EmbedderFingerprint("hashing", "h-1", 3)
    legacy = {
        "vpa.format": "1",
        "vpa.dimension": "3",
        "vpa.metric": "cosine",
        "vpa.fingerprint": json.dumps({"name": "hashing", "model": "h-1", "dimension": 3}),
    }
    store = MilvusStore(lite_path)
    try:
        await store.list_collections()  # starts Milvus Lite on the file
        client = store._client
        client.create_collection("old", schema=codec.schema(3), properties=legacy, consistency_level="Strong")
        client.create_index("old", codec.vector_index(), sync=False)
        assert await store.open_collection("old") == CollectionInfo("old", 3, fingerprint=fp)
        assert await store.list_collections() == ["old"]
        with pytest.raises(EmbedderMismatch):
            await store.create_collection("old", 3, fingerprint=EmbedderFingerprint("other", "m", 3))
        await store.upsert("old", [Record("a", [1, 0, 0], "t", {"k": 1})])
        assert [h.id for h in await store.query("old", [1, 0, 0], 1, filter={"k": 1})] == ["a"]
        created = await store.create_collection("new-one", 3, fingerprint=fp)
        props = client.describe_collection(codec.milvus_name("new-one"))["properties"]
        assert load_definition("new-one", props[DEFINITION_KEY]) == created
        assert not [key for key in props if key.startswith("vpa.")]
        assert await store.list_collections() == ["new-one", "old"]
    finally:
        await store.close()


def test_definition_codec_reads_both_formats_and_refuses_the_rest():
    from vpa.stores.definition import DEFINITION_KEY
    from vpa_milvus import codec

    info = CollectionInfo("c", 3, fingerprint=EmbedderFingerprint("e", "m", 3))
    vector = {"name": "vector", "params": {"dim": 3}}
    assert (
        codec.info_from_description("c", {"properties": codec.properties(info), "fields": [vector]}) == info
    )
    legacy = {"vpa.dimension": "3", "vpa.fingerprint": '{"name": "e", "model": "m", "dimension": 3}'}
    assert codec.info_from_description("c", {"properties": legacy, "fields": [vector]}) == info
    assert codec.is_vpa_collection(legacy) and codec.is_vpa_collection(codec.properties(info))
    assert not codec.is_vpa_collection({"other": "x"})
    for props, message in [
        ({}, "not created by VPA"),
        ({"vpa.dimension": "three"}, "unreadable"),
        ({"vpa.dimension": "3", "vpa.fingerprint": "{"}, "unreadable"),
        ({DEFINITION_KEY: '{"vpa": 99, "dimension": 3}'}, "newer VPA"),
    ]:
        with pytest.raises(InvalidCollection, match=message):
            codec.info_from_description("c", {"properties": props})


async def test_dropped_under_us_is_collection_not_found(lite_path):
    a, b = MilvusStore(lite_path), MilvusStore(lite_path)
    try:
        await a.create_collection("gone", 2)
        await a.upsert("gone", [Record("x", [1, 0])])
        await b.drop_collection("gone")
        for call in (
            a.upsert("gone", [Record("y", [1, 0])]),
            a.query("gone", [1, 0]),
            a.count("gone"),
            a.get("gone", ["x"]),
            a.delete("gone", ["x"]),
        ):
            with pytest.raises(CollectionNotFound):
                await call
    finally:
        await a.close()
        await b.close()


async def test_persists_across_processes(lite_path):
    store = MilvusStore(lite_path)
    await store.create_collection("keep", 2, fingerprint=EmbedderFingerprint("e", "m", 2))
    await store.upsert("keep", [Record(f"r{i}", [1, i], f"t{i}", {"i": i, "f": i / 2}) for i in range(10)])
    await store.close()  # releases the Lite file so another process may open it
    script = textwrap.dedent(
        f"""
        import asyncio, json
        from vpa_milvus.store import MilvusStore
        async def main():
            s = MilvusStore({lite_path!r})
            info = await s.open_collection("keep")
            recs = await s.get("keep", ["r3"])
            n = await s.count("keep", {{"f": {{"$gte": 2.0}}}})
            await s.close()
            print(json.dumps([info.fingerprint.model, n, recs[0].metadata, recs[0].vector.tolist()]))
        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    model, n, metadata, vector = json.loads(out.stdout.strip().splitlines()[-1])
    assert (model, n, metadata, vector) == ("m", 6, {"i": 3, "f": 1.5}, [1.0, 3.0])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_lite_server_is_shared_and_released(lite_path):
    a, b = MilvusStore(lite_path), MilvusStore(lite_path)
    await a.create_collection("shared", 2)
    await b.upsert("shared", [Record("x", [1, 0])])
    assert lite.users(lite_path) == 2
    host = lite.host_pid()
    assert host is not None and host != os.getpid()  # the engine runs outside this process
    await a.close()
    assert await b.count("shared") == 1  # b keeps working
    await b.close()
    assert lite.users(lite_path) == 0


async def test_lite_file_used_by_another_process_is_unavailable(lite_path):
    holder = MilvusStore(lite_path)
    await holder.list_collections()
    script = textwrap.dedent(
        f"""
        import asyncio
        from vpa.errors import StoreUnavailable
        from vpa_milvus.store import MilvusStore
        async def main():
            s = MilvusStore({lite_path!r})
            try:
                await s.list_collections()
            except StoreUnavailable as exc:
                print("unavailable:", exc)
            await s.close()
        asyncio.run(main())
        """
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
        )
        assert "unavailable:" in out.stdout and "one process uses a Milvus Lite file" in out.stdout
    finally:
        await holder.close()


async def test_lite_child_does_not_outlive_a_killed_parent(lite_path):
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from vpa_milvus import lite
        from vpa_milvus.store import MilvusStore
        async def main():
            s = MilvusStore({lite_path!r})
            await s.list_collections()
            print(lite.host_pid(), flush=True)
            sys.stdin.read()  # wait to be killed
        asyncio.run(main())
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        child_pid = int(parent.stdout.readline())
        assert _pid_alive(child_pid)
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _pid_alive(child_pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _pid_alive(child_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    reopened = MilvusStore(lite_path)  # the data is free again
    try:
        assert await reopened.list_collections() == []
    finally:
        await reopened.close()


async def test_concurrent_writes_lose_nothing(lite_store):
    await lite_store.create_collection("conc", 2)
    await asyncio.gather(
        *(
            lite_store.upsert("conc", [Record(f"w{w}-{i}", [1, i + 1], metadata={"w": w}) for i in range(25)])
            for w in range(8)
        )
    )
    assert await lite_store.count("conc") == 200
    assert await lite_store.count("conc", {"w": {"$in": [1, 2]}}) == 50


async def test_calls_do_not_block_the_event_loop(lite_store):
    await lite_store.create_collection("loop", 2)
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await lite_store.upsert("loop", [Record(f"r{i}", [1, i]) for i in range(500)])
    await lite_store.query("loop", [1, 1], top_k=50)
    stop.set()
    await task
    assert ticks > 10


# --- config, registration, errors ---------------------------------------------------------------


def test_constructor_does_no_io(tmp_path):
    store = MilvusStore(str(tmp_path / "nowhere" / "vpa.db"))
    assert not (tmp_path / "nowhere").exists()
    assert store.lite and "lite" in repr(store)


def test_config_lite_under_data_dir(tmp_path):
    config = load_config({"data_dir": tmp_path, "provider": "milvus"}, environ={})
    store = MilvusStore.from_config(config)
    assert store.lite and store.uri == str(tmp_path / "milvus" / "vpa.db")


def test_config_server_from_host_port_and_token():
    config = load_config({"host": "milvus.internal", "port": 19531, "api_key": "root:secret"}, environ={})
    store = MilvusStore.from_config(config)
    assert not store.lite and store.uri == "http://milvus.internal:19531"
    assert "secret" not in repr(store)
    assert server_uri("https://zilliz.example", None) == "https://zilliz.example:19530"
    assert server_uri("http://h:1234", 99) == "http://h:1234"


def test_config_toml_options(tmp_path):
    toml = tmp_path / "vpa.toml"
    toml.write_text(
        '[providers.milvus]\nuri = "http://m:19530"\ndb_name = "rag"\ntimeout = 5\n'
        "shards_num = 2\nreplica_number = 3\n"
    )
    store = MilvusStore.from_config(load_config(config_file=toml, environ={"VPA_VECTOR_DB_HOST": "other"}))
    assert (store.uri, store.settings.db_name, store.timeout) == ("http://m:19530", "rag", 5.0)
    assert (store.settings.shards_num, store.settings.replica_number) == (2, 3)
    toml.write_text('[providers.milvus]\nurl = "http://m:19530"\n')
    with pytest.raises(ConfigError, match=r"\[providers\.milvus\]\.url"):
        MilvusStore.from_config(load_config(config_file=toml, environ={}))
    for bad, option in [
        ('timeout = "soon"', "timeout"),
        ("shards_num = 1.5", "shards_num"),
        ("db_name = 1", "db_name"),
    ]:
        toml.write_text(f"[providers.milvus]\n{bad}\n")
        with pytest.raises(ConfigError, match=rf"\[providers\.milvus\]\.{option}"):
            MilvusStore.from_config(load_config(config_file=toml, environ={}))
    for bad in ("timeout = 0", "shards_num = 0", "replica_number = -1"):
        toml.write_text(f"[providers.milvus]\n{bad}\n")
        with pytest.raises(ConfigError, match=f"{bad.split()[0]} must be positive"):
            MilvusStore.from_config(load_config(config_file=toml, environ={}))


def test_settings_are_typed_with_the_defaults_of_0_1():
    from vpa.settings import describe_settings
    from vpa_milvus.settings import MilvusSettings

    options = {o["name"]: o for o in describe_settings(MilvusSettings)}
    assert {name: o["default"] for name, o in options.items()} == {
        "uri": None,
        "db_name": "",
        "timeout": 30.0,
        "shards_num": None,
        "replica_number": None,
        "lexical": None,
    }
    assert all(o["help"] for o in options.values())
    assert MilvusStore.settings_class is MilvusSettings and MilvusStore.provider == "milvus"


def test_registered_through_the_entry_point(tmp_path):
    registry = Registry()
    registration = registry.get("store", "milvus")
    assert registration.package == "vpa-milvus"
    assert registration.target == "vpa_milvus.store:MilvusStore"  # by string: imported on first use
    config = load_config({"data_dir": tmp_path}, environ={})
    store = registration.factory(config)
    assert isinstance(store, MilvusStore)
    # One definition: the class's, which the registry, every configuration and the instance share.
    assert registration.capabilities == MilvusStore.capabilities == store.capabilities
    assert registration.declared(config) == MilvusStore.capabilities and store.capabilities.lexical_search
    # A server's version is not known before connecting: lexical search is declared once it is
    # (2.5+), or up front with lexical=true.
    server = load_config({"host": "milvus.internal"}, environ={})
    assert registration.declared(server) == without_lexical(MilvusStore.capabilities)
    assert MilvusStore.from_config(server).capabilities == without_lexical(MilvusStore.capabilities)
    told = load_config({"host": "milvus.internal", "providers": {"milvus": {"lexical": True}}}, environ={})
    assert registration.declared(told) == MilvusStore.capabilities


def test_importing_the_plugin_imports_no_vendor_client():
    code = (
        "import sys, vpa_milvus, vpa_milvus.plugin; "
        "print([m for m in ('pymilvus', 'milvus_lite', 'grpc', 'vpa_milvus.store') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_unreachable_server_is_store_unavailable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = MilvusStore(f"http://127.0.0.1:{port}", timeout=2)
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable) as info:
        await store.list_collections()
    assert info.value.__cause__ is not None
    assert time.perf_counter() - started < 30
    health = await store.health()
    assert not health.ok
    await store.close()


async def test_closed_store_refuses(lite_store):
    await lite_store.close()
    with pytest.raises(StoreError):
        await lite_store.list_collections()


def test_error_mapping():
    import grpc
    from pymilvus.exceptions import MilvusException

    class Rpc(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

    assert isinstance(translate_error(Rpc(grpc.StatusCode.UNAUTHENTICATED), where="x"), StoreAuthError)
    assert isinstance(translate_error(Rpc(grpc.StatusCode.DEADLINE_EXCEEDED), where="x"), StoreTimeout)
    assert isinstance(translate_error(Rpc(grpc.StatusCode.UNAVAILABLE), where="x"), StoreUnavailable)
    assert isinstance(
        translate_error(MilvusException(100, "collection not found[c]"), where="x", collection="c"),
        CollectionNotFound,
    )
    assert isinstance(translate_error(MilvusException(1, "Retry timeout: 5s"), where="x"), StoreTimeout)
    assert isinstance(
        translate_error(MilvusException(2, "Fail connecting to server"), where="x"), StoreUnavailable
    )
    assert isinstance(
        translate_error(MilvusException(1800, "user hasn't authenticated"), where="x"), StoreAuthError
    )
    assert isinstance(translate_error(MilvusException(65535, "something else"), where="x"), StoreError)
