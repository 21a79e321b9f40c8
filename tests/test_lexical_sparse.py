"""`vpa.lexical`'s sparse form of BM25 (what vpa-qdrant and vpa-pinecone store): the term-frequency
weights of `term_weights`, dotted with each query term's IDF, are VPA's BM25 scores exactly when
the average length is the collection's."""

from __future__ import annotations

import pytest
from vpa.lexical import Bm25Index, idf, mean_length, term_counts, term_id, term_weights, tokenize

TEXTS = {
    "a": "the quick brown fox jumps over the lazy dog",
    "b": "a quick brown dog",
    "c": "foxes and dogs: Straße STRASSE straße",
    "d": "",
    "e": "lazy lazy lazy afternoon",
}


def test_term_ids_are_stable_and_never_the_marker() -> None:
    # pinned (vpa-qdrant pins the same value): data stored by earlier versions depends on it
    assert term_id("qdrant") == term_id("qdrant") == 3738887971
    assert all(0 < term_id(t) < 2**32 for t in ("", "a", "straße", "東京", "x" * 64))


@pytest.mark.parametrize("query", ["quick fox", "lazy dog", "strasse", "afternoon brown the"])
def test_sparse_dot_product_is_bm25(query: str) -> None:
    index = Bm25Index()
    for key, text in TEXTS.items():
        index.set(key, text)
    avg = mean_length(list(TEXTS.values()))
    assert avg == sum(len(tokenize(t)) for t in TEXTS.values()) / len(TEXTS)
    n = len(TEXTS)
    terms = list(dict.fromkeys(tokenize(query)))
    df = {term_id(t): sum(t in tokenize(text) for text in TEXTS.values()) for t in terms}
    expected = index.scores(terms)
    for key, text in TEXTS.items():
        counts, length = term_counts(text)
        weights = term_weights(counts, length, avg) if counts else {}
        score = sum(idf(n, df[k]) * weights.get(k, 0.0) for k in df if df[k])
        assert score == pytest.approx(expected.get(key, 0.0), rel=1e-12, abs=1e-12)


def test_mean_length_of_wordless_texts_is_none() -> None:
    assert mean_length(["", "!!", "—"]) is None
    assert mean_length(["one two", ""]) == 1.0
