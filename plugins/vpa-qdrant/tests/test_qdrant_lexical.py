"""Lexical and hybrid search on Qdrant's own means (`vpa_qdrant.lexical`), on both embedded
engines (qdrant-client's local mode and Qdrant Edge) and through the async client's API (server
mode's calls): the sparse BM25 vector each point holds, the IDF Qdrant applies, native filters on
both halves, native RRF equal to VPA's, writes keeping the sparse vectors current, and a
collection made before 0.3.2 refused with the fix named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import edge_points
from qdrant_client import QdrantClient, models
from vpa.errors import UnsupportedOperation
from vpa.lexical import RRF_K, bm25_scores, fuse
from vpa.models import Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition
from vpa_qdrant import lexical
from vpa_qdrant.codec import point_id
from vpa_qdrant.edge import EdgeEngine
from vpa_qdrant.settings import QdrantSettings
from vpa_qdrant.store import QdrantStore

ENGINES = ["client", "edge"]

TEXTS = {
    "a": "qdrant sparse vectors score words",
    "b": "dense vectors only, no words in common",
    "c": "words words words and more words about qdrant",
    "d": "",
    "e": "a hybrid query fuses dense and sparse rankings",
    "f": "Qdrant QDRANT qdrant: case folded",
}


def make(tmp_path: Path, engine: str) -> QdrantStore:
    return QdrantStore(QdrantSettings(path=str(tmp_path / engine), engine=engine))


def records(dim: int = 3) -> list[Record]:
    out = []
    for n, (rid, text) in enumerate(TEXTS.items()):
        vector = [math.cos(n), math.sin(n), 0.1 * n][:dim]
        out.append(Record(rid, vector, text, {"group": n % 2, "name": rid}))
    return out


def oracle(texts: dict[str, str], query: str) -> dict[str, float]:
    scores = bm25_scores(list(texts.values()), query)
    return {rid: s for rid, s in zip(texts, scores, strict=True) if s > 0}


def close(a: float, b: float, rel: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-9


def test_term_ids_are_stable_and_never_the_marker():
    # Pinned: another process, or another version of the plugin, must give the same ids.
    assert lexical.term_id("qdrant") == lexical.term_id("qdrant") == 3738887971
    ids = {lexical.term_id(f"w{i}") for i in range(10_000)}
    assert lexical.MARKER not in ids and all(0 < i < 2**32 for i in ids)
    vector = lexical.query_vector(["qdrant", "sparse", "qdrant"])
    assert sorted(vector.indices) == vector.indices and len(vector.indices) == 2


@pytest.mark.parametrize("engine", ENGINES)
async def test_one_batch_scores_as_vpa_bm25(tmp_path, engine):
    """Written in one upsert, the collection's average length is the one the points are
    normalised with, and Qdrant's IDF over every point (the wordless one too, by the marker) is
    VPA's: the scores are VPA's BM25 (float32 precision)."""
    store = make(tmp_path, engine)
    await store.create_collection("t_lex", 3)
    await store.upsert("t_lex", records())
    for query in ("qdrant words", "dense sparse", "hybrid", "QDRANT"):
        want = oracle(TEXTS, query)
        hits = await store.lexical_query("t_lex", query, top_k=10)
        assert {h.id for h in hits} == set(want), query
        assert all(close(h.score, want[h.id]) for h in hits), (query, hits, want)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert await store.lexical_query("t_lex", "absent", top_k=5) == []
    await store.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_hybrid_with_a_filter_filters_both_halves_and_fuses_as_vpa(tmp_path, engine):
    """The filter is Qdrant's, on the dense and the sparse prefetch: the records that would top
    either half unfiltered are absent; the fused scores are VPA's RRF (sum 1 / (60 + rank)) over
    the store's own filtered halves — Qdrant's RRF at k = 61."""
    store = make(tmp_path, engine)
    await store.create_collection("t_hyb", 3)
    await store.upsert("t_hyb", records())
    vector, text, spec = [1.0, 0.0, 0.0], "qdrant words sparse", {"group": 1}
    unfiltered = await store.hybrid_query("t_hyb", vector, text, top_k=3)
    assert unfiltered[0].id == "a"  # first in the dense and in the lexical ranking; group 0
    hits = await store.hybrid_query("t_hyb", vector, text, top_k=10, filter=spec)
    matching = {r.id for r in records() if r.metadata["group"] == 1}
    assert hits and {h.id for h in hits} <= matching
    dense = await store.query("t_hyb", vector, top_k=10, filter=spec)
    words = await store.lexical_query("t_hyb", text, top_k=10, filter=spec)
    want = {hit.id: score for hit, score in fuse(dense, words, 10)}
    assert {h.id for h in hits} == set(want)
    for hit in hits:
        assert close(hit.score, want[hit.id]), (hit, want)
        assert hit.metadata["group"] == 1 and hit.text == TEXTS[hit.id]
    # Qdrant's constant, checked once: a record first in both halves scores 2 / (60 + 1).
    best = await store.hybrid_query("t_hyb", vector, "qdrant sparse vectors score", top_k=1)
    assert best[0].id == "a" and close(best[0].score, 2 / (RRF_K + 1))
    await store.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_linear_fusion_is_vpa_fusion_of_the_native_halves(tmp_path, engine):
    store = make(tmp_path, engine)
    await store.create_collection("t_lin", 3)
    await store.upsert("t_lin", records())
    vector, text = [0.2, 1.0, 0.0], "dense vectors words"
    for alpha in (0.0, 0.3, 1.0):
        hits = await store.hybrid_query("t_lin", vector, text, top_k=6, fusion="linear", alpha=alpha)
        dense = await store.query("t_lin", vector, top_k=40)
        words = await store.lexical_query("t_lin", text, top_k=40)
        want = fuse(dense, words, 6, fusion="linear", alpha=alpha)
        assert [round(s, 9) for _, s in want] == [round(h.score, 9) for h in hits]
        assert all(0.0 <= h.score <= 1.0 for h in hits)
    await store.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_update_keeps_the_sparse_vectors_and_writes_keep_them_current(tmp_path, engine):
    """An update of metadata (by ids, by filter) leaves each point's sparse vector as it was, so
    lexical scores do not change and hits carry the new metadata; an overwrite replaces a text's
    terms, a delete removes them."""
    store = make(tmp_path, engine)
    await store.create_collection("t_upd", 3)
    await store.upsert("t_upd", records())
    query = "qdrant words"
    before = {h.id: h.score for h in await store.lexical_query("t_upd", query, top_k=10)}
    assert await store.update("t_upd", ids=["a", "c"], set={"tag": "x"}, unset=["name"]) == 2
    assert await store.update("t_upd", filter={"group": 1}, set={"group": 3}) == 3
    after = await store.lexical_query("t_upd", query, top_k=10)
    assert {h.id: h.score for h in after} == before
    by_id = {h.id: h for h in after}
    assert by_id["a"].metadata == {"group": 0, "tag": "x"} and by_id["f"].metadata["group"] == 3
    tagged = await store.lexical_query("t_upd", query, top_k=10, filter={"tag": "x"})
    assert [h.id for h in tagged] == ["c", "a"]
    hybrid = await store.hybrid_query("t_upd", [1.0, 0.0, 0.0], query, top_k=10, filter={"group": 3})
    assert hybrid and {h.id for h in hybrid} <= {"b", "d", "f"}
    await store.close()
    if engine == "edge":  # the stored sparse vector itself, read from the shard
        (point,) = edge_points(tmp_path / engine, "t_upd", [point_id("a")])
        stored = point.vector[lexical.SPARSE_VECTOR]
    else:
        client = QdrantClient(path=str(tmp_path / engine))
        (point,) = client.retrieve("t_upd", [point_id("a")], with_vectors=True)
        client.close()
        stored = point.vector[lexical.SPARSE_VECTOR]
    layout = lexical.LexicalLayout(avg_len=sum(len(lexical.tokenize(t)) for t in TEXTS.values()) / len(TEXTS))
    want = lexical.document_vector(TEXTS["a"], layout.avg_len)
    assert list(stored.indices) == want.indices
    assert all(close(a, b) for a, b in zip(stored.values, want.values, strict=True))

    store = make(tmp_path, engine)
    await store.upsert("t_upd", [Record("a", [1.0, 0.0, 0.0], "zebra yak", {})])
    await store.delete("t_upd", ids=["c"])
    assert "a" not in {h.id for h in await store.lexical_query("t_upd", query, top_k=10)}
    assert "c" not in {h.id for h in await store.lexical_query("t_upd", query, top_k=10)}
    assert [h.id for h in await store.lexical_query("t_upd", "yak zebra", top_k=10)] == ["a"]
    await store.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_average_length_is_fixed_by_the_first_write_with_a_word(tmp_path, engine):
    """Wordless texts fix nothing; the first upsert holding a token records its mean length in
    the collection's metadata, which a new store (another process) reads and keeps using."""
    store = make(tmp_path, engine)
    await store.create_collection("t_avg", 2)
    await store.upsert("t_avg", [Record("x", [1.0, 0.0], "", {}), Record("y", [0.0, 1.0], "?!", {})])
    assert store._layouts["t_avg"].avg_len is None
    await store.upsert(
        "t_avg", [Record("a", [1.0, 1.0], "one two three", {}), Record("b", [1.0, 2.0], "one", {})]
    )
    assert store._layouts["t_avg"].avg_len == 2.0
    await store.upsert("t_avg", [Record("c", [2.0, 1.0], "one " * 40, {})])
    assert store._layouts["t_avg"].avg_len == 2.0
    first = {h.id: h.score for h in await store.lexical_query("t_avg", "one", top_k=10)}
    await store.close()
    if engine == "edge":
        stored = json.loads((tmp_path / engine / "collections" / "t_avg" / "collection.json").read_text())
    else:
        client = QdrantClient(path=str(tmp_path / engine))
        stored = client.get_collection("t_avg").config.metadata
        client.close()
    assert stored[lexical.METADATA_KEY]["avg_len"] == 2.0
    store = make(tmp_path, engine)
    assert {h.id: h.score for h in await store.lexical_query("t_avg", "one", top_k=10)} == first
    await store.upsert("t_avg", [Record("d", [1.0, 0.0], "one two", {})])
    assert store._layouts["t_avg"].avg_len == 2.0
    await store.close()


