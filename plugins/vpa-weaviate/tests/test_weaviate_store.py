"""The Weaviate store against the stand-in: typed schema, batch splitting, limits, persistence,
tenants, configuration and lifecycle."""

from __future__ import annotations

import datetime as dt
import json
import re

import attrs
import numpy as np
import pytest
import weaviate
from vpa.config import load_config
from vpa.errors import (
    ConfigError,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
    StoreError,
    UnsupportedFilter,
    UnsupportedMetadata,
)
from vpa.models import CollectionInfo, EmbedderFingerprint, Record
from vpa.plugins import get_registry
from vpa.stores.definition import load_definition
from vpa_weaviate import codec
from vpa_weaviate.naming import encode_collection
from vpa_weaviate.settings import WeaviateSettings
from vpa_weaviate.store import NEGATIONS, ServerInfo, WeaviateStore
from weaviate_support import StandIn, start_standin, stop_standin

NOON = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def _raw_client(standin: StandIn) -> weaviate.WeaviateClient:
    return standin.client()


def _grpc_calls(standin: StandIn, method: str) -> int:
    return standin.requests().get(f"grpc:{method}", 0)


# --- schema and types ----------------------------------------------------------------------------


async def test_collection_layout_in_weaviate(standin: StandIn, unique_name: str) -> None:
    """One class per collection: a self-provided cosine vector, VPA's definition in the
    description, reserved properties, and one typed property per metadata key."""
    store = standin.store()
    fingerprint = EmbedderFingerprint("hashing", "m", 3)
    try:
        await store.create_collection(unique_name, 3, fingerprint=fingerprint)
        await store.upsert(
            unique_name,
            [
                Record(
                    "a",
                    [1, 2, 3],
                    "t",
                    {
                        "n": 1,
                        "f": 1.0,
                        "s": "x",
                        "b": True,
                        "l": ["y"],
                        "myKey": [],
                        "d": NOON,
                        "og:title": "x",
                    },
                )
            ],
        )
        client = _raw_client(standin)
        try:
            config = client.collections.use(encode_collection(unique_name)).config.get()
        finally:
            client.close()
        description = json.loads(config.description)
        assert (description["name"], description["multi_tenant"]) == (unique_name, False)
        definition = load_definition(unique_name, description["vpa_definition"])  # the core's format
        assert definition.dimension == 3 and definition.fingerprint == fingerprint
        vector = config.vector_config["default"]
        assert vector.vectorizer.vectorizer.value == "none"
        assert vector.vector_index_config.distance_metric.value == "cosine"
        types = {p.name: p.data_type.value for p in config.properties}
        assert types == {
            "vpa_id": "text",
            "vpa_text": "text",
            "vpa_norm": "number",
            "vpa_terms": "text",
            "m_n": "int",
            "m_f": "number",
            "m_s": "text",
            "m_b": "boolean",
            "m_l": "text[]",
            "m_my_key": "text[]",
            "m_d": "date",
            "m_og_23atitle": "text",
        }
        tokenization = {p.name: p.tokenization and p.tokenization.value for p in config.properties}
        assert tokenization["m_s"] == tokenization["m_l"] == "field"
        searchable = {p.name for p in config.properties if p.index_searchable}
        assert searchable == {"vpa_terms"} and tokenization["vpa_terms"] == "whitespace"  # BM25: VPA's tokens
        assert (config.inverted_index_config.bm25.k1, config.inverted_index_config.bm25.b) == (1.2, 0.75)
        assert config.inverted_index_config.stopwords.preset.value == "none"
        described = {p.name: json.loads(p.description)["vpa_key"] for p in config.properties if p.description}
        assert described["m_og_23atitle"] == "og:title" and described["m_my_key"] == "myKey"
        assert config.inverted_index_config.index_null_state is True  # $exists is IsNull
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_int_and_float_keep_their_types(standin: StandIn, unique_name: str) -> None:
    store = standin.store()
    try:
        await store.create_collection(unique_name, 2)
        records = [
            Record("i", [1, 0], "", {"n": 3, "f": 3.0, "big": 2**53, "neg": -(2**53)}),
            Record("j", [0, 1], "", {"n": -1, "f": 0.1, "big": 1, "neg": 0}),
        ]
        await store.upsert(unique_name, records)
        other = standin.store()  # a new instance decodes by the schema, not by a cache
        got = {r.id: r.metadata for r in await other.get(unique_name, ["i", "j"])}
        await other.close()
        assert got["i"] == {"n": 3, "f": 3.0, "big": 2**53, "neg": -(2**53)}
        assert {k: type(v) for k, v in got["i"].items()} == {"n": int, "f": float, "big": int, "neg": int}
        assert type(got["j"]["f"]) is float and type(got["j"]["n"]) is int
        assert await store.count(unique_name, {"f": 3}) == 1  # int operand on a float property
        assert await store.count(unique_name, {"n": 3.0}) == 1  # float operand on an int property
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_conflicting_type_is_refused_before_any_write(standin: StandIn, unique_name: str) -> None:
    store = standin.store()
    try:
        await store.create_collection(unique_name, 2)
        await store.upsert(unique_name, [Record("a", [1, 0], "", {"k": 1})])
        before = _grpc_calls(standin, "BatchObjects")
        for bad in ({"k": 1.5}, {"k": "1"}, {"k": True}, {"k": ["1"]}):
            batch = [Record("new", [0, 1], "", {}), Record("b", [1, 1], "", bad)]
            with pytest.raises(UnsupportedMetadata, match="'k'"):
                await store.upsert(unique_name, batch)
        with pytest.raises(UnsupportedMetadata, match="'z'"):  # a conflict inside one batch
            await store.upsert(
                unique_name, [Record("c", [1, 0], "", {"z": 1}), Record("d", [1, 0], "", {"z": "1"})]
            )
        assert _grpc_calls(standin, "BatchObjects") == before
        assert await store.count(unique_name) == 1
        assert await store.get(unique_name, ["new", "b", "c", "d"]) == []
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_empty_list_shares_a_key_with_lists_only(standin: StandIn, unique_name: str) -> None:
    store = standin.store()
    try:
        await store.create_collection(unique_name, 2)
        await store.upsert(unique_name, [Record("a", [1, 0], "", {"tags": []})])
        await store.upsert(unique_name, [Record("b", [0, 1], "", {"tags": ["x"]})])
        with pytest.raises(UnsupportedMetadata):
            await store.upsert(unique_name, [Record("c", [1, 1], "", {"tags": "x"})])
        got = {r.id: r.metadata for r in await store.get(unique_name, ["a", "b"])}
        assert got == {"a": {"tags": []}, "b": {"tags": ["x"]}}
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_a_property_added_by_another_writer_is_seen(standin: StandIn, unique_name: str) -> None:
    first, second = standin.store(), standin.store()
    try:
        await first.create_collection(unique_name, 2)
        await first.upsert(unique_name, [Record("a", [1, 0], "", {"old": 1})])
        assert await second.count(unique_name, {"new": "x"}) == 0  # second caches the schema
        await first.upsert(unique_name, [Record("b", [0, 1], "", {"new": "x"})])
        assert await second.count(unique_name, {"new": "x"}) == 1
        assert await second.count(unique_name, {"new": {"$ne": "x"}}) == 1
        with pytest.raises(UnsupportedMetadata):
            await second.upsert(unique_name, [Record("c", [1, 1], "", {"new": 5})])
        assert {r.id: r.metadata for r in await second.get(unique_name, ["b"])} == {"b": {"new": "x"}}
    finally:
        await first.drop_collection(unique_name)
        await first.close()
        await second.close()


