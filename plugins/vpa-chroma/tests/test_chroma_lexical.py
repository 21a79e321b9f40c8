"""Lexical search on embedded Chroma: VPA's BM25 index beside the folder (`vpa_chroma.lexical`).

Every ranking is held to `vpa.lexical.bm25_scores` over the texts Chroma holds, with exact float
equality; filters are Chroma's; the index follows upserts, deletes (by ids and by filter) and drops,
survives a reopen and a kill -9 between the Chroma write and the index write (a real subprocess,
killed by PID at the plugin's test hook), and is built from a scroll for a collection that has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vpa.errors import ConfigError, UnsupportedOperation
from vpa.filters import evaluate, parse_filter
from vpa.lexical import bm25_scores
from vpa.models import Hit, Record
from vpa_chroma.filters import to_native
from vpa_chroma.lexical import LexicalIndex, index_file
from vpa_chroma.store import ChromaStore

DIM = 4
TIMEOUT = 120.0
EXAMPLES = 25 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 30


def vector(i: int) -> np.ndarray:
    return np.array([1.0, (i % 7) / 7, (i % 3) / 3, 0.5], dtype=np.float32)


def records(texts: Mapping[str, str], metadata: Mapping[str, dict[str, Any]] | None = None) -> list[Record]:
    return [
        Record(rid, vector(n), text, (metadata or {}).get(rid, {}))
        for n, (rid, text) in enumerate(texts.items())
    ]


def assert_bm25(
    hits: list[Hit], texts: Mapping[str, str], query: str, top_k: int, allowed: Any = None
) -> None:
    """``hits`` are the top_k of the BM25 definition over ``texts`` (the whole collection), among
    the ids in ``allowed`` (all if None): the same scores, exactly, best first; ties in any order."""
    ids = list(texts)
    oracle = dict(zip(ids, bm25_scores([texts[i] for i in ids], query), strict=True))
    eligible = sorted(
        (s for i, s in oracle.items() if s > 0 and (allowed is None or i in allowed)), reverse=True
    )
    got = [h.score for h in hits]
    assert got == eligible[:top_k], (query, [(h.id, h.score) for h in hits])
    for h in hits:
        assert h.score == oracle[h.id] and h.text == texts[h.id]
        assert allowed is None or h.id in allowed


async def held(store: ChromaStore, name: str) -> dict[str, str]:
    """What Chroma holds: id → text, from a scroll."""
    return {r.id: r.text async for page in store.scroll(name) for r in page.records}


def index_rows(path: Path, name: str) -> dict[str, int]:
    """Rows the side index keeps for collections called ``name``, by table."""
    db = sqlite3.connect(index_file(path))
    try:
        cids = [r[0] for r in db.execute("SELECT cid FROM collections WHERE name = ?", (name,))]
        out = {"collections": len(cids)}
        for table in ("docs", "postings", "pending"):
            out[table] = sum(
                db.execute(f"SELECT COUNT(*) FROM {table} WHERE cid = ?", (c,)).fetchone()[0] for c in cids
            )
        return out
    finally:
        db.close()


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = ChromaStore(path=tmp_path / "chroma")
    yield s
    await s.close()


# --- what is declared ----------------------------------------------------------------------------


def test_declared_in_embedded_mode_only(tmp_path: Path) -> None:
    caps = ChromaStore(path=tmp_path / "chroma").capabilities
    assert caps.lexical_search and caps.lexical_exact and not caps.native_fusion
    server = ChromaStore(host="127.0.0.1", port=1)
    assert not server.capabilities.lexical_search
    with pytest.raises(UnsupportedOperation, match="lexical"):
        asyncio.run(server.lexical_query("docs", "cat"))  # refused before any connection
    off = ChromaStore(path=tmp_path / "off", lexical=False)
    assert not off.capabilities.lexical_search and off._lexical is None
    with pytest.raises(ConfigError, match="lexical"):
        ChromaStore(host="127.0.0.1", lexical=True)
    assert index_file(tmp_path / "chroma") == tmp_path / "chroma.lexical" / "bm25.sqlite3"


# --- exact BM25 on random corpora, through a random history of writes ---------------------------

WORDS = ["cat", "dog", "Cat", "CAT", "fish", "Größe", "GRÖSSE", "été", "x_1", "42", "the", "a", "ﬁsh"]
text_st = st.lists(st.sampled_from(WORDS), max_size=7).flatmap(
    lambda ws: st.sampled_from([" ", ", ", "-", "  \n"]).map(lambda sep: sep.join(ws))
)
ids_st = st.sampled_from([f"r{i}" for i in range(10)])
op_st = st.one_of(
    st.tuples(
        st.just("upsert"), st.dictionaries(ids_st, st.tuples(text_st, st.sampled_from("ab")), min_size=1)
    ),
    st.tuples(st.just("delete"), st.lists(ids_st, min_size=1, max_size=4)),
    st.tuples(st.just("delete_where"), st.sampled_from("ab")),
)


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, ChromaStore]]:
    loop = asyncio.new_event_loop()
    s = ChromaStore(path=tmp_path_factory.mktemp("lexical") / "chroma")
    yield loop, s
    loop.run_until_complete(s.close())
    loop.close()


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    history=st.lists(op_st, min_size=1, max_size=5),
    query=st.lists(st.sampled_from([*WORDS, "absent"]), min_size=1, max_size=3).map(" ".join),
    top_k=st.integers(1, 12),
)
def test_rankings_equal_the_bm25_definition(shared, history, query, top_k) -> None:  # type: ignore[no-untyped-def]
    loop, store = shared

    async def scenario() -> None:
        name = "random"
        await store.create_collection(name, DIM)
        model: dict[str, tuple[str, str]] = {}
        try:
            for op, arg in history:
                if op == "upsert":
                    await store.upsert(
                        name, [Record(i, vector(n), t, {"g": g}) for n, (i, (t, g)) in enumerate(arg.items())]
                    )
                    model.update(arg)
                elif op == "delete":
                    await store.delete(name, ids=arg)
                    for i in arg:
                        model.pop(i, None)
                else:
                    await store.delete(name, filter={"g": arg})
                    model = {i: v for i, v in model.items() if v[1] != arg}
                # after every write (the first query makes the index ready: later ones must follow)
                current = {i: t for i, (t, _) in model.items()}
                assert_bm25(await store.lexical_query(name, query, top_k), current, query, top_k)
            texts = {i: t for i, (t, _) in model.items()}
            assert await held(store, name) == texts
            assert_bm25(await store.lexical_query(name, query, top_k), texts, query, top_k)
            in_a = {i for i, (_, g) in model.items() if g == "a"}
            assert_bm25(await store.lexical_query(name, query, top_k, {"g": "a"}), texts, query, top_k, in_a)
        finally:
            await store.drop_collection(name)

    loop.run_until_complete(scenario())


# --- filters ---------------------------------------------------------------------------------------


async def test_filters_are_chromas_and_candidates_come_in_growing_chunks(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # 80 records holding "cat" (a longer text scores lower); only the 3 weakest match the filter,
    # so a top 2 needs several chunks of candidates
    texts = {f"r{i:02}": "cat " + "filler " * i for i in range(80)}
    meta = {rid: {"n": i, "keep": i >= 77, "tags": ["x"] if i % 2 else ["y"]} for i, rid in enumerate(texts)}
    await store.create_collection("docs", DIM)
    await store.upsert("docs", records(texts, meta))
    seen: list[tuple[int, Any]] = []
    read_ids = store._read_ids

    def spy(collection: Any, ids: Any, **options: Any) -> Any:
        seen.append((len(ids), options.get("where")))
        return read_ids(collection, ids, **options)

    monkeypatch.setattr(store, "_read_ids", spy)
    flt = {"keep": True}
    hits = await store.lexical_query("docs", "cat", 2, flt)
    assert_bm25(hits, texts, "cat", 2, {f"r{i}" for i in (77, 78, 79)})
    assert [h.id for h in hits] == ["r77", "r78"] and hits[0].metadata == meta["r77"]
    lexical_reads = [n for n, where in seen if where is not None]
    assert lexical_reads == [8, 16, 32, 24]  # 4 x top_k, doubling, until the candidates run out
    assert all(where == to_native(parse_filter(flt)) for n, where in seen if where is not None)
    for flt in ({"n": {"$lt": 10}}, {"tags": "x"}, {"$or": [{"n": 3}, {"n": {"$gte": 70}}]}, {"n": 1000}):
        node = parse_filter(flt)
        allowed = {rid for rid, md in meta.items() if evaluate(node, md)}
        assert_bm25(await store.lexical_query("docs", "cat filler", 5, flt), texts, "cat filler", 5, allowed)
    # without a filter a top_k needs only top_k candidates
    seen.clear()
    assert_bm25(await store.lexical_query("docs", "filler", 3), texts, "filler", 3)
    assert seen == [(3, None)]


async def test_hybrid_fuses_in_vpa_with_the_filter_on_both_halves(store) -> None:  # type: ignore[no-untyped-def]
    texts = {"a": "red apple", "b": "green apple", "c": "red car", "d": "blue sky"}
    meta = {"a": {"k": 1}, "b": {"k": 2}, "c": {"k": 1}, "d": {"k": 1}}
    await store.create_collection("docs", DIM)
    await store.upsert("docs", records(texts, meta))
    hits = await store.hybrid_query("docs", vector(0), "red apple", 4, {"k": 1})
    assert {h.id for h in hits} <= {"a", "c", "d"} and hits[0].id == "a"  # first in both rankings
    assert all(h.score > 0 for h in hits)


# --- the index follows every write -----------------------------------------------------------------


async def test_the_index_follows_overwrites_deletes_updates_and_drops(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    texts = {f"r{i}": t for i, t in enumerate(["cat dog", "cat", "dog dog fish", "fish", "bird cat", ""])}
    meta = {rid: {"g": "a" if i % 2 else "b"} for i, rid in enumerate(texts)}
    await store.create_collection("docs", DIM)
    await store.upsert("docs", records(texts, meta))
    for q in ("cat", "dog fish", "bird"):
        assert_bm25(await store.lexical_query("docs", q, 10), texts, q, 10)

    texts["r1"] = "fish fish bird"  # overwrite: its old words go, its new ones count
    await store.upsert("docs", [Record("r1", vector(1), texts["r1"], meta["r1"])])
    for q in ("cat", "fish bird"):
        assert_bm25(await store.lexical_query("docs", q, 10), texts, q, 10)

    assert await store.delete("docs", ids=["r0", "nope"]) == 1
    del texts["r0"]
    assert_bm25(await store.lexical_query("docs", "cat dog", 10), texts, "cat dog", 10)

    assert await store.delete("docs", filter={"g": "b"}) == 2  # r2, r4 (resolved by Chroma)
    del texts["r2"], texts["r4"]
    assert_bm25(await store.lexical_query("docs", "cat dog fish bird", 10), texts, "cat dog fish bird", 10)

    # update changes metadata only: same scores, and the filter sees the new value
    assert await store.update("docs", ids=["r3"], set={"g": "z"}) == 1
    hits = await store.lexical_query("docs", "fish", 10, {"g": "z"})
    assert [h.id for h in hits] == ["r3"]
    assert_bm25(hits, texts, "fish", 10, {"r3"})

    assert index_rows(tmp_path / "chroma", "docs")["docs"] == len(texts) == 3  # r1, r3, r5 ("" counts in N)
    assert await store.drop_collection("docs")
    assert index_rows(tmp_path / "chroma", "docs") == {
        "collections": 0,
        "docs": 0,
        "postings": 0,
        "pending": 0,
    }
    await store.create_collection("docs", DIM)
    assert await store.lexical_query("docs", "fish", 10) == []


# --- persistence, an existing collection, recovery -------------------------------------------------


async def test_the_index_survives_a_reopen_without_a_rebuild(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    texts = {f"r{i}": f"alpha {'beta ' * (i % 4)}gamma{i % 3}" for i in range(30)}
    first = ChromaStore(path=tmp_path / "chroma")
    await first.create_collection("docs", DIM)
    await first.upsert("docs", records(texts))
    await first.close()

    builds: list[str] = []
    build = LexicalIndex.build
    monkeypatch.setattr(
        LexicalIndex,
        "build",
        lambda self, key, name, page: builds.append(name) or build(self, key, name, page),
    )
    again = ChromaStore(path=tmp_path / "chroma")
    try:
        for q in ("alpha", "beta gamma1", "gamma2 gamma0"):
            assert_bm25(await again.lexical_query("docs", q, 7), texts, q, 7)
        assert builds == []
    finally:
        await again.close()


async def test_a_collection_written_without_the_index_is_built_from_a_scroll(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Data from before the index existed (vpa-chroma 0.3.0, or ``lexical = false``): the first
    lexical query builds it from a scroll, once; writes from then on are followed."""
    texts = {f"r{i:04}": f"w{i % 13} w{i % 5} common" + " pad" * (i % 6) for i in range(2_300)}
    old = ChromaStore(path=tmp_path / "chroma", lexical=False)
    await old.create_collection("docs", DIM)
    await old.upsert("docs", records(texts))
    await old.close()
    assert not index_file(tmp_path / "chroma").exists()

    builds: list[str] = []
    build = LexicalIndex.build
    monkeypatch.setattr(
        LexicalIndex,
        "build",
        lambda self, key, name, page: builds.append(name) or build(self, key, name, page),
    )
    store = ChromaStore(path=tmp_path / "chroma")
    try:
        assert_bm25(await store.lexical_query("docs", "w3 w4", 20), texts, "w3 w4", 20)
        assert await store.lexical_query("docs", "common pad", 5, {"nothing": {"$exists": True}}) == []
        assert builds == ["docs"]
        texts["r0001"] = "brand new words"
        await store.upsert("docs", [Record("r0001", vector(1), texts["r0001"])])
        assert_bm25(await store.lexical_query("docs", "brand w1", 10), texts, "brand w1", 10)
        assert builds == ["docs"]
    finally:
        await store.close()

    # writes that bypassed the index (a store with lexical = false) change the count: rebuilt
    bypass = ChromaStore(path=tmp_path / "chroma", lexical=False)
    await bypass.delete("docs", ids=["r0002", "r0003"])
    await bypass.close()
    del texts["r0002"], texts["r0003"]
    store = ChromaStore(path=tmp_path / "chroma")
    try:
        assert_bm25(await store.lexical_query("docs", "w2 w3", 10), texts, "w2 w3", 10)
        assert builds == ["docs", "docs"]
    finally:
        await store.close()


CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    import numpy as np
    from vpa.models import Record
    from vpa_chroma.lexical import FAULT_PAUSE_ENV
    from vpa_chroma.store import ChromaStore

    path, op, marker = sys.argv[1:4]

    def rec(i, text, g):
        return Record(f"r{i:03}", np.array([1.0, i % 7, i % 3, 0.5], dtype=np.float32), text, {"g": g})

    async def main():
        store = ChromaStore(path=path)
        await store.create_collection("docs", 4)
        first = [rec(i, f"cat w{i % 5} " + "dog " * (i % 3), "ab"[i % 2]) for i in range(40)]
        await store.upsert("docs", first)
        os.environ[FAULT_PAUSE_ENV] = marker  # the next write pauses between Chroma and the index
        if op == "upsert":
            await store.upsert("docs", [rec(i, f"zebra cat w{i}", "a") for i in range(30, 50)])
        else:
            await store.delete("docs", filter={"g": "a"})
        print("finished without pausing", flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("op", ["upsert", "delete_by_filter"])
async def test_a_writer_killed_between_chroma_and_the_index_is_recovered(tmp_path, op, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path, marker = tmp_path / "chroma", tmp_path / "paused"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), op, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(f"the writer ended before the kill: {child.communicate()[1][-2000:]!r}")
            assert time.monotonic() < deadline, "the writer never reached the kill point"
            time.sleep(0.05)
        assert int(marker.read_text()) == child.pid
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=TIMEOUT)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    assert index_rows(path, "docs")["pending"] == 20  # the journal of the killed write
    builds: list[str] = []
    build = LexicalIndex.build
    monkeypatch.setattr(
        LexicalIndex,
        "build",
        lambda self, key, name, page: builds.append(name) or build(self, key, name, page),
    )
    store = ChromaStore(path=path)
    try:
        texts = await held(store, "docs")
        if op == "upsert":  # Chroma has the write, the index did not follow it before the kill
            assert len(texts) == 50 and texts["r045"] == "zebra cat w45"
        else:
            assert len(texts) == 20
        for q in ("zebra", "cat dog", "w1 w45 dog"):
            assert_bm25(await store.lexical_query("docs", q, 60), texts, q, 60)
        assert index_rows(path, "docs")["pending"] == 0
        assert index_rows(path, "docs")["docs"] == len(texts)
        assert builds == []  # the journal's replay did it, not a rebuild
    finally:
        await store.close()
