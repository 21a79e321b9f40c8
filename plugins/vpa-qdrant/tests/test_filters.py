"""The filter translation, checked against the real engine and VPA's reference evaluator.

Every operator, on every metadata type, on missing fields, lists and empty lists, with negation:
the ids Qdrant returns for a native filter must be exactly those `vpa.filters.evaluate` accepts.
"""

from __future__ import annotations

import itertools
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client import models
from vpa.filters import evaluate, parse_filter
from vpa.models import Record
from vpa_qdrant.filters import to_native

METADATA = [
    {},
    {"n": 1},
    {"n": 1.0},
    {"n": 2},
    {"n": 2.5},
    {"n": -3},
    {"n": 0},
    {"n": -0.0},
    {"n": 2**53},
    {"n": True},
    {"n": False},
    {"n": "1"},
    {"n": ""},
    {"n": ["1", "x"]},
    {"n": []},
    {"n": "x"},
    {"n": "X"},
    {"n": "ü√"},
    {"n": ["ü√"]},
    {"n": ["x", "y"]},
    {"other": 1},
    {"n": 1, "s": "a", "b": True, "tags": ["a", "b"]},
    {"n": 7.25, "s": "b", "b": False, "tags": []},
    {"s": "a", "tags": ["c"]},
]

VALUES = [1, 1.0, 2, 2.5, -3, 0, -0.0, 2**53, 0.5, True, False, "1", "", "x", "X", "ü√", "y", "a"]
SCALAR_OPS = ["$eq", "$ne"]
ORDER_OPS = ["$gt", "$gte", "$lt", "$lte"]


def _kind(v):
    return "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "number"


def leaf_filters() -> list[dict]:
    filters: list[dict] = []
    for field in ("n", "missing"):
        for value in VALUES:
            for op in SCALAR_OPS:
                filters.append({field: {op: value}})
            if _kind(value) == "number":
                for op in ORDER_OPS:
                    filters.append({field: {op: value}})
        by_kind: dict[str, list] = {}
        for value in VALUES:
            by_kind.setdefault(_kind(value), []).append(value)
        for values in by_kind.values():
            for size in (1, 2, 3):
                for op in ("$in", "$nin"):
                    filters.append({field: {op: values[:size]}})
                    filters.append({field: {op: values[-size:]}})
    filters.append({"tags": "a"})
    filters.append({"tags": {"$in": ["c", "z"]}})
    filters.append({"tags": {"$nin": ["a"]}})
    filters.append({"tags": {"$gt": 0}})
    filters.append({"b": True})
    filters.append({"b": {"$ne": False}})
    filters.append({"b": 1})
    return filters


