"""Contract 1.1 on Qdrant: native scroll (keyset by point id) and update (``set_payload``),
datetimes, ``$exists`` and loader-style keys, against the real embedded engines (qdrant-client's
local mode, the default, and Qdrant Edge; a server when one is given), and what the payload looks like in
Qdrant afterwards."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from conftest import assert_vectors, edge_points
from qdrant_client import QdrantClient
from vpa.errors import InvalidCursor, LimitExceeded
from vpa.models import Record
from vpa.stores.base import _cursor_binding, _seal_cursor
from vpa_qdrant.codec import point_id
from vpa_qdrant.settings import QdrantSettings
from vpa_qdrant.store import PAGE_SIZE, QdrantStore

UTC = dt.UTC
PARIS = dt.timezone(dt.timedelta(hours=2))
D0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WIDE = {
    "source-url": "https://example.org/a?b=c",
    "og:title": "Título",
    "page.number": 3,
    "Größe": 1.5,
    'quote"d': True,
    "br[ack]ets": ["x", "y"],
    "a[]": [],
    "back\\slash": "v",
    "b64-x": "not an encoded key",
    "when": dt.datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=PARIS),
}
RNG = np.random.default_rng(11)


def local(path, **options) -> QdrantStore:
    """The embedded engine on ``path``: qdrant-client's local mode unless ``engine="edge"``."""
    return QdrantStore(QdrantSettings(path=str(path), **options))


def stored_points(engine: str, path, collection: str, ids: list[str]) -> list:
    """The points as the embedded engine stores them, read without VPA (the store closed)."""
    if engine == "edge":
        return edge_points(path, collection, [point_id(i) for i in ids])
    client = QdrantClient(path=str(path))
    try:
        return client.retrieve(collection, [point_id(i) for i in ids], with_payload=True, with_vectors=True)
    finally:
        client.close()


def records(n: int, start: int = 0, dim: int = 4) -> list[Record]:
    return [
        Record(f"r{i:04d}", RNG.normal(size=dim), f"text {i}", {"i": i, "even": i % 2 == 0})
        for i in range(start, start + n)
    ]


async def scroll_ids(store: QdrantStore, name: str, spec=None, **kwargs) -> list[str]:
    return [r.id async for page in store.scroll(name, spec, **kwargs) for r in page.records]


def test_both_modes_declare_contract_1_1():
    for settings in (
        QdrantSettings(path="/p"),
        QdrantSettings(path="/p", engine="edge"),
        QdrantSettings(in_memory=True),
        QdrantSettings(in_memory=True, engine="edge"),
        QdrantSettings(url="http://h:1"),
    ):
        caps = QdrantStore.declare(settings)
        assert caps.contract_1_1 and caps.contract_version == "1.1"
        assert caps.native_update and caps.scroll_filters and caps.max_page_size == PAGE_SIZE
    assert QdrantStore.capabilities.contract_1_1


async def test_scroll_pages_every_record_once_filtered_and_without_vectors(store):
    await store.create_collection("t_scroll", 4)
    written = records(53)
    await store.upsert("t_scroll", written)
    ids = await scroll_ids(store, "t_scroll", batch_size=10)
    assert sorted(ids) == [r.id for r in written] and len(ids) == 53
    assert sorted(await scroll_ids(store, "t_scroll", {"even": True}, batch_size=7)) == [
        r.id for r in written if r.metadata["even"]
    ]
    assert await scroll_ids(store, "t_scroll", {"i": {"$gt": 1000}}) == []
    pages = [p async for p in store.scroll("t_scroll", batch_size=53)]
    assert len(pages) == 1 and pages[0].cursor is None
    full = {r.id: r for r in pages[0].records}
    for want in written:
        have = full[want.id]
        assert (have.text, have.metadata) == (want.text, want.metadata)
        np.testing.assert_allclose(have.vector, want.vector, rtol=1e-6)
    bare = await store.scroll_page("t_scroll", batch_size=5, with_vectors=False)
    assert len(bare.records) == 5 and all(r.vector.shape == (0,) for r in bare.records)
    assert all(r.text and r.metadata for r in bare.records)
    with pytest.raises(LimitExceeded):
        await store.scroll_page("t_scroll", batch_size=PAGE_SIZE + 1)
    (page,) = [p async for p in store.scroll("t_scroll", batch_size=PAGE_SIZE)]
    assert len(page.records) == 53


