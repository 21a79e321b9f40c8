"""Clauses on records: round trips, idempotent upserts, get and delete."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import (
    RecordTooLarge,
    ValidationError,
)
from vpa.models import (
    FilterOp,
    MetadataType,
    Record,
)
from vpa.validation import MAX_SAFE_INT, metadata_bytes, record_bytes

from vpa_conformance import strategies as vst
from vpa_conformance.checks import check_get, fail
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import (
    BASE_EXAMPLES,
    DIMENSIONS,
    _check_unchanged,
    _fields,
    _fill,
    _has_filters,
    _raises,
    _values_of,
)


class RecordClauses:
    """Clauses on records: round trips, idempotent upserts, get and delete. Mixed into `StoreContract`."""

    # --- records -------------------------------------------------------------------------------

    @clause_settings(BASE_EXAMPLES["round_trip"])
    @given(data=st.data())
    def test_round_trip(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """upsert then get returns the same text and metadata (types kept: int, float, bool, str,
        list of str; unicode; empty values; range edges) and the vector within 1e-5."""
        h = vpa_store
        dim = data.draw(DIMENSIONS, label="dimension")
        records = data.draw(vst.record_lists(dim, h.capabilities, min_size=1, max_size=10), label="records")
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            asked = data.draw(st.permutations([r.id for r in records]), label="get order")
            check_get(h.get(name, asked), oracle, asked)
            if h.count(name) != len(records):
                fail(f"count() is {h.count(name)} after writing {len(records)} records")

    def test_unicode(self, vpa_store: StoreHarness) -> None:
        """Every tricky text (decomposed accents, ligatures, emoji sequences, right-to-left, zero
        width, NUL and control characters, JSON- and SQL-looking) round-trips unchanged as text,
        as a metadata string and in a list; tricky ids (numeric-looking, UUIDs, 512 characters)
        stay distinct; equality filters match them exactly."""
        h = vpa_store
        caps = h.capabilities
        texts = list(vst.TRICKY_TEXTS)
        ids = list(dict.fromkeys([*vst.TRICKY_IDS, *(f"u{i}" for i in range(len(texts)))]))
        records = []
        for i, record_id in enumerate(ids):
            text = texts[i % len(texts)]
            metadata = {"s": text, "l": [text, texts[(i + 1) % len(texts)]], "n": i}
            records.append(
                self._declared_only(Record(record_id, [1.0, float(i % 7) + 0.5], text, metadata), caps)
            )
        records = [
            r for r in records if caps.max_record_bytes is None or record_bytes(r) <= caps.max_record_bytes
        ]
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(h, name, oracle, records)
            _check_unchanged(h, name, oracle)
            if FilterOp.EQ in caps.filter_operators and MetadataType.STR in caps.metadata_types:
                for text in texts:
                    got, want = h.count(name, {"s": text}), oracle.count({"s": text})
                    if got != want:
                        fail(f"count({{'s': {text!r}}}) is {got}; {want} records hold exactly that string")

    def test_large_values(self, vpa_store: StoreHarness) -> None:
        """Large text, long strings and lists, and the edges of the int and float ranges
        round-trip unchanged; a record exactly at max_record_bytes is accepted, one byte more is
        RecordTooLarge."""
        h = vpa_store
        caps = h.capabilities
        metadata: dict[str, Any] = {
            "big_int": MAX_SAFE_INT,
            "small_int": -MAX_SAFE_INT,
            "zero_int": 0,
            "huge_float": 1.7976931348623157e308,
            "tiny_float": 5e-324,
            "neg_zero": -0.0,
            "whole_float": 3.0,
            "true_flag": True,
            "false_flag": False,
            "long_str": "\u00e9\U0001f600x" * 300,
            "empty_str": "",
            "long_list": [f"item {i} \u00fc" for i in range(100)],
            "empty_list": [],
        }
        base = self._declared_only(Record("big", [1.0, 2.0, 3.0], "", metadata), caps)
        limit = caps.max_record_bytes or 200_000
        room = limit - record_bytes(base)
        if room < 0 or metadata_bytes(base.metadata) > caps.max_metadata_bytes:
            base = Record("big", [1.0, 2.0, 3.0], "", {})
            room = limit - record_bytes(base)
        unit = "\u00e9\U0001f600a\n"  # 2 + 4 + 1 + 2 ("\\n" in JSON) bytes = 9
        text = unit * (room // 9)
        text += "a" * (limit - record_bytes(Record("big", [1], text, base.metadata)))
        record = Record("big", [1.0, 2.0, 3.0], text, base.metadata)
        with h.collection(3) as name:
            oracle = Oracle(3)
            _fill(h, name, oracle, [record])
            _check_unchanged(h, name, oracle)
            if caps.max_record_bytes is None:
                return
            over = Record("over", [1.0, 0, 0], text + "a", base.metadata)
            _raises(RecordTooLarge, lambda: h.upsert(name, [over]), "a record one byte over max_record_bytes")
            _check_unchanged(h, name, oracle, ["over"])

    @clause_settings(BASE_EXAMPLES["upsert_idempotent"])
    @given(data=st.data())
    def test_upsert_idempotent(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """The same id twice leaves one record, the newest, also within one batch; upsert returns
        the number of distinct ids."""
        h = vpa_store
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(h.capabilities), label="schema")
        first = data.draw(
            vst.record_lists(dim, h.capabilities, min_size=1, max_size=8, schema=schema, unique_ids=False),
            label="first batch",
        )
        known = [r.id for r in first]
        reused = st.sampled_from(known)
        second_ids = data.draw(
            st.lists(st.one_of(reused, vst.ids()), min_size=1, max_size=8), label="second ids"
        )
        second = [data.draw(vst.records(dim, h.capabilities, schema=schema, id=i)) for i in second_ids]
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, first)
            _check_unchanged(h, name, oracle)
            _fill(h, name, oracle, second)
            _check_unchanged(h, name, oracle)
            _fill(h, name, oracle, second)  # the very same batch again changes nothing
            _check_unchanged(h, name, oracle)

    def test_large_batch(self, vpa_store: StoreHarness) -> None:
        """A batch larger than the backend's own limit (max_batch_size) succeeds, newest wins
        across the split, and every record is stored."""
        h = vpa_store
        limit = h.capabilities.max_batch_size
        size = limit + limit // 2 + 1 if limit else 1500
        rng = np.random.default_rng(7)
        vectors = rng.standard_normal((size, 4)).astype(np.float32)
        with_int = MetadataType.INT in h.capabilities.metadata_types
        records = [
            Record(f"r{i}", vectors[i], f"text {i}", {"i": i} if with_int else {}) for i in range(size)
        ]
        records.append(Record("r0", vectors[0] * 2 + 1, "newest", {"i": -1} if with_int else {}))
        with h.collection(4) as name:
            oracle = Oracle(4)
            _fill(h, name, oracle, records)
            if h.count(name) != size:
                fail(f"count() is {h.count(name)} after one upsert of {size} distinct ids")
            probe = sorted(
                {0, 1, size // 2, size - 1, *(range(limit - 2, min(limit + 2, size)) if limit else [])}
            )
            asked = [f"r{i}" for i in probe]
            check_get(h.get(name, asked), oracle, asked)

    @clause_settings(BASE_EXAMPLES["get_order"])
    @given(data=st.data())
    def test_get_order_and_missing(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """get returns the records that exist, in the order asked, each once; missing ids are
        left out, not errors."""
        h = vpa_store
        dim = data.draw(DIMENSIONS, label="dimension")
        records = data.draw(vst.record_lists(dim, h.capabilities, max_size=8), label="records")
        present = [r.id for r in records]
        asked = data.draw(
            st.lists(st.one_of(st.sampled_from(present), vst.ids()) if present else vst.ids(), max_size=14),
            label="asked",
        )
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            check_get(h.get(name, asked), oracle, asked)
            if h.get(name, []) != []:
                fail("get([]) must return []")

    @clause_settings(BASE_EXAMPLES["delete_by_ids"])
    @given(data=st.data())
    def test_delete_by_ids(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """delete(ids) removes exactly those that exist and returns how many; missing ids are not
        errors; deleting again removes 0."""
        h = vpa_store
        dim = data.draw(DIMENSIONS, label="dimension")
        records = data.draw(vst.record_lists(dim, h.capabilities, min_size=1, max_size=10), label="records")
        present = [r.id for r in records]
        doomed = data.draw(st.lists(st.one_of(st.sampled_from(present), vst.ids()), max_size=8), label="ids")
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            removed = h.delete(name, ids=doomed)
            expected = oracle.delete(ids=doomed)
            if removed != expected:
                fail(f"delete(ids={doomed!r}) returned {removed!r}; {expected} of them existed")
            _check_unchanged(h, name, oracle, doomed)
            if doomed and h.delete(name, ids=doomed) != 0:
                fail("deleting already deleted ids must return 0")

    @clause_settings(BASE_EXAMPLES["delete_ids_and_filter"])
    @given(data=st.data())
    def test_delete_ids_and_filter(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """delete(ids, filter) removes records that have one of the ids AND match the filter."""
        h = vpa_store
        caps = h.capabilities
        if not _has_filters(caps):
            h.not_declared()
            return
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(caps), label="schema")
        records = data.draw(
            vst.record_lists(dim, caps, min_size=1, max_size=12, schema=schema), label="records"
        )
        present = [r.id for r in records]
        doomed = data.draw(
            st.lists(st.one_of(st.sampled_from(present), vst.ids()), min_size=1, max_size=8), label="ids"
        )
        spec = data.draw(vst.filter_dicts(_fields(schema), _values_of(records), caps), label="filter")
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            removed = h.delete(name, ids=doomed, filter=spec)
            expected = oracle.delete(ids=doomed, filter=spec)
            if removed != expected:
                fail(f"delete(ids, filter={spec!r}) returned {removed!r}; expected {expected}")
            _check_unchanged(h, name, oracle, present)

    def test_delete_needs_ids_or_filter(self, vpa_store: StoreHarness) -> None:
        """delete() with neither ids nor filter, or with an empty filter alone, raises
        ValidationError and removes nothing; delete(ids=[]) removes nothing."""
        h = vpa_store
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(h, name, oracle, [Record("a", [1, 0], "", {}), Record("b", [0, 1], "", {})])
            _raises(ValidationError, lambda: h.delete(name), "delete() with neither ids nor filter")
            _raises(ValidationError, lambda: h.delete(name, filter={}), "delete(filter={})")
            if h.delete(name, ids=[]) != 0:
                fail("delete(ids=[]) must remove nothing and return 0")
            _check_unchanged(h, name, oracle)