def compound_filters() -> list[dict]:
    leaves = [{"n": 1}, {"n": {"$gt": 0}}, {"s": "a"}, {"tags": {"$nin": ["a"]}}, {"b": {"$ne": True}}]
    out: list[dict] = []
    for a, b in itertools.combinations(leaves, 2):
        out.append({"$and": [a, b]})
        out.append({"$or": [a, b]})
        out.append({"$not": {"$or": [a, b]}})
        out.append({"$not": {"$and": [a, {"$not": b}]}})
    out.append({"n": {"$gte": 1, "$lt": 3}, "s": {"$ne": "b"}})
    out.append({"$or": [{"$not": {"n": 1}}, {"missing": {"$nin": [1]}}]})
    return out


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path_factory.mktemp("filters")))
    client.create_collection("f", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    points = [
        models.PointStruct(id=str(uuid.UUID(int=i + 1)), vector=[1.0, float(i)], payload={"i": i, "m": md})
        for i, md in enumerate(METADATA)
    ]
    client.upsert("f", points=points, wait=True)
    yield client
    client.close()


def native_ids(client, spec) -> set[int]:
    native = to_native(parse_filter(spec))
    points, _ = client.scroll("f", scroll_filter=native, limit=1000, with_payload=True)
    return {p.payload["i"] for p in points}


def reference_ids(spec) -> set[int]:
    node = parse_filter(spec)
    return {i for i, md in enumerate(METADATA) if evaluate(node, md)}


@pytest.mark.parametrize("group", ["leaves", "compound"])
def test_native_filter_equals_reference(engine, group):
    filters = leaf_filters() if group == "leaves" else compound_filters()
    mismatches = []
    for spec in filters:
        for candidate in (spec, {"$not": spec}):
            got, want = native_ids(engine, candidate), reference_ids(candidate)
            if got != want:
                mismatches.append((candidate, sorted(got - want), sorted(want - got)))
    assert not mismatches, mismatches[:10]
    assert len(filters) > (100 if group == "leaves" else 20)


def test_every_record_matches_exactly_one_of_f_and_not_f(engine):
    for spec in leaf_filters()[:60]:
        yes, no = native_ids(engine, spec), native_ids(engine, {"$not": spec})
        assert yes.isdisjoint(no) and yes | no == set(range(len(METADATA))), spec


def test_numbers_use_ranges_not_match_value():
    native = to_native(parse_filter({"n": 1}))
    (cond,) = native.must
    assert cond.key == "m.n" and cond.match is None
    assert cond.range == models.Range(gte=1.0, lte=1.0)


def test_negations_are_must_not():
    for spec in ({"n": {"$ne": "a"}}, {"n": {"$nin": ["a", "b"]}}, {"$not": {"n": "a"}}):
        native = to_native(parse_filter(spec))
        assert native.must_not and not native.should


def test_strings_in_use_match_any_and_numbers_use_should():
    strings = to_native(parse_filter({"s": {"$in": ["a", "b"]}}))
    assert isinstance(strings.must[0].match, models.MatchAny)
    numbers = to_native(parse_filter({"n": {"$in": [1, 2.5]}}))
    assert len(numbers.should) == 2 and all(c.range is not None for c in numbers.should)


def test_no_filter_is_none():
    assert to_native(None) is None


async def test_store_query_count_delete_use_the_filter(local_store):
    await local_store.create_collection("t_filters", 2)
    records = [Record(f"r{i}", np.array([1.0, i + 1.0]), f"t{i}", md) for i, md in enumerate(METADATA)]
    await local_store.upsert("t_filters", records)
    spec = {"$or": [{"n": {"$gte": 1}}, {"tags": "c"}]}
    want = {f"r{i}" for i in reference_ids(spec)}
    hits = await local_store.query("t_filters", [1.0, 1.0], top_k=100, filter=spec)
    assert {h.id for h in hits} == want
    assert await local_store.count("t_filters", spec) == len(want)
    assert await local_store.count("t_filters", {"$not": spec}) == len(METADATA) - len(want)
    assert await local_store.delete("t_filters", filter=spec) == len(want)
    assert await local_store.count("t_filters") == len(METADATA) - len(want)
    assert await local_store.count("t_filters", spec) == 0


# --- random trees ----------------------------------------------------------------------------------

_FIELDS = st.sampled_from(["n", "s", "b", "tags", "missing", "other"])
_SAME_KIND = st.one_of(
    st.lists(st.sampled_from([v for v in VALUES if _kind(v) == "number"]), min_size=1, max_size=3),
    st.lists(
        st.sampled_from([v for v in VALUES if _kind(v) == "str"] + ["a", "b", "c"]), min_size=1, max_size=3
    ),
    st.lists(st.booleans(), min_size=1, max_size=2),
)


def _leaf() -> st.SearchStrategy[dict]:
    scalar = st.tuples(_FIELDS, st.sampled_from(["$eq", "$ne"]), st.sampled_from(VALUES))
    ordering = st.tuples(
        _FIELDS, st.sampled_from(ORDER_OPS), st.sampled_from([v for v in VALUES if _kind(v) == "number"])
    )
    listed = st.tuples(_FIELDS, st.sampled_from(["$in", "$nin"]), _SAME_KIND)
    return st.one_of(scalar, ordering, listed).map(lambda t: {t[0]: {t[1]: t[2]}})


_TREES = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"$and": cs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"$or": cs}),
        inner.map(lambda c: {"$not": c}),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_TREES)
def test_random_trees_equal_reference(engine, spec):
    assert native_ids(engine, spec) == reference_ids(spec)
