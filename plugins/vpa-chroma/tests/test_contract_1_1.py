"""Contract 1.1 on the real engine, embedded and ``chroma run``: scroll (exactly once under
concurrent writes, resumed by a new instance, filtered, records sharing a scroll key, scroll keys
out of the engine's order), update (by ids, filter or both; vector and text unchanged; unset),
datetimes, ``$exists`` and loader-style keys, and collections written by vpa-chroma 0.2."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from vpa.errors import InvalidCursor, LimitExceeded
from vpa.filters import evaluate, parse_filter
from vpa.models import Record
from vpa_chroma import codec
from vpa_chroma.store import ChromaStore

UTC = dt.UTC
WIDE = {
    "source-url": "https://example.org/a?b=c",
    "og:title": "Title",
    "page.number": 3,
    "Größe": 1.5,
    "q\"[x]'": True,
    "#id": "hash",
    "chroma:x": "hidden by Chroma",
    "~t:x": "looks like a tag",
    "vpa:numeric": ["looks", "like", "0.2"],
    "when": dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
    "empty": [],
}


def _name() -> str:
    return f"s{uuid.uuid4().hex[:12]}"


def _records(n: int, start: int = 0, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [
        Record(
            f"r{i:05d}",
            rng.standard_normal(4).astype(np.float32) + 0.01,
            f"text {i}",
            {"i": i, "odd": i % 2 == 1},
        )
        for i in range(start, start + n)
    ]


async def _scroll_ids(store: ChromaStore, name: str, spec=None, batch_size: int = 7) -> list[str]:  # type: ignore[no-untyped-def]
    out: list[str] = []
    async for page in store.scroll(name, spec, batch_size=batch_size, with_vectors=False):
        assert len(page.records) <= batch_size
        out += [r.id for r in page.records]
    return out


async def test_scroll_every_record_once_with_vectors_and_filters(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    name = _name()
    await store.create_collection(name, 4)
    try:
        records = _records(120)
        await store.upsert(name, records)
        for size in (1, 7, 119, 120, 1000):
            ids = await _scroll_ids(store, name, batch_size=size)
            assert sorted(ids) == [r.id for r in records] and len(ids) == len(set(ids))
        pages = [p async for p in store.scroll(name, batch_size=50)]
        got = {r.id: r for p in pages for r in p.records}
        assert all(got[r.id] == r for r in await store.get(name, [r.id for r in records]))  # as get has them
        assert pages[-1].cursor is None
        spec = {"$and": [{"odd": True}, {"i": {"$gte": 30}}]}
        node = parse_filter(spec)
        assert sorted(await _scroll_ids(store, name, spec)) == [
            r.id for r in records if evaluate(node, r.metadata)
        ]
        (page,) = [p async for p in store.scroll(name, {"i": {"$lt": 3}}, with_vectors=False)]
        assert [r.vector.shape for r in page.records] == [(0,)] * 3
        assert [p async for p in store.scroll(name, {"i": -1})] == [type(page)([], None)]
    finally:
        await store.drop_collection(name)
        await store.close()


async def test_scroll_resumes_in_a_new_instance_and_refuses_foreign_cursors(make_store) -> None:  # type: ignore[no-untyped-def]
    first, second = make_store(), make_store()
    name = _name()
    await first.create_collection(name, 4)
    try:
        await first.upsert(name, _records(40))
        page = await first.scroll_page(name, {"odd": False}, batch_size=6)
        assert page.cursor is not None
        seen = [r.id for r in page.records]
        cursor: str | None = page.cursor
        while cursor is not None:
            page = await second.scroll_page(name, {"odd": False}, batch_size=6, cursor=cursor)
            seen += [r.id for r in page.records]
            cursor = page.cursor
        assert sorted(seen) == [f"r{i:05d}" for i in range(0, 40, 2)]
        first_cursor = (await first.scroll_page(name, batch_size=3)).cursor
        with pytest.raises(InvalidCursor):  # bound to its filter
            await second.scroll_page(name, {"odd": True}, batch_size=3, cursor=first_cursor)
        with pytest.raises(InvalidCursor):
            await second.scroll_page(name, batch_size=3, cursor="not a cursor")
    finally:
        await first.drop_collection(name)
        await first.close()
        await second.close()


def test_positions_are_checked() -> None:
    assert codec.load_position(None) == (-1, None)
    assert codec.load_position(codec.dump_position(5)) == (5, None)
    assert codec.load_position(codec.dump_position(5, 'é"x')) == (5, 'é"x')
    for bad in ("", "[]", "[1, 2]", '["1"]', "[1.5]", "[true]", "{}", "[-2]", f"[{2**63}]", '[1, "a", 3]'):
        with pytest.raises(InvalidCursor):
            codec.load_position(bad)


async def test_scroll_exactly_once_under_concurrent_writes(make_store) -> None:  # type: ignore[no-untyped-def]
    """Between pages another instance deletes and adds other records and rewrites (upsert and
    update) the stable ones: each stable record comes back exactly once."""
    store, writer = make_store(), make_store()
    name = _name()
    await store.create_collection(name, 4)
    try:
        stable = _records(80)
        churn = _records(80, start=1000)
        await store.upsert(name, [r for pair in zip(stable, churn, strict=True) for r in pair])
        seen: list[str] = []
        cursor: str | None = None
        step = 0
        while True:
            page = await store.scroll_page(name, batch_size=8, cursor=cursor, with_vectors=False)
            seen += [r.id for r in page.records]
            step += 1
            gone = [r.id for r in churn[step * 4 : step * 4 + 4]]
            if gone:
                await writer.delete(name, ids=gone)
            await writer.upsert(name, _records(4, start=5000 + step * 4, seed=step))
            rewritten = stable[(step * 7) % 80]
            await writer.upsert(name, [Record(rewritten.id, rewritten.vector, "new", {"i": -step})])
            await writer.update(name, ids=[stable[(step * 11) % 80].id], set={"touched": step})
            cursor = page.cursor
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        assert {r.id for r in stable} <= set(seen)
    finally:
        await store.drop_collection(name)
        await store.close()
        await writer.close()


async def test_scroll_keys_shared_or_out_of_engine_order(tmp_path: Path) -> None:
    """Keys two processes gave at the same moment (several records on one key), and keys in the
    reverse of Chroma's own order: still every record exactly once, for every page size."""
    store = ChromaStore(path=tmp_path / "chroma")
    shared, reverse = "shared", "reverse"
    await store.create_collection(shared, 4)
    await store.create_collection(reverse, 4)
    records = _records(40)
    original = store._new_seqs
    try:
        store._new_seqs = lambda count: [10 + i // 4 for i in range(count)]  # type: ignore[method-assign, assignment, misc]
        await store.upsert(shared, records)
        store._new_seqs = lambda count: [10_000 - i for i in range(count)]  # type: ignore[method-assign, assignment, misc]
        await store.upsert(reverse, records)
        store._new_seqs = original  # type: ignore[method-assign]
        for name in (shared, reverse):
            for size in (1, 2, 3, 4, 5, 7, 39, 40, 41):
                ids = await _scroll_ids(store, name, batch_size=size)
                assert sorted(ids) == [r.id for r in records], (name, size)
            ids = await _scroll_ids(store, name, {"odd": True}, batch_size=3)
            assert sorted(ids) == [r.id for r in records if r.metadata["odd"]]
    finally:
        await store.close()


async def test_update_by_ids_filter_or_both(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    name = _name()
    await store.create_collection(name, 4)
    try:
        records = _records(30)
        await store.upsert(name, records)
        before = {r.id: r for r in await store.get(name, [r.id for r in records])}
        assert await store.update(name, ids=["r00001", "r00002", "nope"], set={"tag": "a"}) == 2
        assert await store.update(name, filter={"i": {"$gte": 25}}, set={"tag": "b", "i": 2.5}) == 5
        assert (
            await store.update(name, ids=["r00003", "r00004", "r00005"], filter={"odd": True}, unset=["odd"])
            == 2
        )
        assert await store.update(name, filter={"i": -1}, set={"x": 1}) == 0
        got = {r.id: r for r in await store.get(name, [r.id for r in records])}
        for r in records:
            assert np.array_equal(got[r.id].vector, before[r.id].vector) and got[r.id].text == r.text
        assert got["r00001"].metadata == {"i": 1, "odd": True, "tag": "a"}
        assert got["r00026"].metadata == {"i": 2.5, "odd": False, "tag": "b"}
        assert got["r00003"].metadata == {"i": 3} and got["r00004"].metadata == {"i": 4, "odd": False}
        assert await store.count(name, {"tag": "b"}) == 5 and await store.count(name, {"i": 2.5}) == 5
        assert await store.count(name, {"odd": {"$exists": False}}) == 2
        # set with None removes; a key may change type freely
        assert (
            await store.update(name, ids=["r00001"], set={"tag": None, "odd": [], "when": WIDE["when"]}) == 1
        )
        (one,) = await store.get(name, ["r00001"])
        assert one.metadata == {"i": 1, "odd": [], "when": WIDE["when"]}
        assert await store.count(name, {"odd": {"$exists": True}}) == 28
        assert await store.count(name, {"when": {"$lte": WIDE["when"]}}) == 1
        # a scroll still sees every record once after updates
        assert sorted(await _scroll_ids(store, name)) == [r.id for r in records]
    finally:
        await store.drop_collection(name)
        await store.close()


async def test_update_past_the_bounds_writes_nothing(chroma_store) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    most = ChromaStore.capabilities.max_metadata_keys
    await chroma_store.create_collection(name, 2)
    try:
        full = {f"k{i}": i for i in range(most - 1)}
        await chroma_store.upsert(name, [Record("a", [1, 0], "", full), Record("b", [0, 1], "", {})])
        with pytest.raises(LimitExceeded):
            await chroma_store.update(name, filter={}, set={"x": 1, "y": 2})
        assert [r.metadata for r in await chroma_store.get(name, ["a", "b"])] == [full, {}]
    finally:
        await chroma_store.drop_collection(name)


async def test_wide_keys_datetimes_and_exists(chroma_store) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    await chroma_store.create_collection(name, 2)
    try:
        other = {"when": dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "n": 1}
        await chroma_store.upsert(name, [Record("w", [1, 0], "t", WIDE), Record("o", [0, 1], "", other)])
        got = {r.id: r.metadata for r in await chroma_store.get(name, ["w", "o"])}
        assert got == {"w": WIDE, "o": other}
        assert got["w"]["when"].tzinfo is not None and got["w"]["when"] == WIDE["when"]
        checks = {
            "w": [{k: v[0] if isinstance(v, list) else v} for k, v in WIDE.items() if k != "empty"]
            + [{k: {"$exists": True}} for k in WIDE if k != "when"]
            + [
                {"n": None},
                {"n": {"$exists": False}},
                {"when": {"$gt": other["when"]}},
                {"when": {"$in": [WIDE["when"]]}},
                {"$not": {"when": {"$lte": other["when"]}}},
                {
                    "when": dt.datetime(
                        2024, 5, 1, 14, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))
                    )
                },
            ],
            "o": [
                {"when": {"$lt": dt.datetime(1970, 1, 1, tzinfo=UTC)}},
                {"source-url": None},
                {"#id": {"$ne": "hash"}},
                {"chroma:x": {"$exists": False}},
                {"$not": {"og:title": {"$exists": True}}},
            ],
            "": [
                {"when": 1},
                {"when": "2024-05-01T12:00:00.123456Z"},
                {"page.number": {"$gt": WIDE["when"]}},
            ],
        }
        for want, specs in checks.items():
            for spec in specs:
                expected = {want} - {""}
                hits = await chroma_store.query(name, [1, 1], top_k=2, filter=spec)
                assert {h.id for h in hits} == expected, spec
                assert await chroma_store.count(name, spec) == len(expected), spec
        # Chroma holds the escaped names, the tags and the dates as ints
        handle = await asyncio.to_thread(chroma_store._handle, name)
        (raw,) = (await asyncio.to_thread(handle.get, ids=["w"], include=["metadatas"]))["metadatas"]
        assert (
            raw["~#id"] == "hash" and raw["~chroma:x"] == "hidden by Chroma" and raw["~~t:x"] == WIDE["~t:x"]
        )
        assert raw["source-url"] == WIDE["source-url"] and raw["~d:when"] == 1714564800123456
        assert raw["~t:when"] == codec.DATETIME and raw["~t:empty"] == codec.EMPTY_LIST
    finally:
        await chroma_store.drop_collection(name)


