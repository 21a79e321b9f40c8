"""The plugin against the stand-in: round trips, filters end to end, batching, limits, errors,
eventual consistency and persistence. The official SDK talks to the stand-in over real sockets."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time

import numpy as np
import pytest
from conftest import API_KEY, INDEX_DIMENSION, unique
from vpa.config import VPAConfig
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
    RecordTooLarge,
    StoreAuthError,
    StoreTimeout,
    StoreUnavailable,
    ValidationError,
)
from vpa.filters import evaluate, parse_filter
from vpa.models import EmbedderFingerprint, Record
from vpa_pinecone.settings import PineconeSettings, control_plane_url
from vpa_pinecone.store import PineconeStore


def vec(seed: int, dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=dim).astype(np.float32)
    return v


async def fresh(store: PineconeStore, dim: int = 8, **kwargs) -> str:
    name = unique()
    await store.create_collection(name, dim, **kwargs)
    return name


# --- round trips -------------------------------------------------------------------------------


async def test_round_trip_preserves_everything(make_store) -> None:
    store = make_store()
    name = await fresh(store, 5)
    metadata = {
        "i": 3,
        "big": 2**53,
        "neg": -7,
        "f": 2.0,
        "g": -0.5,
        "t": True,
        "fa": False,
        "s": "",
        "u": "日本語 ✓",
        "tags": ["a", "", "ü"],
        "empty": [],
    }
    records = [
        Record("plain", vec(1, 5), "hello", metadata),
        Record("ünïcødé-id ✓", vec(2, 5), "", {}),
        Record("vpa~looks-reserved", vec(3, 5), "x" * 1000, {"k": 1}),
        Record("x" * 512, vec(4, 5), "long id", {"n": 1.5}),
    ]
    assert await store.upsert(name, records) == 4
    await store.settle(name)
    got = await store.get(name, [r.id for r in records] + ["missing"])
    assert [r.id for r in got] == [r.id for r in records]
    for want, have in zip(records, got, strict=True):
        assert np.allclose(have.vector, want.vector, atol=1e-6)
        assert have.vector.shape == (5,)  # the zero padding to the index dimension is cut off
        assert have.text == want.text
        assert have.metadata == want.metadata
        for key, value in want.metadata.items():
            assert type(have.metadata[key]) is type(value), key  # int stays int, float stays float
    hits = await store.query(name, records[0].vector, top_k=1)
    assert hits[0].id == "plain" and hits[0].metadata == metadata and hits[0].text == "hello"
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)


async def test_scores_are_cosine_similarity(make_store) -> None:
    store = make_store()
    name = await fresh(store, 3)
    await store.upsert(name, [Record("a", [1, 0, 0]), Record("b", [1, 1, 0]), Record("c", [-2, 0, 0])])
    await store.settle(name)
    hits = await store.query(name, [3, 0, 0], top_k=3)
    assert [h.id for h in hits] == ["a", "b", "c"]
    assert [h.score for h in hits] == pytest.approx([1.0, 2**-0.5, -1.0], abs=1e-6)


async def test_upsert_is_idempotent_newest_wins(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(name, [Record("a", vec(1), "old", {"v": 1}), Record("a", vec(2), "new", {"v": 2})])
    await store.upsert(name, [Record("b", vec(3))])
    await store.upsert(name, [Record("b", vec(4), "b2")])
    await store.settle(name)
    assert await store.count(name) == 2
    a, b = await store.get(name, ["a", "b"])
    assert (a.text, a.metadata, b.text) == ("new", {"v": 2}, "b2")
    assert np.allclose(a.vector, vec(2))


# --- filters end to end ------------------------------------------------------------------------

CORPUS_FIELDS = ["color", "n", "flag", "tags"]


def corpus(size: int = 60) -> list[Record]:
    rng = random.Random(7)
    records = []
    for i in range(size):
        metadata = {}
        for field in CORPUS_FIELDS:
            choice = rng.random()
            if choice < 0.2:
                continue  # missing field
            if field == "tags" or choice < 0.3:
                metadata[field] = rng.sample(["red", "blue", "green", ""], rng.randint(0, 3))
            elif choice < 0.5:
                metadata[field] = rng.choice(["red", "blue", "", "é"])
            elif choice < 0.7:
                metadata[field] = rng.choice([0, 1, 2, -3, 2**40])
            elif choice < 0.85:
                metadata[field] = rng.choice([0.0, 1.0, 1.5, -2.25])
            else:
                metadata[field] = rng.choice([True, False])
        records.append(Record(f"r{i}", vec(i), f"text {i}", metadata))
    return records


def random_filter(rng: random.Random, depth: int = 0) -> dict:
    if depth < 2 and rng.random() < 0.35:
        kind = rng.choice(["$and", "$or", "$not"])
        if kind == "$not":
            return {"$not": random_filter(rng, depth + 1)}
        return {kind: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    field = rng.choice([*CORPUS_FIELDS, "absent"])
    op = rng.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"])
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return {field: {op: rng.choice([0, 1, 1.5, -3, 2])}}
    pools = [["red", "blue", "", "green", "é"], [0, 1, 2, 1.5, -2.25, 2**40], [True, False]]
    pool = rng.choice(pools)
    if op in ("$in", "$nin"):
        return {field: {op: rng.sample(pool, rng.randint(1, 2))}}
    return {field: {op: rng.choice(pool)}}


async def test_filters_match_the_reference_for_every_operator(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    records = corpus()
    await store.upsert(name, records)
    await store.settle(name)
    rng = random.Random(11)
    filters = [random_filter(rng) for _ in range(120)]
    for op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"):  # every operator at least once
        filters.append({"n": {op: [1, 2] if op in ("$in", "$nin") else 1}})
    filters += [{"$not": {"tags": "red"}}, {"$not": {"n": {"$gt": 0}}}, {"$not": {"flag": {"$in": [True]}}}]
    checked = 0
    for spec in filters:
        tree = parse_filter(spec)
        expected = {r.id for r in records if evaluate(tree, r.metadata)}
        assert await store.count(name, spec) == len(expected), spec
        hits = await store.query(name, vec(999), top_k=100, filter=spec)
        assert {h.id for h in hits} == expected, spec
        checked += 1
    assert checked == len(filters)


async def test_delete_by_filter_ids_and_both(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    records = corpus(40)
    await store.upsert(name, records)
    spec = {"$or": [{"color": {"$ne": "red"}}, {"n": {"$lt": 1}}]}
    tree = parse_filter(spec)
    chosen = [r.id for r in records[:20]] + ["nope"]
    expected_both = {r.id for r in records[:20] if evaluate(tree, r.metadata)}
    # delete settles our own earlier writes itself, so its count is exact without an explicit settle
    assert await store.delete(name, ids=chosen, filter=spec) == len(expected_both)
    rest = [r for r in records if r.id not in expected_both]
    expected_filter = {r.id for r in rest if evaluate(parse_filter({"flag": True}), r.metadata)}
    assert await store.delete(name, filter={"flag": True}) == len(expected_filter)
    rest = [r for r in rest if r.id not in expected_filter]
    assert await store.delete(name, ids=[rest[0].id, rest[0].id, "missing"]) == 1
    await store.settle(name)
    assert await store.count(name) == len(rest) - 1
    with pytest.raises(ValidationError):
        await store.delete(name)


# --- batching and limits -----------------------------------------------------------------------


async def test_batches_are_split_to_pinecone_limits(make_store, standin) -> None:
    store = make_store()
    name = await fresh(store, INDEX_DIMENSION)
    mark = standin.request_total
    await store.upsert(name, [Record(f"id{i}", vec(i, INDEX_DIMENSION)) for i in range(2500)])
    dense = store._handle.host.split("//", 1)[1]  # the sparse index (lexical search) gets its own
    upserts = [
        r for r in standin.requests_since(mark) if r[1] == "/vectors/upsert" and r[2].get("host") == dense
    ]
    assert [int(r[2]["content-length"]) > 0 for r in upserts] and len(upserts) == 3  # 1000 + 1000 + 500
    # records near the metadata limit: the 2 MB request limit splits them long before 1,000
    mark = standin.request_total
    big = [Record(f"big{i}", vec(i, INDEX_DIMENSION), "ü" * 18_000) for i in range(150)]
    await store.upsert(name, big)
    upserts = [r for r in standin.requests_since(mark) if r[1] == "/vectors/upsert"]  # both indexes
    sizes = [int(r[2]["content-length"]) for r in upserts]
    assert len(upserts) >= 2 and max(sizes) <= 2_000_000, sizes
    await store.settle(name)
    assert await store.count(name) == 2650


async def test_record_size_limit_is_checked_before_any_write(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    assert store.capabilities.max_record_bytes is not None
    with pytest.raises(RecordTooLarge):  # over the declared limit: the core refuses it
        await store.upsert(name, [Record("a", vec(1)), Record("b", vec(2), "x" * 40_000)])
    # within every declared bound by VPA's measure (keys, metadata and record bytes), but its
    # numbers' type tags (one shadow key each, long names here) overflow 40 KB
    caps = store.capabilities
    wide = {f"k{i:03d}" + "n" * 60: i for i in range(caps.max_metadata_keys)}
    text = "x" * (caps.max_record_bytes - len(json.dumps(["", wide])))
    with pytest.raises(RecordTooLarge, match="40960"):
        await store.upsert(name, [Record("c", vec(3)), Record("d", vec(4), text, wide)])
    await store.settle(name)
    assert await store.count(name) == 0  # nothing of either call was written


async def test_top_k_above_one_thousand(make_store) -> None:
    store = make_store()
    name = await fresh(store, 4)
    await store.upsert(name, [Record(f"r{i}", vec(i, 4), f"t{i}", {"i": i}) for i in range(1200)])
    await store.settle(name)
    hits = await store.query(name, vec(5, 4), top_k=1100)  # Pinecone returns metadata for 1,000 at most
    assert len(hits) == 1100 and all(h.text == f"t{h.metadata['i']}" for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    with pytest.raises(ValidationError):
        await store.query(name, vec(5, 4), top_k=10_001)


async def test_dimension_rules(make_store) -> None:
    store = make_store()
    name = await fresh(store, 4)
    with pytest.raises(DimensionMismatch):
        await store.upsert(name, [Record("a", vec(1, 5))])
    with pytest.raises(DimensionMismatch):
        await store.create_collection(name, 8)
    with pytest.raises(InvalidCollection, match="at most 64"):
        await store.create_collection(unique(), INDEX_DIMENSION + 1)


# --- errors ------------------------------------------------------------------------------------


async def test_bad_api_key_is_store_auth_error(make_store) -> None:
    store = make_store(api_key="wrong-key")
    with pytest.raises(StoreAuthError) as info:
        await store.list_collections()
    assert "wrong-key" not in str(info.value)
    assert isinstance(info.value.__cause__, Exception)  # the SDK's UnauthorizedError is kept
    assert not (await store.health()).ok


async def test_data_plane_401_is_store_auth_error(fresh_standin, make_store) -> None:
    server = fresh_standin()
    store = make_store(server)
    name = await fresh(store)
    server.api_key = "rotated"
    with pytest.raises(StoreAuthError):
        await store.count(name)


async def test_connection_refused_is_store_unavailable(make_store) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = make_store(host=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(StoreUnavailable):
        await store.create_collection(unique(), 4)
    health = await store.health()
    assert not health.ok and "StoreUnavailable" in health.detail


async def test_unknown_index_and_collection(make_store, fresh_standin) -> None:
    store = make_store(index="does-not-exist", create_index=False)
    assert await store.list_collections() == []
    with pytest.raises(CollectionNotFound):
        await store.open_collection("nothing")
    with pytest.raises(CollectionNotFound):
        await make_store().count(unique())
    # the index deleted under a running store: its host answers 404 -> CollectionNotFound
    server = fresh_standin()
    store = make_store(server)
    name = await fresh(store)
    from pinecone import Pinecone

    with Pinecone(api_key=API_KEY, host=server.url) as pc:
        pc.indexes.delete("vpa-tests")
    with pytest.raises(CollectionNotFound):
        await store.query(name, vec(1), top_k=1)
    assert await store.list_collections() == []
    with pytest.raises(CollectionNotFound):
        await store.open_collection(name)


async def test_config_and_no_io_constructor() -> None:
    config = VPAConfig(
        provider="pinecone",
        host="127.0.0.1",
        port=1,
        api_key="k",
        providers={
            "pinecone": {
                "index": "abc",
                "dimension": 8,
                "cloud": "gcp",
                "region": "europe-west4",
                "namespace_prefix": "t-",
            }
        },
    )
    store = PineconeStore.from_config(config)  # no I/O: nothing listens on port 1
    assert "k" not in repr(store) and store.settings.host == "https://127.0.0.1:1"
    assert control_plane_url("http://h:5", None) == "http://h:5"
    assert control_plane_url("h", 9) == "https://h:9"
    assert control_plane_url(None, 9) is None
    with pytest.raises(ConfigError, match="unknown"):
        PineconeStore.from_config(VPAConfig(api_key="k", providers={"pinecone": {"indx": "a"}}))
    with pytest.raises(ConfigError):
        PineconeSettings(index="Not_Valid")
    with pytest.raises(ConfigError, match="VPA_VECTOR_DB_API_KEY"):
        await PineconeStore(api_key=None).list_collections()


# --- collections, persistence, wire ------------------------------------------------------------


async def test_collections_persist_across_instances(make_store, standin) -> None:
    mark = standin.request_total
    fingerprint = EmbedderFingerprint("hashing", "v1", 6)
    first = make_store()
    name = await fresh(first, 6, fingerprint=fingerprint)
    await first.upsert(name, [Record("a", vec(1, 6), "t", {"k": 1})])
    await first.settle(name)
    await first.close()

    second = make_store()
    info = await second.open_collection(name)
    assert (info.dimension, info.fingerprint) == (6, fingerprint)
    assert name in await second.list_collections()
    (record,) = await second.get(name, ["a"])
    assert record.metadata == {"k": 1} and record.text == "t"
    with pytest.raises(EmbedderMismatch):
        await second.create_collection(name, 6, fingerprint=EmbedderFingerprint("other", "v1", 6))
    # the index was created serverless, in the configured cloud and region
    index = standin.indexes["vpa-tests"]
    assert (index.cloud, index.region, index.metric) == ("aws", "us-east-1", "cosine")
    # every request carried the key and the API version header
    ours = standin.requests_since(mark)
    assert ours and all(h.get("api-key") == API_KEY and h.get("x-pinecone-api-version") for _, _, h in ours)


async def test_drop_and_recreate(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(name, [Record("a", vec(1))])
    assert await store.drop_collection(name) is True
    assert name not in await store.list_collections()
    assert await store.drop_collection(name) is False
    await store.create_collection(name, 8)
    assert await store.count(name) == 0  # nothing of the old collection shows through
    other = make_store(namespace_prefix="other-")  # another prefix: another set of collections
    assert name not in await other.list_collections()


async def test_index_created_concurrently_by_two_stores(fresh_standin, make_store) -> None:
    server = fresh_standin()
    a, b = (
        make_store(server, index="shared", cloud="gcp", region="us-central1"),
        make_store(server, index="shared"),
    )
    await asyncio.gather(a.create_collection("one", 4), b.create_collection("two", 4))
    assert sorted(await a.list_collections()) == ["one", "two"]
    assert (server.indexes["shared"].cloud, server.indexes["shared"].region) in {
        ("gcp", "us-central1"),
        ("aws", "us-east-1"),
    }


async def test_namespaces_that_hold_nothing_answer_404(fresh_standin, make_store) -> None:
    """Pinecone keeps a namespace only while it holds records, and answers 404 for one that does
    not exist (deletes always; here reads too): an empty or new collection must still work."""
    server = fresh_standin(strict_namespaces=True, lag=0.01)
    store = make_store(server)
    assert await store.list_collections() == []  # no index yet
    name = await fresh(store)
    assert await store.drop_collection(unique()) is False
    assert await store.count(name) == 0 and await store.count(name, {"a": 1}) == 0
    assert await store.get(name, ["x"]) == [] and await store.query(name, vec(1), top_k=3) == []
    assert await store.delete(name, ids=["x"]) == 0 and await store.delete(name, filter={"a": 1}) == 0
    await store.upsert(name, [Record("a", vec(1), "", {"a": 1}), Record("b", vec(2))])
    await store.settle(name)
    assert await store.delete(name, filter={"a": 1}) == 1
    await store.settle(name)
    assert [r.id for r in await store.get(name, ["a", "b"])] == ["b"]
    assert await store.drop_collection(name) is True
    assert await store.list_collections() == []  # the catalog namespace is gone with its last record
    with pytest.raises(CollectionNotFound):
        await store.count(name)


# --- eventual consistency ----------------------------------------------------------------------


@pytest.mark.parametrize("lsn_headers", [True, False], ids=["lsn", "no-lsn-content-check"])
async def test_settle_waits_for_visibility(fresh_standin, make_store, lsn_headers: bool) -> None:
    lag = 0.25
    server = fresh_standin(lag=lag, lsn_headers=lsn_headers)
    store = make_store(server)
    name = await fresh(store)  # create_collection itself waits until the catalog record is visible
    await store.upsert(name, [Record(f"r{i}", vec(i), "", {"i": i}) for i in range(5)])
    assert await store.get(name, ["r0"]) == []  # not visible yet: the stand-in lags like Pinecone
    started = time.monotonic()
    await store.settle(name)
    waited = time.monotonic() - started
    assert 0.1 < waited < lag + 2.0
    assert len(await store.get(name, ["r0", "r4"])) == 2 and await store.count(name) == 5
    await store.upsert(name, [Record("r0", vec(0), "changed")])
    assert await store.delete(name, ids=["r1", "r2"]) == 2  # waits for the upsert to be visible first
    await store.settle(name)
    assert await store.count(name) == 3
    (r0,) = await store.get(name, ["r0"])
    assert r0.text == "changed"
    await store.settle(name)  # nothing pending: returns at once
    assert store._pending == {}


async def test_settle_times_out_with_store_timeout(fresh_standin, make_store) -> None:
    server = fresh_standin(lag=30.0)
    store = make_store(server, settle_timeout=0.3)
    with pytest.raises(StoreTimeout):
        await store.create_collection("slow", 4)


async def test_settle_does_not_block_the_event_loop(fresh_standin, make_store) -> None:
    server = fresh_standin(lag=0.3)
    store = make_store(server)
    name = await fresh(store)
    await store.upsert(name, [Record("a", vec(1))])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await store.settle(name)
    task.cancel()
    assert ticks > 10


def test_stand_in_refuses_what_pinecone_refuses(standin) -> None:
    """The stand-in's own limits and errors, through the official SDK unmodified."""
    from pinecone import Pinecone
    from pinecone.errors.exceptions import ApiError, NotFoundError, PayloadTooLargeError, UnauthorizedError

    pc = Pinecone(api_key=API_KEY, host=standin.url)
    pc.indexes.create(
        name="limits",
        schema={"fields": {"_values": {"type": "dense_vector", "dimension": 4, "metric": "cosine"}}},
        deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-west-2"},
    )
    index = pc.index(name="limits")
    one = {"id": "a", "values": [1.0, 0, 0, 0]}
    with pytest.raises(ApiError, match="1000"):
        index.upsert(vectors=[{"id": f"v{i}", "values": [1.0, 0, 0, 0]} for i in range(1001)])
    with pytest.raises(PayloadTooLargeError):
        index.upsert(
            vectors=[
                {"id": f"v{i}", "values": [1.0, 0, 0, 0], "metadata": {"t": "x" * 30_000}} for i in range(80)
            ]
        )
    with pytest.raises(ApiError, match="40960"):
        index.upsert(vectors=[{**one, "metadata": {"t": "x" * 41_000}}])
    with pytest.raises(ApiError, match="dimension"):
        index.upsert(vectors=[{"id": "a", "values": [1.0, 0, 0]}])
    with pytest.raises(ApiError, match="non-zero"):
        index.upsert(vectors=[{"id": "a", "values": [0.0, 0, 0, 0]}])
    with pytest.raises(ApiError, match="1000"):
        index.query(vector=[1.0, 0, 0, 0], top_k=1001, include_metadata=True)
    assert index.query(vector=[1.0, 0, 0, 0], top_k=10_000).matches == []
    with pytest.raises(NotFoundError):
        pc.indexes.describe("no-such-index")
    with pytest.raises(UnauthorizedError):
        Pinecone(api_key="nope", host=standin.url).indexes.describe("limits")
    # numbers come back as float64 and nulls are stripped, as Pinecone does
    index.upsert(vectors=[{**one, "metadata": {"n": 3, "gone": None}}])
    standin.settle_all()
    assert index.fetch(ids=["a"]).vectors["a"].metadata == {"n": 3.0}
    assert json.dumps(index.fetch(ids=["a"]).vectors["a"].metadata) == '{"n": 3.0}'
    # top_k above the server's maximum, sent raw (the SDK refuses it before sending)
    import httpx

    response = httpx.post(
        f"{index.host}/query",
        json={"vector": [1, 0, 0, 0], "topK": 10_001},
        headers={"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2026-07"},
    )
    assert response.status_code == 400
    headers = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2026-07"}
    response = httpx.post(
        f"{index.host}/vectors/upsert",
        headers=headers,  # the SDK refuses it too
        json={"vectors": [{**one, "metadata": {"nested": {"a": 1}}}]},
    )
    assert response.status_code == 400 and "Metadata value" in response.text
    response = httpx.post(
        f"{index.host}/query", json={"vector": [1, 0, 0, 0], "topK": 1}, headers={"Api-Key": API_KEY}
    )
    assert response.status_code == 400 and "X-Pinecone-Api-Version" in response.text
    pc.indexes.delete("limits")
    index.close()
    pc.close()
