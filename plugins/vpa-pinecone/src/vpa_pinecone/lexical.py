"""Lexical search on Pinecone's own means: a sparse index beside the dense one.

Pinecone's classic sparse-dense vectors need a ``dotproduct`` dense index; VPA's index is cosine.
So each lexical collection has a second namespace of the same name in a **sparse index**
(``vector_type="sparse"``, `companion_name`) holding, for every record, its BM25 term weights
and a copy of its metadata (filters run natively on both halves). Pinecone scores a sparse
query by the dot product and computes no IDF, so:

- each stored weight is VPA's BM25 without the IDF, ``tf * (k1 + 1) / (tf + k1 * (1 - b + b *
  |d| / avg_len))`` (`document_vector`), with one ``avg_len`` per collection, fixed by its first
  upsert that holds a token and recorded in its catalog record (as vpa-qdrant does);
- a query's value for each term is its IDF, ``ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))``, from
  what the sparse index says when asked: N its namespace's record count, n(t) the records a
  one-term query of the term matches (`MAX_DF_COUNT` at most — a term in more records counts
  as that many).

So the store declares ``lexical_exact=False``: the fixed average length, n(t) capped, 32-bit
term ids (`vpa.lexical.term_id`: two colliding tokens share one weight), and a text of more than
`MAX_TERMS` distinct terms keeping its heaviest ones (Pinecone's limit per sparse vector).
Every record holds the term `MARKER` (index 0, no token's id) so that a wordless record is
stored and counted in N, and so that ``settle()`` can see it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from vpa.lexical import (  # noqa: F401 - term_id and mean_length are this module's API too
    BM25_SPEC,
    TERM_HASH,
    Bm25Spec,
    mean_length,
    term_counts,
    term_id,
    term_weights,
)

#: The catalog-record keys of a lexical collection: the layout, and its fixed average length.
LAYOUT_KEY = "vpa-lexical"
AVG_LEN_KEY = "vpa-lexical-avglen"
#: How term ids are made and what the weights are (recorded, so another scheme is never mixed in).
LAYOUT = f"sparse-index;{BM25_SPEC.describe()};{TERM_HASH}"
MARKER = 0
#: Pinecone's limit of non-zero values per sparse vector: the marker and 2,047 terms.
MAX_TERMS = 2047
#: The most matches one query counts (Pinecone's top_k without metadata).
MAX_DF_COUNT = 10_000


def companion_name(index: str) -> str:
    """The sparse index beside dense index ``index`` (a valid name of at most 45 characters)."""
    name = f"{index}-sparse"
    if len(name) <= 45:
        return name
    digest = hashlib.blake2b(index.encode(), digest_size=4).hexdigest()
    return f"{index[:36].rstrip('-')}-{digest}"


def document_vector(text: str, avg_len: float | None, spec: Bm25Spec = BM25_SPEC) -> dict[str, Any]:
    """``text``'s BM25 term weights without the IDF, plus `MARKER`, as Pinecone's sparse values."""
    counts, length = term_counts(text)
    weights: dict[int, float] = {}
    if counts:
        if avg_len is None:  # the store fixes avg_len before writing a text with a token
            raise ValueError("a text with tokens needs the collection's avg_len")
        weights = term_weights(counts, length, avg_len, spec)
        if len(weights) > MAX_TERMS:
            weights = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TERMS])
    indices = [MARKER, *sorted(weights)]
    return {"indices": indices, "values": [1.0] + [weights[i] for i in indices[1:]]}


def query_ids(terms: Sequence[str]) -> list[int]:
    """A query's distinct term ids (tokens that share an id count once)."""
    return sorted({term_id(t) for t in terms})


def sparse_bytes(vector: dict[str, Any]) -> int:
    """A bound on the JSON of sparse values: 36 bytes a term, and the brackets."""
    return 36 * len(vector["indices"]) + 64