async def test_collections_of_02_are_upgraded_on_open(tmp_path: Path) -> None:
    """Records written by vpa-chroma 0.2 (no scroll key, floats under vpa:float:, the
    vpa:numeric and vpa:empty_lists lists) are rewritten in place when the collection is opened:
    read, scrolled, filtered with $exists and updated like new ones."""
    seed = ChromaStore(path=tmp_path)
    await seed.create_collection("old", 2)
    handle = await asyncio.to_thread(seed._handle, "old")
    await seed.close()
    raw = chromadb.PersistentClient(str(tmp_path), settings=Settings(anonymized_telemetry=False))
    old = raw.get_collection("old", embedding_function=None)
    old.modify(metadata={k: v for k, v in handle.metadata.items() if k != codec.FORMAT_KEY})
    old.add(
        ids=[f"a{i}" for i in range(12)],
        embeddings=[[1, i] for i in range(12)],
        documents=[f"d{i}" for i in range(12)],
        metadatas=[
            {
                "k": "v",
                "vpa:float:f": codec.float_key(i + 0.5),
                "vpa:numeric": ["f"],
                "vpa:empty_lists": ["e"],
            }
            for i in range(12)
        ],
    )
    store = ChromaStore(path=tmp_path)
    try:
        (record,) = await store.get("old", ["a3"])
        assert (record.text, record.metadata) == ("d3", {"k": "v", "f": 3.5, "e": []})
        assert sorted(await _scroll_ids(store, "old", batch_size=5)) == sorted(f"a{i}" for i in range(12))
        assert await store.count("old", {"e": {"$exists": True}}) == 12
        assert await store.count("old", {"$not": {"f": {"$gt": 5}}}) == 5
        assert await store.update("old", filter={"f": {"$lt": 2}}, set={"n": 1}) == 2
        (record,) = await store.get("old", ["a0"])
        assert record.metadata == {"k": "v", "f": 0.5, "e": [], "n": 1}
        assert old.get(ids=["a0"], include=["metadatas"])["metadatas"][0].get("vpa:numeric") is None
        assert raw.get_collection("old").metadata[codec.FORMAT_KEY] == codec.FORMAT
    finally:
        await store.close()
        raw.close()


