"""Lexical search: VPA's BM25, defined once, and the fusion of a lexical and a dense ranking.

A store that declares ``lexical_search`` answers `VectorStore.lexical_query` with the records whose
text best matches a query's words, scored by BM25 as defined here. A store with
``lexical_exact`` ranks exactly as `Bm25Index` does; another (an engine with its own analyser)
declares ``lexical_min_recall`` against it, and the conformance suite holds it to that.

The definition (`BM25_SPEC`, recorded as `Bm25Spec.describe`):

- **Tokens**: the text NFKC-normalised and case-folded, split into Unicode word characters
  (``\\w+``: letters, digits, underscore, in any script). No stemming, no stop words — what
  Milvus's ``standard`` and Weaviate's ``word`` analysers do by default, so native engines agree
  with it on plain text. A token longer than `MAX_TOKEN_CHARS` is cut to that length.
- **Score** (Lucene's BM25): for a query's distinct tokens t present in a record d,
  ``sum idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))`` with
  ``idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))``, ``k1 = 1.2``, ``b = 0.75``. N, n(t) and
  avgdl are over **every record of the collection**: a filter selects which records may be
  returned, it does not change the statistics (as in Elasticsearch, Qdrant's IDF modifier and
  Milvus's BM25 function). A query token repeated counts once.
- Records without any query token are never returned (a lexical query may return fewer than
  ``top_k``). Scores are positive; higher is better. Equal scores are in no defined order.

Fusion (`fuse`): ``"rrf"`` — reciprocal rank fusion, ``sum 1 / (RRF_K + rank)`` over the two
rankings (rank from 1), the default everywhere because it needs no score scale; ``"linear"`` —
``alpha * dense + (1 - alpha) * lexical`` over each ranking's scores min-max normalised to [0, 1]
(Weaviate's ``relativeScoreFusion``; ``alpha`` 1 is dense only, 0 lexical only). A record first
in both rankings is first fused; a fused score never falls when either input score rises.

Sparse vectors (`term_id`, `term_counts`, `term_weights`, `mean_length`): engines that score a
sparse vector by dot product (Qdrant with its IDF modifier, a Pinecone sparse index) hold, per
record, BM25's term-frequency factor for each token under a 32-bit id (`TERM_HASH`). One
definition here, so two plugins' sparse data agree and can be compared or moved.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import attrs

from vpa.errors import LimitExceeded, ValidationError

#: Tokens longer than this are cut (a 10 kB "word" must not become an index key of that size).
MAX_TOKEN_CHARS = 64
#: The most characters a lexical query may have, and the most distinct tokens it may hold.
MAX_QUERY_CHARS = 4_096
MAX_QUERY_TERMS = 256
#: Reciprocal rank fusion's constant (Cormack et al. 2009; the value Qdrant, Milvus and
#: Elasticsearch use).
RRF_K = 60
FUSIONS = ("rrf", "linear")
#: How many candidates each half of a hybrid query fetches, as a multiple of top_k (at least
#: `MIN_CANDIDATES`): fusion can lift a record from below the top_k of either list.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 40

_WORD = re.compile(r"\w+")


@attrs.frozen
class Bm25Spec:
    """The BM25 a collection is scored with: the tokenizer and the two parameters."""

    tokenizer: str = "vpa-words-v1"
    k1: float = 1.2
    b: float = 0.75

    def describe(self) -> str:
        return f"bm25(tokenizer={self.tokenizer},k1={self.k1:g},b={self.b:g})"


BM25_SPEC = Bm25Spec()


def tokenize(text: str) -> list[str]:
    """The tokens of ``text`` (see the module docstring), in order, repeats kept."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [t[:MAX_TOKEN_CHARS] for t in _WORD.findall(folded)]


