"""Clauses on collections: lifecycle, names, fingerprints, persistence."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from vpa.errors import (
    CollectionNotFound,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
)
from vpa.models import (
    CollectionInfo,
    EmbedderFingerprint,
    FilterOp,
    Metric,
    Record,
    StoreCapabilities,
)
from vpa.stores.base import VectorStore

from vpa_conformance.checks import check_hits, check_record, fail
from vpa_conformance.harness import StoreHarness, collection_name
from vpa_conformance.oracle import Oracle
from vpa_conformance.store.common import (
    _check_unchanged,
    _fill,
    _raises,
)


class CollectionClauses:
    """Clauses on collections: lifecycle, names, fingerprints, persistence. Mixed into `StoreContract`."""

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
