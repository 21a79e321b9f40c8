"""The reference model every store is compared with: a dict of records and brute force.

It shares no code with any store (the memory store is under test like every other): records are
kept in a plain dict, similarity is cosine computed here in float64 from the float32 vectors a
store receives, and filters are evaluated by `vpa.filters.evaluate`, which *is* the
specification of the filter language.

Lexical search (`Oracle.lexical`) is BM25 computed here from its definition in the docstring of
`vpa.lexical` (Lucene's formula, k1 = 1.2, b = 0.75, statistics over every record of the
collection, a filter selecting candidates only). Only the tokenizer is core's, `vpa.lexical.tokenize`,
because the tokenizer *is* the definition of a word; the core's index (`Bm25Index`) and its
reference scorer (`bm25_scores`) are not used, so a bug in either is caught.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from vpa.filters import FilterLike, Node, evaluate, parse_filter
from vpa.lexical import tokenize
from vpa.models import Record

__all__ = ["BM25_B", "BM25_K1", "Oracle", "cosine", "same_metadata", "same_value"]

#: BM25's parameters as `vpa.lexical` defines them (written here again, not imported: the oracle
#: is the definition's second, independent reading).
BM25_K1 = 1.2
BM25_B = 0.75


def _as_float32(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32).reshape(-1)


def cosine(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cosine similarity in float64 of two vectors as a store sees them (float32)."""
    x = _as_float32(a).astype(np.float64)
    y = _as_float32(b).astype(np.float64)
    return float(np.dot(x, y) / (math.sqrt(float(np.dot(x, x))) * math.sqrt(float(np.dot(y, y)))))


def same_value(got: Any, want: Any) -> bool:
    """Equal *and* of the same type: 1 is not 1.0, True is not 1, a list stays a list of str."""
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same_value(g, w) for g, w in zip(got, want, strict=True))
        )
    if type(got) is not type(want):
        return False
    if isinstance(want, dt.datetime):  # the same instant, handed back timezone-aware in UTC
        return got.utcoffset() == dt.timedelta(0) and got == want
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return bool(got == want)


def same_metadata(got: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    return (
        isinstance(got, Mapping) and set(got) == set(want) and all(same_value(got[k], want[k]) for k in want)
    )


class Oracle:
    """What a collection should hold after a sequence of calls, and what it should answer."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.records: dict[str, Record] = {}

    # --- writes --------------------------------------------------------------------------------

    def upsert(self, records: Iterable[Record]) -> int:
        """Newest wins, also within one batch; returns how many distinct ids were written."""
        written: set[str] = set()
        for record in records:
            self.records[record.id] = Record(
                record.id, _as_float32(record.vector), record.text, dict(record.metadata)
            )
            written.add(record.id)
        return len(written)

    def delete(self, ids: Sequence[str] | None = None, filter: FilterLike = None) -> int:
        node = parse_filter(filter)
        candidates = (
            list(self.records) if ids is None else [i for i in dict.fromkeys(ids) if i in self.records]
        )
        doomed = [i for i in candidates if evaluate(node, self.records[i].metadata)]
        for i in doomed:
            del self.records[i]
        return len(doomed)

    def update(
        self,
        ids: Sequence[str] | None = None,
        filter: FilterLike = None,
        set: Mapping[str, Any] | None = None,  # the contract's name
        unset: Sequence[str] = (),
    ) -> int:
        """Contract 1.1's ``update``: the matching records' metadata merged (``set`` keys
        replaced or added, a ``None`` value or an ``unset`` key removed); vector and text kept.
        Returns how many records matched."""
        node = parse_filter(filter)
        candidates = (
            list(self.records) if ids is None else [i for i in dict.fromkeys(ids) if i in self.records]
        )
        chosen = [i for i in candidates if evaluate(node, self.records[i].metadata)]
        removed = {*unset, *(k for k, v in (set or {}).items() if v is None)}
        for i in chosen:
            old = self.records[i]
            metadata = {k: v for k, v in old.metadata.items() if k not in removed}
            metadata.update({k: v for k, v in (set or {}).items() if v is not None})
            self.records[i] = Record(old.id, old.vector, old.text, metadata)
        return len(chosen)

    def drop(self) -> None:
        self.records.clear()

    # --- reads ---------------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Record]:
        return [self.records[i] for i in dict.fromkeys(ids) if i in self.records]

    def matching(self, filter: FilterLike = None) -> list[Record]:
        node: Node | None = parse_filter(filter)
        return [r for r in self.records.values() if evaluate(node, r.metadata)]

    def count(self, filter: FilterLike = None) -> int:
        return len(self.matching(filter))

    def scores(self, vector: Sequence[float], filter: FilterLike = None) -> dict[str, float]:
        """Cosine similarity of ``vector`` with every record that matches ``filter``."""
        return {r.id: cosine(r.vector, vector) for r in self.matching(filter)}

    def ranking(self, vector: Sequence[float], filter: FilterLike = None) -> list[tuple[str, float]]:
        """Every matching record, best first."""
        return sorted(self.scores(vector, filter).items(), key=lambda item: -item[1])

    def top_k(self, vector: Sequence[float], k: int, filter: FilterLike = None) -> list[tuple[str, float]]:
        return self.ranking(vector, filter)[:k]

    # --- lexical search ------------------------------------------------------------------------

    def lexical_scores(self, text: str, filter: FilterLike = None) -> dict[str, float]:
        """BM25 of ``text`` for every record that matches ``filter`` and holds at least one of the
        query's tokens. N, each token's document frequency and the average length are over
        *every* record: the filter chooses who may be returned, not the statistics."""
        terms = list(dict.fromkeys(tokenize(text)))
        bags: dict[str, dict[str, int]] = {}
        for record in self.records.values():
            bag: dict[str, int] = {}
            for token in tokenize(record.text):
                bag[token] = bag.get(token, 0) + 1
            bags[record.id] = bag
        n = len(bags)
        if n == 0 or not terms:
            return {}
        total = sum(sum(bag.values()) for bag in bags.values())
        avgdl = total / n if total else 1.0
        df = {t: sum(1 for bag in bags.values() if t in bag) for t in terms}
        node: Node | None = parse_filter(filter)
        out: dict[str, float] = {}
        for record_id, bag in bags.items():
            present = [t for t in terms if t in bag]
            if not present or not evaluate(node, self.records[record_id].metadata):
                continue
            length = sum(bag.values())
            score = 0.0
            for t in present:
                weight = math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5))
                tf = bag[t]
                score += (
                    weight * tf * (BM25_K1 + 1.0) / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * length / avgdl))
                )
            out[record_id] = score
        return out

    def lexical(
        self, text: str, top_k: int | None = None, filter: FilterLike = None
    ) -> list[tuple[str, float]]:
        """The lexical ranking: ``(id, BM25)`` best first (ties in no defined order), at most
        ``top_k``; only matching records that hold a query token."""
        ranked = sorted(self.lexical_scores(text, filter).items(), key=lambda item: -item[1])
        return ranked if top_k is None else ranked[:top_k]
