"""Contract 1.1 on the Weaviate store, against the stand-in: scroll by the cursor API (exactly once,
under concurrent writes, resumed by another instance, filtered by Weaviate), update by merge and
by replace, datetimes as ``date`` properties, ``$exists`` as ``IsNull``, wide keys as encoded
property names, and collections created before 0.3."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
from vpa.errors import InvalidCursor, LimitExceeded, UnsupportedFilter, UnsupportedMetadata
from vpa.filters import evaluate, parse_filter
from vpa.models import CollectionInfo, FilterOp, MetadataType, Record
from vpa.stores.base import _cursor_binding, _seal_cursor
from vpa_weaviate import codec
from vpa_weaviate.naming import KEYS_PROP, encode_collection, prop_name
from vpa_weaviate.store import WeaviateStore, _scroll_position
from weaviate.classes.config import DataType, Property
from weaviate_support import StandIn

UTC = dt.UTC
PARIS = dt.timezone(dt.timedelta(hours=2))
NOON = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
WIDE_KEYS = [
    "source-url",
    "og:title",
    "page.number",
    "Größe",
    'a "quoted" [key]',
    "x" * 128,
    "é" * 128,
    "xSearchable",
]


def _vector(i: int, dim: int = 4) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.standard_normal(dim).astype(np.float32)


def _record(i: int, **metadata: object) -> Record:
    return Record(f"r{i:04d}", _vector(i), f"text {i}", metadata)


@pytest.fixture
async def store(standin: StandIn, unique_name: str) -> AsyncIterator[WeaviateStore]:
    s = standin.store()
    await s.create_collection(unique_name, 4)
    try:
        yield s
    finally:
        await s.drop_collection(unique_name)
        await s.close()


async def _scroll_all(
    store: WeaviateStore, name: str, spec: object = None, **options: object
) -> list[Record]:
    out: list[Record] = []
    async for page in store.scroll(name, spec, **options):  # type: ignore[arg-type]
        out.extend(page.records)
    return out


# --- capabilities --------------------------------------------------------------------------------


def test_the_store_declares_contract_1_1_with_its_own_bounds(standin: StandIn) -> None:
    caps = standin.store().capabilities
    assert caps.contract_1_1 and caps.scroll_filters and not caps.native_update
    assert FilterOp.EXISTS in caps.filter_operators and MetadataType.DATETIME in caps.metadata_types
    assert caps.max_page_size == 1000 and caps.max_top_k == 10_000 and not caps.heterogeneous_fields
    assert standin.store(max_results=500).capabilities.max_page_size == 500  # one cursor request


# --- scroll --------------------------------------------------------------------------------------


async def test_scroll_returns_every_record_once_in_pages(store: WeaviateStore, unique_name: str) -> None:
    records = [_record(i, n=i) for i in range(53)]
    await store.upsert(unique_name, records)
    pages = [page async for page in store.scroll(unique_name, batch_size=10)]
    assert [len(p.records) for p in pages[:-1]] == [10] * 5 and pages[-1].cursor is None
    got = [r for p in pages for r in p.records]
    assert sorted(r.id for r in got) == [r.id for r in records]
    by_id = {r.id: r for r in records}
    for r in got:  # vectors exactly, text and metadata as written
        assert r == by_id[r.id] and r.vector.tobytes() == by_id[r.id].vector.tobytes()
    bare = await _scroll_all(store, unique_name, batch_size=20, with_vectors=False)
    assert {r.id for r in bare} == set(by_id) and all(r.vector.shape == (0,) for r in bare)
    with pytest.raises(LimitExceeded, match="max_page_size"):
        await store.scroll_page(unique_name, batch_size=1001)


async def test_scroll_resumes_from_a_cursor_in_another_store_instance(
    standin: StandIn, store: WeaviateStore, unique_name: str
) -> None:
    await store.upsert(unique_name, [_record(i, even=i % 2 == 0) for i in range(30)])
    first = await store.scroll_page(unique_name, {"even": True}, batch_size=4)
    assert first.cursor is not None and len(first.records) == 4
    other = standin.store()
    try:
        rest: list[Record] = []
        async for page in other.scroll(unique_name, {"even": True}, batch_size=4, cursor=first.cursor):
            rest.extend(page.records)
        with pytest.raises(InvalidCursor, match="another collection or another filter"):
            await other.scroll_page(unique_name, {"even": False}, cursor=first.cursor)
    finally:
        await other.close()
    ids = [r.id for r in first.records + rest]
    assert sorted(ids) == [f"r{i:04d}" for i in range(0, 30, 2)] and len(ids) == len(set(ids))


async def test_a_forged_scroll_position_is_an_invalid_cursor(store: WeaviateStore, unique_name: str) -> None:
    forged = _seal_cursor("not-a-uuid", _cursor_binding(unique_name, None))
    with pytest.raises(InvalidCursor):
        await store.scroll_page(unique_name, cursor=forged)
    with pytest.raises(InvalidCursor):
        _scroll_position("")
    assert _scroll_position("6F1B4C2E-8D0A-5E57-9A3C-5657A1D0E1A7") == "6f1b4c2e-8d0a-5e57-9a3c-5657a1d0e1a7"


@pytest.mark.parametrize("spec", [None, {"keep": True}])
async def test_scroll_is_exactly_once_under_concurrent_upserts_and_deletes(
    store: WeaviateStore, unique_name: str, spec: dict | None
) -> None:
    """Records that exist for the whole scroll come back once each while other records are
    written and deleted between pages (a keyset by UUID, not an offset)."""
    stable = [_record(i, keep=True) for i in range(60)]
    doomed = [_record(i, keep=True) for i in range(60, 100)]
    await store.upsert(unique_name, stable + doomed)
    seen: list[str] = []
    fresh = itertools.count(1000)
    async for page in store.scroll(unique_name, spec, batch_size=7):
        seen.extend(r.id for r in page.records)
        if doomed:
            await store.delete(unique_name, [doomed.pop().id, doomed.pop().id])
        await store.upsert(unique_name, [_record(next(fresh), keep=True) for _ in range(3)])
        await store.upsert(unique_name, [stable[len(seen) % 60]])  # rewrite one that stays
    assert len(seen) == len(set(seen))
    assert {r.id for r in stable} <= set(seen)


async def test_filtered_scroll_is_weaviates_filter_and_pages_may_be_short(
    standin: StandIn, store: WeaviateStore, unique_name: str
) -> None:
    records = [_record(i, n=i, d=NOON + dt.timedelta(days=i)) for i in range(40)]
    await store.upsert(unique_name, records)
    rare = await _scroll_all(store, unique_name, {"n": {"$in": [3, 31]}}, batch_size=5)
    assert sorted(r.id for r in rare) == ["r0003", "r0031"]
    later = await _scroll_all(store, unique_name, {"d": {"$gte": NOON + dt.timedelta(days=30)}}, batch_size=3)
    assert sorted(r.id for r in later) == [f"r{i:04d}" for i in range(30, 40)]
    assert await _scroll_all(store, unique_name, {"absent": 1}) == []  # folded: no request at all
    # a page stops after a few cursor requests: a selective filter returns short pages, not a hang
    pages = [p async for p in store.scroll(unique_name, {"n": 39}, batch_size=1)]
    assert sum(len(p.records) for p in pages) == 1 and any(not p.records for p in pages)


# --- update --------------------------------------------------------------------------------------


async def test_update_by_ids_filter_or_both_keeps_vectors_and_texts_exactly(
    standin: StandIn, store: WeaviateStore, unique_name: str
) -> None:
    records = [_record(i, n=i, tag="old", tags=["a"]) for i in range(12)]
    await store.upsert(unique_name, records)
    before = standin.requests()
    assert await store.update(unique_name, ["r0000", "r0001", "missing"], set={"tag": "new", "d": NOON}) == 2
    assert await store.update(unique_name, filter={"n": {"$gte": 10}}, set={"tag": "ten"}) == 2
    assert await store.update(unique_name, ["r0002", "r0003"], {"n": 3}, set={"tag": "three"}) == 1
    assert await store.update(unique_name, filter={"n": {"$lt": 0}}, set={"tag": "none"}) == 0
    after = standin.requests()
    patches = after.get("rest:PATCH /v1/objects/{class}/{id}", 0) - before.get(
        "rest:PATCH /v1/objects/{class}/{id}", 0
    )
    assert patches == 5  # a set alone is Weaviate's merge, one per object
    assert after.get("grpc:BatchObjects", 0) == before.get("grpc:BatchObjects", 0)  # nothing rewritten whole
    got = {r.id: r for r in await store.get(unique_name, [r.id for r in records])}
    for r in records:
        assert got[r.id].vector.tobytes() == r.vector.tobytes() and got[r.id].text == r.text
    assert got["r0000"].metadata == {"n": 0, "tag": "new", "tags": ["a"], "d": NOON}
    assert got["r0010"].metadata["tag"] == "ten" and got["r0003"].metadata["tag"] == "three"
    assert got["r0002"].metadata["tag"] == "old" and got["r0005"].metadata["tag"] == "old"
    assert await store.count(unique_name, {"tag": "old"}) == 7


async def test_unset_replaces_the_object_with_its_own_vector(
    standin: StandIn, store: WeaviateStore, unique_name: str
) -> None:
    records = [_record(i, n=i, tag="x", tags=[], gone="y") for i in range(6)]
    await store.upsert(unique_name, records)
    before = standin.requests().get("rest:PUT /v1/objects/{class}/{id}", 0)
    assert await store.update(unique_name, filter={"n": {"$lt": 3}}, unset=["gone", "never"]) == 3
    assert await store.update(unique_name, ["r0004"], set={"tag": None, "new": 1.5}) == 1  # None unsets
    assert standin.requests().get("rest:PUT /v1/objects/{class}/{id}", 0) - before == 4
    got = {r.id: r for r in await store.get(unique_name, [r.id for r in records])}
    for r in records:
        assert got[r.id].vector.tobytes() == r.vector.tobytes() and got[r.id].text == r.text
    assert got["r0000"].metadata == {"n": 0, "tag": "x", "tags": []}
    assert got["r0004"].metadata == {"n": 4, "tags": [], "gone": "y", "new": 1.5}
    assert got["r0005"].metadata == {"n": 5, "tag": "x", "tags": [], "gone": "y"}
    assert await store.count(unique_name, {"gone": {"$exists": False}}) == 3


async def test_update_refuses_a_type_conflict_before_any_write(
    standin: StandIn, store: WeaviateStore, unique_name: str
) -> None:
    await store.upsert(unique_name, [_record(0, n=1)])
    before = standin.requests()
    for bad in ({"n": "one"}, {"n": NOON}, {"n": ["1"]}):
        with pytest.raises(UnsupportedMetadata, match="'n'"):
            await store.update(unique_name, ["r0000"], set=bad)
    after = standin.requests()
    assert after.get("rest:PATCH /v1/objects/{class}/{id}", 0) == before.get(
        "rest:PATCH /v1/objects/{class}/{id}", 0
    )
    assert (await store.get(unique_name, ["r0000"]))[0].metadata == {"n": 1}


async def test_an_update_does_not_bring_back_a_record_deleted_meanwhile(
    store: WeaviateStore, unique_name: str
) -> None:
    await store.upsert(unique_name, [_record(0, n=1), _record(1, n=1)])
    handle = store._handle(unique_name)
    objects = handle.query.fetch_objects(include_vector=True).objects
    schema = store._schema(unique_name)
    await store.delete(unique_name, ["r0000"])
    from vpa_weaviate.store import _merge, _replace

    assert [_replace(handle, o.uuid, codec.rewritten(o, schema, {}, ["n"])) for o in objects].count(True) == 1
    assert [_merge(handle, o.uuid, {prop_name("n"): 2}) for o in objects].count(True) == 1
    assert [r.id for r in await store.get(unique_name, ["r0000", "r0001"])] == ["r0001"]


# --- datetimes, $exists, wide keys -----------------------------------------------------------------


async def test_datetimes_are_date_properties_exact_to_the_microsecond(
    standin: StandIn, store: WeaviateStore, unique_name: str
) -> None:
    paris = dt.datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=PARIS)  # == NOON
    values = [paris, NOON + dt.timedelta(microseconds=1), dt.datetime(1700, 1, 1, tzinfo=UTC),
              dt.datetime(2250, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]  # fmt: skip
    await store.upsert(
        unique_name,
        [_record(i, d=v) for i, v in enumerate(values)] + [_record(9, s="2024-05-01T12:00:00.123456Z", n=0)],
    )
    got = {r.id: r.metadata.get("d") for r in await store.get(unique_name, [f"r{i:04d}" for i in range(4)])}
    assert [got[f"r{i:04d}"] for i in range(4)] == values
    assert all(v.tzinfo is UTC for v in got.values())  # in UTC, equal instants
    assert got["r0000"].utcoffset() == dt.timedelta(0)

    async def ids(spec: dict) -> list[str]:
        return sorted(r.id for r in await _scroll_all(store, unique_name, spec, with_vectors=False))

    assert await ids({"d": NOON}) == ["r0000"]
    assert await ids({"d": {"$gt": NOON}}) == ["r0001", "r0003"]
    assert await ids({"d": {"$lte": NOON}}) == ["r0000", "r0002"]
    assert await ids({"d": {"$in": [NOON, values[2]]}}) == ["r0000", "r0002"]
    assert await ids({"d": {"$ne": NOON}}) == ["r0001", "r0002", "r0003", "r0009"]
    assert await ids({"s": NOON}) == [] and await ids({"n": NOON}) == []  # never a string or number
    assert await ids({"d": "2024-05-01T12:00:00.123456Z"}) == [] and await ids({"d": {"$gt": 0}}) == []
    client = standin.client()
    try:
        config = client.collections.use(encode_collection(unique_name)).config.get()
    finally:
        client.close()
    assert {p.name: p.data_type for p in config.properties}["m_d"] == DataType.DATE


async def test_exists_and_null_match_the_reference_evaluator(store: WeaviateStore, unique_name: str) -> None:
    rows = [
        {"a": 1, "l": ["x"]},
        {"a": None, "l": []},  # None is absent
        {"l": [], "s": ""},
        {"s": "v", "d": NOON},
        {},
    ]
    records = [_record(i, **m) for i, m in enumerate(rows)]
    await store.upsert(unique_name, records)
    specs = [
        {"a": {"$exists": True}},
        {"a": {"$exists": False}},
        {"a": None},
        {"a": {"$eq": None}},
        {"a": {"$ne": None}},
        {"l": {"$exists": True}},
        {"l": {"$exists": False}},
        {"s": {"$exists": True}},
        {"$not": {"l": {"$exists": True}}},
        {"$or": [{"a": {"$exists": True}}, {"d": {"$exists": True}}]},
        {"$and": [{"l": {"$exists": True}}, {"l": {"$ne": "x"}}]},
        {"never": {"$exists": True}},
        {"never": {"$exists": False}},
        {"$not": {"never": None}},
    ]
    for spec in specs:
        node = parse_filter(spec)
        expected = sorted(r.id for r in records if evaluate(node, r.metadata))
        assert sorted(r.id for r in await _scroll_all(store, unique_name, spec)) == expected, spec
        assert await store.count(unique_name, spec) == len(expected), spec


async def test_wide_keys_round_trip_and_filter_in_a_new_instance(
    standin: StandIn, store: WeaviateStore, unique_name: str
) -> None:
    records = [_record(i, **{k: f"{k}-{i}" for k in WIDE_KEYS}, n=i) for i in range(3)]
    await store.upsert(unique_name, records)
    other = standin.store()  # reads every key back from the schema (descriptions), not a cache
    try:
        got = {r.id: r.metadata for r in await other.get(unique_name, [r.id for r in records])}
        assert got == {r.id: r.metadata for r in records}
        for key in WIDE_KEYS:
            assert await other.count(unique_name, {key: f"{key}-1"}) == 1, key
            assert await other.count(unique_name, {key: {"$exists": True}}) == 3, key
        assert await other.update(unique_name, filter={"og:title": "og:title-2"}, unset=["page.number"]) == 1
        assert "page.number" not in (await other.get(unique_name, ["r0002"]))[0].metadata
    finally:
        await other.close()
    client = standin.client()
    try:
        config = client.collections.use(encode_collection(unique_name)).config.get()
    finally:
        client.close()
    hashed = [p for p in config.properties if p.name.startswith("h_")]
    assert sorted(json.loads(p.description)["vpa_key"] for p in hashed) == sorted(["é" * 128, "xSearchable"])


# --- collections created before 0.3 ---------------------------------------------------------------


async def test_a_pre_0_3_collection_keeps_its_layout(standin: StandIn, unique_name: str) -> None:
    """A class with ``vpa_keys`` and no null-state index (what 0.2 created): new writes keep listing
    their keys and store ``[]`` as is, scroll works, update is the core's read-modify-write, and
    ``$exists`` says why it cannot run."""
    store = standin.store()
    info = CollectionInfo(unique_name, 4)
    config = codec.class_config(info, store.settings)
    config.pop("inverted_index_config")
    keys = Property(
        name=KEYS_PROP, data_type=DataType.TEXT_ARRAY, index_filterable=False, index_searchable=False
    )
    config["properties"] = [*config["properties"], keys]
    client = standin.client()
    try:
        client.collections.create(name=encode_collection(unique_name), **config)
        assert (
            client.collections.use(encode_collection(unique_name))
            .config.get()
            .inverted_index_config.index_null_state
            is False
        )
        await store.upsert(unique_name, [_record(0, l=[], n=1), _record(1, n=2)])
        raw = client.collections.use(encode_collection(unique_name)).query.fetch_objects().objects
        props = {o.properties["vpa_id"]: o.properties for o in raw}
        assert sorted(props["r0000"][KEYS_PROP]) == ["l", "n"] and props["r0000"][prop_name("l")] == []
        assert {r.id for r in await _scroll_all(store, unique_name, {"n": 2})} == {"r0001"}
        assert await store.update(unique_name, ["r0000"], set={"t": "x"}, unset=["n"]) == 1
        assert (await store.get(unique_name, ["r0000"]))[0].metadata == {"l": [], "t": "x"}
        with pytest.raises(UnsupportedFilter, match="null-state index"):
            await store.count(unique_name, {"n": {"$exists": True}})
        assert (
            await store.count(unique_name, {"never": {"$exists": False}}) == 2
        )  # no property: no index needed
    finally:
        client.close()
        await store.drop_collection(unique_name)
        await store.close()


async def test_scroll_and_update_in_a_tenant(standin: StandIn, unique_name: str) -> None:
    store = standin.store(tenant="tenant-b")
    try:
        await store.create_collection(unique_name, 4)
        await store.upsert(unique_name, [_record(i, n=i) for i in range(5)])
        assert await store.update(unique_name, filter={"n": {"$gte": 3}}, set={"big": True}) == 2
        assert await store.update(unique_name, filter={"big": True}, unset=["n"]) == 2
        assert sorted(r.id for r in await _scroll_all(store, unique_name, {"n": {"$exists": False}})) == [
            "r0003",
            "r0004",
        ]
        assert (
            len(await asyncio.gather(*[_scroll_all(store, unique_name, batch_size=2) for _ in range(3)])) == 3
        )
    finally:
        await store.drop_collection(unique_name)
        await store.close()