async def test_scroll_is_exactly_once_under_concurrent_upserts_and_deletes(store):
    """Records that exist for the whole scroll come back once, whatever else is written or
    deleted between pages (a keyset by point id: no offset shifts)."""
    await store.create_collection("t_scroll_conc", 4)
    stable = records(120)
    churn = records(120, start=1000)
    await store.upsert("t_scroll_conc", stable + churn)
    seen: list[str] = []
    cursor = None
    step = 0
    while True:
        page = await store.scroll_page("t_scroll_conc", batch_size=9, cursor=cursor, with_vectors=False)
        seen.extend(r.id for r in page.records)
        # between pages: delete some churn (including records already seen and not yet seen),
        # add new ones, and rewrite stable records in place
        await store.delete("t_scroll_conc", ids=[r.id for r in churn[step * 6 : step * 6 + 6]])
        await store.upsert("t_scroll_conc", records(5, start=5000 + 5 * step))
        await store.upsert("t_scroll_conc", [stable[(step * 7) % 120]])
        step += 1
        if page.cursor is None:
            break
        cursor = page.cursor
    assert len(seen) == len(set(seen))
    assert {r.id for r in stable} <= set(seen)


@pytest.mark.parametrize("engine", ["client", "edge"])
async def test_a_cursor_resumes_in_a_new_store_on_a_reopened_engine(tmp_path, engine):
    store = local(tmp_path / "q", engine=engine)
    await store.create_collection("t_resume", 4)
    written = records(30)
    await store.upsert("t_resume", written)
    first = await store.scroll_page("t_resume", {"even": True}, batch_size=4)
    await store.close()  # the engine is released: the next store opens the folder afresh
    again = local(tmp_path / "q", engine=engine)
    rest = await scroll_ids(again, "t_resume", {"even": True}, batch_size=4, cursor=first.cursor)
    assert sorted([r.id for r in first.records] + rest) == [r.id for r in written if r.metadata["even"]]
    with pytest.raises(InvalidCursor):  # bound to its filter
        await again.scroll_page("t_resume", {"even": False}, cursor=first.cursor)
    # a well-sealed position that is no point id is still refused
    forged = _seal_cursor("not-a-uuid", _cursor_binding("t_resume", None))
    with pytest.raises(InvalidCursor):
        await again.scroll_page("t_resume", cursor=forged)
    await again.close()


async def test_a_deleted_position_resumes_at_the_next_point(store):
    await store.create_collection("t_scroll_gone", 4)
    written = records(20)
    await store.upsert("t_scroll_gone", written)
    first = await store.scroll_page("t_scroll_gone", batch_size=5)
    nxt = (await store.scroll_page("t_scroll_gone", batch_size=1, cursor=first.cursor)).records[0]
    await store.delete("t_scroll_gone", ids=[nxt.id])  # the point the cursor names
    rest = await scroll_ids(store, "t_scroll_gone", batch_size=5, cursor=first.cursor)
    assert sorted([r.id for r in first.records] + rest + [nxt.id]) == [r.id for r in written]


async def test_update_by_ids_filter_and_both_keeps_vectors_and_texts(store):
    await store.create_collection("t_update", 4)
    written = records(10)
    await store.upsert("t_update", written)
    before = {r.id: r for r in await store.get("t_update", [r.id for r in written])}
    assert await store.update("t_update", ids=["r0001", "r0002", "missing"], set={"tag": "a"}) == 2
    assert await store.update("t_update", filter={"even": True}, set={"i": -1, "tag": ["x"]}) == 5
    assert (
        await store.update(
            "t_update", ids=["r0001", "r0003", "r0004"], filter={"even": False}, set={"tag": "b"}, unset=["i"]
        )
        == 2
    )
    assert await store.update("t_update", ids=["missing"], set={"tag": "c"}) == 0
    assert await store.update("t_update", filter={"i": 12345}, set={"tag": "c"}) == 0
    after = {r.id: r for r in await store.get("t_update", [r.id for r in written])}
    for id_, record in after.items():
        assert record.vector.tobytes() == before[id_].vector.tobytes(), id_
        assert record.text == before[id_].text
    assert after["r0001"].metadata == {"even": False, "tag": "b"}
    assert after["r0002"].metadata == {"i": -1, "even": True, "tag": ["x"]}
    assert after["r0003"].metadata == {"even": False, "tag": "b"}
    assert after["r0005"].metadata == {"i": 5, "even": False}
    # every record, then removing keys; a key set to None is removed too
    assert await store.update("t_update", filter={}, set={"all": True, "tag": None}) == 10
    assert await store.count("t_update", {"tag": {"$exists": True}}) == 0
    assert await store.update("t_update", filter={"all": True}, unset=["all", "never-there"]) == 10
    assert all("all" not in r.metadata for r in await store.get("t_update", [r.id for r in written]))


