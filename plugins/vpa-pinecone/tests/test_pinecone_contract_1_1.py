"""Contract 1.1 on Pinecone, through the official SDK against the stand-in: scroll (list and fetch
by metadata, resumable from another store instance, exactly once under concurrent writes),
update (Pinecone's merging update for sets, read-modify-write for removals), datetimes,
``$exists``/``None`` and wide keys; and the stand-in's own model of those Pinecone operations."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random

import httpx
import numpy as np
import pytest
from conftest import API_KEY, unique
from vpa.errors import InvalidCursor, StoreError, UnsupportedOperation
from vpa.filters import evaluate, parse_filter
from vpa.models import Record
from vpa.stores.base import _cursor_binding, _seal_cursor

UTC = dt.UTC
WIDE_KEYS = ["source-url", "og:title", "page.number", "Größe", 'quote"[0]', "vpa-text", "vpa-n-x", "a b"]


def vec(seed: int, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


async def fresh(store, dim: int = 4) -> str:
    name = unique("s")
    await store.create_collection(name, dim)
    return name


def records(count: int, start: int = 0) -> list[Record]:
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Record(
            f"r{i:04d}" if i % 7 else f"ünï-{i}",  # some ids are hashed (not ASCII)
            vec(i),
            f"text {i}",
            {
                "n": i,
                "even": i % 2 == 0,
                "when": base + dt.timedelta(hours=i),
                "tags": ["t"] if i % 3 else [],
            },
        )
        for i in range(start, start + count)
    ]


async def scroll_all(store, name, filter=None, **kwargs) -> list[Record]:
    out: list[Record] = []
    async for page in store.scroll(name, filter, **kwargs):
        out.extend(page.records)
    return out


# --- scroll --------------------------------------------------------------------------------------


async def test_capabilities_declare_contract_1_1(make_store) -> None:
    caps = make_store().capabilities
    assert caps.contract_1_1 and caps.scroll_filters
    assert caps.native_update is False  # removing keys is a read-modify-write (see the README)
    assert caps.max_page_size == 1000 and caps.max_batch_size == 1000


async def test_scroll_returns_every_record_once_with_vectors_or_without(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    written = records(230)
    await store.upsert(name, written)
    await store.settle(name)
    for batch_size in (1, 57, 100, 1000):
        got = await scroll_all(store, name, batch_size=batch_size)
        assert sorted(r.id for r in got) == sorted(r.id for r in written)
    by_id = {r.id: r for r in written}
    for record in await scroll_all(store, name, batch_size=64):
        assert record == by_id[record.id]  # vector (padding cut off), text and typed metadata
    for record in await scroll_all(store, name, batch_size=64, with_vectors=False):
        assert record.vector.shape == (0,)
        assert (record.text, record.metadata) == (by_id[record.id].text, by_id[record.id].metadata)


async def test_scroll_pages_hold_at_most_batch_size(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(name, records(25))
    await store.settle(name)
    pages = [page async for page in store.scroll(name, batch_size=10)]
    assert [len(p.records) for p in pages] == [10, 10, 5]
    assert pages[-1].cursor is None and all(p.cursor for p in pages[:-1])
    empty = await fresh(store)
    assert [len(p.records) async for p in store.scroll(empty)] == [0]


@pytest.mark.parametrize("filtered", [False, True])
async def test_scroll_resumes_from_a_cursor_in_a_new_store(make_store, filtered: bool) -> None:
    first = make_store()
    name = await fresh(first)
    await first.upsert(name, records(120))
    await first.settle(name)
    spec = {"n": {"$gte": 10}} if filtered else None
    page = await first.scroll_page(name, spec, batch_size=30)
    await first.close()
    second = make_store()  # another instance: only the cursor string carries over
    rest = await scroll_all(second, name, spec, batch_size=30, cursor=page.cursor)
    ids = [r.id for r in page.records] + [r.id for r in rest]
    expected = [r.id for r in records(120) if not filtered or r.metadata["n"] >= 10]
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))


@pytest.mark.parametrize("filtered", [False, True])
async def test_scroll_exactly_once_under_concurrent_upserts_and_deletes(make_store, filtered: bool) -> None:
    store = make_store()
    name = await fresh(store)
    stable = records(150)
    churn = records(150, start=1000)
    await store.upsert(name, stable + churn[:75])
    await store.settle(name)
    spec = {"even": {"$in": [True, False]}} if filtered else None
    rng = random.Random(7)
    seen: list[str] = []
    cursor = None
    step = 0
    while True:
        page = await store.scroll_page(name, spec, batch_size=20, cursor=cursor)
        seen.extend(r.id for r in page.records)
        # between pages: other records come and go, on both sides of the scroll's position
        step += 1
        await store.upsert(name, rng.sample(churn, 10))
        await store.delete(name, ids=[r.id for r in rng.sample(churn, 10)])
        await store.settle(name)
        cursor = page.cursor
        if cursor is None:
            break
    assert step > 5
    counted = {i: seen.count(i) for i in seen}
    for record in stable:
        assert counted.get(record.id) == 1, record.id
    assert all(n == 1 for n in counted.values())


async def test_filtered_scroll_matches_the_reference(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    written = records(90)
    await store.upsert(name, written)
    await store.settle(name)
    for spec in (
        {"even": True},
        {"n": {"$lt": 40}, "tags": "t"},
        {"when": {"$gte": dt.datetime(2024, 1, 2, 12, tzinfo=UTC)}},
        {"$not": {"when": {"$lt": dt.datetime(2024, 1, 3, tzinfo=UTC)}}},
        {"tags": {"$exists": True}},
        {"$or": [{"n": 5}, {"when": dt.datetime(2024, 1, 1, 7, tzinfo=UTC)}]},
        {"missing": None},
        {"n": {"$ne": None}, "even": False},
    ):
        node = parse_filter(spec)
        got = await scroll_all(store, name, spec, batch_size=25, with_vectors=False)
        assert sorted(r.id for r in got) == sorted(r.id for r in written if evaluate(node, r.metadata)), spec


async def test_bad_cursors_are_invalid_cursor(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(name, records(30))
    await store.settle(name)
    page = await store.scroll_page(name, batch_size=10)
    with pytest.raises(InvalidCursor):  # bound to another filter
        await store.scroll_page(name, {"even": True}, cursor=page.cursor)
    with pytest.raises(InvalidCursor):
        await store.scroll_page(name, cursor="garbage")
    binding = _cursor_binding(name, None)
    for position in ("x:abc", "l:", "m:abc", "l:not-a-pinecone-token"):
        with pytest.raises(InvalidCursor):
            await store.scroll_page(name, cursor=_seal_cursor(position, binding))


async def test_a_1_0_declaration_refuses_scroll_and_update(make_store) -> None:
    import attrs
    from vpa_pinecone.store import PineconeStore

    class Legacy(PineconeStore):
        capabilities = attrs.evolve(PineconeStore.capabilities, contract_version="1.0")

    store = make_store()
    legacy = Legacy(store.settings, api_key=API_KEY)
    name = await fresh(legacy)
    with pytest.raises(UnsupportedOperation):
        await legacy.scroll_page(name)
    with pytest.raises(UnsupportedOperation):
        await legacy.update(name, ids=["a"], set={"k": 1})
    await legacy.close()


# --- update --------------------------------------------------------------------------------------


async def test_update_by_ids_filter_and_both_leaves_vector_and_text(make_store, standin) -> None:
    store = make_store()
    name = await fresh(store)
    written = records(40)
    await store.upsert(name, written)
    before = {r.id: r for r in written}
    mark = standin.request_total
    assert await store.update(name, ids=[written[1].id, written[7].id, "missing"], set={"k": "ids"}) == 2
    assert await store.update(name, filter={"n": {"$gte": 30}}, set={"k": "filter", "n2": 2.5}) == 10
    assert (
        await store.update(name, ids=[r.id for r in written[:10]], filter={"even": True}, set={"k": "both"})
        == 5
    )
    sent = [(method, path.split("?")[0]) for method, path, _ in standin.requests_since(mark)]
    assert ("POST", "/vectors/update") in sent and ("POST", "/vectors/upsert") not in sent  # native
    await store.settle(name)
    got = {r.id: r for r in await store.get(name, list(before))}
    for record_id, record in got.items():
        old = before[record_id]
        assert np.array_equal(record.vector, old.vector) and record.text == old.text
        n = old.metadata["n"]
        expected = dict(old.metadata)
        if record_id in (written[1].id, written[7].id):
            expected["k"] = "ids"
        if n >= 30:
            expected.update(k="filter", n2=2.5)
        if n < 10 and n % 2 == 0:
            expected["k"] = "both"
        assert record.metadata == expected, record_id
    assert await store.update(name, filter={}, set={"all": True}) == 40  # the empty filter: every record
    await store.settle(name)
    assert await store.count(name, {"all": True}) == 40


async def test_update_changes_types_in_place_and_filters_stay_exact(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    when = dt.datetime(2024, 6, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    await store.upsert(
        name, [Record("a", vec(1), "", {"v": 5, "w": "text", "e": []}), Record("b", vec(2), "", {"v": 5})]
    )
    assert await store.update(name, ids=["a"], set={"v": "five", "w": when, "e": ["now"]}) == 1
    await store.settle(name)
    (a,) = await store.get(name, ["a"])
    assert a.metadata == {"v": "five", "w": when, "e": ["now"]} and a.metadata[
        "w"
    ].utcoffset() == dt.timedelta(0)
    assert [r.id for r in await scroll_all(store, name, {"$not": {"v": {"$gt": 1}}})] == ["a"]
    assert [r.id for r in await scroll_all(store, name, {"v": {"$gt": 1}})] == ["b"]
    assert [r.id for r in await scroll_all(store, name, {"w": {"$lte": when}})] == ["a"]
    assert [r.id for r in await scroll_all(store, name, {"e": "now"})] == ["a"]
    assert await store.update(name, ids=["a"], set={"v": 6.0}) == 1
    await store.settle(name)
    assert (await store.get(name, ["a"]))[0].metadata["v"] == 6.0
    assert type((await store.get(name, ["a"]))[0].metadata["v"]) is float
    assert await store.count(name, {"v": {"$gte": 5}}) == 2


async def test_unset_and_empty_lists_are_read_modify_write(make_store, standin) -> None:
    store = make_store()
    name = await fresh(store)
    written = records(12)
    await store.upsert(name, written)
    mark = standin.request_total
    assert await store.update(name, filter={"n": {"$lt": 4}}, unset=["when", "absent"]) == 4
    assert await store.update(name, ids=[written[5].id, "missing"], set={"tags": [], "k": None}) == 1
    sent = [(method, path.split("?")[0]) for method, path, _ in standin.requests_since(mark)]
    assert ("POST", "/vectors/upsert") in sent and ("POST", "/vectors/update") not in sent
    await store.settle(name)
    got = {r.id: r for r in await store.get(name, [r.id for r in written])}
    for old in written:
        record = got[old.id]
        assert np.array_equal(record.vector, old.vector) and record.text == old.text
        expected = dict(old.metadata)
        if old.metadata["n"] < 4:
            del expected["when"]
        if old.id == written[5].id:
            expected["tags"] = []
        assert record.metadata == expected
    assert await store.count(name, {"when": None}) == 4
    assert await store.count(name, {"tags": {"$exists": True}}) == 12


async def test_update_without_lsn_headers_is_confirmed_by_its_effect(fresh_standin, make_store) -> None:
    server = fresh_standin(lag=0.05, lsn_headers=False)
    store = make_store(server)
    name = await fresh(store)
    await store.upsert(name, records(20))
    assert await store.update(name, filter={"even": True}, set={"k": 1, "tags": ["a", "b"]}) == 10
    await store.settle(name)  # nothing to compare LSNs with: settle queries for the new values
    assert await store.count(name, {"k": 1}) == 10
    assert await store.count(name, {"tags": "b"}) == 10


async def test_update_that_would_exceed_40_kb_changes_nothing(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(name, [Record("a", vec(1), "x" * 20_000, {}), Record("b", vec(2), "", {})])
    with pytest.raises(StoreError, match="exceeds"):
        await store.update(name, filter={}, set={"big": "y" * 25_000})
    await store.settle(name)
    assert await store.count(name, {"big": {"$exists": True}}) == 0


# --- datetimes, $exists, wide keys ---------------------------------------------------------------


async def test_datetimes_round_trip_and_order(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    instants = [
        dt.datetime(1684, 1, 1, tzinfo=UTC) + dt.timedelta(days=400),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2250, 1, 1, tzinfo=UTC),
    ]
    await store.upsert(name, [Record(f"d{i}", vec(i), "", {"at": t}) for i, t in enumerate(instants)])
    await store.upsert(
        name, [Record("num", vec(9), "", {"at": 0}), Record("str", vec(8), "", {"at": "1970"})]
    )
    await store.settle(name)
    for record in await store.get(name, [f"d{i}" for i in range(len(instants))]):
        stored = record.metadata["at"]
        assert (
            stored == instants[int(record.id[1:])]
            and stored.tzinfo is not None
            and stored.utcoffset() == dt.timedelta(0)
        )
    epoch = instants[2]
    assert sorted(r.id for r in await scroll_all(store, name, {"at": epoch})) == ["d2"]  # not the number 0
    assert sorted(r.id for r in await scroll_all(store, name, {"at": 0})) == ["num"]
    assert sorted(r.id for r in await scroll_all(store, name, {"at": {"$lt": epoch}})) == ["d0", "d1"]
    assert sorted(r.id for r in await scroll_all(store, name, {"at": {"$in": [epoch, instants[4]]}})) == [
        "d2",
        "d4",
    ]
    assert await store.count(name, {"at": {"$ne": epoch}}) == 6
    hits = await store.query(name, vec(3), top_k=10, filter={"at": {"$gte": instants[3]}})
    assert sorted(h.id for h in hits) == ["d3", "d4"]


async def test_exists_and_none(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(
        name,
        [
            Record("full", vec(1), "", {"k": "v"}),
            Record("empty", vec(2), "", {"k": []}),
            Record("none", vec(3), "", {"k": None, "other": 1}),  # None: the key is absent
        ],
    )
    await store.settle(name)
    assert (await store.get(name, ["none"]))[0].metadata == {"other": 1}
    assert sorted(r.id for r in await scroll_all(store, name, {"k": {"$exists": True}})) == ["empty", "full"]
    assert sorted(r.id for r in await scroll_all(store, name, {"k": None})) == ["none"]
    assert sorted(r.id for r in await scroll_all(store, name, {"k": {"$ne": None}})) == ["empty", "full"]
    assert sorted(r.id for r in await scroll_all(store, name, {"$not": {"k": {"$exists": False}}})) == [
        "empty",
        "full",
    ]
    assert await store.count(name, {"$or": [{"k": None}, {"k": "v"}]}) == 2


async def test_wide_keys_round_trip_and_filter(make_store) -> None:
    store = make_store()
    name = await fresh(store)
    metadata = {key: f"value of {key}" for key in WIDE_KEYS}
    metadata["page.number"] = 3
    metadata["x" * 128] = True
    await store.upsert(
        name, [Record("w", vec(1), "the text", metadata), Record("other", vec(2), "", {"vpa-text": "o"})]
    )
    await store.settle(name)
    (got,) = await store.get(name, ["w"])
    assert got.metadata == metadata and got.text == "the text"  # "vpa-text" is the user's, not the text
    for key in WIDE_KEYS:
        assert [r.id for r in await scroll_all(store, name, {key: metadata[key]})] == ["w"], key
    assert await store.count(name, {"page.number": {"$gt": 2}}) == 1
    assert await store.count(name, {"vpa-text": {"$exists": True}}) == 2
    assert await store.count(name, {'quote"[0]': None}) == 1
    assert await store.update(name, filter={"Größe": metadata["Größe"]}, set={"og:title": "new"}) == 1
    await store.settle(name)
    assert (await store.get(name, ["w"]))[0].metadata["og:title"] == "new"
    assert await store.update(name, ids=["w"], unset=["source-url"]) == 1
    await store.settle(name)
    assert "source-url" not in (await store.get(name, ["w"]))[0].metadata


# --- the stand-in's model of Pinecone's list and update ------------------------------------------


def _data_host(standin, index: str) -> str:
    return standin.indexes[index].host


def _post(host: str, path: str, body: dict) -> httpx.Response:
    headers = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2026-07"}
    return httpx.post(f"{host}{path}", json=body, headers=headers)


async def test_standin_update_merges_and_never_removes(make_store, standin) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(name, [Record("a", vec(1), "", {"x": "1", "y": "2"})])
    await store.settle(name)
    host = _data_host(standin, "vpa-tests")
    ns = store._namespace(name)
    answer = _post(host, "/vectors/update", {"namespace": ns, "id": "a", "setMetadata": {"y": "3", "z": 1}})
    assert answer.status_code == 200 and answer.json() == {} and "x-pinecone-request-lsn" in answer.headers
    answer = _post(host, "/vectors/update", {"namespace": ns, "id": "nope", "setMetadata": {"y": "3"}})
    assert answer.status_code == 200  # an unknown id changes nothing and is no error
    dry = _post(
        host,
        "/vectors/update",
        {"namespace": ns, "filter": {"x": "1"}, "setMetadata": {"q": 1}, "dryRun": True},
    )
    assert dry.json() == {"matchedRecords": 1} and "x-pinecone-request-lsn" not in dry.headers
    standin.settle_all()
    stored = standin.indexes["vpa-tests"].namespaces[ns].records["a"].metadata
    assert {k: stored[k] for k in ("x", "y", "z")} == {"x": "1", "y": "3", "z": 1.0} and "q" not in stored
    for body in (
        {"namespace": ns, "setMetadata": {"y": "3"}},  # neither id nor filter
        {"namespace": ns, "id": "a", "filter": {"x": "1"}, "setMetadata": {}},
        {"namespace": ns, "filter": {}, "setMetadata": {"y": "3"}},
        {"namespace": ns, "filter": {"x": "1"}, "values": [1.0] * 64},
        {"namespace": ns, "filter": {"x": "1"}, "setMetadata": {"bad": {"nested": 1}}},
    ):
        assert _post(host, "/vectors/update", body).status_code == 400, body


async def test_standin_list_tokens_skip_past_the_last_id(make_store, standin) -> None:
    store = make_store()
    name = await fresh(store)
    await store.upsert(name, [Record(f"id{i}", vec(i), "", {}) for i in range(5)])
    await store.settle(name)
    handle = await store._open_index(create=False)
    first = handle.index.list_paginated(namespace=store._namespace(name), limit=2)
    assert [v.id for v in first.vectors] == ["id0", "id1"]
    token = json.loads(base64.b64decode(first.pagination.next))
    assert token == {"skip_past": "id1", "prefix": ""}
    rest = handle.index.list_paginated(
        namespace=store._namespace(name), limit=10, pagination_token=first.pagination.next
    )
    assert [v.id for v in rest.vectors] == ["id2", "id3", "id4"] and rest.pagination is None
