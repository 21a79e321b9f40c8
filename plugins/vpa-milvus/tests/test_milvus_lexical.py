"""Lexical and hybrid search on Milvus Lite (issue 20), and the column-wise row conversion that
scroll, get and update use (issue 16), against a real Milvus Lite file.

The conformance suite holds lexical search to VPA's BM25 with the declared recall; these tests
pin what this plugin does to get there: Milvus's BM25 function reads VPA's own tokens
(`codec.lexical_form`) with VPA's k1 and b (Milvus Lite keeps k1 = 1.5 unless told in its own
wire form), filters are native on both halves of a hybrid query, RRF is ``hybrid_search``'s
``sum 1 / (60 + rank)``, linear fusion is VPA's, the BM25 field follows every write, and a
collection without it refuses by words with the fix in the message.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from vpa.errors import UnsupportedOperation
from vpa.lexical import RRF_K, bm25_scores, candidates_for, fuse, tokenize
from vpa.models import Record
from vpa_milvus import codec
from vpa_milvus.store import MilvusStore

TEXTS = [
    "Straße und Brücke",
    "STRASSE without a bridge",
    "the \ufb01le of caf\u00e9 ideas",  # a ligature (NFKC: "file")
    "file a cafe\u0301 report",  # a combining accent (NFKC: "café")
    "ΣΊΣΥΦΟΣ rolls the stone",
    "σίσυφος again and again the stone",
    "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 letters",  # full-width
    "fullwidth letters twice fullwidth",
    "x" * 70 + " one long token",
    "x" * 64 + "y the same cut token",
    "nothing in common here",
    "",
]


def records(dim: int = 3) -> list[Record]:
    rng = np.random.default_rng(7)
    return [
        Record(
            f"r{i:02d}", rng.standard_normal(dim).astype(np.float32), text, {"k": i % 3, "tag": f"t{i % 2}"}
        )
        for i, text in enumerate(TEXTS)
    ]


def oracle(texts: dict[str, str], query: str) -> dict[str, float]:
    keys = list(texts)
    return {k: s for k, s in zip(keys, bm25_scores([texts[k] for k in keys], query), strict=True) if s > 0}


@pytest.fixture
async def filled(lite_store) -> MilvusStore:
    await lite_store.create_collection("lex", 3)
    await lite_store.upsert("lex", records())
    return lite_store


def test_the_lexical_form_is_vpas_tokens():
    for text in TEXTS:
        assert codec.lexical_form(text).split() == tokenize(text)
    assert codec.lexical_form("x" * 100) == "x" * 64
    # A form longer than the field keeps the tokens that fit, whole.
    long = "\ufdfa " * 4000  # NFKC expands this one character to 18
    form = codec.lexical_form(long)
    full = " ".join(tokenize(long))
    assert len(form.encode()) <= codec.TEXT_MAX_BYTES < len(full.encode())
    assert full.startswith(form + " ") and full.split()[: len(form.split())] == form.split()


@pytest.mark.parametrize(
    "query", ["strasse", "STRASSE brücke", "file café", "σίσυφος stone", "fullwidth", "x" * 64, "the again"]
)
async def test_scores_are_vpas_bm25_in_one_segment(filled, query):
    """One write, one segment: Milvus's BM25 (k1 1.2, b 0.75, VPA's tokens) scores as VPA's
    definition does, to float32 precision — k1 1.5, Milvus Lite's default, would be off by ~1%."""
    want = oracle({r.id: r.text for r in records()}, query)
    hits = await filled.lexical_query("lex", query, top_k=20)
    assert {h.id for h in hits} == set(want)
    for hit in hits:
        assert hit.score == pytest.approx(want[hit.id], rel=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_a_filter_selects_records_not_the_statistics(filled):
    whole = {h.id: h.score for h in await filled.lexical_query("lex", "the stone letters", top_k=20)}
    hits = await filled.lexical_query("lex", "the stone letters", top_k=20, filter={"tag": "t1"})
    assert hits and all(h.metadata["tag"] == "t1" for h in hits)
    assert {h.id for h in hits} == {i for i in whole if int(i[1:]) % 2 == 1}
    for hit in hits:
        assert hit.score == pytest.approx(whole[hit.id], rel=1e-6)


async def test_hybrid_rrf_is_native_with_the_filter_on_both_halves(filled):
    """RRF: the store's own dense and lexical rankings of the filtered records, fused by
    ``sum 1 / (60 + rank)``, give exactly the hybrid hits and scores."""
    assert filled.capabilities.native_fusion
    vector = records()[5].vector
    spec = {"k": {"$in": [0, 2]}}
    hits = await filled.hybrid_query("lex", vector, "the stone file", top_k=5, filter=spec)
    depth = candidates_for(5, filled.capabilities.max_top_k)
    dense = await filled.query("lex", vector, top_k=depth, filter=spec)
    lexical = await filled.lexical_query("lex", "the stone file", top_k=depth, filter=spec)
    assert hits and all(h.metadata["k"] in (0, 2) for h in hits)
    want = fuse(dense, lexical, 5, fusion="rrf")
    # Milvus Lite reports the fused score in float32.
    assert [h.score for h in hits] == pytest.approx([s for _, s in want], rel=1e-6)
    cut = want[-1][1]  # records tied at the last place may be either
    assert {h.id for h, s in want if s > cut + 1e-9} <= {h.id for h in hits}
    first = next(iter({d.id for d in dense[:1]} & {x.id for x in lexical[:1]}), None)
    if first is not None:
        assert hits[0].id == first
    assert hits[0].score <= 2 / (RRF_K + 1) + 1e-9


async def test_hybrid_linear_is_vpas_fusion_of_the_two_halves(filled):
    vector = records()[0].vector
    spec = {"tag": "t0"}
    for alpha in (0.0, 0.3, 1.0):
        hits = await filled.hybrid_query(
            "lex", vector, "strasse stone", 4, spec, fusion="linear", alpha=alpha
        )
        depth = candidates_for(4, filled.capabilities.max_top_k)
        dense = await filled.query("lex", vector, top_k=depth, filter=spec)
        lexical = await filled.lexical_query("lex", "strasse stone", top_k=depth, filter=spec)
        want = fuse(dense, lexical, 4, fusion="linear", alpha=alpha)
        assert [h.metadata["tag"] for h in hits] == ["t0"] * len(hits)
        assert [h.score for h in hits] == pytest.approx([s for _, s in want], rel=1e-6)


async def test_update_keeps_the_text_searchable(filled):
    """An update rewrites the rows (text and BM25 input as they were). The scores may move: Milvus
    Lite keeps BM25 statistics per segment, and the rewritten rows are a segment of their own."""
    before = [h.id for h in await filled.lexical_query("lex", "stone", top_k=10)]
    assert await filled.update("lex", ids=["r04"], set={"k": 9, "new": "yes"}) == 1
    assert await filled.update("lex", filter={"tag": "t1"}, set={"odd": True}) == 6
    after = await filled.lexical_query("lex", "stone", top_k=10)
    assert [h.id for h in after] == before
    hit = next(h for h in after if h.id == "r04")
    assert hit.metadata == {"k": 9, "tag": "t0", "new": "yes"}
    assert [h.id for h in await filled.lexical_query("lex", "stone", filter={"new": "yes"})] == ["r04"]
    both = await filled.hybrid_query("lex", hit_vector(), "stone", 3, {"odd": True})
    assert [h.id for h in both if "stone" in h.text.lower()] == ["r05"]


def hit_vector() -> list[float]:
    return list(map(float, records()[5].vector))


async def test_delete_and_rewrite_leave_the_lexical_index(filled):
    assert await filled.delete("lex", ids=["r00"]) == 1
    assert await filled.delete("lex", filter={"k": 1, "tag": "t1"}) == 2  # r01, r07
    gone = {"r00", "r01", "r07"}
    hits = await filled.lexical_query("lex", "strasse fullwidth", top_k=10)
    assert not gone & {h.id for h in hits}
    assert {h.id for h in hits} == {"r06"}
    assert not gone & {h.id for h in await filled.hybrid_query("lex", hit_vector(), "strasse fullwidth", 10)}
    rewritten = records()[4]
    await filled.upsert(
        "lex", [Record(rewritten.id, rewritten.vector, "a brand new text", rewritten.metadata)]
    )
    assert "r04" not in {h.id for h in await filled.lexical_query("lex", "σίσυφος", top_k=10)}
    assert [h.id for h in await filled.lexical_query("lex", "brand", top_k=10)] == ["r04"]


async def test_a_collection_without_the_bm25_field_refuses_by_words(lite_path):
    """A collection made before 0.3.2 (the old schema, written here with pymilvus) still answers
    everything else, and a lexical or hybrid query is a typed error naming the fix, with nothing
    changed — never a dense-only answer."""
    from vpa.models import CollectionInfo

    store = MilvusStore(lite_path)
    try:
        client = await store.run_vendor("connect", store._connected)
        info = CollectionInfo(name="old", dimension=3)
        client.create_collection(
            "old",
            schema=codec.schema(3, lexical=False),
            properties=codec.properties(info),
            consistency_level="Strong",
        )
        client.create_index("old", codec.vector_index(), sync=False)
        client.load_collection("old")
        await store.upsert("old", records())
        assert await store.count("old") == len(TEXTS)
        assert (await store.query("old", records()[0].vector, top_k=1))[0].id == "r00"
        for call in (
            store.lexical_query("old", "strasse"),
            store.hybrid_query("old", records()[0].vector, "strasse"),
            store.hybrid_query("old", records()[0].vector, "strasse", fusion="linear", alpha=0.5),
        ):
            with pytest.raises(UnsupportedOperation, match=r"no BM25 field.*vpa migrate --from milvus:old"):
                await call
        assert [r.id for r in await store.get("old", ["r03"])] == ["r03"]
        assert await store.count("old") == len(TEXTS)
        # A new collection in the same file gets the field.
        await store.create_collection("fresh", 3)
        await store.upsert("fresh", records())
        assert [h.id for h in await store.lexical_query("fresh", "strasse", top_k=2)] != []
    finally:
        await store.close()


async def test_lexical_false_declares_nothing_and_adds_no_field(lite_path):
    store = MilvusStore(lite_path, lexical=False)
    try:
        assert not store.capabilities.lexical_search and not store.capabilities.native_fusion
        await store.create_collection("plain", 3)
        await store.upsert("plain", records())
        client = await store.run_vendor("connect", store._connected)
        assert not codec.has_lexical(client.describe_collection("plain"))
        with pytest.raises(UnsupportedOperation, match="does not declare lexical search"):
            await store.lexical_query("plain", "strasse")
    finally:
        await store.close()


# --- the row conversion of scroll, get and update --------------------------------------------------


async def test_columnwise_conversion_equals_row_by_row(lite_store):
    """`codec.records_from_rows` reads pymilvus 3's columns; the records are exactly those of
    `record_from_row` on the materialised rows (ids, float32 vectors, typed metadata), with and
    without vectors; a plain list of rows takes the row-by-row path."""
    rng = np.random.default_rng(3)
    written = [
        Record(
            f"id-{i:03d}",
            rng.standard_normal(5).astype(np.float32),
            f"text {i}",
            {
                "i": i,
                "f": float(i) + 0.1 if i % 2 else 2.0,
                "s": "ü" * (i % 3),
                "b": bool(i % 2),
                "l": [f"x{i}"],
                "d": dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=i),
                "og:title": "k",
            },
        )
        for i in range(40)
    ]
    await lite_store.create_collection("conv", 5)
    await lite_store.upsert("conv", written)
    mname = codec.milvus_name("conv")
    for fields in (codec.RECORD_FIELDS, codec.RECORD_FIELDS_NO_VECTOR):
        rows = await lite_store.run_vendor(
            "read", lambda fields=fields: lite_store._rows(mname, "", 100, fields, ordered=True)
        )
        assert codec._lazy_columns(rows) is not None  # the fast path is the one taken here
        fast = codec.records_from_rows(rows)
        slow = [codec.record_from_row(row) for row in list(rows)]  # materialises every row
        assert codec._lazy_columns(rows) is None  # rows already read: row by row
        assert (
            fast == slow == codec.records_from_rows(rows) == codec.records_from_rows([dict(r) for r in rows])
        )
        by_id = {r.id: r for r in written}
        for record in fast:
            want = by_id[record.id]
            assert record.metadata == want.metadata
            assert all(type(record.metadata[k]) is type(v) for k, v in want.metadata.items())
            if fields is codec.RECORD_FIELDS:
                assert record.vector.dtype == np.float32 and np.array_equal(record.vector, want.vector)
            else:
                assert record.vector.shape == (0,)
    pages = [page async for page in lite_store.scroll("conv", batch_size=7)]
    assert [r.id for page in pages for r in page.records] == sorted(r.id for r in written)
    assert [r for page in pages for r in page.records] == sorted(written, key=lambda r: r.id)
