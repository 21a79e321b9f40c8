"""Deliberately broken stores, each with the contract test class that must catch it.

Not collected by a normal run (the name does not start with ``test_``): `test_broken_stores`
runs chosen clauses of these classes in a subprocess and asserts that they fail.
Each store is the reference memory store with one realistic bug.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import unicodedata
from typing import Any

import attrs
import numpy as np
import pytest
from vpa.filters import And, Comparison, Node, Not, Or, evaluate
from vpa.models import FilterOp, Hit, Record, StoreCapabilities
from vpa.stores.memory import MemoryStore
from vpa_conformance import StoreContract


def _rewrite(node: Node | None, leaf: Any = None, drop_not: bool = False) -> Node | None:
    """Rebuild a filter tree, changing comparisons with ``leaf`` and/or dropping negations."""
    if node is None:
        return None
    if isinstance(node, Comparison):
        return leaf(node) if leaf else node
    if isinstance(node, Not):
        child = _rewrite(node.child, leaf, drop_not)
        return child if drop_not else Not(child)
    children = tuple(_rewrite(c, leaf, drop_not) for c in node.children)
    return And(children) if isinstance(node, And) else Or(children)


class DropsLastHit(MemoryStore):
    """Off by one: the last hit of every query is lost."""

    async def _query(self, info, vector, top_k, node):
        hits = await super()._query(info, vector, top_k, node)
        return hits[:-1]


class ReturnsDistances(MemoryStore):
    """Reports the backend's cosine distance (1 - similarity) as the score."""

    async def _query(self, info, vector, top_k, node):
        hits = await super()._query(info, vector, top_k, node)
        return [attrs.evolve(h, score=1.0 - h.score) for h in hits]


class RanksByDotProduct(MemoryStore):
    """Scores with the raw dot product (right only for unit vectors)."""

    async def _query(self, info, vector, top_k, node):
        table = self._require(info)
        rows = [i for i in range(table.size) if node is None or self._match(node, table.metadata[i])]
        scored = sorted(((float(table.vectors[r] @ vector), r) for r in rows), reverse=True)[:top_k]
        return [Hit(table.ids[r], s, table.texts[r], table.metadata[r]) for s, r in scored]

    @staticmethod
    def _match(node, metadata):
        from vpa.filters import evaluate

        return evaluate(node, metadata)


class MiscountsWithFilter(MemoryStore):
    """count(filter) drops negations ($not) from the tree."""

    async def _count(self, info, node):
        return await super()._count(info, _rewrite(node, drop_not=True))


class IgnoresFilterOnDelete(MemoryStore):
    """delete(ids, filter) deletes every listed id, ignoring the filter."""

    async def _delete(self, info, ids, node):
        return await super()._delete(info, ids, None if ids is not None else node)


class MangledUnicode(MemoryStore):
    """Normalises text and string metadata to NFC on the way in."""

    async def _upsert(self, info, records):
        def fix(value):
            if isinstance(value, str):
                return unicodedata.normalize("NFC", value)
            if isinstance(value, list):
                return [fix(v) for v in value]
            return value

        records = [
            Record(r.id, r.vector, fix(r.text), {k: fix(v) for k, v in r.metadata.items()}) for r in records
        ]
        await super()._upsert(info, records)


class KeepsDuplicates(MemoryStore):
    """An upsert of an existing id appends a new row and keeps the old one searchable."""

    async def _upsert(self, info, records):
        table = self._require(info)
        with self._lock:
            for record in records:
                row = table.row_of.pop(record.id, None)
                if row is not None:
                    ghost = f"{record.id}#old{row}"
                    table.ids[row] = ghost
                    table.row_of[ghost] = row
        await super()._upsert(info, records)


class WrongLte(MemoryStore):
    """Declares $lte but evaluates it as $lt."""

    def _fix(self, node):
        return _rewrite(node, leaf=lambda c: attrs.evolve(c, op=FilterOp.LT) if c.op is FilterOp.LTE else c)

    async def _query(self, info, vector, top_k, node):
        return await super()._query(info, vector, top_k, self._fix(node))

    async def _count(self, info, node):
        return await super()._count(info, self._fix(node))

    async def _delete(self, info, ids, node):
        return await super()._delete(info, ids, self._fix(node))


class NeFalseOnMissing(MemoryStore):
    """$ne and $nin translated naively: false on records that lack the field (as a backend's
    native "not equal" often is)."""

    async def _count(self, info, node):
        from vpa.filters import evaluate

        table = self._require(info)
        if node is None:
            return table.size
        with self._lock:
            return sum(1 for m in table.metadata if _evaluate_naive(node, m, evaluate))


