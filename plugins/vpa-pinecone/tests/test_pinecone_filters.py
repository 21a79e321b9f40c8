"""The filter translation, checked without the network: for random metadata and random VPA filters,
Pinecone's semantics (the stand-in's evaluator) applied to the translated filter over the encoded
metadata must give exactly what `vpa.filters.evaluate` gives over the original metadata."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standin.filters import FilterError, compile_filter
from standin.model import normalise_metadata
from vpa.filters import And, Comparison, Not, Or, evaluate, parse_filter
from vpa.models import FilterOp, Record
from vpa_pinecone import codec
from vpa_pinecone.filters import to_native

FIELDS = ["a", "b", "tags"]
STRINGS = ["x", "y", "", "ü"]
NUMBERS = [0, 1, 2, -1, 1.0, 1.5, 2.0]

scalars = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans())
values = st.one_of(scalars, st.lists(st.sampled_from(STRINGS), max_size=3))
metadata_st = st.dictionaries(st.sampled_from(FIELDS), values, max_size=3)


def _in_values() -> st.SearchStrategy[tuple]:
    return st.one_of(
        st.lists(st.sampled_from(STRINGS), min_size=1, max_size=3),
        st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3),
        st.lists(st.booleans(), min_size=1, max_size=2),
    ).map(tuple)


comparisons = st.one_of(
    st.builds(Comparison, st.sampled_from(FIELDS), st.sampled_from([FilterOp.EQ, FilterOp.NE]), scalars),
    st.builds(
        Comparison, st.sampled_from(FIELDS), st.sampled_from([FilterOp.IN, FilterOp.NIN]), _in_values()
    ),
    st.builds(
        Comparison,
        st.sampled_from(FIELDS),
        st.sampled_from([FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE]),
        st.sampled_from(NUMBERS),
    ),
)
trees = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: And(tuple(cs))),
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: Or(tuple(cs))),
        inner.map(Not),
    ),
    max_leaves=6,
)


def stored(metadata: dict) -> dict:
    """What Pinecone holds for a record with this metadata (as the stand-in normalises it)."""
    record = Record("id", np.ones(2, dtype=np.float32), "text", metadata)
    return normalise_metadata("id", codec.encode_metadata(record))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metadata=metadata_st, tree=trees)
def test_translation_agrees_with_reference(metadata: dict, tree) -> None:
    native = to_native(tree)
    assert compile_filter(native)(stored(metadata)) == evaluate(tree, metadata), native


@pytest.mark.parametrize(
    ("spec", "metadata", "expected"),
    [
        ({"a": {"$ne": "x"}}, {}, True),  # VPA: $ne is true on a missing field; Pinecone's $ne is not
        ({"a": {"$nin": ["x"]}}, {}, True),
        ({"a": {"$eq": 1}}, {"a": True}, False),  # bool is not a number
        ({"a": {"$eq": True}}, {"a": 1}, False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"tags": "x"}, {"tags": ["y", "x"]}, True),  # $eq on a list means contains
        ({"tags": {"$ne": "x"}}, {"tags": ["y", "x"]}, False),
        ({"tags": {"$ne": "x"}}, {"tags": []}, True),
        ({"a": {"$in": [True]}}, {"a": True}, True),  # booleans in $in: an $or of $eq
        ({"a": {"$nin": [True, False]}}, {"a": 0}, True),
        ({"$not": {"a": {"$gt": 1}}}, {"a": "x"}, True),  # not (f > v) holds for a non-number...
        ({"$not": {"a": {"$gt": 1}}}, {}, True),  # ...and for a missing field
        ({"$not": {"a": {"$gt": 1}}}, {"a": 2}, False),
        ({"$not": {"a": {"$gt": 1}}}, {"a": 1}, True),
        ({"$not": {"$or": [{"a": "x"}, {"b": {"$lt": 0}}]}}, {"b": -1}, False),
        ({"$not": {"$not": {"a": "x"}}}, {"a": "x"}, True),
        ({"a": {"$gte": 1, "$lt": 2}}, {"a": 1.5}, True),
        ({"a": {"$lt": 2}}, {"a": [""]}, False),  # ordering on a list is false
    ],
)
def test_documented_cases(spec: dict, metadata: dict, expected: bool) -> None:
    tree = parse_filter(spec)
    assert evaluate(tree, metadata) is expected  # the reference says so...
    assert compile_filter(to_native(tree))(stored(metadata)) is expected  # ...and so does Pinecone


def test_translation_shapes() -> None:
    assert to_native(None) is None
    assert to_native(parse_filter({"a": "x"})) == {"a": {"$eq": "x"}}
    assert to_native(parse_filter({"a": {"$ne": 1}})) == {
        "$or": [{"a": {"$ne": 1}}, {"a": {"$exists": False}}]
    }
    assert to_native(parse_filter({"a": {"$in": [1, 2]}})) == {"a": {"$in": [1, 2]}}
    assert to_native(parse_filter({"a": {"$in": [True]}})) == {"a": {"$eq": True}}
    assert to_native(parse_filter({"$not": {"a": {"$gt": 3}}})) == {
        "$or": [{"a": {"$lte": 3}}, {"vpa-n-a": {"$exists": False}}]
    }
    assert to_native(parse_filter({"$not": {"$and": [{"a": 1}, {"b": 2}]}})) == {
        "$or": [{"a": {"$ne": 1}}, {"a": {"$exists": False}}, {"b": {"$ne": 2}}, {"b": {"$exists": False}}]
    }
    # the translation uses nothing Pinecone lacks: no $not anywhere
    assert "$not" not in repr(to_native(parse_filter({"$not": {"$or": [{"a": {"$nin": ["x"]}}, {"b": 1}]}})))


def test_standin_rejects_what_pinecone_rejects() -> None:
    for spec in (
        {"a": {"$in": [True]}},
        {"a": {"$gt": "x"}},
        {"a": {"$not": 1}},
        {"$nor": []},
        {"a": {"$exists": 1}},
        {"$and": []},
        {"a": {"$eq": None}},
        {"a": {"$in": "x"}},
    ):
        with pytest.raises(FilterError):
            compile_filter(spec)


def test_standin_missing_field_semantics() -> None:
    # Pinecone's $ne/$nin select only records that have the field; $exists: false selects the rest
    assert compile_filter({"a": {"$ne": "x"}})({}) is False
    assert compile_filter({"a": {"$nin": ["x"]}})({}) is False
    assert compile_filter({"a": {"$exists": False}})({}) is True
    assert compile_filter({"a": {"$exists": True}})({"a": "x"}) is True
