"""Clauses of contract 1.1's data lifecycle: ``scroll`` (every matching record exactly once, in
pages, resumable from a cursor in another instance) and ``update`` (metadata in place, vector and
text untouched), against the oracle. A contract 1.0 store must refuse both with
`UnsupportedOperation`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import (
    InvalidCursor,
    InvalidFilter,
    InvalidId,
    InvalidMetadata,
    LimitExceeded,
    UnsupportedFilter,
    UnsupportedOperation,
    ValidationError,
)
from vpa.models import FilterOp, Page, Record
from vpa.stores.base import MAX_CURSOR_LENGTH, VectorStore

from vpa_conformance import strategies as vst
from vpa_conformance.checks import check_record, fail
from vpa_conformance.harness import StoreHarness, collection_name
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

__all__ = ["LifecycleClauses", "check_scroll"]


def _batch_sizes(h: StoreHarness) -> st.SearchStrategy[int]:
    top = h.capabilities.max_page_size
    return st.sampled_from(sorted({1, 2, 3, 7, min(top, 64), top}))


def check_scroll(
    pages: list[Page], oracle: Oracle, spec: Any, batch_size: int, with_vectors: bool, what: str = "scroll"
) -> None:
    """The pages of a whole scroll: each within ``batch_size``, a cursor on every page but the
    last, every record matching ``spec`` exactly once and nothing else, each as written (its
    vector empty when ``with_vectors`` is false)."""
    want = {r.id: r for r in oracle.matching(spec)}
    seen: dict[str, int] = {}
    for number, page in enumerate(pages):
        if not isinstance(page, Page):
            fail(f"{what} yielded {type(page).__name__}, not a vpa.models.Page")
        if len(page.records) > batch_size:
            fail(
                f"{what}: page {number} holds {len(page.records)} records, more than batch_size={batch_size}"
            )
        last = number == len(pages) - 1
        if (page.cursor is None) != last:
            fail(f"{what}: page {number} of {len(pages)} has cursor {page.cursor!r}")
        for record in page.records:
            seen[record.id] = seen.get(record.id, 0) + 1
            if record.id not in want:
                fail(f"{what} returned {record.id!r}, which does not exist or does not match {spec!r}")
            expected = want[record.id]
            if with_vectors:
                check_record(record, expected)
            else:
                check_record(Record(record.id, expected.vector, record.text, record.metadata), expected)
                if np.asarray(record.vector).size:
                    fail(f"{what} with_vectors=False returned a vector for {record.id!r}")
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        fail(f"{what} returned {len(twice)} records more than once: {twice[:5]!r}")
    missing = sorted(set(want) - set(seen))
    if missing:
        fail(f"{what} missed {len(missing)} of {len(want)} matching records: {missing[:5]!r}")


class LifecycleClauses:
    """Contract 1.1's scroll and update. Mixed into `StoreContract`."""

    @staticmethod
    def _refuses_1_1(h: StoreHarness) -> bool:
        """For a 1.0 store: scroll and update raise UnsupportedOperation (True: the clause is done)."""
        if h.capabilities.contract_1_1:
            return False
        h.not_declared()
        with h.collection(2) as name:
            _raises(UnsupportedOperation, lambda: h.scroll(name), "scroll on a contract 1.0 store")
            _raises(
                UnsupportedOperation,
                lambda: h.update(name, ids=["a"], set={"k": 1}),
                "update on a contract 1.0 store",
            )
        return True

    # --- scroll ----------------------------------------------------------------------------------

    @clause_settings(BASE_EXAMPLES["scroll"])
    @given(data=st.data())
    def test_scroll(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """Every record matching the filter comes back exactly once, as written, in pages of at
        most batch_size; without vectors when asked; a filter the store cannot scroll natively is
        UnsupportedFilter."""
        h = vpa_store
        if self._refuses_1_1(h):
            return
        caps = h.capabilities
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(caps), label="schema")
        records = data.draw(vst.record_lists(dim, caps, max_size=20, schema=schema), label="records")
        batch_size = data.draw(_batch_sizes(h), label="batch_size")
        with_vectors = data.draw(st.booleans(), label="with_vectors")
        spec = None
        if _has_filters(caps) and data.draw(st.booleans(), label="filtered"):
            spec = data.draw(vst.filter_dicts(_fields(schema), _values_of(records), caps), label="filter")
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            if spec is not None and not caps.scroll_filters:
                _raises(
                    UnsupportedFilter,
                    lambda: h.scroll(name, spec),
                    "a filtered scroll (scroll_filters=False)",
                )
                return
            pages = h.scroll(name, spec, batch_size, with_vectors)
            check_scroll(pages, oracle, spec, batch_size, with_vectors, f"scroll(filter={spec!r})")

    @clause_settings(BASE_EXAMPLES["scroll_writes"])
    @given(data=st.data())
    def test_scroll_under_writes(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """Records that exist for the whole scroll come back exactly once, each page resumed from
        the cursor alone, while other records (ids sorting before, among and after them) are
        upserted and deleted between pages."""
        h = vpa_store
        if self._refuses_1_1(h):
            return
        dim = 3
        count = data.draw(st.integers(5, 40), label="stable records")
        stable = [Record(f"s{k:03d}", [1.0, float(k), 0.5], f"t{k}", {}) for k in range(count)]
        volatile = [
            Record(f"{p}{k:03d}", [0.5, float(k), 1.0], "", {})
            for k in range(8)
            for p in ("0", "m", "s01", "z")
        ]
        batch_size = data.draw(st.sampled_from([1, 3, 8]), label="batch_size")
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, [*stable, *volatile[::2]])
            seen: dict[str, int] = {}
            cursor: str | None = None
            fresh = 0
            for _ in range(400):  # bounded: at most 400 pages
                page = h.scroll_page(name, None, batch_size, cursor, False)
                for record in page.records:
                    seen[record.id] = seen.get(record.id, 0) + 1
                cursor = page.cursor
                if cursor is None:
                    break
                action = data.draw(
                    st.sampled_from(["upsert", "delete", "both", "none"]), label="between pages"
                )
                if action in ("upsert", "both") and fresh < 30:  # bounded, so the scroll ends
                    prefix = data.draw(st.sampled_from(["0", "m", "s", "s0", "z"]), label="new id prefix")
                    fresh += 1
                    _fill(
                        h, name, oracle, [Record(f"{prefix}n{fresh:03d}", [0.1, 1.0, float(fresh)], "", {})]
                    )
                if action in ("delete", "both"):
                    doomed = [r.id for r in volatile if r.id in oracle.records][:2]
                    if doomed:
                        h.delete(name, ids=doomed)
                        oracle.delete(ids=doomed)
            else:
                fail("scroll did not end within 400 pages")
            for record in stable:
                if seen.get(record.id) != 1:
                    fail(
                        f"scroll under concurrent writes returned {record.id!r} {seen.get(record.id, 0)} "
                        "times; a record that exists for the whole scroll comes back exactly once"
                    )
            twice = sorted(i for i, n in seen.items() if n > 1)
            if twice:
                fail(f"scroll under concurrent writes returned {twice[:5]!r} more than once")

    def test_scroll_resumes_in_new_instance(
        self, vpa_store: StoreHarness, store_factory: Callable[[], VectorStore] | None
    ) -> None:
        """A cursor handed out by one instance resumes the scroll in a new instance over the same
        data (needs capabilities.persistent and a store_factory): the pages of both together hold
        every record once."""
        h = vpa_store
        if self._refuses_1_1(h):
            return
        if not h.capabilities.persistent or store_factory is None:
            h.not_declared()
            return
        records = [Record(f"r{k:02d}", [1.0, float(k)], f"t{k}", {}) for k in range(11)]
        name = collection_name("p")
        oracle = Oracle(2)
        h.create(name, 2)
        h.examples += 1
        _fill(h, name, oracle, records)
        first = h.scroll_page(name, None, 4)
        h.close()
        second = StoreHarness(store_factory(), h.runner)
        try:
            pages = [first]
            cursor = first.cursor
            while cursor is not None and len(pages) < 20:
                pages.append(second.scroll_page(name, None, 4, cursor))
                cursor = pages[-1].cursor
            check_scroll(pages, oracle, None, 4, True, "scroll resumed in a new instance")
        finally:
            with contextlib.suppress(Exception):
                second.drop(name)
            second.close()

    def test_scroll_cursors(self, vpa_store: StoreHarness) -> None:
        """A cursor resumes only the scroll that handed it out: one from another collection or
        another filter, a forged or over-long one is InvalidCursor or LimitExceeded; batch_size is
        bounded by max_page_size; nothing stored changes."""
        h = vpa_store
        if self._refuses_1_1(h):
            return
        caps = h.capabilities
        h.examples += 1
        records = [Record(f"r{k}", [1.0, float(k)], "", {}) for k in range(5)]
        with h.collection(2) as name, h.collection(2) as other:
            oracle = Oracle(2)
            _fill(h, name, oracle, records)
            _fill(h, other, Oracle(2), records)
            page = h.scroll_page(name, None, 2)
            if page.cursor is None:
                fail("scroll of 5 records in pages of 2 ended after the first page")
            cursor = page.cursor
            _raises(
                InvalidCursor, lambda: h.scroll_page(other, None, 2, cursor), "a cursor of another collection"
            )
            if _has_filters(caps) and caps.scroll_filters:
                spec = (
                    {"zz_absent": {"$exists": False}} if caps.filter_operators & {FilterOp.EXISTS} else None
                )
                if spec is not None:
                    _raises(
                        InvalidCursor,
                        lambda: h.scroll_page(name, spec, 2, cursor),
                        "a cursor of another filter",
                    )
            for forged in ("x", "eyJ9", cursor[:-3] + "AAA", "%%%"):
                _raises(
                    InvalidCursor,
                    lambda forged=forged: h.scroll_page(name, None, 2, forged),
                    f"cursor {forged!r}",
                )
            _raises(
                LimitExceeded,
                lambda: h.scroll_page(name, None, 2, "A" * (MAX_CURSOR_LENGTH + 1)),
                "an over-long cursor",
            )
            _raises(
                LimitExceeded,
                lambda: h.scroll_page(name, None, caps.max_page_size + 1),
                "batch_size above max_page_size",
            )
            for bad in (0, -1, True, 2.5):
                _raises(
                    ValidationError, lambda bad=bad: h.scroll_page(name, None, bad), f"batch_size={bad!r}"
                )
            _raises(InvalidFilter, lambda: h.scroll_page(name, {"$foo": 1}, 2), "a malformed scroll filter")
            _check_unchanged(h, name, oracle)

    # --- update ----------------------------------------------------------------------------------

    @clause_settings(BASE_EXAMPLES["update"])
    @given(data=st.data())
    def test_update(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """update by ids, by filter or both changes exactly the matching records' metadata (set
        replaces or adds, None and unset remove), keeps vectors and texts exactly, returns how many
        matched, and filters see the new values at once."""
        h = vpa_store
        if self._refuses_1_1(h):
            return
        caps = h.capabilities
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(caps, max_keys=3), label="schema")
        records = data.draw(
            vst.record_lists(dim, caps, min_size=1, max_size=12, schema=schema), label="records"
        )
        fields = _fields(schema)
        by = data.draw(
            st.sampled_from(["ids", "filter", "both"] if _has_filters(caps) else ["ids"]), label="by"
        )
        known = [r.id for r in records]
        ids = None
        spec = None
        if by in ("ids", "both"):
            ids = data.draw(
                st.lists(st.one_of(st.sampled_from(known), vst.ids()), min_size=1, max_size=6), label="ids"
            )
        if by in ("filter", "both"):
            spec = data.draw(vst.filter_dicts(fields, _values_of(records), caps), label="filter")
        # set: keys of the schema with a value of their types (so a store without heterogeneous
        # fields is not asked to change a key's type), or a new key; unset: other keys of the schema
        new_key = data.draw(vst.metadata_keys(caps).filter(lambda k: k not in schema), label="new key")
        targets = {
            **schema,
            new_key: data.draw(vst.metadata_schemas(caps, min_keys=1, max_keys=1)).popitem()[1],
        }
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(targets)), max_size=3, unique=True), label="set keys"
        )
        changes: dict[str, Any] = {
            k: data.draw(vst.metadata_values(types=targets[k]), label=f"set {k!r}") for k in chosen
        }
        if chosen and data.draw(st.booleans(), label="a None value"):
            changes[chosen[0]] = None
        rest = [k for k in schema if k not in changes]
        removed = (
            data.draw(st.lists(st.sampled_from(rest), max_size=2, unique=True), label="unset") if rest else []
        )
        if not changes and not removed:
            removed = [new_key]  # unsetting a key no record has: matched records still count
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            got = h.update(name, ids, spec, set=changes, unset=removed)
            want = oracle.update(ids, spec, changes, removed)
            if got != want:
                fail(
                    f"update(ids={ids!r}, filter={spec!r}, set={changes!r}, unset={removed!r}) returned {got}; {want} records match"
                )
            _check_unchanged(h, name, oracle)
            if _has_filters(caps):
                probes = (
                    [{k: {"$exists": True}} for k in changes]
                    if FilterOp.EXISTS in caps.filter_operators
                    else []
                )
                probes += [
                    {k: v}
                    for k, v in changes.items()
                    if vst.value_kind(v) in ("str", "number", "bool", "datetime")
                ]
                for probe in probes:
                    if self._declared(probe, caps) and h.count(name, probe) != oracle.count(probe):
                        fail(
                            f"after update, count({probe!r}) is {h.count(name, probe)}; expected {oracle.count(probe)}"
                        )
            pages = h.scroll(name, None, caps.max_page_size, True)
            check_scroll(pages, oracle, None, caps.max_page_size, True, "scroll after update")

    @staticmethod
    def _declared(spec: Any, caps: Any) -> bool:
        from vpa.filters import operators_used, parse_filter

        return operators_used(parse_filter(spec)) <= caps.filter_operators

    def test_update_bad_input(self, vpa_store: StoreHarness) -> None:
        """A bad update is a typed error before any I/O and changes nothing: neither ids nor a
        filter, neither set nor unset, a key both set and unset, bad metadata, undeclared types,
        too many keys."""
        h = vpa_store
        if self._refuses_1_1(h):
            return
        caps = h.capabilities
        h.examples += 1
        records = [Record(f"r{k}", [1.0, float(k)], f"t{k}", {"a": f"v{k}"}) for k in range(4)]
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(h, name, oracle, records)
            cases: list[tuple[str, Callable[[], Any], type[Exception]]] = [
                ("neither ids nor filter", lambda: h.update(name, set={"a": "x"}), ValidationError),
                ("neither set nor unset", lambda: h.update(name, ids=["r0"]), ValidationError),
                (
                    "a key set and unset",
                    lambda: h.update(name, ids=["r0"], set={"a": "x"}, unset=["a"]),
                    ValidationError,
                ),
                ("nested metadata", lambda: h.update(name, ids=["r0"], set={"a": {"b": 1}}), InvalidMetadata),
                ("a key starting with $", lambda: h.update(name, ids=["r0"], set={"$a": 1}), InvalidMetadata),
                ("unset of one string", lambda: h.update(name, ids=["r0"], unset="a"), ValidationError),  # type: ignore[arg-type]
                ("an empty id", lambda: h.update(name, ids=[""], set={"a": "x"}), InvalidId),
                (
                    "too many keys",
                    lambda: h.update(
                        name, ids=["r0"], set={f"k{i}": "x" for i in range(caps.max_metadata_keys + 1)}
                    ),
                    LimitExceeded,
                ),
                (
                    "a malformed filter",
                    lambda: h.update(name, filter={"$foo": 1}, set={"a": "x"}),
                    InvalidFilter,
                ),
            ]
            for what, call, error in cases:
                _raises(error, call, f"update with {what}")
            _check_unchanged(h, name, oracle)