async def test_a_top_k_hnsw_cannot_reach_is_ranked_exactly(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """5,000 records on 10 distinct vectors: Chroma's HNSW graph falls apart into islands and a
    top 1000 came back with 83-760 hits whatever ef_search. Fewer hits than matching records
    are ranked exactly instead: top_k distinct hits, best first."""
    store = ChromaStore(path=tmp_path / "chroma")
    name = "dupes"
    rng = np.random.default_rng(1)
    base = rng.standard_normal((10, 16)).astype(np.float32)
    which = rng.integers(0, 10, 5000)
    exact_rankings: list[int] = []
    ranked = codec.exact_hits
    monkeypatch.setattr(codec, "exact_hits", lambda *a: exact_rankings.append(1) or ranked(*a))
    try:
        await store.create_collection(name, 16)
        await store.upsert(
            name, [Record(f"r{i:05d}", base[w], "", {"w": int(w)}) for i, w in enumerate(which)]
        )
        unit = base / np.linalg.norm(base, axis=1, keepdims=True)
        for q in rng.standard_normal((6, 16)).astype(np.float32):
            hits = await store.query(name, q, top_k=1000)
            assert len(hits) == 1000 and len({h.id for h in hits}) == 1000
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            exact = unit[which] @ (q / np.linalg.norm(q))
            assert abs(hits[0].score - exact.max()) < 1e-5  # the best is found, whatever HNSW reached
            few = await store.query(name, q, top_k=1000, filter={"w": {"$in": [1, 2]}})
            assert len(few) == min(1000, int(np.isin(which, [1, 2]).sum()))
        assert exact_rankings  # HNSW alone fell short at least once
    finally:
        await store.close()
