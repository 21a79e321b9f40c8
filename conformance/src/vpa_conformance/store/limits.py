"""Clauses on declared bounds: a store survives its maxima and refuses one past them."""

from __future__ import annotations

from typing import Any

from vpa.filters import MAX_FILTER_DEPTH, MAX_FILTER_TERMS
from vpa.models import (
    FilterOp,
    Record,
)
from vpa.validation import metadata_bytes

from vpa_conformance import strategies as vst
from vpa_conformance.checks import ContractViolation, check_hits, fail
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle
from vpa_conformance.store.common import (
    _backend_untouched,
    _check_unchanged,
    _fill,
    _raises_limit,
)


class LimitClauses:
    """Clauses on declared bounds: a store survives its maxima and refuses one past them. Mixed into `StoreContract`."""

    # --- declared limits -------------------------------------------------------------------------

    def test_filter_limits(self, vpa_store: StoreHarness) -> None:
        """Filters of exactly max_filter_terms terms — in every shape the declared operators allow
        (wide $or, $in/$nin, $and of $ne, $not of an $and of ordering comparisons) — and one of
        exactly max_filter_depth levels with max_filter_terms terms agree with the reference in
        count, query and delete; one term or one level more raises LimitExceeded naming the bound
        from count, query and delete, before any I/O, and nothing changes."""
        h = vpa_store
        caps = h.capabilities
        terms = min(caps.max_filter_terms, MAX_FILTER_TERMS)
        depth = min(caps.max_filter_depth, MAX_FILTER_DEPTH)
        at_max = vst.wide_filters(caps, terms)
        deep = vst.deep_filter(caps, depth, terms)
        if deep is not None:
            at_max.append((f"{depth} levels, {terms} terms", deep))
        if not at_max:
            h.not_declared()
            return
        dim = 4
        records = vst.limit_records(dim, caps)
        vector = [1.0, 0.5, -0.25, 0.125]
        top_k = h.clamp_top_k(5)
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            for label, spec in at_max:
                try:
                    got, want = h.count(name, spec), oracle.count(spec)
                    hits = h.query(name, vector, top_k, spec)
                except Exception as exc:
                    fail(
                        f"a filter at the declared maxima ({label}) failed: {type(exc).__name__}: "
                        f"{str(exc)[:300]}; declare max_filter_terms/max_filter_depth the backend survives"
                    )
                if got != want:
                    fail(
                        f"count with a filter at the declared maxima ({label}) is {got}; {want} records match"
                    )
                check_hits(hits, oracle, vector, top_k, spec, caps)
            label, spec = at_max[-1]
            removed, expected = h.delete(name, filter=spec), oracle.delete(filter=spec)
            if removed != expected:
                fail(
                    f"delete with a filter at the declared maxima ({label}) removed {removed}; "
                    f"{expected} matched"
                )
            _check_unchanged(h, name, oracle)
            over: list[tuple[str, str, dict[str, Any]]] = []
            wider = vst.wide_filters(caps, terms + 1)
            if wider:
                over.append(("max_filter_terms", *wider[0]))
            deeper = vst.deep_filter(caps, depth + 1, terms)
            if deeper is not None:
                over.append(("max_filter_depth", f"{depth + 1} levels", deeper))
            ids = [r.id for r in records]
            for limit, label, spec in over:
                calls = {
                    "count": lambda spec=spec: h.count(name, spec),
                    "query": lambda spec=spec: h.query(name, vector, top_k, spec),
                    "delete": lambda spec=spec: h.delete(name, filter=spec),
                    "delete(ids, filter)": lambda spec=spec: h.delete(name, ids=ids, filter=spec),
                }
                with _backend_untouched(h.store, f"a filter past {limit} ({label})"):
                    for call_name, call in calls.items():
                        _raises_limit(limit, call, f"{call_name} with a filter past {limit} ({label})")
            _check_unchanged(h, name, oracle)

    def test_metadata_limits(self, vpa_store: StoreHarness) -> None:
        """A record with exactly max_metadata_keys keys, and one with exactly max_metadata_bytes
        bytes of metadata (as many list items as fit: the worst case for a backend that stores
        items apart), round-trip and filter; one key or one byte more raises LimitExceeded naming
        the bound before any I/O, and nothing of the batch is written."""
        h = vpa_store
        caps = h.capabilities
        keys = vst.metadata_with_keys(caps, caps.max_metadata_keys)
        room = caps.max_metadata_bytes
        if caps.max_record_bytes is not None:  # text "" and the JSON list around it: 6 bytes
            room = min(room, caps.max_record_bytes - 6)
        sized = vst.metadata_of_bytes(caps, room)
        if not keys:
            h.not_declared()
            return
        with h.collection(2) as name:
            oracle = Oracle(2)
            fits = [Record("max-keys", [1.0, 0.0], "", keys)]
            if sized is not None:
                fits.append(Record("max-bytes", [0.0, 1.0], "", sized))
            for record in fits:
                try:
                    _fill(h, name, oracle, [record])
                except ContractViolation:
                    raise
                except Exception as exc:
                    fail(
                        f"a record at the declared maxima ({record.id}: {len(record.metadata)} keys, "
                        f"{metadata_bytes(record.metadata)} bytes of metadata) failed: {type(exc).__name__}: "
                        f"{str(exc)[:300]}; declare max_metadata_keys/max_metadata_bytes the backend survives"
                    )
            _fill(h, name, oracle, [Record("after", [1.0, 1.0], "after", {})])
            _check_unchanged(h, name, oracle)
            key, value = next(iter(keys.items()))
            if FilterOp.EQ in caps.filter_operators and not isinstance(value, list):
                spec = {key: value}
                if h.count(name, spec) != oracle.count(spec):
                    fail(f"count({spec!r}) on a record with max_metadata_keys keys is {h.count(name, spec)}")
            over = [
                (
                    "max_metadata_keys",
                    Record("over-keys", [1.0, 2.0], "", vst.metadata_with_keys(caps, len(keys) + 1)),
                )
            ]
            too_big = vst.metadata_of_bytes(caps, caps.max_metadata_bytes + 1)
            if too_big is not None:
                over.append(("max_metadata_bytes", Record("over-bytes", [2.0, 1.0], "", too_big)))
            for limit, bad in over:
                batch = [Record("fresh", [1.0, 3.0], "fresh", {}), bad]
                with _backend_untouched(h.store, f"an upsert past {limit}"):
                    _raises_limit(limit, lambda batch=batch: h.upsert(name, batch), f"an upsert past {limit}")
            _check_unchanged(h, name, oracle, ["fresh", "over-keys", "over-bytes"])