async def test_vectors_and_text_round_trip(standin: StandIn, unique_name: str) -> None:
    store = standin.store()
    rng = np.random.default_rng(5)
    vectors = (rng.standard_normal((20, 16)) * np.array([1e-3, 1, 1e3, 1] * 5)[:, None]).astype(np.float32)
    texts = ["", " ", "nul\x00inside", "e\u0301", "\U0001f469\u200d\U0001f4bb", "x" * 5000, "\x02framed\x03"]
    try:
        await store.create_collection(unique_name, 16)
        records = [Record(f"id {i}", v, texts[i % len(texts)], {}) for i, v in enumerate(vectors)]
        await store.upsert(unique_name, records)
        got = {r.id: r for r in await store.get(unique_name, [r.id for r in records])}
        for record in records:
            assert got[record.id].text == record.text
            np.testing.assert_allclose(got[record.id].vector, record.vector, rtol=1e-6)
        hits = await store.query(unique_name, vectors[3], 3)
        assert hits[0].id == "id 3" and hits[0].score == pytest.approx(1.0, abs=1e-6)
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_vectors_returned_normalised_are_restored() -> None:
    """A server that returns unit vectors for cosine (the stand-in's --normalize-vectors) still
    gives back the vector as written: the store keeps the norm beside it."""
    standin = start_standin("--normalize-vectors")
    store = standin.store()
    try:
        await store.create_collection("norms", 3)
        await store.upsert("norms", [Record("a", [3, 4, 0], "", {}), Record("b", [1e-3, 0, 0], "", {})])
        got = {r.id: r.vector for r in await store.get("norms", ["a", "b"])}
        np.testing.assert_allclose(got["a"], [3, 4, 0], rtol=1e-6)
        np.testing.assert_allclose(got["b"], [1e-3, 0, 0], rtol=1e-6)
    finally:
        await store.close()
        stop_standin(standin)


