"""Contract 1.1 on Milvus: wide keys, datetimes and ``$exists`` translated natively (checked
against the real engine and `vpa.filters.evaluate`), keyset ``scroll`` on the primary key, and the
read-modify-write ``update``.

Milvus Lite always; a Milvus server too when ``VPA_MILVUS_URI`` names one (see conftest.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vpa.errors import InvalidCursor, LimitExceeded, StoreError
from vpa.filters import evaluate, parse_filter
from vpa.models import Record
from vpa.validation import key_problem
from vpa_milvus import codec
from vpa_milvus.codec import decode_metadata, encode_metadata, escape_key, typed_key, unescape_key
from vpa_milvus.filters import to_native
from vpa_milvus.store import MilvusStore

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
#: Keys a document loader writes, and ones shaped to break a JSON path or an expression.
WIDE = [
    "source-url",
    "og:title",
    "page.number",
    "Größe",
    'a"]b',
    "m['k']",
    "back\\slash",
    'x"] or true or metadata["y',
    "tags[0]",
    "with space",
    "\U0001f600",
    "tab\tkey",
    "_",
    "__x",
    "k" * 128,
]
SAFE_PATH = re.compile(r'metadata\["[A-Za-z0-9_]+"\]')


# --- the codec: keys and dates ---------------------------------------------------------------------


@given(st.text(min_size=1, max_size=40))
def test_escaped_keys_are_only_word_characters_and_invert(key):
    escaped = escape_key(key)
    assert re.fullmatch(r"[A-Za-z0-9_]*", escaped)
    assert unescape_key(escaped) == key


@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_typed_keys_are_one_to_one(a, b):
    if a != b:
        assert typed_key(codec.STR, a) != typed_key(codec.STR, b)
    assert typed_key(codec.STR, a) != typed_key(codec.INT, a)


def test_identifier_keys_are_stored_as_before_and_others_escaped():
    assert typed_key(codec.INT, "year") == "i_year"  # what vpa-milvus 0.1 and 0.2 wrote
    assert typed_key(codec.STR, "og:title") == "sx_og_3a_title"
    assert typed_key(codec.DATE, "Größe") == "dx_Gr_f6__df_e"
    assert all(re.fullmatch(r"[a-z]x?_[A-Za-z0-9_]+", typed_key(codec.LIST, k)) for k in WIDE)
    # text VPA never writes is ignored on the way back, not guessed at
    assert decode_metadata({"sx_bad_zz_": "v", "q_x": 1, "sx_ok": "v"}) == {"ok": "v"}


def test_datetimes_are_exact_integer_microseconds_with_a_tag():
    when = dt.datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    stored = encode_metadata({"when": when, "n": 7})
    micros = (when - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)
    assert stored == {"d_when": micros, "i_n": 7}  # the exact integer of µs since the epoch
    assert isinstance(micros, int) and micros < 0
    back = decode_metadata(stored)
    assert back["when"] == when and back["when"].tzinfo == UTC


@given(
    st.dictionaries(
        st.one_of(st.sampled_from(WIDE), st.text(min_size=1, max_size=10)).filter(
            lambda k: key_problem(k) is None
        ),
        st.one_of(
            st.integers(-(2**53), 2**53),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.text(),
            st.lists(st.text(), max_size=3),
            st.datetimes(
                min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(UTC)
            ),
        ),
        max_size=6,
    )
)
def test_metadata_with_wide_keys_and_dates_round_trips(metadata):
    back = decode_metadata(encode_metadata(metadata))
    assert back == metadata
    assert {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in metadata.items()}


def test_no_key_reaches_an_expression_as_syntax():
    for key in WIDE:
        for spec in (
            {key: "v"},
            {key: {"$exists": True}},
            {key: None},
            {key: {"$gte": T0}},
            {key: {"$in": [1, 2.5]}},
        ):
            expr = to_native(parse_filter(spec))
            paths = re.findall(r"metadata\[[^\]]*\]", expr)
            assert paths and all(SAFE_PATH.fullmatch(p) for p in paths), (key, expr)
            assert key not in expr or re.fullmatch(r"[A-Za-z0-9_]+", key)


def test_exists_and_dates_translate_natively():
    present = to_native(parse_filter({"k": {"$exists": True}}))
    s, i, f, b, lst, d = (f'(exists metadata["{t}_k"])' for t in codec.PREFIXES)
    # a balanced tree of pairs (filters.py: a flat chain's depth fails Milvus 2.3 searches)
    assert present == f"(({s} or ({i} or {f})) or ({b} or ({lst} or {d})))"
    assert to_native(parse_filter({"k": None})) == f"(not {present})"
    assert to_native(parse_filter({"k": {"$ne": None}})) == present
    micros = 1_714_564_800_000_000
    assert to_native(parse_filter({"when": {"$lt": T0}})) == (
        f'((exists metadata["d_when"]) and (metadata["d_when"] < {micros}))'
    )
    assert to_native(parse_filter({"when": T0})) == (
        f'((exists metadata["d_when"]) and (metadata["d_when"] == {micros}))'
    )


# --- filters on the engine against the reference ------------------------------------------------------

KEY = "og:title"
VALUES = [
    T0,
    T0 + dt.timedelta(microseconds=1),
    T0 - dt.timedelta(days=400),
    dt.datetime(1900, 1, 1, tzinfo=UTC),
    1_714_564_800_000_000,  # T0's microseconds, as a number: never equal to T0
    1_714_564_800_000_000.0,
    "2024-05-01T12:00:00Z",
    "v",
    True,
    0,
    [],
    ["v", "w"],
    [""],
]
CORPUS = [Record("absent", [1.0, 0.0, 0.0], "", {"other": 1})] + [
    Record(
        f"r{i:02d}",
        [1.0, float(i + 1), 0.5],
        f"text {i}",
        {KEY: value, **({"Größe": i} if i % 2 else {}), **({'a"]b': "q"} if i % 3 == 0 else {})},
    )
    for i, value in enumerate(VALUES)
]
SPECS = [
    {KEY: {"$exists": True}},
    {KEY: {"$exists": False}},
    {KEY: None},
    {KEY: {"$eq": None}},
    {KEY: {"$ne": None}},
    {"Größe": {"$exists": True}},
    {"Größe": {"$gte": 5}},
    {'a"]b': "q"},
    {'a"]b': {"$exists": False}},
    {"missing": {"$exists": False}},
    {"$not": {KEY: {"$exists": True}}},
    {"$or": [{KEY: None}, {"Größe": {"$lt": 4}}]},
    {"$not": {"$or": [{KEY: {"$exists": False}}, {KEY: "v"}]}},
    {KEY: T0},
    {KEY: {"$ne": T0}},
    {KEY: {"$gt": T0}},
    {KEY: {"$gte": T0}},
    {KEY: {"$lt": T0}},
    {KEY: {"$lte": T0 - dt.timedelta(days=1)}},
    {KEY: {"$in": [T0, dt.datetime(1900, 1, 1, tzinfo=UTC)]}},
    {KEY: {"$nin": [T0]}},
    {KEY: 1_714_564_800_000_000},
    {KEY: {"$gte": 1_714_564_800_000_000}},
    {KEY: "2024-05-01T12:00:00Z"},
    {KEY: "v"},
    {KEY: {"$in": ["v", ""]}},
    {"$and": [{KEY: {"$exists": True}}, {"$not": {KEY: {"$in": ["v"]}}}]},
]


@pytest.fixture(scope="module")
def wide_store(runner, mode_store_factory):
    store = mode_store_factory()
    runner.run(store.drop_collection("vpa_wide"))
    runner.run(store.create_collection("vpa_wide", 3))
    runner.run(store.upsert("vpa_wide", CORPUS))
    yield store
    runner.run(store.drop_collection("vpa_wide"))
    runner.run(store.close())


def test_wide_keys_and_dates_round_trip_on_the_engine(runner, wide_store):
    got = {r.id: r for r in runner.run(wide_store.get("vpa_wide", [r.id for r in CORPUS]))}
    for record in CORPUS:
        assert got[record.id].metadata == record.metadata
        assert {k: type(v) for k, v in got[record.id].metadata.items()} == {
            k: type(v) for k, v in record.metadata.items()
        }


@pytest.mark.parametrize("spec", SPECS, ids=[json.dumps(s, default=str, ensure_ascii=False) for s in SPECS])
def test_exists_dates_and_wide_keys_match_the_reference(runner, wide_store, spec):
    node = parse_filter(spec)
    want = {r.id for r in CORPUS if evaluate(node, r.metadata)}
    assert runner.run(wide_store.count("vpa_wide", spec)) == len(want), to_native(node)
    hits = runner.run(wide_store.query("vpa_wide", [1.0, 1.0, 1.0], top_k=len(CORPUS), filter=spec))
    assert {h.id for h in hits} == want
    page = runner.run(wide_store.scroll_page("vpa_wide", spec, batch_size=len(CORPUS)))
    assert [r.id for r in page.records] == sorted(want)


# --- scroll ------------------------------------------------------------------------------------------

#: Ids in every order a byte-wise and a code-point comparison could disagree on, with quotes.
IDS = [
    "b",
    "a",
    "A",
    "é",
    "e\u0301",
    "\U0001f600",
    "\uffff",
    "z",
    "0",
    "a b",
    'q"uo',
    "back\\",
    "ä",
    "aa",
    "a~",
]


def records(ids):
    return [
        Record(i, [1.0, float(n), 0.25], f"t-{i}", {"n": n, "even": n % 2 == 0}) for n, i in enumerate(ids)
    ]


async def scroll_ids(store, name, spec=None, batch_size=3, **kw):
    return [
        r.id async for page in store.scroll(name, spec, batch_size=batch_size, **kw) for r in page.records
    ]


async def test_scroll_pages_by_primary_key(lite_store):
    await lite_store.create_collection("sc", 3)
    await lite_store.upsert("sc", records(IDS))
    for size in (1, 2, 7, 1000):
        assert await scroll_ids(lite_store, "sc", batch_size=size) == sorted(IDS)
    pages = [p async for p in lite_store.scroll("sc", batch_size=5)]
    assert [len(p.records) for p in pages] == [5, 5, 5] and pages[-1].cursor is None
    # filtered: the filter is in the same native expression as the keyset bound
    assert await scroll_ids(lite_store, "sc", {"even": True}, batch_size=2) == sorted(IDS[::2])
    assert await scroll_ids(lite_store, "sc", {"n": {"$gte": 100}}) == []
    # as written, or without vectors
    by_id = {r.id: r for r in records(IDS)}
    async for page in lite_store.scroll("sc", batch_size=4):
        for r in page.records:
            assert np.array_equal(r.vector, by_id[r.id].vector) and r.text == by_id[r.id].text
            assert r.metadata == by_id[r.id].metadata
    async for page in lite_store.scroll("sc", batch_size=4, with_vectors=False):
        for r in page.records:
            assert (
                r.vector.shape == (0,) and r.text == by_id[r.id].text and r.metadata == by_id[r.id].metadata
            )


async def test_scroll_is_exactly_once_under_concurrent_writes(lite_store):
    stable = [f"s{k:03d}" for k in range(60)]
    volatile = [f"{p}{k:03d}" for p in ("0", "m", "s", "z") for k in range(10)]
    await lite_store.create_collection("busy", 3)
    await lite_store.upsert("busy", records(stable + volatile))
    seen: list[str] = []
    done = asyncio.Event()

    async def reader():
        cursor = None
        while True:
            page = await lite_store.scroll_page("busy", batch_size=4, cursor=cursor, with_vectors=False)
            seen.extend(r.id for r in page.records)
            cursor = page.cursor
            if cursor is None:
                break
            await asyncio.sleep(0)
        done.set()

    async def writer():
        k = 0
        while not done.is_set() and k < 40:
            k += 1
            fresh = [f"{p}new{k:03d}" for p in ("0", "m", "s0", "s05", "z")]
            await lite_store.upsert("busy", records(fresh))
            doomed = volatile[(2 * k) % len(volatile) : (2 * k) % len(volatile) + 2]
            await lite_store.delete("busy", ids=doomed)
            await lite_store.upsert("busy", [Record(stable[k % 60], [0.5, 1.0, float(k)], "rewritten", {})])

    await asyncio.gather(reader(), writer())
    assert all(seen.count(i) == 1 for i in stable)
    assert len(seen) == len(set(seen)) and seen == sorted(seen)


async def test_scroll_resumes_from_a_cursor_in_a_new_process(lite_path):
    store = MilvusStore(lite_path)
    await store.create_collection("resume", 3)
    await store.upsert("resume", records(IDS))
    first = await store.scroll_page("resume", {"n": {"$exists": True}}, batch_size=4)
    await store.close()  # the Lite file is released for the next process
    script = textwrap.dedent(
        f"""
        import asyncio, json
        from vpa_milvus.store import MilvusStore
        async def main():
            s = MilvusStore({lite_path!r})
            ids = [r.id async for p in s.scroll("resume", {{"n": {{"$exists": True}}}}, batch_size=4,
                                                   cursor={first.cursor!r}) for r in p.records]
            await s.close()
            print(json.dumps(ids))
        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    rest = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r.id for r in first.records] + rest == sorted(IDS)


