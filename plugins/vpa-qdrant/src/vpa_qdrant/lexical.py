"""Lexical search on Qdrant's own means: a sparse vector per point, scored with the IDF modifier.

VPA's BM25 (`vpa.lexical`) is
``sum_t idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))``. Qdrant
computes the first factor itself: a sparse vector configured with ``Modifier.IDF`` has each query
value multiplied by ``ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))`` (the same formula; N and n(t) over
the collection's points, whatever the filter) when it is searched. So each point holds, under
the sparse vector `SPARSE_VECTOR`, the rest of the formula for each of its VPA tokens
(`document_vector`), and a query is its distinct tokens with value 1 (`query_vector`): the dot
product is VPA's BM25 — with two approximations, which is why the store declares
``lexical_exact=False``:

- **The average length is fixed per collection.** A stored value cannot follow the collection's
  average length as it changes, so each collection normalises with one ``avg_len``: the mean
  token count of the texts of the first upsert that holds a token, recorded in the collection's metadata
  (`LexicalLayout`, key `METADATA_KEY`) and used for every later write. Exact while the
  collection's average stays what it was then (chunks of one pipeline have nearly one length);
  ranks drift as it moves away.
- **Term ids are a 32-bit hash** (`vpa.lexical.term_id`: BLAKE2b of the token's UTF-8, 4 bytes,
  into 1 … 2**32 - 1): two tokens that collide share one posting. Rare (a 1,000,000-token vocabulary
  has about 116 colliding pairs) and only for queries holding one of them.

And one on Qdrant's engine rather than ours: Edge (and a server) count a deleted point in N and
n(t) until its segment is optimised; qdrant-client's local mode counts live points only.

Every point also holds the term `MARKER` (id 0, which no token maps to): Edge and the server count
in N only points whose sparse vector is not empty, VPA's N counts every record, a record without
a word too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from qdrant_client import models
from vpa.lexical import (  # noqa: F401 - term_id and mean_length are this module's API too
    BM25_SPEC,
    TERM_HASH,
    Bm25Spec,
    mean_length,
    term_counts,
    term_id,
    term_weights,
    tokenize,
)

#: The name of the sparse vector that holds a point's BM25 terms.
SPARSE_VECTOR = "vpa_bm25"
#: The collection-metadata key of `LexicalLayout`.
METADATA_KEY = "vpa_lexical"
#: The term every point holds (see the module docstring); no token's id.
MARKER = 0
#: Qdrant's RRF scores a point ``1 / (k + position)`` with the position from 0 (the server's
#: ``score_fusion``; qdrant-client's local ``reciprocal_rank_fusion`` mirrors it): k = 61 is
#: VPA's ``1 / (60 + rank)`` with the rank from 1. Qdrant's own default k is 2.
QDRANT_RRF_K = 61


def document_vector(text: str, avg_len: float | None, spec: Bm25Spec = BM25_SPEC) -> models.SparseVector:
    """``text``'s BM25 term weights without the IDF (Qdrant's modifier applies it), plus `MARKER`."""
    counts, length = term_counts(text)
    indices, values = [MARKER], [1.0]
    if counts:
        if avg_len is None:  # the store fixes avg_len before writing a text with a token
            raise ValueError("a text with tokens needs the collection's avg_len")
        weights = term_weights(counts, length, avg_len, spec)
        indices.extend(sorted(weights))
        values.extend(weights[key] for key in indices[1:])
    return models.SparseVector(indices=indices, values=values)


def query_vector(terms: Sequence[str]) -> models.SparseVector:
    """A query's distinct tokens, each with weight 1 (so a point's score is the sum of its BM25
    contributions); tokens that share an id count once."""
    indices = sorted({term_id(t) for t in terms})
    return models.SparseVector(indices=indices, values=[1.0] * len(indices))


def sparse_bytes(text: str) -> int:
    """A bound on the JSON of ``text``'s sparse vector: 36 bytes a term (an index of up to 10
    digits and a float of up to 24 characters, with separators), and the marker and brackets."""
    return 36 * (len(set(tokenize(text))) + 1) + 64


@attrs.frozen
class LexicalLayout:
    """How a collection's points hold their BM25 terms (its metadata under `METADATA_KEY`)."""

    spec: str = BM25_SPEC.describe()
    terms: str = TERM_HASH
    vector: str = SPARSE_VECTOR
    avg_len: float | None = None

    @property
    def current(self) -> bool:
        """Whether this plugin's queries may be asked of it (the same BM25, term ids, vector)."""
        return (self.spec, self.terms, self.vector) == (BM25_SPEC.describe(), TERM_HASH, SPARSE_VECTOR)

    def to_metadata(self) -> dict[str, Any]:
        return {"spec": self.spec, "terms": self.terms, "vector": self.vector, "avg_len": self.avg_len}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> LexicalLayout | None:
        """The layout recorded in a collection's metadata; None for a collection made without one
        (before vpa-qdrant 0.3.2) or whose record is unreadable."""
        stored = (metadata or {}).get(METADATA_KEY)
        if not isinstance(stored, Mapping):
            return None
        avg_len = stored.get("avg_len")
        if avg_len is not None and (
            isinstance(avg_len, bool) or not isinstance(avg_len, int | float) or not avg_len > 0
        ):
            return None
        fields = {key: stored.get(key) for key in ("spec", "terms", "vector")}
        if not all(isinstance(value, str) for value in fields.values()):
            return None
        return cls(avg_len=None if avg_len is None else float(avg_len), **fields)
