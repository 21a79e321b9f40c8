"""Clauses on queries: top-k against the reference, recall, max_top_k."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import (
    ValidationError,
)
from vpa.models import (
    FilterOp,
    MetadataType,
    Record,
)

from vpa_conformance import strategies as vst
from vpa_conformance.checks import check_hits, fail, recall
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import (
    BASE_EXAMPLES,
    DIMENSIONS,
    _fill,
    _raises,
)


class QueryClauses:
    """Clauses on queries: top-k against the reference, recall, max_top_k. Mixed into `StoreContract`."""

    # --- query ---------------------------------------------------------------------------------

    @clause_settings(BASE_EXAMPLES["query"])
    @given(data=st.data())
    def test_query(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """query returns at most top_k hits, best first, scored by cosine similarity (within 1e-4);
        an exact store returns exactly the reference top-k."""
        h = vpa_store
        dim = data.draw(DIMENSIONS, label="dimension")
        records = data.draw(vst.record_lists(dim, h.capabilities, min_size=1, max_size=25), label="records")
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            for _ in range(data.draw(st.integers(1, 3), label="queries")):
                stored = st.sampled_from([list(map(float, r.vector)) for r in records])
                vector = data.draw(st.one_of(vst.vectors(dim), stored), label="query vector")
                top_k = h.clamp_top_k(data.draw(st.integers(1, len(records) + 3), label="top_k"))
                check_hits(h.query(name, vector, top_k=top_k), oracle, vector, top_k, None, h.capabilities)

    def test_recall(self, vpa_store: StoreHarness) -> None:
        """On 400 random 32-d vectors, 20 queries of top 10 (and 10 filtered ones): an exact store
        returns the reference top-k, an approximate one reaches its declared min_recall."""
        h = vpa_store
        caps = h.capabilities
        rng = np.random.default_rng(20240601)
        n, dim, k = 400, 32, h.clamp_top_k(10)
        centers = rng.standard_normal((8, dim))
        vectors = (centers[rng.integers(0, 8, n)] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)
        use_int = MetadataType.INT in caps.metadata_types
        records = [Record(f"v{i}", vectors[i], "", {"bucket": i % 3} if use_int else {}) for i in range(n)]
        queries = (centers[rng.integers(0, 8, 20)] + 0.6 * rng.standard_normal((20, dim))).astype(np.float32)
        filtered = use_int and FilterOp.EQ in caps.filter_operators
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            recalls = []
            for i, q in enumerate(queries):
                spec = {"bucket": 1} if filtered and i % 2 else None
                hits = h.query(name, q.tolist(), top_k=k, filter=spec)
                check_hits(hits, oracle, q.tolist(), k, spec, caps)
                recalls.append(recall(hits, oracle, q.tolist(), k, spec))
            mean = float(np.mean(recalls))
            h.node.user_properties.append(("vpa_recall", round(mean, 4)))
            needed = 1.0 if caps.exact else caps.min_recall
            if mean + 1e-9 < needed:
                fail(f"mean recall@{k} is {mean:.3f}; the store declares {needed}")

    def test_recall_large_top_k(self, vpa_store: StoreHarness) -> None:
        """Contract 1.1: recall holds at any top_k up to max_top_k (1,000 here), also when many
        records share one vector: 2,000 16-d records, 800 of them copies of 8 vectors; queries
        at a copied vector and elsewhere, unfiltered and filtered. Exact stores return the
        reference top-k; approximate ones reach min_recall on every query."""
        h = vpa_store
        caps = h.capabilities
        if not caps.contract_1_1:
            h.not_declared()
            return
        rng = np.random.default_rng(20261203)
        dim, copies, distinct = 16, 100, 8
        k = h.clamp_top_k(1000)
        shared = rng.standard_normal((distinct, dim))
        centers = rng.standard_normal((6, dim))
        spread = centers[rng.integers(0, 6, 1200)] + 0.5 * rng.standard_normal((1200, dim))
        vectors = np.concatenate([np.repeat(shared, copies, axis=0), spread]).astype(np.float32)
        use_int = MetadataType.INT in caps.metadata_types
        records = [
            Record(f"d{i:04d}", vectors[i], "", {"bucket": i % 4} if use_int else {})
            for i in range(len(vectors))
        ]
        filtered = use_int and FilterOp.IN in caps.filter_operators
        queries = [
            shared[0],
            shared[3] + 0.01 * rng.standard_normal(dim),
            centers[1],
            rng.standard_normal(dim),
        ]
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            worst = 1.0
            for i, q in enumerate(queries):
                vector = [float(x) for x in q]
                for spec in [None, {"bucket": {"$in": [1, 2]}}] if filtered else [None]:
                    hits = h.query(name, vector, top_k=k, filter=spec)
                    check_hits(hits, oracle, vector, k, spec, caps)
                    got = recall(hits, oracle, vector, k, spec)
                    worst = min(worst, got)
                    needed = 1.0 if caps.exact else caps.min_recall
                    if got + 1e-9 < needed:
                        fail(
                            f"query {i} (filter={spec!r}) at top_k={k} found {got:.3f} of the reference "
                            f"top-k ({len(hits)} hits); the store declares min_recall {needed}"
                        )
            h.node.user_properties.append(("vpa_recall", round(worst, 4)))

    def test_max_top_k(self, vpa_store: StoreHarness) -> None:
        """A store that declares max_top_k answers top_k up to it and refuses more with
        ValidationError; top_k must be a positive int."""
        h = vpa_store
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(h, name, oracle, [Record("a", [1, 0], "", {})])
            for bad in (0, -1, True, 1.5, "3"):
                _raises(ValidationError, lambda bad=bad: h.query(name, [1, 0], top_k=bad), f"top_k={bad!r}")
            limit = h.capabilities.max_top_k
            if limit is None:
                check_hits(h.query(name, [1, 0], top_k=10_000), oracle, [1, 0], 10_000, None, h.capabilities)
                h.not_declared()
                return
            check_hits(h.query(name, [1, 0], top_k=limit), oracle, [1, 0], limit, None, h.capabilities)
            _raises(ValidationError, lambda: h.query(name, [1, 0], top_k=limit + 1), "top_k above max_top_k")