async def test_scroll_cursors_are_checked(lite_store):
    await lite_store.create_collection("cur", 3)
    await lite_store.upsert("cur", records(IDS))
    page = await lite_store.scroll_page("cur", {"even": True}, batch_size=2)
    with pytest.raises(InvalidCursor):
        await lite_store.scroll_page("cur", {"even": False}, cursor=page.cursor)
    for forged in ("x", page.cursor[:-2], "eyJhIjoxfQ"):
        with pytest.raises(InvalidCursor):
            await lite_store.scroll_page("cur", {"even": True}, cursor=forged)
    with pytest.raises(LimitExceeded):
        await lite_store.scroll_page("cur", batch_size=lite_store.capabilities.max_page_size + 1)


async def test_a_page_out_of_key_order_is_an_error_not_a_skip(lite_store):
    await lite_store.create_collection("order", 3)
    await lite_store.upsert("order", records(["a", "b", "c"]))
    client = lite_store._connected()
    real = client.query
    client.query = lambda *a, **k: list(reversed(real(*a, **k)))
    try:
        with pytest.raises(StoreError, match="primary-key order"):
            await lite_store.scroll_page("order", batch_size=3)
    finally:
        client.query = real


# --- update ------------------------------------------------------------------------------------------


async def test_update_by_ids_filter_or_both_keeps_vectors_and_texts(lite_store):
    await lite_store.create_collection("upd", 3)
    originals = {r.id: r for r in records(IDS)}
    await lite_store.upsert("upd", list(originals.values()))
    assert (
        await lite_store.update("upd", ids=["a", "b", "nope"], set={"og:title": "T", "n": "now a str"}) == 2
    )
    assert await lite_store.update("upd", filter={"even": True}, set={"when": T0}, unset=["n"]) == 8
    assert await lite_store.update("upd", ids=["a", "b", "z"], filter={"even": True}, unset=["even"]) == 1
    assert await lite_store.update("upd", filter={"og:title": None}, set={"Größe": 1.5}) == len(IDS) - 2
    # unsetting keys nobody has still counts the matches
    assert await lite_store.update("upd", ids=["a"], unset=["never"]) == 1
    got = {r.id: r for r in await lite_store.get("upd", list(originals))}
    for i, before in originals.items():
        after = got[i]
        assert np.array_equal(after.vector, before.vector) and after.text == before.text
        expected = dict(before.metadata)
        if i in ("a", "b"):
            expected.update({"og:title": "T", "n": "now a str"})
        if before.metadata["even"]:
            expected.pop("n")
            expected["when"] = T0
            if i in ("a", "b", "z"):
                expected.pop("even")
        if i not in ("a", "b"):
            expected["Größe"] = 1.5
        assert after.metadata == expected, i
    # filters see the new values at once
    assert await lite_store.count("upd", {"when": {"$gte": T0}}) == 8
    assert await lite_store.count("upd", {"n": {"$exists": False}}) == 8


