"""Clauses on the filter language and metadata types, against the reference evaluator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import (
    UnsupportedFilter,
    UnsupportedMetadata,
)
from vpa.filters import ORDERING_OPS
from vpa.models import (
    FilterOp,
    MetadataType,
    Record,
    StoreCapabilities,
)

from vpa_conformance import strategies as vst
from vpa_conformance.checks import check_hits, fail
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import (
    ALL_OPS,
    ALL_TYPES,
    BASE_EXAMPLES,
    DIMENSIONS,
    _check_unchanged,
    _fields,
    _fill,
    _has_filters,
    _raises,
    _values_of,
)

#: Datetimes of the filter-semantics table (contract 1.1): before the epoch, at a whole second in
#: another offset, and one with microseconds.
_DATES = (
    dt.datetime(1969, 7, 20, 20, 17, 40, tzinfo=dt.UTC),
    dt.datetime(2024, 5, 1, 14, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=dt.UTC),
)


class FilterClauses:
    """Clauses on the filter language and metadata types, against the reference evaluator. Mixed into `StoreContract`."""

    # --- filters -------------------------------------------------------------------------------

    def _check_filters(
        self, h: StoreHarness, name: str, oracle: Oracle, dim: int, specs: list[Any], data: st.DataObject
    ) -> None:
        """count, query and (for the last filter) delete agree with the reference evaluator."""
        for spec in specs:
            got = h.count(name, spec)
            want = oracle.count(spec)
            if got != want:
                fail(f"count(filter={spec!r}) is {got}; {want} records match")
            vector = data.draw(vst.vectors(dim), label="query vector")
            top_k = h.clamp_top_k(data.draw(st.integers(1, max(1, len(oracle.records) + 2)), label="top_k"))
            check_hits(
                h.query(name, vector, top_k=top_k, filter=spec), oracle, vector, top_k, spec, h.capabilities
            )
        spec = specs[-1]
        removed = h.delete(name, filter=spec)
        expected = oracle.delete(filter=spec)
        if removed != expected:
            fail(f"delete(filter={spec!r}) returned {removed!r}; {expected} records matched")
        _check_unchanged(h, name, oracle)

    @clause_settings(BASE_EXAMPLES["filters"])
    @given(data=st.data())
    def test_filters(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """For generated filter trees over generated metadata, count, query and delete agree
        with vpa.filters.evaluate."""
        h = vpa_store
        caps = h.capabilities
        if not _has_filters(caps):
            h.not_declared()
            return
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(caps), label="schema")
        records = data.draw(vst.record_lists(dim, caps, max_size=20, schema=schema), label="records")
        fields, values = _fields(schema), _values_of(records)
        specs = data.draw(
            st.lists(vst.filter_dicts(fields, values, caps), min_size=1, max_size=3), label="filters"
        )
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            self._check_filters(h, name, oracle, dim, specs, data)

    @pytest.mark.parametrize("op", ALL_OPS, ids=[op.value for op in ALL_OPS])
    @clause_settings(BASE_EXAMPLES["filter_operator"])
    @given(data=st.data())
    def test_filter_operator(self, vpa_store: StoreHarness, op: FilterOp, data: st.DataObject) -> None:
        """A declared operator agrees with the reference in count, query and delete; an
        undeclared one raises UnsupportedFilter and changes nothing."""
        h = vpa_store
        caps = h.capabilities
        dim = data.draw(DIMENSIONS, label="dimension")
        numeric = [t for t in (MetadataType.INT, MetadataType.FLOAT) if t in caps.metadata_types]
        if op in ORDERING_OPS and numeric:  # boundaries matter: compare numbers with numbers
            schema = data.draw(vst.metadata_schemas(caps, max_keys=2, types=numeric), label="schema")
        else:
            schema = data.draw(vst.metadata_schemas(caps, max_keys=3), label="schema")
        records = data.draw(
            vst.record_lists(dim, caps, min_size=1, max_size=15, schema=schema), label="records"
        )
        fields, values = _fields(schema), _values_of(records)
        specs = data.draw(
            st.lists(vst.filter_dicts(fields, values, caps, require=op), min_size=1, max_size=3),
            label="filters",
        )
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            if op in caps.filter_operators:
                self._check_filters(h, name, oracle, dim, specs, data)
                self._check_boundaries(h, name, oracle, op, values)
                return
            h.not_declared()
            vector = data.draw(vst.vectors(dim), label="query vector")
            for spec in specs:
                _raises(
                    UnsupportedFilter, lambda spec=spec: h.count(name, spec), f"count with undeclared {op}"
                )
                _raises(
                    UnsupportedFilter,
                    lambda spec=spec: h.query(name, vector, 3, spec),
                    f"query with undeclared {op}",
                )
                _raises(
                    UnsupportedFilter,
                    lambda spec=spec: h.delete(name, filter=spec),
                    f"delete with undeclared {op}",
                )
                _raises(
                    UnsupportedFilter,
                    lambda spec=spec: h.delete(name, ids=[r.id for r in records], filter=spec),
                    f"delete(ids, filter) with undeclared {op}",
                )
            _check_unchanged(h, name, oracle)

    @staticmethod
    def _check_boundaries(
        h: StoreHarness, name: str, oracle: Oracle, op: FilterOp, values: dict[str, list[Any]]
    ) -> None:
        """Ordering operators at their boundary, every time: each field compared with values the
        records hold (``$lte`` vs ``$lt`` differ exactly there), not only when the draw says so."""
        if op not in ORDERING_OPS:
            return
        for field, pool in values.items():
            numbers = sorted({v for v in pool if vst.value_kind(v) == "number"})[:4]
            dates = sorted({v for v in pool if vst.value_kind(v) == "datetime"})[:4]
            for value in [*numbers, *dates]:
                spec = {field: {op.value: value}}
                got, want = h.count(name, spec), oracle.count(spec)
                if got != want:
                    fail(f"count({spec!r}) is {got}; {want} records match (a value a record holds)")

    def test_filter_semantics(self, vpa_store: StoreHarness) -> None:
        """The edge cases of vpa.filters, one by one: missing fields ($ne/$nin true, others
        false), int equals float, bool is not a number, str never equals a number, $eq/$in on a
        list mean "contains", ordering on lists and strings is false, $not is the complement."""
        h = vpa_store
        caps = h.capabilities
        typed = {
            MetadataType.INT: ("i", [1, 2, -3, 0]),
            MetadataType.FLOAT: ("x", [1.0, 2.5, -3.0, 0.0]),
            MetadataType.STR: ("s", ["1", "x", "", "X"]),
            MetadataType.BOOL: ("b", [True, False, True, False]),
            MetadataType.STR_LIST: ("l", [["x", "y"], ["1"], ["x"], ["z", "x", "z"]]),
            MetadataType.EMPTY_LIST: ("e", [[], [], [], []]),
            MetadataType.DATETIME: ("d", [_DATES[0], _DATES[1], _DATES[2], _DATES[0]]),
        }
        declared = {t: v for t, v in typed.items() if t in caps.metadata_types}
        records = []
        for row in range(5):  # each field is missing from one record; the fifth has no metadata at all
            metadata = {
                key: values[row]
                for index, (key, values) in enumerate(declared.values())
                if row < 4 and (row + index) % 4 != 3
            }
            records.append(Record(f"r{row}", [1.0, float(row)], f"t{row}", metadata))
        fields = [key for key, _ in declared.values()] + [vst.ABSENT_FIELD]
        probes: list[Any] = [1, 1.0, 2, 2.5, 0, -3, True, False, "1", "x", "", "y"]
        if MetadataType.DATETIME in caps.metadata_types:
            probes += [*_DATES, _DATES[1] + dt.timedelta(microseconds=1)]
        specs: list[dict[str, Any]] = []
        for field in fields:
            # missing and null (1.1): $exists, and Haystack's spellings with None
            specs += [{field: {"$exists": True}}, {field: {"$exists": False}}]
            specs += [{field: None}, {field: {"$ne": None}}]
            for value in probes:
                specs += [{field: {op.value: value}} for op in (FilterOp.EQ, FilterOp.NE)]
                if vst.value_kind(value) in ("number", "datetime"):
                    specs += [
                        {field: {op.value: value}}
                        for op in (FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE)
                    ]
                same_kind = [p for p in probes if vst.value_kind(p) == vst.value_kind(value) and p != value][
                    :1
                ]
                specs += [{field: {op.value: [value, *same_kind]}} for op in (FilterOp.IN, FilterOp.NIN)]
        usable = [s for s in specs if self._declared_filter(s, caps)]
        if not usable:
            h.not_declared()
            return
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(h, name, oracle, records)
            wrong = []
            for spec in usable:
                got, want = h.count(name, spec), oracle.count(spec)
                if got != want:
                    wrong.append(f"count({spec!r}) is {got}, expected {want}")
                if FilterOp.NOT in caps.filter_operators:
                    negated = {"$not": spec}
                    got_not = h.count(name, negated)
                    if got_not != len(records) - want:
                        wrong.append(f"count({negated!r}) is {got_not}, expected {len(records) - want}")
            if wrong:
                fail(
                    f"{len(wrong)} of {len(usable)} filters disagree with vpa.filters:\n  "
                    + "\n  ".join(wrong[:15])
                )

    @staticmethod
    def _declared_filter(spec: dict[str, Any], caps: StoreCapabilities) -> bool:
        from vpa.filters import operators_used, parse_filter

        return operators_used(parse_filter(spec)) <= caps.filter_operators

    @pytest.mark.parametrize("kind", ALL_TYPES, ids=[t.value.replace(" ", "-") for t in ALL_TYPES])
    @clause_settings(BASE_EXAMPLES["metadata_type"])
    @given(data=st.data())
    def test_metadata_type(self, vpa_store: StoreHarness, kind: MetadataType, data: st.DataObject) -> None:
        """A declared metadata type round-trips and filters like the reference; an undeclared one
        raises UnsupportedMetadata and nothing of the batch is written."""
        h = vpa_store
        caps = h.capabilities
        dim = data.draw(DIMENSIONS, label="dimension")
        declared = kind in caps.metadata_types
        if declared:
            schema = data.draw(vst.metadata_schemas(caps, types=[kind]), label="schema")
            records = data.draw(
                vst.record_lists(dim, caps, min_size=1, max_size=10, schema=schema), label="records"
            )
            with h.collection(dim) as name:
                oracle = Oracle(dim)
                _fill(h, name, oracle, records)
                _check_unchanged(h, name, oracle)
                if _has_filters(caps):
                    fields, values = _fields(schema), _values_of(records)
                    specs = data.draw(
                        st.lists(vst.filter_dicts(fields, values, caps), min_size=1, max_size=2)
                    )
                    self._check_filters(h, name, oracle, dim, specs, data)
            return
        h.not_declared()
        others = [t for t in ALL_TYPES if t in caps.metadata_types]
        schema = data.draw(vst.metadata_schemas(caps, types=others), label="schema") if others else {}
        records = data.draw(
            vst.record_lists(dim, caps, min_size=1, max_size=6, schema=schema), label="records"
        )
        value = data.draw(vst.metadata_values(types=[kind]), label="undeclared value")
        key = data.draw(vst.metadata_keys(caps).filter(lambda k: k not in schema), label="key")
        bad = data.draw(vst.records(dim, caps, schema=schema), label="bad record")
        bad = Record(bad.id, bad.vector, bad.text, {**bad.metadata, key: value})
        batch = data.draw(st.permutations([*records[1:], bad]), label="batch")
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records[:1])
            _raises(
                UnsupportedMetadata,
                lambda: h.upsert(name, batch),
                f"upsert of undeclared metadata type {kind}",
            )
            _check_unchanged(h, name, oracle, [r.id for r in batch])

    def test_heterogeneous_fields(self, vpa_store: StoreHarness) -> None:
        """With heterogeneous_fields, one key may hold different types across records and filters
        compare by type; without, a write that changes a key's type raises UnsupportedMetadata
        and nothing changes."""
        h = vpa_store
        caps = h.capabilities
        samples = {
            MetadataType.STR: "1",
            MetadataType.INT: 1,
            MetadataType.FLOAT: 1.5,
            MetadataType.BOOL: True,
            MetadataType.STR_LIST: ["1", "a"],
        }
        declared = [(t, v) for t, v in samples.items() if t in caps.metadata_types]
        if len(declared) < 2:
            h.not_declared()
            return
        with h.collection(2) as name:
            oracle = Oracle(2)
            if caps.heterogeneous_fields:
                records = [Record(f"h{i}", [1.0, i], "", {"f": v}) for i, (_, v) in enumerate(declared)]
                _fill(h, name, oracle, records)
                _check_unchanged(h, name, oracle)
                for _, value in declared:
                    probe = value[0] if isinstance(value, list) else value
                    for op in (FilterOp.EQ, FilterOp.NE):
                        spec = {"f": {op.value: probe}}
                        if op in caps.filter_operators and h.count(name, spec) != oracle.count(spec):
                            fail(f"count({spec!r}) is {h.count(name, spec)}; expected {oracle.count(spec)}")
                return
            h.not_declared()
            (_, first), (_, second) = declared[0], declared[1]
            _fill(h, name, oracle, [Record("h0", [1.0, 0.0], "", {"f": first})])
            _raises(
                UnsupportedMetadata,
                lambda: h.upsert(name, [Record("h1", [0.0, 1.0], "", {"f": second})]),
                "a write that gives a key another type (heterogeneous_fields=False)",
            )
            _check_unchanged(h, name, oracle, ["h1"])