# --- batches and limits --------------------------------------------------------------------------


async def test_batches_are_split_by_count_and_by_bytes(standin: StandIn, unique_name: str) -> None:
    store = standin.store()
    try:
        await store.create_collection(unique_name, 4)
        before = _grpc_calls(standin, "BatchObjects")
        records = [
            Record(f"r{i}", [1, i, 0, 0], "t", {"i": i})
            for i in range(2 * WeaviateStore.capabilities.max_batch_size + 1)
        ]
        assert await store.upsert(unique_name, records) == len(records)
        assert _grpc_calls(standin, "BatchObjects") - before == 3
        assert await store.count(unique_name) == len(records)
    finally:
        await store.drop_collection(unique_name)
        await store.close()
    small = standin.store(batch_bytes=20_000)
    try:
        await small.create_collection(unique_name, 4)
        before = _grpc_calls(standin, "BatchObjects")
        records = [Record(f"r{i}", [1, i, 0, 0], "x" * 2000, {}) for i in range(50)]
        await small.upsert(unique_name, records)
        assert _grpc_calls(standin, "BatchObjects") - before >= 5
        assert await small.count(unique_name) == 50
    finally:
        await small.drop_collection(unique_name)
        await small.close()


async def test_server_message_size_limit_is_respected() -> None:
    """The store sizes its batches by the gRPC message limit the server reports; the official
    client sending one oversized request is refused by the server."""
    standin = start_standin("--grpc-max-message-size", "300000")
    store = standin.store()
    try:
        await store.create_collection("big", 8)
        assert store.capabilities.max_request_bytes == 240_000  # 80% of the limit, learned at connect
        records = [Record(f"r{i}", np.ones(8), "y" * 3000, {}) for i in range(400)]  # ~1.2 MB
        assert await store.upsert("big", records) == 400
        assert await store.count("big") == 400
        client = _raw_client(standin)
        try:
            handle = client.collections.use(encode_collection("big"))
            objects = [
                weaviate.classes.data.DataObject(
                    properties={"vpa_text": "z" * 3000}, vector={"default": [1.0] * 8}
                )
                for _ in range(400)
            ]
            with pytest.raises(weaviate.exceptions.WeaviateBaseError):
                handle.data.insert_many(objects)
        finally:
            client.close()
    finally:
        await store.close()
        stop_standin(standin)


async def test_query_maximum_results_is_respected() -> None:
    """With a server whose QUERY_MAXIMUM_RESULTS is 50, get and delete of 120 records work (in
    chunks, and delete repeats until nothing matches), and top_k above it is Weaviate's error."""
    standin = start_standin("--query-maximum-results", "50")
    store = standin.store(max_results=50)
    try:
        await store.create_collection("limits", 2)
        await store.upsert("limits", [Record(f"r{i}", [1, i], "", {"even": i % 2 == 0}) for i in range(240)])
        assert len(await store.get("limits", [f"r{i}" for i in range(120)])) == 120
        assert await store.delete("limits", ids=[f"r{i}" for i in range(120)]) == 120
        assert await store.delete("limits", filter={"even": True}) == 60
        assert await store.count("limits") == 60
        with pytest.raises(StoreError, match="maximum results"):
            await store.query("limits", [1, 0], 51)
    finally:
        await store.close()
        stop_standin(standin)