async def test_update_by_filter_over_many_pages_changes_each_record_once(lite_store):
    await lite_store.create_collection("many", 3)
    await lite_store.upsert(
        "many", [Record(f"r{k:04d}", [1.0, float(k), 1.0], "", {"v": 0}) for k in range(700)]
    )
    # the filter stops matching what the update writes: each record is read and rewritten once
    assert await lite_store.update("many", filter={"v": 0}, set={"v": 1}) == 700
    assert await lite_store.count("many", {"v": 1}) == 700
    # None in set removes the key, as unset does
    assert await lite_store.update("many", filter={"v": {"$exists": True}}, set={"v": None, "w": "x"}) == 700
    assert await lite_store.count("many", {"v": {"$exists": True}}) == 0
    assert await lite_store.count("many", {"w": "x"}) == 700


async def test_update_checks_the_merged_record_against_the_bounds(lite_store):
    await lite_store.create_collection("bound", 3)
    full = {f"k{i}": i for i in range(lite_store.capabilities.max_metadata_keys)}
    await lite_store.upsert("bound", [Record("full", [1.0, 0.0, 0.0], "", full)])
    with pytest.raises(LimitExceeded):
        await lite_store.update("bound", ids=["full"], set={"one-more": 1})
    [kept] = await lite_store.get("bound", ["full"])
    assert kept.metadata == full


