"""The stateful clause: a hypothesis `RuleBasedStateMachine` at module level, so that a plugin can
subclass it (add rules of its own, or pin a shrunk failure as a named regression test).

`StoreStateMachine` drives one collection of the store under test beside the `Oracle` model:
upserts, deletes by ids, by filter and by both, counts, queries, gets and re-opens (and for a
store with lexical search, lexical and hybrid queries: its index must follow every write),
interleaved at random, with the count checked after every step. It reads the store from the class attribute
``harness`` (a `StoreHarness`), so a test binds it with `bind`::

    machine = StoreStateMachine.bind(harness)
    run_state_machine_as_test(machine, settings=...)
"""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from vpa.lexical import tokenize
from vpa.models import StoreCapabilities

from vpa_conformance import strategies as vst
from vpa_conformance.checks import check_get, check_hits, fail
from vpa_conformance.harness import StoreHarness, collection_name
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import BASE_EXAMPLES, _fields, _fill, _has_filters
from vpa_conformance.store.lexical import check_hybrid_hits, check_lexical_hits, hybrid, lexical
from vpa_conformance.store.lifecycle import check_scroll

__all__ = ["INDEX_PROBE", "StateMachineClauses", "StoreStateMachine"]

#: The lexical query the machine checks after every step (`lexical_index_follows`): words of
#: `vpa_conformance.strategies.LEXICAL_WORDS`, so most drawn texts hold one.
INDEX_PROBE = "search vector index query store record Stra\u00dfe caf\u00e9 file 2024"


