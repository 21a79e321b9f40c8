"""Lexical and hybrid search (0.3.1) against the stand-in: Weaviate's ``bm25`` on ``vpa_terms``
ranks as VPA's BM25, the filter is Weaviate's, ``linear`` hybrid is Weaviate's
``relativeScoreFusion`` and equals `vpa.lexical.fuse`, ``rrf`` is fused by VPA, and a class
without the lexical index is refused with the fix named (never a dense answer).

What these tests verify is the plugin against the stand-in's model of Weaviate's BM25 and hybrid
search (`tests/standin/model.py`), not against a real Weaviate."""

from __future__ import annotations

import random

import numpy as np
import pytest
from vpa.errors import UnsupportedOperation
from vpa.lexical import bm25_scores, fuse
from vpa.models import Record
from vpa_conformance.strategies import LEXICAL_WORDS
from vpa_weaviate import codec
from vpa_weaviate.naming import encode_collection
from weaviate.classes.query import HybridFusion, MetadataQuery
from weaviate_support import StandIn

SEPARATORS = (" ", ", ", "-", "_", "\n", "!? ", "/")


def _corpus(seed: int, size: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(size):
        words = [rng.choice(LEXICAL_WORDS) for _ in range(rng.randint(0, 12))]
        texts.append("".join(w + rng.choice(SEPARATORS) for w in words))
    return texts


def _records(texts: list[str], seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [
        Record(f"r{i}", rng.normal(size=4).astype(np.float32), text, {"part": i % 3, "tag": f"t{i % 2}"})
        for i, text in enumerate(texts)
    ]


def _calls(standin: StandIn) -> int:
    return standin.requests().get("grpc:Search", 0)


async def test_bm25_ranks_as_vpas_bm25(standin: StandIn, unique_name: str) -> None:
    """Every query over a corpus of the suite's tricky words (case folding, NFKC, ligatures, the
    64-character cut, separators incl. '_'): the oracle's scores, in its order — recall 1.0 on
    the stand-in, above the declared lexical_min_recall."""
    store = standin.store()
    texts = _corpus(7, 60)
    try:
        await store.create_collection(unique_name, 4)
        await store.upsert(unique_name, _records(texts))
        rng = random.Random(11)
        found = wanted = 0
        for _ in range(25):
            query = " ".join(rng.choice(LEXICAL_WORDS) for _ in range(rng.randint(1, 4)))
            reference = bm25_scores(texts, query)
            ranking = sorted(((s, f"r{i}") for i, s in enumerate(reference) if s > 0), reverse=True)
            hits = await store.lexical_query(unique_name, query, 10)
            assert len(hits) == min(10, len(ranking)), query
            for hit, (score, _id) in zip(hits, ranking, strict=False):
                assert hit.score == pytest.approx(score, rel=1e-6), (query, hit)
                assert hit.score == pytest.approx(reference[int(hit.id[1:])], rel=1e-6)
            if ranking:
                kth = ranking[min(10, len(ranking)) - 1][0]
                found += sum(1 for h in hits if reference[int(h.id[1:])] >= kth * (1 - 1e-6))
                wanted += min(10, len(ranking))
        assert wanted and found / wanted == 1.0
        assert store.capabilities.lexical_min_recall <= found / wanted
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_filter_is_weaviates_and_keeps_the_statistics(standin: StandIn, unique_name: str) -> None:
    """One bm25 request with the filter in it; a record scores the same with and without it."""
    store = standin.store()
    texts = _corpus(3, 40)
    try:
        await store.create_collection(unique_name, 4)
        await store.upsert(unique_name, _records(texts))
        everything = {h.id: h.score for h in await store.lexical_query(unique_name, "search vector", 40)}
        before = _calls(standin)
        filtered = await store.lexical_query(unique_name, "search vector", 40, {"part": 1})
        assert _calls(standin) - before == 1
        assert filtered and all(int(h.id[1:]) % 3 == 1 for h in filtered)
        assert {h.id for h in filtered} == {i for i in everything if int(i[1:]) % 3 == 1}
        for hit in filtered:
            assert hit.score == pytest.approx(everything[hit.id], rel=1e-6)
        assert await store.lexical_query(unique_name, "search", 10, {"part": {"$gt": 5}}) == []
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_linear_hybrid_is_weaviates_relative_score_fusion(standin: StandIn, unique_name: str) -> None:
    """fusion='linear' is one hybrid request (relativeScoreFusion, alpha on the vector half) and
    its scores are `vpa.lexical.fuse`'s linear fusion of the store's own two halves."""
    store = standin.store()
    texts = _corpus(5, 30)
    query_vector = np.random.default_rng(9).normal(size=4).astype(np.float32)
    try:
        await store.create_collection(unique_name, 4)
        await store.upsert(unique_name, _records(texts))
        dense = await store.query(unique_name, query_vector, 30)
        lexical = await store.lexical_query(unique_name, "search ranking", 30)
        for alpha in (0.0, 0.3, 0.5, 1.0):
            before = _calls(standin)
            hits = await store.hybrid_query(
                unique_name, query_vector, "search ranking", 10, fusion="linear", alpha=alpha
            )
            assert _calls(standin) - before == 1  # fused by Weaviate
            # Weaviate skips the half whose weight is 0; VPA's fuse scores it 0: compare the rest
            halves = (dense if alpha > 0 else [], lexical if alpha < 1 else [])
            want = {hit.id: score for hit, score in fuse(*halves, 30, fusion="linear", alpha=alpha)}
            for hit in hits:
                assert hit.score == pytest.approx(want[hit.id], abs=1e-6), (alpha, hit.id)
            assert len(hits) == min(10, len(want))
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_rrf_hybrid_is_fused_by_vpa(standin: StandIn, unique_name: str) -> None:
    """fusion='rrf': a dense and a bm25 request, both filtered by Weaviate, fused by VPA's RRF
    (sum 1 / (60 + rank)) — the first record of both halves scores 2/61."""
    store = standin.store()
    texts = ["hybrid search", "dense vector", "hybrid hybrid ranking", "search index"]
    vectors = [[1, 0, 0, 0], [0, 1, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 1, 0]]
    records = [
        Record(f"r{i}", np.array(v, np.float32), t, {"part": i % 2})
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]
    try:
        await store.create_collection(unique_name, 4)
        await store.upsert(unique_name, records)
        before = _calls(standin)
        hits = await store.hybrid_query(unique_name, [0.9, 0.1, 0, 0], "hybrid", 4, {"part": 0})
        assert _calls(standin) - before == 2
        assert [h.id for h in hits] == ["r2", "r0"]
        assert hits[0].score == pytest.approx(2 / 61) and hits[1].score == pytest.approx(2 / 62)
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_standin_ranked_fusion_is_not_vpas_rrf(standin: StandIn, unique_name: str) -> None:
    """Why rrf is not sent to Weaviate: its rankedFusion (as modelled from Weaviate's source)
    scores the first of both halves alpha/60 + (1 - alpha)/60, not 2/61."""
    store = standin.store()
    try:
        await store.create_collection(unique_name, 2)
        await store.upsert(unique_name, [Record("a", [1, 0], "word", {}), Record("b", [0, 1], "other", {})])
        client = standin.client()
        try:
            handle = client.collections.use(encode_collection(unique_name))
            result = handle.query.hybrid(
                query="word",
                vector=[1.0, 0.0],
                target_vector="default",
                alpha=0.5,
                query_properties=["vpa_terms"],
                fusion_type=HybridFusion.RANKED,
                return_metadata=MetadataQuery(score=True),
            )
        finally:
            client.close()
        assert result.objects[0].metadata.score == pytest.approx(1 / 60, rel=1e-6)
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_writes_keep_the_lexical_index(standin: StandIn, unique_name: str) -> None:
    """An update (merge and replace) keeps a record's terms; a delete removes them; an upsert
    replaces them."""
    store = standin.store()
    try:
        await store.create_collection(unique_name, 2)
        await store.upsert(
            unique_name, [Record("a", [1, 0], "alpha beta", {"k": 1}), Record("b", [0, 1], "beta", {})]
        )
        await store.update(unique_name, ids=["a"], set={"x": "y"})
        await store.update(unique_name, ids=["a"], unset=["k"])
        assert [h.id for h in await store.lexical_query(unique_name, "alpha", 5)] == ["a"]
        hit = (await store.lexical_query(unique_name, "alpha", 5))[0]
        assert hit.metadata == {"x": "y"} and hit.text == "alpha beta"
        await store.upsert(unique_name, [Record("a", [1, 0], "gamma", {})])
        assert await store.lexical_query(unique_name, "alpha", 5) == []
        await store.delete(unique_name, ids=["b"])
        assert await store.lexical_query(unique_name, "beta", 5) == []
        assert [h.id for h in await store.lexical_query(unique_name, "gamma", 5)] == ["a"]
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_a_class_without_the_lexical_index_is_refused(
    standin: StandIn, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class created by 0.3.0 (no vpa_terms; stop words on) keeps working for dense search but
    refuses lexical and hybrid queries with UnsupportedOperation naming `vpa migrate` — before any
    search is sent."""
    old = [p for p in codec.reserved_properties() if p.name != "vpa_terms"]
    monkeypatch.setattr(codec, "reserved_properties", lambda: old)
    creator = standin.store()
    await creator.create_collection(unique_name, 2)
    await creator.close()
    monkeypatch.undo()
    store = standin.store()
    try:
        await store.upsert(unique_name, [Record("a", [1, 0], "alpha", {})])
        assert [h.id for h in await store.query(unique_name, [1, 0], 1)] == ["a"]
        before = _calls(standin)
        for call in (
            store.lexical_query(unique_name, "alpha", 5),
            store.hybrid_query(unique_name, [1, 0], "alpha", 5),
            store.hybrid_query(unique_name, [1, 0], "alpha", 5, fusion="linear", alpha=0.5),
        ):
            with pytest.raises(UnsupportedOperation, match="vpa migrate") as caught:
                await call
            assert "created before vpa-weaviate 0.3.1" in str(caught.value)
        assert _calls(standin) - before <= 1  # at most rrf's dense half, never an answer
        client = standin.client()
        try:
            props = {
                p.name for p in client.collections.use(encode_collection(unique_name)).config.get().properties
            }
        finally:
            client.close()
        assert "vpa_terms" not in props  # writes to an old class do not add the property
    finally:
        await store.drop_collection(unique_name)
        await store.close()


def test_lexical_problem_names_stop_words_and_parameters() -> None:
    """The class config checks: VPA's k1/b, no stop words, a whitespace-tokenized vpa_terms."""

    class Obj:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    terms = Obj(name="vpa_terms", tokenization="whitespace", index_searchable=True)
    ok = Obj(bm25=Obj(k1=1.2, b=0.75), stopwords=Obj(preset="none", additions=None))
    assert codec.lexical_problem(Obj(properties=[terms], inverted_index_config=ok)) is None
    en = Obj(bm25=Obj(k1=1.2, b=0.75), stopwords=Obj(preset="en", additions=None))
    assert "stop words" in codec.lexical_problem(Obj(properties=[terms], inverted_index_config=en))
    k1 = Obj(bm25=Obj(k1=2.0, b=0.75), stopwords=Obj(preset="none", additions=None))
    assert "k1=2" in codec.lexical_problem(Obj(properties=[terms], inverted_index_config=k1))
    word = Obj(name="vpa_terms", tokenization="word", index_searchable=True)
    assert "whitespace" in codec.lexical_problem(Obj(properties=[word], inverted_index_config=ok))


def test_terms_text_is_vpas_tokens() -> None:
    assert codec.terms_text("Straße, ﬁne_CAFÉ!") == "strasse fine_café"
    assert codec.terms_text("") == ""