async def test_negation_needs_weaviate_1_33() -> None:
    """An older server has no Not operator: once connected the store no longer declares the
    negations, so they raise UnsupportedFilter before any request (health says why: 1.33);
    everything else still works."""
    standin = start_standin("--version", "1.32.4")
    store = standin.store()
    try:
        assert store.capabilities.filter_operators >= NEGATIONS  # before connecting: a server's default
        await store.create_collection("old", 2)
        assert store.capabilities == WeaviateStore.declare(store.settings, ServerInfo((1, 32, 4)))
        assert not store.capabilities.filter_operators & NEGATIONS
        assert "1.33" in (await store.health()).detail
        await store.upsert("old", [Record("a", [1, 0], "", {"k": "x"}), Record("b", [0, 1], "", {})])
        assert await store.count("old", {"k": "x"}) == 1
        before = standin.requests()
        for spec in ({"k": {"$ne": "x"}}, {"k": {"$nin": ["x"]}}, {"$not": {"k": "x"}}):
            with pytest.raises(UnsupportedFilter, match=r"cannot evaluate \$(ne|nin|not)"):
                await store.count("old", spec)
            with pytest.raises(UnsupportedFilter):
                await store.delete("old", filter=spec)
        assert standin.requests() == before
        assert await store.count("old") == 2
    finally:
        await store.close()
        stop_standin(standin)


# --- persistence, tenants, lifecycle -------------------------------------------------------------


async def test_definition_persists_into_a_new_instance(standin: StandIn, unique_name: str) -> None:
    fingerprint = EmbedderFingerprint("st", "all-MiniLM", 3)
    first = standin.store()
    await first.create_collection(unique_name, 3, fingerprint=fingerprint)
    await first.upsert(unique_name, [Record("a", [1, 0, 0], "x", {"k": 1})])
    await first.close()
    second = standin.store()
    try:
        info = await second.open_collection(unique_name)
        assert (info.dimension, info.fingerprint) == (3, fingerprint)
        assert unique_name in await second.list_collections()
        with pytest.raises(EmbedderMismatch):
            await second.create_collection(unique_name, 3, fingerprint=EmbedderFingerprint("st", "other", 3))
        with pytest.raises(DimensionMismatch):
            await second.create_collection(unique_name, 4)
        assert [r.metadata for r in await second.get(unique_name, ["a"])] == [{"k": 1}]
    finally:
        await second.drop_collection(unique_name)
        await second.close()


async def test_a_class_vpa_did_not_create_is_left_alone(standin: StandIn, unique_name: str) -> None:
    client = _raw_client(standin)
    class_name = encode_collection(unique_name)
    try:
        client.collections.create(class_name, description="someone else's")
        store = standin.store()
        try:
            assert unique_name not in await store.list_collections()
            assert await store.drop_collection(unique_name) is False
            with pytest.raises(InvalidCollection, match="did not create"):
                await store.create_collection(unique_name, 2)
        finally:
            await store.close()
        assert client.collections.exists(class_name)
    finally:
        client.collections.delete(class_name)
        client.close()


async def test_tenants_are_isolated(standin: StandIn, unique_name: str) -> None:
    a, b, plain = standin.store(tenant="a"), standin.store(tenant="b"), standin.store()
    try:
        await a.create_collection(unique_name, 2)
        await a.upsert(unique_name, [Record("x", [1, 0], "from a", {"k": 1})])
        assert unique_name not in await b.list_collections()
        await b.create_collection(unique_name, 2)
        await b.upsert(unique_name, [Record("x", [0, 1], "from b", {"k": 2}), Record("y", [1, 1], "", {})])
        assert (await a.count(unique_name), await b.count(unique_name)) == (1, 2)
        assert [r.text for r in await a.get(unique_name, ["x"])] == ["from a"]
        assert await a.count(unique_name, {"k": 2}) == 0
        other_tenant = standin.store(tenant="c")
        with pytest.raises(DimensionMismatch):
            await other_tenant.create_collection(unique_name, 3)
        await other_tenant.close()
        with pytest.raises(InvalidCollection, match="multi-tenant"):
            await plain.count(unique_name)
        assert unique_name not in await plain.list_collections()
        assert await a.drop_collection(unique_name) is True
        assert await b.count(unique_name) == 2  # the other tenant's data stays
        assert unique_name not in await a.list_collections()
        assert await b.drop_collection(unique_name) is True  # the last tenant: the class goes
        client = _raw_client(standin)
        try:
            assert not client.collections.exists(encode_collection(unique_name))
        finally:
            client.close()
    finally:
        for store in (a, b, plain):
            await store.close()


async def test_constructor_does_no_io_and_close_releases_the_client(standin: StandIn) -> None:
    before = standin.requests()
    store = standin.store()
    assert store._client_obj is None and standin.requests() == before
    assert (await store.health()).ok
    assert store.server_version == (1, 33, 0)
    assert store._client_obj is not None
    client = store._client_obj
    await store.close()
    assert store._client_obj is None and not client.is_connected()
    with pytest.raises(StoreError, match="closed"):
        await store.list_collections()


# --- configuration -------------------------------------------------------------------------------