async def test_update_replaces_values_whole_across_types(store):
    """``set_payload`` merges only the top level of ``m``: a datetime over an empty list, a list
    over a datetime, a number over a list each replace the old value whole."""
    await store.create_collection("t_update_types", 2)
    await store.upsert("t_update_types", [Record("a", [1, 0], "", {"x": [], "y": D0, "z": ["p"]})])
    await store.update("t_update_types", ids=["a"], set={"x": D0, "y": ["q"], "z": 2.5})
    (a,) = await store.get("t_update_types", ["a"])
    assert a.metadata == {"x": D0, "y": ["q"], "z": 2.5}
    await store.update("t_update_types", ids=["a"], set={"x": [], "y": "s", "z": D0})
    (a,) = await store.get("t_update_types", ["a"])
    assert a.metadata == {"x": [], "y": "s", "z": D0}
    assert await store.count("t_update_types", {"x": {"$exists": True}}) == 1
    assert await store.count("t_update_types", {"z": D0}) == 1


@pytest.mark.parametrize("engine", ["client", "edge"])
async def test_unset_removes_the_key_from_the_payload(tmp_path, engine):
    store = local(tmp_path / "q", engine=engine)
    await store.create_collection("t_unset", 2)
    await store.upsert("t_unset", [Record("a", [3, 4], "hi", {"k": 1, "og:title": "t", "keep": "x"})])
    assert await store.update("t_unset", ids=["a"], unset=["k", "og:title"], set={"n": D0}) == 1
    await store.close()
    (point,) = stored_points(engine, tmp_path / "q", "t_unset", ["a"])
    assert point.payload == {
        "_vpa_id": "a",
        "_vpa_text": "hi",
        "_vpa_norm": 5.0,
        "m": {"keep": "x", "n": {"_vpa_datetime_us": 1714564800000000}},
    }
    assert_vectors(point, [0.6, 0.8], "hi", avg_len=1.0)


async def test_wide_keys_and_datetimes_round_trip_and_filter(store):
    await store.create_collection("t_wide", 2)
    other = {"source": "x", "page": 3, "og": True, "when": D0}
    await store.upsert("t_wide", [Record("w", [1, 0], "", WIDE), Record("o", [0, 1], "", other)])
    (w,) = await store.get("t_wide", ["w"])
    assert w.metadata == WIDE
    assert w.metadata["when"].utcoffset() == dt.timedelta(0)  # the same instant, in UTC
    (hit,) = await store.query("t_wide", [1, 0], top_k=1)
    assert hit.metadata == WIDE
    for key, value in WIDE.items():
        if isinstance(value, list):
            value = value[0] if value else None
        spec = {key: {"$exists": True}} if value is None else {key: value}
        assert await store.count("t_wide", spec) == 1, key
        assert await store.count("t_wide", {"$not": spec}) == 1, key
    assert await store.count("t_wide", {"page.number": {"$gte": 3}}) == 1
    assert await store.count("t_wide", {"page": {"$gte": 3}}) == 1
    assert await store.count("t_wide", {"when": {"$gt": D0}}) == 1
    assert await store.count("t_wide", {"when": {"$lte": D0}}) == 1
    assert await store.count("t_wide", {"when": {"$in": [D0, WIDE["when"]]}}) == 2
    assert await store.count("t_wide", {"when": D0.timestamp() * 1e6}) == 0  # never a number
    assert await store.count("t_wide", {"when": "2024-05-01T12:00:00Z"}) == 0  # never a string
    assert await store.count("t_wide", {"a[]": None}) == 1  # "o" lacks it; "w" has []
    assert await store.count("t_wide", {"a[]": {"$ne": None}}) == 1
    assert sorted(await scroll_ids(store, "t_wide", {"og:title": {"$exists": False}})) == ["o"]
    assert await store.update("t_wide", filter={'quote"d': True}, set={"Größe": 2}, unset=["source-url"]) == 1
    (w,) = await store.get("t_wide", ["w"])
    assert w.metadata == {**{k: v for k, v in WIDE.items() if k != "source-url"}, "Größe": 2}


@pytest.mark.parametrize("engine", ["client", "edge"])
async def test_wide_keys_are_stored_readable_in_the_payload(tmp_path, engine):
    store = local(tmp_path / "q", engine=engine)
    await store.create_collection("t_keys", 2)
    await store.upsert("t_keys", [Record("a", [1, 0], "", {"og:title": "t", "page.number": 1, 'q"': 2})])
    await store.close()
    (point,) = stored_points(engine, tmp_path / "q", "t_keys", ["a"])
    assert point.payload["m"] == {"og:title": "t", "page.number": 1, "b64-cSI": 2}