def _old_collection(tmp_path: Path, engine: str) -> None:
    """A collection as vpa-qdrant 0.3.1 made it: the dense vector and the definition only."""
    from vpa.models import CollectionInfo

    metadata = {DEFINITION_KEY: dump_definition(CollectionInfo("t_old", 2))}
    vectors = models.VectorParams(size=2, distance=models.Distance.COSINE)
    if engine == "edge":
        engine_ = EdgeEngine(tmp_path / engine)
        engine_.create_collection("t_old", vectors_config=vectors, metadata=metadata)
        engine_.close()
    else:
        client = QdrantClient(path=str(tmp_path / engine))
        client.create_collection("t_old", vectors_config=vectors, metadata=metadata)
        client.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_collection_made_before_sparse_vectors_refuses_lexical_search(tmp_path, engine):
    """No dense-only answer: UnsupportedOperation saying to recreate the collection, for both
    queries and both fusions; dense search and writes go on as before."""
    _old_collection(tmp_path, engine)
    store = make(tmp_path, engine)
    await store.upsert("t_old", [Record("a", [1.0, 0.0], "old words", {"k": 1})])
    assert [h.id for h in await store.query("t_old", [1.0, 0.0], filter={"k": 1})] == ["a"]
    calls = [
        store.lexical_query("t_old", "words"),
        store.hybrid_query("t_old", [1.0, 0.0], "words"),
        store.hybrid_query("t_old", [1.0, 0.0], "words", fusion="linear", alpha=0.5),
    ]
    for call in calls:
        with pytest.raises(UnsupportedOperation, match=r"before vpa-qdrant 0\.3\.2.*recreate it"):
            await call
    (record,) = await store.get("t_old", ["a"])
    assert record.text == "old words" and list(record.vector) == [1.0, 0.0]
    await store.close()