@settings(max_examples=25, deadline=None)
@given(
    keys=st.lists(st.sampled_from(WIDE), min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_update_with_wide_keys_round_trips(runner, wide_update_store, keys, data):
    changes = {
        k: data.draw(
            st.one_of(
                st.integers(-5, 5),
                st.text(max_size=5),
                st.lists(st.text(max_size=3), max_size=2),
                st.just(T0),
            )
        )
        for k in keys
    }
    store = wide_update_store
    runner.run(store.update("vpa_wide_upd", ids=["x"], set=changes))
    [got] = runner.run(store.get("vpa_wide_upd", ["x"]))
    assert {k: got.metadata[k] for k in keys} == changes
    runner.run(store.update("vpa_wide_upd", ids=["x"], unset=keys))
    [got] = runner.run(store.get("vpa_wide_upd", ["x"]))
    assert not set(keys) & set(got.metadata) and got.metadata == {"base": 1}
    assert got.text == "x" and np.array_equal(got.vector, np.array([0.5, 0.25, 2.0], np.float32))


@pytest.fixture(scope="module")
def wide_update_store(runner, tmp_path_factory):
    store = MilvusStore(str(tmp_path_factory.mktemp("wide") / "vpa.db"))
    runner.run(store.create_collection("vpa_wide_upd", 3))
    runner.run(store.upsert("vpa_wide_upd", [Record("x", [0.5, 0.25, 2.0], "x", {"base": 1})]))
    yield store
    runner.run(store.close())