class StoreStateMachine(RuleBasedStateMachine):
    """One collection of the store under test against the oracle (see the module docstring)."""

    harness: ClassVar[StoreHarness]

    @classmethod
    def bind(cls, harness: StoreHarness) -> type[StoreStateMachine]:
        """A subclass of this machine that drives ``harness``."""
        return type(f"{cls.__name__}For{type(harness.store).__name__}", (cls,), {"harness": harness})

    def __init__(self) -> None:
        super().__init__()
        self.h = type(self).harness
        self.caps: StoreCapabilities = self.h.capabilities
        self.filters = _has_filters(self.caps)
        self.name: str | None = None
        self.dim = 2
        self.oracle = Oracle(2)
        self.schema: dict[str, Any] = {}
        self.pool: dict[str, list[Any]] = {}

    @initialize(dim=st.integers(2, 6), data=st.data())
    def open(self, dim: int, data: st.DataObject) -> None:
        self.schema = data.draw(vst.metadata_schemas(self.caps), label="schema")
        self.name = collection_name("s")
        self.dim = dim
        self.oracle = Oracle(dim)
        self.h.create(self.name, dim)
        self.h.examples += 1

    def _ids(self) -> st.SearchStrategy[str]:
        known = list(self.oracle.records)
        return st.one_of(st.sampled_from(known), vst.ids()) if known else vst.ids()

    def _filter(self, data: st.DataObject) -> Any:
        return data.draw(
            vst.filter_dicts(_fields(self.schema), self.pool, self.caps, max_leaves=4), label="filter"
        )

    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        assert self.name
        ids = data.draw(st.lists(self._ids(), min_size=1, max_size=5), label="upsert ids")
        # A store with lexical search gets texts that lexical queries hit, as well as any text.
        text = (
            st.one_of(vst.lexical_texts(), vst.lexical_texts(), vst.lexical_texts(), vst.texts())
            if self.caps.lexical_search
            else None
        )
        batch = [
            data.draw(vst.records(self.dim, self.caps, schema=self.schema, id=i, text=text)) for i in ids
        ]
        _fill(self.h, self.name, self.oracle, batch)
        self.pool = vst.field_values([r.metadata for r in self.oracle.records.values()])

    @rule(data=st.data())
    def delete_ids(self, data: st.DataObject) -> None:
        assert self.name
        ids = data.draw(st.lists(self._ids(), min_size=1, max_size=4), label="delete ids")
        removed, expected = self.h.delete(self.name, ids=ids), self.oracle.delete(ids=ids)
        if removed != expected:
            fail(f"delete(ids={ids!r}) returned {removed}; expected {expected}")

    @precondition(lambda self: self.filters)
    @rule(data=st.data())
    def delete_filter(self, data: st.DataObject) -> None:
        assert self.name
        spec = self._filter(data)
        ids = data.draw(st.none() | st.lists(self._ids(), min_size=1, max_size=4), label="and ids")
        removed, expected = (
            self.h.delete(self.name, ids=ids, filter=spec),
            self.oracle.delete(ids=ids, filter=spec),
        )
        if removed != expected:
            fail(f"delete(ids={ids!r}, filter={spec!r}) returned {removed}; expected {expected}")

    @precondition(lambda self: self.filters)
    @rule(data=st.data())
    def count_filter(self, data: st.DataObject) -> None:
        assert self.name
        spec = self._filter(data)
        got, want = self.h.count(self.name, spec), self.oracle.count(spec)
        if got != want:
            fail(f"count(filter={spec!r}) is {got}; expected {want}")

    @rule(data=st.data())
    def query(self, data: st.DataObject) -> None:
        assert self.name
        vector = data.draw(vst.vectors(self.dim), label="query vector")
        top_k = self.h.clamp_top_k(data.draw(st.integers(1, 8), label="top_k"))
        spec = self._filter(data) if self.filters and data.draw(st.booleans(), label="filtered") else None
        check_hits(self.h.query(self.name, vector, top_k, spec), self.oracle, vector, top_k, spec, self.caps)

    def _lexical_text(self, data: st.DataObject) -> str:
        own = [r.text for r in self.oracle.records.values() if tokenize(r.text) and len(r.text) <= 1000]
        texts = (
            st.one_of(vst.lexical_queries(), vst.lexical_queries(), st.sampled_from(own))
            if own
            else vst.lexical_queries()
        )
        return data.draw(texts, label="lexical query")

    @precondition(lambda self: self.caps.lexical_search)
    @rule(data=st.data())
    def lexical_query(self, data: st.DataObject) -> None:
        """A store with lexical search: BM25 over what the collection holds now (every upsert,
        delete and update before it), filtered or not, agrees with the oracle."""
        assert self.name
        text = self._lexical_text(data)
        top_k = self.h.clamp_top_k(data.draw(st.integers(1, 8), label="top_k"))
        spec = self._filter(data) if self.filters and data.draw(st.booleans(), label="filtered") else None
        check_lexical_hits(
            lexical(self.h, self.name, text, top_k, spec), self.oracle, text, top_k, spec, self.caps
        )

    @precondition(lambda self: self.caps.lexical_search)
    @rule(data=st.data())
    def hybrid_query(self, data: st.DataObject) -> None:
        """A store with lexical search: a hybrid query over what the collection holds now keeps
        the properties of fusion (`check_hybrid_hits`)."""
        assert self.name
        vector = data.draw(vst.vectors(self.dim), label="query vector")
        text = self._lexical_text(data)
        top_k = self.h.clamp_top_k(data.draw(st.integers(1, 8), label="top_k"))
        spec = self._filter(data) if self.filters and data.draw(st.booleans(), label="filtered") else None
        fusion = data.draw(st.sampled_from(["rrf", "linear"]), label="fusion")
        alpha = data.draw(st.sampled_from([0.0, 0.3, 1.0]), label="alpha") if fusion == "linear" else 0.5
        hits = hybrid(self.h, self.name, vector, text, top_k, spec, fusion, alpha)
        k = self.h.clamp_top_k(max(1, len(self.oracle.records)))
        own = (self.h.query(self.name, vector, k, spec), lexical(self.h, self.name, text, k, spec))
        check_hybrid_hits(hits, self.oracle, vector, text, top_k, spec, fusion, alpha, self.caps, own)

    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        assert self.name
        ids = data.draw(st.lists(self._ids(), max_size=6), label="get ids")
        check_get(self.h.get(self.name, ids), self.oracle, ids)

    @precondition(lambda self: self.caps.contract_1_1)
    @rule(data=st.data())
    def scroll(self, data: st.DataObject) -> None:
        """Contract 1.1: a whole scroll, filtered or not, holds every matching record once."""
        assert self.name
        scrolls_filters = self.filters and self.caps.scroll_filters
        spec = self._filter(data) if scrolls_filters and data.draw(st.booleans(), label="filtered") else None
        batch_size = data.draw(st.sampled_from([1, 2, 5, self.caps.max_page_size]), label="batch_size")
        with_vectors = data.draw(st.booleans(), label="with_vectors")
        pages = self.h.scroll(self.name, spec, batch_size, with_vectors)
        check_scroll(pages, self.oracle, spec, batch_size, with_vectors, f"scroll(filter={spec!r})")

    @precondition(lambda self: self.caps.contract_1_1)
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        """Contract 1.1: update by ids, filter or both, of keys of the schema (values of their
        types) and unsets, agrees with the oracle."""
        assert self.name
        if not self.schema:
            return
        by = data.draw(st.sampled_from(["ids", "filter", "both"] if self.filters else ["ids"]), label="by")
        ids = (
            data.draw(st.lists(self._ids(), min_size=1, max_size=4), label="ids") if by != "filter" else None
        )
        spec = self._filter(data) if by != "ids" else None
        keys = sorted(self.schema)
        chosen = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=2, unique=True), label="keys")
        changes = {}
        removed = []
        for key in chosen:
            if data.draw(st.booleans(), label=f"unset {key!r}"):
                removed.append(key)
            else:
                changes[key] = data.draw(vst.metadata_values(types=self.schema[key]), label=f"set {key!r}")
        got = self.h.update(self.name, ids, spec, set=changes, unset=removed)
        want = self.oracle.update(ids, spec, changes, removed)
        if got != want:
            fail(
                f"update(ids={ids!r}, filter={spec!r}, set={changes!r}, unset={removed!r}) returned {got}; expected {want}"
            )
        self.pool = vst.field_values([r.metadata for r in self.oracle.records.values()])

    @rule()
    def reopen(self) -> None:
        assert self.name
        info = self.h.create(self.name, self.dim)
        if info.dimension != self.dim:
            fail(f"re-opening returned dimension {info.dimension}, not {self.dim}")

    @invariant()
    def count_matches(self) -> None:
        if self.name is not None:
            got = self.h.count(self.name)
            if got != len(self.oracle.records):
                fail(f"count() is {got}; the model holds {len(self.oracle.records)} records")

    @invariant()
    def lexical_index_follows(self) -> None:
        """A store with lexical search: after every step, a query of many of the drawn texts' words
        scores as the oracle's BM25 over what the collection holds now, so an index that misses
        a write (a delete, a rewritten text) is seen at the next step."""
        if self.name is not None and self.caps.lexical_search and self.oracle.records:
            top_k = self.h.clamp_top_k(8)
            hits = lexical(self.h, self.name, INDEX_PROBE, top_k)
            check_lexical_hits(hits, self.oracle, INDEX_PROBE, top_k, None, self.caps)

    def teardown(self) -> None:
        if self.name is not None:
            self.h.drop(self.name)


class StateMachineClauses:
    """The stateful clause. Mixed into `StoreContract`; a plugin may set ``state_machine`` to its
    own subclass of `StoreStateMachine`."""

    state_machine: ClassVar[type[StoreStateMachine]] = StoreStateMachine

    def test_state_machine(self, vpa_store: StoreHarness) -> None:
        """Interleaved upserts, deletes (by ids, filter, both), re-opens, gets, counts and queries
        (and, for a contract 1.1 store, scrolls and updates; for a store with lexical search,
        lexical and hybrid queries) agree with the oracle after every step."""
        run_state_machine_as_test(
            self.state_machine.bind(vpa_store),
            settings=clause_settings(BASE_EXAMPLES["state_machine"], stateful=True),
        )