async def test_another_bm25_layout_is_refused(tmp_path):
    store = make(tmp_path, "client")
    await store.create_collection("t_other", 2)
    await store.close()
    client = QdrantClient(path=str(tmp_path / "client"))
    layout = lexical.LexicalLayout(spec="bm25(tokenizer=other,k1=1.2,b=0.75)", avg_len=3.0)
    client.update_collection("t_other", metadata={lexical.METADATA_KEY: layout.to_metadata()})
    client.close()
    store = make(tmp_path, "client")
    with pytest.raises(UnsupportedOperation, match="recreate the collection"):
        await store.lexical_query("t_other", "words")
    await store.close()


@pytest.mark.filterwarnings("ignore:Local mode performs exact")
async def test_server_mode_lexical_calls_fit_the_async_client():
    """No server here: server mode's lexical, hybrid (RRF prefetch) and metadata calls against
    the async client's API on its in-memory engine, which takes the same calls as a server."""
    from qdrant_client import AsyncQdrantClient

    store = QdrantStore(QdrantSettings(url="http://127.0.0.1:1", hnsw_ef=64, read_consistency="majority"))
    store._backend._client = AsyncQdrantClient(location=":memory:")
    await store.create_collection("t_server", 3)
    await store.upsert("t_server", records())
    assert store._layouts["t_server"].avg_len is not None
    want = oracle(TEXTS, "qdrant words")
    hits = await store.lexical_query("t_server", "qdrant words", top_k=10)
    assert {h.id for h in hits} == set(want) and all(close(h.score, want[h.id]) for h in hits)
    fused = await store.hybrid_query("t_server", [1.0, 0.0, 0.0], "qdrant words", filter={"group": 0})
    assert fused and {h.id for h in fused} <= {"a", "c", "e"}
    linear = await store.hybrid_query("t_server", [1.0, 0.0, 0.0], "qdrant", fusion="linear", alpha=0.2)
    assert linear and all(0.0 <= h.score <= 1.0 for h in linear)
    await store.close()