def _config(tmp_path, toml: str = "", **env: str):
    path = tmp_path / "vpa.toml"
    path.write_text(toml)
    return load_config(environ=env, config_file=path)


def test_settings_from_vpa_config(tmp_path) -> None:
    config = _config(
        tmp_path,
        '[providers.weaviate]\ngrpc_port = 50052\ntenant = "acme"\nindex = "flat"\n',
        VPA_VECTOR_DB_HOST="weaviate.internal",
        VPA_VECTOR_DB_PORT="8081",
        VPA_VECTOR_DB_API_KEY="secret",
        VPA_CONNECTION_POOL_SIZE="7",
    )
    store = WeaviateStore.from_config(config)
    assert store.settings == WeaviateStore.settings_from(config)  # what declared() sees too
    e = store.settings.endpoints
    assert (e.http_host, e.http_port, e.http_secure) == ("weaviate.internal", 8081, False)
    assert (e.grpc_host, e.grpc_port, e.grpc_secure) == ("weaviate.internal", 50052, False)
    assert (store._api_key, store.settings.tenant, store.settings.index) == ("secret", "acme", "flat")
    assert "secret" not in repr(store) and "secret" not in repr(store.settings)
    pool = store._client_config().connection
    assert (pool.session_pool_connections, pool.session_pool_maxsize) == (7, 7)


def test_connection_pool_size_zero_keeps_the_client_default(tmp_path) -> None:
    store = WeaviateStore.from_config(_config(tmp_path))
    default = weaviate.config.ConnectionConfig()
    pool = store._client_config().connection
    assert (pool.session_pool_connections, pool.session_pool_maxsize) == (
        default.session_pool_connections,
        default.session_pool_maxsize,
    )


def test_settings_from_url_and_grpc_url(tmp_path) -> None:
    config = _config(
        tmp_path,
        '[providers.weaviate]\nurl = "https://abc.c0.europe-west3.gcp.weaviate.cloud"\n',
        VPA_VECTOR_DB_HOST="ignored.internal",
    )
    e = WeaviateStore.from_config(config).settings.endpoints
    assert (e.http_host, e.http_port, e.http_secure) == ("abc.c0.europe-west3.gcp.weaviate.cloud", 443, True)
    assert (e.grpc_host, e.grpc_port, e.grpc_secure) == (
        "grpc-abc.c0.europe-west3.gcp.weaviate.cloud",
        443,
        True,
    )
    config = _config(tmp_path, '[providers.weaviate]\nurl = "http://w:8080"\ngrpc_url = "grpc://g:6000"\n')
    e = WeaviateStore.from_config(config).settings.endpoints
    assert (e.grpc_host, e.grpc_port, e.grpc_secure) == ("g", 6000, False)


def test_every_option_of_0_1_keeps_its_name_and_default() -> None:
    defaults = {f.name: f.default for f in attrs.fields(WeaviateSettings)}
    assert defaults == {
        "url": None, "host": None, "port": None, "secure": False, "grpc_url": None, "grpc_host": None,
        "grpc_port": None, "grpc_secure": None, "tenant": None, "class_prefix": "Vpa", "index": "hnsw",
        "timeout": 60.0, "init_timeout": 10.0, "batch_bytes": None, "max_results": 10_000,
        "replication_factor": None, "shards": None, "consistency_level": None,
    }  # fmt: skip
    e = WeaviateSettings().endpoints
    assert (e.http_host, e.http_port, e.grpc_host, e.grpc_port) == ("localhost", 8080, "localhost", 50051)


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[providers.weaviate]\nbogus = 1\n", "[providers.weaviate].bogus"),
        ('[providers.weaviate]\ntenant = "no spaces"\n', "[providers.weaviate].tenant"),
        ('[providers.weaviate]\nclass_prefix = "lower"\n', "[providers.weaviate].class_prefix"),
        ('[providers.weaviate]\nindex = "ivf"\n', "[providers.weaviate].index"),
        ('[providers.weaviate]\nurl = "ftp://x"\n', "[providers.weaviate].url"),
        ('[providers.weaviate]\nconsistency_level = "most"\n', "[providers.weaviate].consistency_level"),
        ("[providers.weaviate]\nreplication_factor = 0\n", "[providers.weaviate].replication_factor"),
        ('[providers.weaviate]\ntimeout = "soon"\n', "[providers.weaviate].timeout"),
        ("[providers.weaviate]\nshards = 2.5\n", "[providers.weaviate].shards"),
    ],
)
def test_bad_settings_are_config_errors(tmp_path, toml: str, names: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(names)):
        WeaviateStore.from_config(_config(tmp_path, toml))