def _evaluate_naive(node, metadata, evaluate):
    if isinstance(node, Comparison):
        if node.op in (FilterOp.NE, FilterOp.NIN) and node.field not in metadata:
            return False
        return evaluate(node, metadata)
    if isinstance(node, Not):
        return not _evaluate_naive(node.child, metadata, evaluate)
    results = [_evaluate_naive(c, metadata, evaluate) for c in node.children]
    return all(results) if isinstance(node, And) else any(results)


class LosesConcurrentWrites(MemoryStore):
    """A write that arrives while another is in flight is acknowledged and silently dropped
    (a read-modify-write of a shared snapshot, the classic lost update)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._in_flight = 0

    async def _upsert(self, info, records):
        if self._in_flight:
            await asyncio.sleep(0)
            return
        self._in_flight += 1
        try:
            await asyncio.sleep(0.001)
            await super()._upsert(info, records)
        finally:
            self._in_flight -= 1


class BlocksEventLoop(MemoryStore):
    """Calls a synchronous client on the event loop (0.2 ms per record written)."""

    async def _upsert(self, info, records):
        time.sleep(0.0002 * len(records))
        await super()._upsert(info, records)


class NormalisesVectors(MemoryStore):
    """Stores unit vectors for cosine and returns them as stored, not as written."""

    async def _upsert(self, info, records):
        records = [
            Record(r.id, np.asarray(r.vector) / np.linalg.norm(r.vector), r.text, r.metadata) for r in records
        ]
        await super()._upsert(info, records)


class IntsBecomeFloats(MemoryStore):
    """Keeps every number as a float (a JSON layer that loses the int/float distinction)."""

    async def _upsert(self, info, records):
        def fix(v):
            return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

        records = [
            Record(r.id, r.vector, r.text, {k: fix(v) for k, v in r.metadata.items()}) for r in records
        ]
        await super()._upsert(info, records)


class AcceptsUndeclaredOperator(MemoryStore):
    """Declares no $nin but evaluates it anyway (skips the capability check)."""

    capabilities = StoreCapabilities(filter_operators=[op for op in FilterOp if op is not FilterOp.NIN])

    def prepare_filter(self, spec):
        from vpa.filters import parse_filter

        return parse_filter(spec)


class DeleteCountsRequested(MemoryStore):
    """delete(ids) reports how many ids were asked, not how many records it removed."""

    async def _delete(self, info, ids, node):
        removed = await super()._delete(info, ids, node)
        return len(ids) if ids is not None else removed


class ForgetsFingerprint(MemoryStore):
    """Does not keep the embedder fingerprint with the collection."""

    async def _create_collection(self, info):
        await super()._create_collection(attrs.evolve(info, fingerprint=None))

    async def _describe_collection(self, name):
        info = await super()._describe_collection(name)
        return None if info is None else attrs.evolve(info, fingerprint=None)


class IgnoresDeclaredLimits(MemoryStore):
    """Declares small bounds (64 filter terms, 8 levels, 32 metadata keys, 4 kB) but lets wider
    filters and larger records through to the backend (skips the base class's checks)."""

    capabilities = attrs.evolve(
        MemoryStore.capabilities,
        max_filter_terms=64,
        max_filter_depth=8,
        max_metadata_keys=32,
        max_metadata_bytes=4096,
    )

    def prepare_filter(self, spec):
        from vpa.filters import parse_filter

        return parse_filter(spec)

    def check_records(self, records, dimension):
        from vpa.validation import check_records

        caps = self.capabilities
        return check_records(records, dimension, caps.metadata_types, caps.max_record_bytes)


class BreaksBelowDeclaredLimits(MemoryStore):
    """Declares the default bounds, but its backend fails past 100 filter terms and 100 metadata
    keys (as Chroma's SQL does past its expression depth and variable count)."""

    @staticmethod
    def _check_filter(node):
        from vpa.errors import StoreError
        from vpa.filters import filter_size

        if filter_size(node).terms > 100:
            raise StoreError("Expression tree is too large (maximum depth 1000)")

    async def _count(self, info, node):
        self._check_filter(node)
        return await super()._count(info, node)

    async def _query(self, info, vector, top_k, node):
        self._check_filter(node)
        return await super()._query(info, vector, top_k, node)

    async def _delete(self, info, ids, node):
        self._check_filter(node)
        return await super()._delete(info, ids, node)

    async def _upsert(self, info, records):
        from vpa.errors import StoreError

        if any(len(r.metadata) > 100 for r in records):
            raise StoreError("Failed to apply logs to the metadata segment")
        await super()._upsert(info, records)


class ScrollDropsLastPage(MemoryStore):
    """scroll ends one page early: the page before the last says it is the last."""

    async def _scroll(self, info, node, limit, after, with_vectors):
        records, following = await super()._scroll(info, node, limit, after, with_vectors)
        if following is not None:
            _, beyond = await super()._scroll(info, node, limit, following, False)
            if beyond is None:
                return records, None
        return records, following


class ScrollByOffset(MemoryStore):
    """scroll positions are offsets into the current order: a delete before the cursor skips a
    record, an insert before it repeats one."""

    async def _scroll(self, info, node, limit, after, with_vectors):
        table = self._require(info)
        offset = int(after or 0)
        ordered = sorted(table.ids)
        matching = [i for i in ordered if node is None or evaluate(node, table.metadata[table.row_of[i]])]
        chosen = matching[offset : offset + limit]
        records = [table.record(table.row_of[i]) for i in chosen]
        following = str(offset + limit) if offset + limit < len(matching) else None
        return records, following


class UpdateTouchesVector(MemoryStore):
    """update rewrites the records it changes with their vector normalised (a read-modify-write
    that goes through a normalising read)."""

    async def _update(self, info, ids, node, set, unset):
        table = self._require(info)
        changed = await super()._update(info, ids, node, set, unset)
        with self._lock:
            for row in range(table.size):
                norm = float(np.linalg.norm(table.vectors[row]))
                if norm:
                    table.vectors[row] = table.vectors[row] / norm
        return changed


class UpdateIgnoresUnset(MemoryStore):
    """update sets keys but never removes the ones to unset."""

    async def _update(self, info, ids, node, set, unset):
        if not set:
            return await super()._count(info, node) if ids is None else len(await super()._get(info, ids))
        return await super()._update(info, ids, node, set, [])


class ExistsMeansNonEmpty(MemoryStore):
    """count treats a key holding an empty list as missing (a backend's is_empty for $exists)."""

    async def _count(self, info, node):
        table = self._require(info)
        return sum(
            node is None or evaluate(node, {k: v for k, v in table.metadata[r].items() if v != []})
            for r in range(table.size)
        )


class DatesAsStrings(MemoryStore):
    """Datetimes come back as their ISO strings (a backend without a date type, untagged)."""

    async def _get(self, info, ids):
        records = await super()._get(info, ids)
        return [
            Record(
                r.id,
                r.vector,
                r.text,
                {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in r.metadata.items()},
            )
            for r in records
        ]


class CapsLargeTopK(MemoryStore):
    """Returns at most 500 hits whatever top_k (an index's candidate list, silently short)."""

    async def _query(self, info, vector, top_k, node):
        hits = await super()._query(info, vector, top_k, node)
        return hits[:500]


#: broken store → the clauses that must fail for it
EXPECTED: dict[type[MemoryStore], tuple[str, ...]] = {
    DropsLastHit: ("test_query", "test_recall"),
    ReturnsDistances: ("test_query", "test_recall"),
    RanksByDotProduct: ("test_query",),
    MiscountsWithFilter: ("test_filter_semantics", "test_filter_operator[$not]"),
    IgnoresFilterOnDelete: ("test_delete_ids_and_filter",),
    MangledUnicode: ("test_round_trip", "test_unicode"),
    KeepsDuplicates: ("test_upsert_idempotent",),
    WrongLte: ("test_filter_operator[$lte]", "test_filter_semantics"),
    NeFalseOnMissing: ("test_filter_semantics",),
    LosesConcurrentWrites: ("test_concurrent_writes",),
    BlocksEventLoop: ("test_event_loop_not_blocked",),
    NormalisesVectors: ("test_round_trip",),
    IntsBecomeFloats: ("test_round_trip", "test_large_values"),
    AcceptsUndeclaredOperator: ("test_filter_operator[$nin]",),
    DeleteCountsRequested: ("test_delete_by_ids",),
    ForgetsFingerprint: ("test_embedder_fingerprint",),
    IgnoresDeclaredLimits: ("test_filter_limits", "test_metadata_limits"),
    BreaksBelowDeclaredLimits: ("test_filter_limits", "test_metadata_limits"),
    ScrollDropsLastPage: ("test_scroll",),
    ScrollByOffset: ("test_scroll_under_writes",),
    UpdateTouchesVector: ("test_update",),
    UpdateIgnoresUnset: ("test_update",),
    ExistsMeansNonEmpty: ("test_filter_semantics",),
    DatesAsStrings: ("test_metadata_type[datetime]",),
    CapsLargeTopK: ("test_recall_large_top_k",),
}


def _contract_class(store_class: type[MemoryStore]) -> type:
    class Contract(StoreContract):
        @pytest.fixture
        def store(self):
            return store_class()

    Contract.__name__ = Contract.__qualname__ = f"Test{store_class.__name__}"
    return Contract


for _store_class in EXPECTED:
    globals()[f"Test{_store_class.__name__}"] = _contract_class(_store_class)


# --- the snapshot round trip (vpa_conformance.store.portability; test_portability_clause) ---------


class ScrollIntsBecomeFloats(MemoryStore):
    """scroll pages carry every int of the metadata as a float (a listing path that decodes
    numbers as JSON doubles); get keeps them ints."""

    async def _scroll(self, info, node, limit, after, with_vectors):
        records, following = await super()._scroll(info, node, limit, after, with_vectors)

        def fix(v):
            return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

        return [
            Record(r.id, r.vector, r.text, {k: fix(v) for k, v in r.metadata.items()}) for r in records
        ], following


#: broken store → the portability clauses that must fail for it (run by test_portability_clause,
#: not by test_broken_stores)
PORTABILITY_EXPECTED: dict[type[MemoryStore], tuple[str, ...]] = {
    ScrollDropsLastPage: ("test_snapshot_round_trip",),
    ScrollIntsBecomeFloats: ("test_snapshot_round_trip",),
}

for _store_class in PORTABILITY_EXPECTED:
    globals().setdefault(f"Test{_store_class.__name__}", _contract_class(_store_class))


# --- lexical and hybrid search (vpa_conformance.store.lexical; test_lexical_clauses) ---------------


class LexicalIgnoresFilter(MemoryStore):
    """lexical_query answers the unfiltered top-k: the filter is dropped on the way to the
    lexical index (and so from the lexical half of a hybrid query)."""

    async def _lexical_query(self, info, text, terms, top_k, node):
        return await super()._lexical_query(info, text, terms, top_k, None)


class LexicalStatsFromFilteredSet(MemoryStore):
    """A filtered lexical query scores the matching records as if they were the whole collection
    (N, document frequencies and the average length of the filtered set only)."""

    async def _lexical_query(self, info, text, terms, top_k, node):
        if node is None:
            return await super()._lexical_query(info, text, terms, top_k, node)
        table = self._require(info)
        with self._lock:
            rows = [r for r in range(table.size) if evaluate(node, table.metadata[r])]
            scores = _bm25([table.texts[r] for r in rows], terms)
            order = sorted((i for i in range(len(rows)) if scores[i] > 0), key=lambda i: -scores[i])[:top_k]
            return [
                Hit(table.ids[rows[i]], float(scores[i]), table.texts[rows[i]], table.metadata[rows[i]])
                for i in order
            ]


class HybridDenseOnly(MemoryStore):
    """hybrid_query silently answers dense search alone (the lexical half never asked)."""

    async def _hybrid_query(self, info, vector, text, terms, top_k, node, fusion, alpha):
        return await self._query(info, vector, top_k, node)


class LexicalStaleAfterDelete(MemoryStore):
    """A lexical index kept beside the records is updated on upsert but not on delete: deleted
    texts still count in the statistics (deleted records themselves are not returned: the hits
    are joined with the records that exist)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sidecar: dict[str, dict[str, str]] = {}

    async def _create_collection(self, info):
        self._sidecar.pop(info.name, None)
        await super()._create_collection(info)

    async def _drop_collection(self, name):
        self._sidecar.pop(name, None)
        return await super()._drop_collection(name)

    async def _upsert(self, info, records):
        await super()._upsert(info, records)
        self._sidecar.setdefault(info.name, {}).update({r.id: r.text for r in records})

    async def _lexical_query(self, info, text, terms, top_k, node):
        table = self._require(info)
        indexed = self._sidecar.get(info.name, {})
        ids = list(indexed)
        scores = _bm25([indexed[i] for i in ids], terms)
        with self._lock:
            live = [
                (float(scores[j]), table.row_of[i])
                for j, i in enumerate(ids)
                if scores[j] > 0
                and i in table.row_of
                and (node is None or evaluate(node, table.metadata[table.row_of[i]]))
            ]
            live.sort(key=lambda pair: -pair[0])
            return [Hit(table.ids[r], s, table.texts[r], table.metadata[r]) for s, r in live[:top_k]]


#: broken store → the lexical clauses that must fail for it (run by test_lexical_clauses, not by
#: test_broken_stores)
LEXICAL_EXPECTED: dict[type[MemoryStore], tuple[str, ...]] = {
    LexicalIgnoresFilter: ("test_lexical_filters", "test_hybrid_query", "test_lexical_recall"),
    LexicalStatsFromFilteredSet: ("test_lexical_filters", "test_lexical_recall"),
    HybridDenseOnly: ("test_hybrid_query", "test_state_machine"),
    LexicalStaleAfterDelete: ("test_lexical_query", "test_state_machine"),
}

for _store_class in LEXICAL_EXPECTED:
    globals().setdefault(f"Test{_store_class.__name__}", _contract_class(_store_class))


def _bm25(texts, terms):
    """BM25 of each of ``texts`` as a collection of its own (the mutants' wrong statistics)."""
    from vpa.lexical import Bm25Index

    index = Bm25Index()
    for position, text in enumerate(texts):
        index.set(position, text)
    found = index.scores(terms)
    return [found.get(position, 0.0) for position in range(len(texts))]
