"""The reference model every store is compared with: a dict of records and brute force.

It shares no code with any store (the memory store is under test like every other): records are
kept in a plain dict, similarity is cosine computed here in float64 from the float32 vectors a
store receives, and filters are evaluated by `vpa.filters.evaluate`, which *is* the
specification of the filter language.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from vpa.filters import FilterLike, Node, evaluate, parse_filter
from vpa.models import Record

__all__ = ["Oracle", "cosine", "same_metadata", "same_value"]


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