def test_registered_factory_builds_a_store_without_io(tmp_path) -> None:
    registration = get_registry().get("store", "weaviate")
    assert registration.capabilities == WeaviateStore.capabilities
    assert not WeaviateStore.capabilities.heterogeneous_fields
    store = registration.factory(_config(tmp_path, VPA_VECTOR_DB_HOST="unreachable.invalid"))
    assert isinstance(store, WeaviateStore) and store._client_obj is None


def test_capabilities_have_one_definition(tmp_path) -> None:
    """The class declares the default mode; `declare` derives the rest from settings and, once
    connected, from the server: what the registry reports is what a store built from the same
    configuration holds before it connects."""
    assert WeaviateStore.declare(WeaviateSettings()) == WeaviateStore.capabilities
    config = _config(tmp_path, "[providers.weaviate]\nbatch_bytes = 20000\n")
    declared = get_registry().get("store", "weaviate").declared(config)
    assert declared.max_request_bytes == 20_000
    assert WeaviateStore.from_config(config).capabilities == declared
    caps = WeaviateStore.capabilities
    assert (caps.exact, caps.min_recall, caps.max_batch_size, caps.max_top_k) == (False, 0.9, 1_000, 10_000)
    assert (caps.persistent, caps.eventually_consistent, caps.heterogeneous_fields) == (True, False, False)
    bounds = (caps.max_filter_terms, caps.max_filter_depth, caps.max_metadata_keys, caps.max_metadata_bytes)
    assert bounds == (1024, 32, 256, 64 * 1024)
    limited = WeaviateStore.declare(WeaviateSettings(), ServerInfo((1, 33, 0), grpc_max_message=300_000))
    assert limited.max_request_bytes == 240_000 and limited.filter_operators >= NEGATIONS
    old = WeaviateStore.declare(WeaviateSettings(batch_bytes=9_000), ServerInfo((1, 32, 4)))
    assert old.max_request_bytes == 9_000 and not old.filter_operators & NEGATIONS


async def test_a_collection_created_by_0_1_still_opens(standin: StandIn, unique_name: str) -> None:
    """vpa-weaviate 0.1 kept its own definition in the class description; such a class is still
    listed, opened (dimension and fingerprint), written and dropped."""
    fingerprint = {"name": "hashing", "model": "m", "dimension": 2}
    old = {"vpa": {"format": 1, "name": unique_name, "dimension": 2, "metric": "cosine",
                   "fingerprint": fingerprint, "multi_tenant": False}}  # fmt: skip
    client = _raw_client(standin)
    try:
        config = codec.class_config(CollectionInfo(unique_name, 2), WeaviateSettings())
        config["description"] = json.dumps(old)
        client.collections.create(encode_collection(unique_name), **config)
    finally:
        client.close()
    store = standin.store()
    try:
        assert unique_name in await store.list_collections()
        info = await store.open_collection(unique_name)
        assert (info.dimension, info.fingerprint) == (2, EmbedderFingerprint("hashing", "m", 2))
        with pytest.raises(EmbedderMismatch):
            await store.create_collection(unique_name, 2, fingerprint=EmbedderFingerprint("hashing", "x", 2))
        await store.upsert(unique_name, [Record("a", [1, 0], "t", {"k": 1})])
        assert await store.count(unique_name, {"k": 1}) == 1
    finally:
        assert await store.drop_collection(unique_name)
        await store.close()


async def test_cluster_options_reach_the_collection(standin: StandIn, unique_name: str) -> None:
    """shards and consistency_level are applied; a replication factor the (one-node) stand-in
    cannot hold is refused by the server, as a one-node Weaviate refuses it."""
    store = standin.store(shards=3, consistency_level="all")
    try:
        await store.create_collection(unique_name, 2)
        await store.upsert(unique_name, [Record("a", [1, 0], "", {"k": 1})])
        assert await store.count(unique_name, {"k": 1}) == 1
        client = _raw_client(standin)
        try:
            sharding = client.collections.use(encode_collection(unique_name)).config.get().sharding_config
            assert sharding is not None and sharding.desired_count == 3
        finally:
            client.close()
    finally:
        await store.drop_collection(unique_name)
        await store.close()
    replicated = standin.store(replication_factor=3)
    try:
        with pytest.raises(StoreError, match="replicas"):
            await replicated.create_collection(unique_name, 2)
    finally:
        await replicated.close()
