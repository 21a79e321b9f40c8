"""`StoreContract`: the behavioural contract of a VPA vector store, as pytest tests.

Subclass it and provide a synchronous fixture ``store`` returning a fresh store instance
(constructed without I/O)::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(path=tmp_path / "db")

Optionally provide ``store_factory``: a zero-argument callable that returns *another* instance
over the same data (same path or server). With it, and ``capabilities.persistent``, the suite
checks that collections, their definition and records survive into a new instance.

Every test drives the store only through its public async API (``create_collection``,
``upsert``, ``query``, ``get``, ``delete``, ``count``, ``drop_collection``,
``list_collections``, ``settle``, ``close``, ``capabilities``) on the suite's own event loop,
in uniquely named collections that it drops afterwards, and compares the answers with the
`vpa_conformance.oracle.Oracle`. The clauses and their exact meaning are those of the docstrings
of `vpa.stores.base` and `vpa.filters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from vpa.errors import (
    CollectionNotFound,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
    InvalidFilter,
    InvalidId,
    InvalidMetadata,
    InvalidVector,
    LimitExceeded,
    RecordTooLarge,
    UnsupportedFilter,
    UnsupportedMetadata,
    ValidationError,
)
from vpa.filters import COMPARISON_OPS, MAX_FILTER_DEPTH, MAX_FILTER_TERMS, ORDERING_OPS
from vpa.models import (
    CONTRACT_VERSION,
    CollectionInfo,
    EmbedderFingerprint,
    FilterOp,
    MetadataType,
    Metric,
    Record,
    StoreCapabilities,
)
from vpa.stores.base import VectorStore
from vpa.validation import MAX_SAFE_INT, metadata_bytes, record_bytes

from vpa_conformance import strategies as vst
from vpa_conformance.checks import ContractViolation, check_get, check_hits, check_record, fail, recall
from vpa_conformance.document_atomicity import DocumentAtomicityClauses
from vpa_conformance.harness import StoreHarness, collection_name
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import clause_settings

__all__ = ["BASE_EXAMPLES", "LIMIT_FLOORS", "MAX_LOOP_STALL", "StoreContract"]

#: Examples per clause in the ``ci`` profile (the profile scales them).
BASE_EXAMPLES = {
    "round_trip": 20,
    "upsert_idempotent": 15,
    "get_order": 10,
    "delete_by_ids": 10,
    "delete_ids_and_filter": 12,
    "query": 25,
    "filters": 25,
    "filter_operator": 5,
    "metadata_type": 4,
    "bad_input": 12,
    "state_machine": 10,
}

#: The longest the event loop may stall while a store works (seconds). A 5 ms ticker runs beside
#: big store calls; generous, because CI machines are shared.
MAX_LOOP_STALL = 0.5

#: The least a store may declare of each bound: what a portable app (the RAG layer's reserved
#: keys and tenant filter included) can count on from any store.
LIMIT_FLOORS = {
    "max_filter_terms": 64,
    "max_filter_depth": 8,
    "max_metadata_keys": 32,
    "max_metadata_bytes": 4096,
}

DIMENSIONS = st.integers(2, 16)
COMPARISONS = [op for op in FilterOp if op in COMPARISON_OPS]
ALL_OPS = list(FilterOp)
ALL_TYPES = list(MetadataType)


def _fields(schema: dict[str, Any]) -> list[str]:
    return [*schema, vst.ABSENT_FIELD]


def _has_filters(caps: StoreCapabilities) -> bool:
    return any(op in caps.filter_operators for op in COMPARISONS)


def _fill(h: StoreHarness, name: str, oracle: Oracle, records: list[Record]) -> None:
    if not records:
        return
    written = h.upsert(name, records)
    expected = oracle.upsert(records)
    if written != expected:
        fail(f"upsert returned {written!r}; {expected} distinct ids were written")


def _check_unchanged(
    h: StoreHarness, name: str, oracle: Oracle, extra_ids: list[str] | tuple[str, ...] = ()
) -> None:
    """The collection holds exactly what the oracle holds (after a rejected call, say)."""
    total = h.count(name)
    if total != len(oracle.records):
        fail(f"count() is {total}; the collection should hold {len(oracle.records)} records")
    asked = [*oracle.records, *extra_ids]
    check_get(h.get(name, asked), oracle, asked)


def _raises(expected: type[BaseException], call: Callable[[], Any], what: str) -> None:
    try:
        call()
    except expected:
        return
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__}: {exc}; expected {expected.__name__}")
    fail(f"{what} did not raise {expected.__name__}")


#: The underscore methods a refusal "before any I/O" must not reach.
_BACKEND_CALLS = ("_upsert", "_query", "_get", "_delete", "_count")


@contextlib.contextmanager
def _backend_untouched(store: VectorStore, what: str) -> Iterator[None]:
    """Inside, any call of the store's backend methods fails the clause: what happens in here
    must be refused before any I/O."""

    def guard(name: str) -> Callable[..., Any]:
        async def refused(*args: Any, **kwargs: Any) -> Any:
            fail(f"{what} reached the backend ({name}) instead of being refused before any I/O")

        return refused

    saved = {name: store.__dict__.get(name) for name in _BACKEND_CALLS}
    for name in _BACKEND_CALLS:
        setattr(store, name, guard(name))
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                store.__dict__.pop(name, None)
            else:
                setattr(store, name, previous)


def _raises_limit(limit: str, call: Callable[[], Any], what: str) -> None:
    """``call`` raises `LimitExceeded` naming ``limit``."""
    try:
        call()
    except LimitExceeded as exc:
        if exc.limit != limit:
            fail(f"{what} raised LimitExceeded for {exc.limit!r}; expected {limit!r}")
        return
    except ContractViolation:
        raise
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__}: {str(exc)[:300]}; expected LimitExceeded ({limit})")
    fail(f"{what} did not raise LimitExceeded ({limit})")


def _values_of(records: list[Record]) -> dict[str, list[Any]]:
    return vst.field_values([r.metadata for r in records])


class StoreContract(DocumentAtomicityClauses):
    """The store contract. Subclass it and provide the ``store`` fixture."""

    # --- fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def store(self) -> VectorStore:
        pytest.fail("a StoreContract subclass must define a `store` fixture returning a fresh store")

    @pytest.fixture
    def store_factory(self) -> Callable[[], VectorStore] | None:
        """Override to return a callable that opens another instance over the same data."""
        return None

    @pytest.fixture
    def vpa_store(self, store: VectorStore, request: pytest.FixtureRequest) -> Iterator[StoreHarness]:
        runner = asyncio.Runner()
        harness = StoreHarness(store, runner, request.node)
        try:
            yield harness
        finally:
            try:
                harness.cleanup()
                harness.close()
            finally:
                runner.close()
                request.node.user_properties.append(("vpa_examples", harness.examples))

    # --- capabilities --------------------------------------------------------------------------

    def test_capabilities(self, vpa_store: StoreHarness) -> None:
        """The store declares the contract version it meets and coherent capabilities."""
        vpa_store.examples += 1
        caps = vpa_store.capabilities
        if not isinstance(caps, StoreCapabilities):
            fail(f"capabilities must be a StoreCapabilities, got {type(caps).__name__}")
        ours = CONTRACT_VERSION.split(".")[0]
        if str(caps.contract_version).split(".")[0] != ours:
            fail(
                f"the store meets contract {caps.contract_version!r}; this suite checks contract "
                f"{CONTRACT_VERSION}"
            )
        if not 0.0 < caps.min_recall <= 1.0:
            fail(f"min_recall must be in (0, 1], got {caps.min_recall}")
        for field in ("max_batch_size", "max_top_k", "max_record_bytes"):
            value = getattr(caps, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                fail(f"{field} must be None or a positive int, got {value!r}")
        if caps.max_record_bytes is not None and caps.max_record_bytes < 1024:
            fail(
                f"max_record_bytes={caps.max_record_bytes} is too small to hold a useful chunk (at "
                "least 1024)"
            )
        if caps.max_top_k is not None and caps.max_top_k < 10:
            fail(f"max_top_k={caps.max_top_k}: a store must answer at least top_k=10")
        for field, floor in LIMIT_FLOORS.items():
            value = getattr(caps, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < floor:
                fail(
                    f"{field} must be an int of at least {floor} (what a portable app counts on), "
                    f"got {value!r}"
                )
        for field, ceiling in (
            ("max_filter_terms", MAX_FILTER_TERMS),
            ("max_filter_depth", MAX_FILTER_DEPTH),
        ):
            if getattr(caps, field) > ceiling:
                fail(
                    f"{field}={getattr(caps, field)} is above the core's ceiling of {ceiling}: vpa.filters "
                    "refuses more on every surface, so the store would never be asked"
                )

    # --- collections ---------------------------------------------------------------------------

    def test_collection_lifecycle(self, vpa_store: StoreHarness) -> None:
        """Create is get-or-create; list, drop (True, then False) and re-create with another
        dimension; a dropped collection raises CollectionNotFound."""
        h = vpa_store
        h.examples += 1
        name = collection_name()
        if name in h.run(h.store.list_collections()):
            fail(f"list_collections() lists {name!r} before it was created")
        info = h.create(name, 4)
        if not isinstance(info, CollectionInfo) or (info.name, info.dimension, info.metric) != (
            name,
            4,
            Metric.COSINE,
        ):
            fail(f"create_collection returned {info!r}")
        listed = h.run(h.store.list_collections())
        if not isinstance(listed, list) or name not in listed:
            fail(f"list_collections() does not list {name!r} after it was created")
        if listed != sorted(listed):
            fail("list_collections() is not sorted")
        oracle = Oracle(4)
        _fill(
            h, name, oracle, [Record("a", [1, 0, 0, 0], "alpha", {}), Record("b", [0, 1, 0, 0], "beta", {})]
        )
        again = h.create(name, 4)
        if again.dimension != 4 or again.name != name:
            fail(f"re-creating {name!r} with the same dimension returned {again!r}")
        _check_unchanged(h, name, oracle)
        _raises(DimensionMismatch, lambda: h.create(name, 5), "create_collection with another dimension")
        _check_unchanged(h, name, oracle)
        if h.drop(name) is not True:
            fail("drop_collection of an existing collection must return True")
        if name in h.run(h.store.list_collections()):
            fail(f"list_collections() still lists {name!r} after it was dropped")
        if h.drop(name) is not False:
            fail("drop_collection of a missing collection must return False")
        for what, call in self._calls_on(h, name, 4):
            _raises(CollectionNotFound, call, f"{what} on a dropped collection")
        h.create(name, 3)
        try:
            if h.count(name) != 0 or h.get(name, ["a", "b"]):
                fail("a collection re-created after a drop must be empty")
            oracle = Oracle(3)
            _fill(h, name, oracle, [Record("a", [0, 0, 1], "again", {})])
            _check_unchanged(h, name, oracle)
            hits = h.query(name, [0, 0, 1], top_k=5)
            check_hits(hits, oracle, [0, 0, 1], 5, None, h.capabilities)
        finally:
            h.drop(name)

    @staticmethod
    def _calls_on(h: StoreHarness, name: str, dimension: int) -> list[tuple[str, Callable[[], Any]]]:
        vector = [1.0] * dimension
        return [
            ("count", lambda: h.count(name)),
            ("get", lambda: h.get(name, ["a"])),
            ("query", lambda: h.query(name, vector, top_k=3)),
            ("upsert", lambda: h.upsert(name, [Record("z", vector, "", {})])),
            ("delete", lambda: h.delete(name, ids=["a"])),
        ]

    def test_collection_names(self, vpa_store: StoreHarness) -> None:
        """Every portable name works and is kept exactly: upper and lower case (distinct
        collections), '-' and '_', 63 characters; collections do not share records."""
        h = vpa_store
        h.examples += 1
        tag = collection_name("")
        names = [f"Case{tag}", f"case{tag}", f"a-b_{tag}", f"z{tag}".ljust(63, "9")]
        created: list[str] = []
        try:
            for i, name in enumerate(names):
                h.create(name, 2)
                created.append(name)
                h.upsert(name, [Record("same-id", [1.0, float(i)], f"in {name}", {})])
            listed = h.run(h.store.list_collections())
            missing = [n for n in names if n not in listed]
            if missing:
                fail(f"list_collections() does not list {missing!r} exactly as created")
            for i, name in enumerate(names):
                got = h.get(name, ["same-id"])
                if len(got) != 1 or got[0].text != f"in {name}" or h.count(name) != 1:
                    fail(f"collection {name!r} does not hold its own record (names must not collide)")
                check_record(got[0], Record("same-id", [1.0, float(i)], f"in {name}", {}))
        finally:
            for name in created:
                h.drop(name)

    def test_missing_collection(self, vpa_store: StoreHarness) -> None:
        """Every operation on a collection that never existed raises CollectionNotFound."""
        h = vpa_store
        h.examples += 1
        name = collection_name("m")
        for what, call in self._calls_on(h, name, 4):
            _raises(CollectionNotFound, call, f"{what} on a missing collection")
        if h.drop(name) is not False:
            fail("drop_collection of a collection that never existed must return False")
        if name in h.run(h.store.list_collections()):
            fail("an operation on a missing collection created it")

    def test_invalid_collection_arguments(self, vpa_store: StoreHarness) -> None:
        """Unportable names, bad dimensions and unknown metrics raise InvalidCollection."""
        h = vpa_store
        h.examples += 1
        for bad in ["", "1abc", "a b", "a/b", "caf\u00e9", "a" * 64, "-a", "_a", "a.b"]:
            _raises(
                InvalidCollection, lambda bad=bad: h.run(h.store.create_collection(bad, 4)), f"name {bad!r}"
            )
        name = collection_name()
        for dim in [0, -1, True, 1.5, "4"]:
            _raises(
                InvalidCollection,
                lambda dim=dim: h.run(h.store.create_collection(name, dim)),
                f"dimension {dim!r}",
            )
        _raises(
            InvalidCollection, lambda: h.run(h.store.create_collection(name, 4, metric="l2")), "metric 'l2'"
        )
        if name in h.run(h.store.list_collections()):
            fail("a refused create_collection created the collection")

    def test_embedder_fingerprint(self, vpa_store: StoreHarness) -> None:
        """A collection keeps its embedder fingerprint: another model raises EmbedderMismatch,
        another dimension DimensionMismatch, and nothing changes."""
        h = vpa_store
        fingerprint = EmbedderFingerprint("hashing", "model-a", 4)
        with h.collection(4, fingerprint) as name:
            oracle = Oracle(4)
            _fill(h, name, oracle, [Record("x", [1, 2, 3, 4], "t", {})])
            info = h.create(name, 4, fingerprint)
            if info.fingerprint != fingerprint:
                fail(
                    f"re-opening returned fingerprint {info.fingerprint!r}; the collection was "
                    f"created by {fingerprint!r}"
                )
            plain = h.create(name, 4)
            if plain.fingerprint != fingerprint:
                fail(
                    f"opening without a fingerprint returned {plain.fingerprint!r}; expected {fingerprint!r}"
                )
            for other in (
                EmbedderFingerprint("hashing", "model-b", 4),
                EmbedderFingerprint("other", "model-a", 4),
            ):
                _raises(
                    EmbedderMismatch,
                    lambda other=other: h.create(name, 4, other),
                    f"re-open with {other.describe()}",
                )
            _raises(
                DimensionMismatch,
                lambda: h.create(name, 5, EmbedderFingerprint("hashing", "model-a", 5)),
                "re-open with a 5-d embedder",
            )
            _raises(
                DimensionMismatch,
                lambda: h.create(name, 4, EmbedderFingerprint("hashing", "model-a", 8)),
                "a fingerprint whose dimension differs from the collection's",
            )
            _check_unchanged(h, name, oracle)

    def test_persistence(
        self, vpa_store: StoreHarness, store_factory: Callable[[], VectorStore] | None
    ) -> None:
        """A new instance over the same data sees the collection, its definition (dimension,
        fingerprint) and its records (needs capabilities.persistent and a store_factory)."""
        h = vpa_store
        if not h.capabilities.persistent or store_factory is None:
            h.not_declared()
            return
        fingerprint = EmbedderFingerprint("hashing", "model-p", 3)
        name = collection_name("p")
        records = [
            Record(
                "1",
                [1, 0, 0],
                "caf\u00e9 e\u0301 \U0001f600",
                {"n": 1, "f": 2.0, "b": True, "s": "x", "l": ["a", "b"]},
            ),
            Record("01", [0.5, 0.5, 0], "", {}),
        ]
        records = [self._declared_only(r, h.capabilities) for r in records]
        oracle = Oracle(3)
        h.create(name, 3, fingerprint)
        h.examples += 1
        _fill(h, name, oracle, records)
        h.close()
        other = store_factory()
        second = StoreHarness(other, h.runner)
        try:
            if name not in second.run(other.list_collections()):
                fail("a new store instance does not list the collection")
            info = second.create(name, 3)
            if info.dimension != 3 or info.fingerprint != fingerprint:
                fail(f"a new store instance describes the collection as {info!r}")
            _raises(
                EmbedderMismatch,
                lambda: second.create(name, 3, EmbedderFingerprint("hashing", "model-q", 3)),
                "re-open with another model in a new instance",
            )
            _check_unchanged(second, name, oracle)
        finally:
            with contextlib.suppress(Exception):
                second.drop(name)
            second.close()

    @staticmethod
    def _declared_only(record: Record, caps: StoreCapabilities) -> Record:
        from vpa.validation import metadata_type

        kept = {k: v for k, v in record.metadata.items() if metadata_type(v) in caps.metadata_types}
        return Record(record.id, record.vector, record.text, kept)

    def test_empty_collection(self, vpa_store: StoreHarness) -> None:
        """An empty collection counts 0, queries to [], gets [], deletes 0."""
        h = vpa_store
        with h.collection(3) as name:
            if h.count(name) != 0:
                fail("count() of a new collection is not 0")
            if h.query(name, [1, 2, 3], top_k=h.clamp_top_k(10)) != []:
                fail("query on an empty collection must return []")
            if h.get(name, ["a", "b"]) != []:
                fail("get on an empty collection must return []")
            if h.delete(name, ids=["a"]) != 0:
                fail("delete of a missing id must return 0")
            if h.upsert(name, []) != 0 or h.count(name) != 0:
                fail("upsert([]) must write nothing and return 0")
            if FilterOp.EQ in h.capabilities.filter_operators:
                if h.count(name, {"a": 1}) != 0:
                    fail("count(filter) of an empty collection is not 0")
                if h.delete(name, filter={"a": 1}) != 0:
                    fail("delete(filter) on an empty collection must return 0")
                if h.query(name, [1, 2, 3], top_k=3, filter={"a": 1}) != []:
                    fail("a filtered query on an empty collection must return []")

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
            for value in numbers:
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
        specs: list[dict[str, Any]] = []
        for field in fields:
            for value in probes:
                specs += [{field: {op.value: value}} for op in (FilterOp.EQ, FilterOp.NE)]
                if vst.value_kind(value) == "number":
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
        key = data.draw(vst.metadata_keys().filter(lambda k: k not in schema), label="key")
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

    # --- bad input -----------------------------------------------------------------------------

    @staticmethod
    def _bad_records(dim: int) -> list[tuple[str, Record, type[Exception]]]:
        good = [1.0] * dim
        return [
            ("empty id", Record("", good, "", {}), InvalidId),
            ("id with NUL", Record("a\x00b", good, "", {}), InvalidId),
            ("id too long", Record("i" * 513, good, "", {}), InvalidId),
            ("non-str id", Record(123, good, "", {}), InvalidId),  # type: ignore[arg-type]
            ("short vector", Record("v", good[:-1], "", {}), DimensionMismatch),
            ("long vector", Record("v", [*good, 1.0], "", {}), DimensionMismatch),
            ("NaN in vector", Record("v", [math.nan, *good[1:]], "", {}), InvalidVector),
            ("inf in vector", Record("v", [*good[:-1], math.inf], "", {}), InvalidVector),
            ("-inf in vector", Record("v", [-math.inf, *good[1:]], "", {}), InvalidVector),
            ("zero vector", Record("v", [0.0] * dim, "", {}), InvalidVector),
            ("None metadata value", Record("m", good, "", {"a": None}), InvalidMetadata),
            ("nested metadata", Record("m", good, "", {"a": {"b": 1}}), InvalidMetadata),
            ("metadata key with dash", Record("m", good, "", {"a-b": 1}), InvalidMetadata),
            ("metadata key with digit first", Record("m", good, "", {"1a": 1}), InvalidMetadata),
            ("empty metadata key", Record("m", good, "", {"": 1}), InvalidMetadata),
            ("metadata key too long", Record("m", good, "", {"k" * 65: 1}), InvalidMetadata),
            ("int beyond 2**53", Record("m", good, "", {"a": 2**53 + 1}), InvalidMetadata),
            ("NaN metadata", Record("m", good, "", {"a": math.nan}), InvalidMetadata),
            ("inf metadata", Record("m", good, "", {"a": math.inf}), InvalidMetadata),
            ("mixed list", Record("m", good, "", {"a": ["x", 1]}), InvalidMetadata),
            ("list of ints", Record("m", good, "", {"a": [1, 2]}), InvalidMetadata),
            ("non-str text", Record("m", good, 5, {}), InvalidMetadata),  # type: ignore[arg-type]
        ]

    @clause_settings(BASE_EXAMPLES["bad_input"])
    @given(data=st.data())
    def test_bad_input(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """Wrong dimension, NaN/inf, zero vectors, empty or bad ids, bad metadata, malformed
        filters, bad top_k: each raises its typed error, and the stored data is unchanged (a
        batch with one bad record writes nothing)."""
        h = vpa_store
        caps = h.capabilities
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(caps), label="schema")
        records = data.draw(
            vst.record_lists(dim, caps, min_size=1, max_size=8, schema=schema), label="records"
        )
        bad_records = self._bad_records(dim)
        good = [1.0] * dim
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            attempts = data.draw(st.integers(2, 5), label="attempts")
            touched: list[str] = []
            for _ in range(attempts):
                kind = data.draw(st.sampled_from(["batch", "query", "filter", "ids"]), label="kind")
                if kind == "batch":
                    what, bad, error = data.draw(st.sampled_from(bad_records), label="bad record")
                    updates = data.draw(
                        st.lists(vst.records(dim, caps, schema=schema, id=None), max_size=4),
                        label="good records",
                    )
                    updates += [
                        data.draw(vst.records(dim, caps, schema=schema, id=r.id)) for r in records[:2]
                    ]
                    position = data.draw(st.integers(0, len(updates)), label="position")
                    batch = [*updates[:position], bad, *updates[position:]]
                    touched += [r.id for r in updates if isinstance(r.id, str)]
                    _raises(
                        error, lambda batch=batch: h.upsert(name, batch), f"upsert of a batch with {what}"
                    )
                elif kind == "query":
                    what, vector, error = data.draw(
                        st.sampled_from(
                            [
                                ("short query vector", good[:-1], DimensionMismatch),
                                ("long query vector", [*good, 1.0], DimensionMismatch),
                                ("empty query vector", [], DimensionMismatch),
                                ("NaN query vector", [math.nan, *good[1:]], InvalidVector),
                                ("inf query vector", [*good[:-1], math.inf], InvalidVector),
                                ("zero query vector", [0.0] * dim, InvalidVector),
                                ("nested query vector", [good], InvalidVector),
                            ]
                        ),
                        label="bad query",
                    )
                    _raises(error, lambda vector=vector: h.query(name, vector, top_k=3), what)
                elif kind == "filter":
                    spec = data.draw(st.sampled_from(vst.MALFORMED_FILTERS), label="malformed filter")
                    call = data.draw(
                        st.sampled_from(["count", "query", "delete", "delete_ids"]), label="call"
                    )
                    calls = {
                        "count": lambda spec=spec: h.count(name, spec),
                        "query": lambda spec=spec: h.query(name, good, 3, spec),
                        "delete": lambda spec=spec: h.delete(name, filter=spec),
                        "delete_ids": lambda spec=spec: h.delete(
                            name, ids=[r.id for r in records], filter=spec
                        ),
                    }
                    _raises(InvalidFilter, calls[call], f"{call} with malformed filter {spec!r}")
                else:
                    bad_ids = data.draw(
                        st.sampled_from(["abc", [""], ["ok", ""], ["a\x00"], [1], ["i" * 513]]),
                        label="bad ids",
                    )
                    call = data.draw(st.sampled_from(["get", "delete"]), label="call")
                    if call == "get":
                        _raises(InvalidId, lambda bad_ids=bad_ids: h.get(name, bad_ids), f"get({bad_ids!r})")
                    else:
                        _raises(
                            InvalidId,
                            lambda bad_ids=bad_ids: h.delete(name, ids=bad_ids),
                            f"delete(ids={bad_ids!r})",
                        )
            _check_unchanged(h, name, oracle, touched)

    def test_unencodable_strings(self, vpa_store: StoreHarness) -> None:
        """Strings that UTF-8 cannot encode (lone surrogates) in an id, the text, a metadata
        string or list, or a filter value raise a ValidationError before any write, and nothing
        changes."""
        h = vpa_store
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(h, name, oracle, [Record("kept", [1.0, 0.0], "kept", {"s": "x"})])
            bad = [
                Record("id\ud800", [1.0, 1.0], "", {}),
                Record("t", [1.0, 1.0], "text \udcff", {}),
                Record("m", [1.0, 1.0], "", {"s": "\ud83d"}),
                Record("l", [1.0, 1.0], "", {"l": ["ok", "\udfff"]}),
            ]
            problems = []
            for record in bad:
                try:
                    h.upsert(name, [record])
                except ValidationError:
                    continue
                except Exception as exc:
                    problems.append(f"upsert of {record.id!r}: {type(exc).__name__}")
                    continue
                problems.append(f"upsert of {record.id!r} was accepted")
            for call, run in (
                ("count", lambda: h.count(name, {"s": "\ud800"})),
                ("delete", lambda: h.delete(name, filter={"s": "\ud800"})),
            ):
                try:
                    run()
                except ValidationError:
                    continue
                except Exception as exc:
                    problems.append(f"{call} with a lone surrogate in the filter: {type(exc).__name__}")
                    continue
                problems.append(f"{call} with a lone surrogate in the filter was accepted")
            try:
                _check_unchanged(h, name, oracle, ["t", "m", "l"])
            except ContractViolation as exc:
                problems.append(f"the collection changed: {exc}")
            if problems:
                fail(
                    "strings UTF-8 cannot encode must be refused with a ValidationError: "
                    + "; ".join(problems)
                )

    # --- stateful --------------------------------------------------------------------------------

    def test_state_machine(self, vpa_store: StoreHarness) -> None:
        """Interleaved upserts, deletes (by ids, filter, both), re-opens, gets, counts and queries
        agree with the oracle after every step."""
        h = vpa_store
        caps = h.capabilities
        filters = _has_filters(caps)

        class StoreMachine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.name: str | None = None
                self.dim = 2
                self.oracle = Oracle(2)
                self.schema: dict[str, Any] = {}
                self.pool: dict[str, list[Any]] = {}

            @initialize(dim=st.integers(2, 6), schema=vst.metadata_schemas(caps))
            def open(self, dim: int, schema: dict[str, Any]) -> None:
                self.name = collection_name("s")
                self.dim = dim
                self.oracle = Oracle(dim)
                self.schema = schema
                h.create(self.name, dim)
                h.examples += 1

            def _ids(self) -> st.SearchStrategy[str]:
                known = list(self.oracle.records)
                return st.one_of(st.sampled_from(known), vst.ids()) if known else vst.ids()

            def _filter(self, data: st.DataObject) -> Any:
                return data.draw(
                    vst.filter_dicts(_fields(self.schema), self.pool, caps, max_leaves=4), label="filter"
                )

            @rule(data=st.data())
            def upsert(self, data: st.DataObject) -> None:
                assert self.name
                ids = data.draw(st.lists(self._ids(), min_size=1, max_size=5), label="upsert ids")
                batch = [data.draw(vst.records(self.dim, caps, schema=self.schema, id=i)) for i in ids]
                _fill(h, self.name, self.oracle, batch)
                self.pool = vst.field_values([r.metadata for r in self.oracle.records.values()])

            @rule(data=st.data())
            def delete_ids(self, data: st.DataObject) -> None:
                assert self.name
                ids = data.draw(st.lists(self._ids(), min_size=1, max_size=4), label="delete ids")
                removed, expected = h.delete(self.name, ids=ids), self.oracle.delete(ids=ids)
                if removed != expected:
                    fail(f"delete(ids={ids!r}) returned {removed}; expected {expected}")

            @precondition(lambda self: filters)
            @rule(data=st.data())
            def delete_filter(self, data: st.DataObject) -> None:
                assert self.name
                spec = self._filter(data)
                ids = data.draw(st.none() | st.lists(self._ids(), min_size=1, max_size=4), label="and ids")
                removed, expected = (
                    h.delete(self.name, ids=ids, filter=spec),
                    self.oracle.delete(ids=ids, filter=spec),
                )
                if removed != expected:
                    fail(f"delete(ids={ids!r}, filter={spec!r}) returned {removed}; expected {expected}")

            @precondition(lambda self: filters)
            @rule(data=st.data())
            def count_filter(self, data: st.DataObject) -> None:
                assert self.name
                spec = self._filter(data)
                got, want = h.count(self.name, spec), self.oracle.count(spec)
                if got != want:
                    fail(f"count(filter={spec!r}) is {got}; expected {want}")

            @rule(data=st.data())
            def query(self, data: st.DataObject) -> None:
                assert self.name
                vector = data.draw(vst.vectors(self.dim), label="query vector")
                top_k = h.clamp_top_k(data.draw(st.integers(1, 8), label="top_k"))
                spec = self._filter(data) if filters and data.draw(st.booleans(), label="filtered") else None
                check_hits(h.query(self.name, vector, top_k, spec), self.oracle, vector, top_k, spec, caps)

            @rule(data=st.data())
            def get(self, data: st.DataObject) -> None:
                assert self.name
                ids = data.draw(st.lists(self._ids(), max_size=6), label="get ids")
                check_get(h.get(self.name, ids), self.oracle, ids)

            @rule()
            def reopen(self) -> None:
                assert self.name
                info = h.create(self.name, self.dim)
                if info.dimension != self.dim:
                    fail(f"re-opening returned dimension {info.dimension}, not {self.dim}")

            @invariant()
            def count_matches(self) -> None:
                if self.name is not None:
                    got = h.count(self.name)
                    if got != len(self.oracle.records):
                        fail(f"count() is {got}; the model holds {len(self.oracle.records)} records")

            def teardown(self) -> None:
                if self.name is not None:
                    h.drop(self.name)

        run_state_machine_as_test(
            StoreMachine, settings=clause_settings(BASE_EXAMPLES["state_machine"], stateful=True)
        )

    # --- concurrency and the event loop ------------------------------------------------------------

    def test_concurrent_writes(self, vpa_store: StoreHarness) -> None:
        """Upserts from 24 concurrent tasks lose nothing; concurrent deletes and upserts of
        disjoint ids leave exactly the expected records."""
        h = vpa_store
        caps = h.capabilities
        rng = np.random.default_rng(3)
        tasks, batches, per_batch, dim = 24, 3, 5, 8
        with_int = MetadataType.INT in caps.metadata_types
        plan = [
            [
                [
                    Record(
                        f"t{t}-b{b}-r{r}",
                        rng.standard_normal(dim),
                        f"task {t}",
                        {"task": t} if with_int else {},
                    )
                    for r in range(per_batch)
                ]
                for b in range(batches)
            ]
            for t in range(tasks)
        ]
        with h.collection(dim) as name:
            oracle = Oracle(dim)

            async def writer(batches_of_task: list[list[Record]]) -> None:
                for batch in batches_of_task:
                    await h.store.upsert(name, batch)

            h.run(asyncio.gather(*(writer(p) for p in plan)))
            h.settle(name)
            for task_plan in plan:
                for batch in task_plan:
                    oracle.upsert(batch)
            _check_unchanged(h, name, oracle)

            extra = [Record(f"late-{i}", rng.standard_normal(dim), "late", {}) for i in range(40)]

            async def deleter(task_plan: list[list[Record]]) -> int:
                return await h.store.delete(name, ids=[r.id for b in task_plan for r in b])

            async def late_writer(records: list[Record]) -> None:
                await h.store.upsert(name, records)

            jobs = [deleter(p) for p in plan[::2]] + [late_writer(extra[i : i + 4]) for i in range(0, 40, 4)]
            results = h.run(asyncio.gather(*jobs))
            h.settle(name)
            for p in plan[::2]:
                oracle.delete(ids=[r.id for b in p for r in b])
            oracle.upsert(extra)
            removed = sum(results[: len(plan[::2])])
            if removed != len(plan[::2]) * batches * per_batch:
                fail(
                    f"concurrent deletes reported {removed} removals; "
                    f"{len(plan[::2]) * batches * per_batch} existed"
                )
            _check_unchanged(h, name, oracle)

    def test_event_loop_not_blocked(self, vpa_store: StoreHarness) -> None:
        """While the store upserts 5000 records, counts, filters, queries, gets and deletes, a
        5 ms ticker on the same event loop never stalls longer than MAX_LOOP_STALL: blocking
        vendor calls must run off the loop (asyncio.to_thread) or be async."""
        h = vpa_store
        caps = h.capabilities
        rng = np.random.default_rng(11)
        n, dim = 5000, 64
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        with_int = MetadataType.INT in caps.metadata_types
        records = [
            Record(f"e{i}", vectors[i], f"text {i}", {"i": i % 10} if with_int else {}) for i in range(n)
        ]
        spec = {"i": 3} if with_int and FilterOp.EQ in caps.filter_operators else None
        with h.collection(dim) as name:

            async def scenario() -> tuple[float, dict[str, float]]:
                loop = asyncio.get_running_loop()
                stalls: dict[str, float] = {}
                current = ["start"]
                stop = asyncio.Event()

                async def ticker() -> None:
                    last = loop.time()
                    while not stop.is_set():
                        await asyncio.sleep(0.005)
                        now = loop.time()
                        stalls[current[0]] = max(stalls.get(current[0], 0.0), now - last)
                        last = now

                task = asyncio.create_task(ticker())
                await asyncio.sleep(0.02)
                steps: list[tuple[str, Callable[[], Any]]] = [
                    ("upsert", lambda: h.store.upsert(name, records)),
                    (
                        "settle",
                        lambda: h.store.settle(name) if caps.eventually_consistent else asyncio.sleep(0),
                    ),
                    ("count", lambda: h.store.count(name)),
                    ("count(filter)", lambda: h.store.count(name, spec)),
                    ("query", lambda: h.store.query(name, vectors[1].tolist(), h.clamp_top_k(50), spec)),
                    ("get", lambda: h.store.get(name, [f"e{i}" for i in range(0, n, 5)])),
                    (
                        "delete",
                        lambda: h.store.delete(name, ids=[f"e{i}" for i in range(0, n, 2)], filter=spec),
                    ),
                ]
                started = time.perf_counter()
                for label, step in steps:
                    current[0] = label
                    await step()
                current[0] = "end"
                await asyncio.sleep(0.02)
                stop.set()
                await task
                stalls["total_seconds"] = time.perf_counter() - started
                return max(v for k, v in stalls.items() if k != "total_seconds"), stalls

            worst, stalls = h.run(scenario())
            h.node.user_properties.append(("vpa_max_loop_stall_ms", round(worst * 1000, 1)))
            by_call = {k: round(v * 1000, 1) for k, v in stalls.items() if k != "total_seconds"}
            h.node.user_properties.append(("vpa_loop_stall_ms_by_call", by_call))
            if worst > MAX_LOOP_STALL:
                detail = ", ".join(
                    f"{k} {v * 1000:.0f} ms" for k, v in stalls.items() if k != "total_seconds"
                )
                fail(
                    f"the event loop stalled for {worst * 1000:.0f} ms (limit "
                    f"{MAX_LOOP_STALL * 1000:.0f} ms) "
                    f"while the store worked; worst stall per call: {detail}. Run blocking client calls "
                    "with asyncio.to_thread or use the vendor's async client"
                )


# A ContractViolation is an AssertionError: pytest shows its message as the failure.
_ = ContractViolation
_ = check_record