def query_terms(text: Any) -> list[str]:
    """A lexical query's distinct tokens, checked before any I/O: a non-empty string of at most
    `MAX_QUERY_CHARS` characters with at least one token and at most `MAX_QUERY_TERMS` distinct
    ones (`ValidationError` / `LimitExceeded` otherwise)."""
    if not isinstance(text, str):
        raise ValidationError(f"a lexical query must be a string, got {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise LimitExceeded("max_query_chars", len(text), MAX_QUERY_CHARS, what="lexical query")
    terms = list(dict.fromkeys(tokenize(text)))
    if not terms:
        raise ValidationError("a lexical query needs at least one word (letters or digits)")
    if len(terms) > MAX_QUERY_TERMS:
        raise LimitExceeded("max_query_terms", len(terms), MAX_QUERY_TERMS, what="lexical query")
    return terms


#: How `term_id` maps a token to a sparse-vector index; stores record it beside their data.
TERM_HASH = "blake2b-32"


def term_id(token: str) -> int:
    """A token's sparse index: BLAKE2b of its UTF-8 (4 bytes) into 1 … 2**32 - 1, stable across
    processes; 0 is left for a store's marker term. Two tokens may collide (a 1,000,000-token
    vocabulary has about 116 colliding pairs): they then share one index."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") % (2**32 - 1) + 1


def term_counts(text: str) -> tuple[dict[int, int], int]:
    """``text``'s term frequencies by `term_id` (colliding tokens summed) and its length in tokens."""
    tokens = tokenize(text)
    counts: dict[int, int] = {}
    for token, tf in Counter(tokens).items():
        key = term_id(token)
        counts[key] = counts.get(key, 0) + tf
    return counts, len(tokens)


def term_weights(
    counts: Mapping[int, int], length: int, avg_len: float, spec: Bm25Spec = BM25_SPEC
) -> dict[int, float]:
    """BM25's term-frequency factor ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avg_len))``
    for each id of `term_counts`: the score without the IDF, which the engine (or the query's
    values) supplies."""
    norm = spec.k1 * (1.0 - spec.b + spec.b * length / avg_len)
    return {key: tf * (spec.k1 + 1.0) / (tf + norm) for key, tf in counts.items()}


def mean_length(texts: Sequence[str]) -> float | None:
    """The mean token count of ``texts`` (wordless ones counted, as avgdl counts every record), or
    None if none holds a token."""
    total = sum(len(tokenize(t)) for t in texts)
    return total / len(texts) if total else None


def idf(n_docs: int, doc_freq: int) -> float:
    return math.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


class Bm25Index:
    """An exact, incremental BM25 index of texts by key (the memory store keys it by record id):
    `set` a key's text (replacing the one it had), `remove` it, `scores` for a query. Each change
    costs the tokens of that text only, so keeping it current costs a write what the write adds."""

    def __init__(self, spec: Bm25Spec = BM25_SPEC) -> None:
        self.spec = spec
        self.postings: dict[str, dict[Hashable, int]] = {}
        self.terms: dict[Hashable, tuple[str, ...]] = {}
        self.lengths: dict[Hashable, int] = {}
        self.total_length = 0

    @property
    def size(self) -> int:
        return len(self.lengths)

    def set(self, key: Hashable, text: str) -> None:
        self.remove(key)
        counts = Counter(tokenize(text))
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[key] = tf
        self.terms[key] = tuple(counts)
        length = sum(counts.values())
        self.lengths[key] = length
        self.total_length += length

    def remove(self, key: Hashable) -> None:
        length = self.lengths.pop(key, None)
        if length is None:
            return
        self.total_length -= length
        for term in self.terms.pop(key):
            keys = self.postings[term]
            del keys[key]
            if not keys:
                del self.postings[term]

    def scores(self, terms: Sequence[str]) -> dict[Hashable, float]:
        """BM25 of every key holding at least one of the distinct ``terms``."""
        out: dict[Hashable, float] = {}
        n = self.size
        if n == 0:
            return out
        avgdl = self.total_length / n if self.total_length else 1.0
        k1, b = self.spec.k1, self.spec.b
        for term in dict.fromkeys(terms):
            keys = self.postings.get(term)
            if not keys:
                continue
            weight = idf(n, len(keys))
            for key, tf in keys.items():
                norm = k1 * (1.0 - b + b * self.lengths[key] / avgdl)
                out[key] = out.get(key, 0.0) + weight * tf * (k1 + 1.0) / (tf + norm)
        return out


def bm25_scores(texts: Sequence[str], query: str, spec: Bm25Spec = BM25_SPEC) -> list[float]:
    """BM25 of each text for ``query``, straight from the definition (no index): the oracle's."""
    docs = [Counter(tokenize(t)) for t in texts]
    n = len(docs)
    if n == 0:
        return []
    lengths = [sum(d.values()) for d in docs]
    avgdl = (sum(lengths) / n) or 1.0
    terms = list(dict.fromkeys(tokenize(query)))
    freq = {t: sum(1 for d in docs if t in d) for t in terms}
    out = []
    for d, dl in zip(docs, lengths, strict=True):
        score = 0.0
        for t in terms:
            tf = d.get(t, 0)
            if tf:
                score += idf(n, freq[t]) * tf * (spec.k1 + 1) / (tf + spec.k1 * (1 - spec.b + spec.b * dl / avgdl))
        out.append(score)
    return out


# --- fusion ------------------------------------------------------------------------------------


def check_fusion(fusion: Any, alpha: Any) -> tuple[str, float]:
    if fusion not in FUSIONS:
        raise ValidationError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= float(alpha) <= 1.0:
        raise ValidationError(f"alpha must be a number from 0 to 1, got {alpha!r}")
    return fusion, float(alpha)


def candidates_for(top_k: int, max_top_k: int | None) -> int:
    """How many hits each half of a hybrid query fetches for ``top_k`` fused ones."""
    wanted = max(top_k * CANDIDATE_FACTOR, MIN_CANDIDATES)
    return wanted if max_top_k is None else max(top_k, min(wanted, max_top_k))


def fuse(
    dense: Sequence[Any], lexical: Sequence[Any], top_k: int, *, fusion: str = "rrf", alpha: float = 0.5
) -> list[tuple[Any, float]]:
    """The two rankings (hits with ``id`` and ``score``, best first) fused: up to ``top_k``
    ``(hit, fused score)``, best first; the hit kept is the dense one where both have it."""
    fusion, alpha = check_fusion(fusion, alpha)
    fused: dict[str, float] = {}
    first: dict[str, Any] = {}
    if fusion == "rrf":
        for weight, ranking in ((1.0, dense), (1.0, lexical)):
            for rank, hit in enumerate(ranking, start=1):
                fused[hit.id] = fused.get(hit.id, 0.0) + weight / (RRF_K + rank)
                first.setdefault(hit.id, hit)
    else:
        for weight, ranking in ((alpha, dense), (1.0 - alpha, lexical)):
            for hit, norm in zip(ranking, _normalised([h.score for h in ranking]), strict=True):
                fused[hit.id] = fused.get(hit.id, 0.0) + weight * norm
                first.setdefault(hit.id, hit)
    order = sorted(fused, key=lambda i: -fused[i])[:top_k]
    return [(first[i], fused[i]) for i in order]


def _normalised(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low <= 0:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def describe(spec: Mapping[str, Any] | None = None) -> str:
    return BM25_SPEC.describe() if spec is None else Bm25Spec(**spec).describe()
