import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpa.errors import InvalidFilter
from vpa.filters import And, Comparison, Not, Or, canonical_json, evaluate, matches, operators_used, parse_filter, to_dict
from vpa.models import FilterOp

RECORD = {"category": "AI", "year": 2021, "score": 0.5, "draft": False, "tags": ["x", "y"], "empty": []}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"category": "AI"}, True),
        ({"category": "ai"}, False),  # case-sensitive
        ({"year": 2021.0}, True),  # int and float compare as numbers
        ({"year": {"$gt": 2020.5}}, True),
        ({"draft": 0}, False),  # bool is not a number
        ({"draft": False}, True),
        ({"year": "2021"}, False),  # a str never equals a number
        ({"tags": "x"}, True),  # $eq on a list means contains
        ({"tags": {"$ne": "x"}}, False),
        ({"tags": {"$in": ["z", "y"]}}, True),
        ({"tags": {"$nin": ["z", "y"]}}, False),
        ({"tags": {"$gt": 1}}, False),  # ordering on a list is false
        ({"category": {"$gt": 1}}, False),  # ordering on a string is false
        ({"empty": {"$in": ["a"]}}, False),
        ({"missing": {"$eq": 1}}, False),
        ({"missing": {"$ne": 1}}, True),  # negation is complement: true on a missing field
        ({"missing": {"$nin": [1]}}, True),
        ({"missing": {"$lt": 1}}, False),
        ({"$not": {"missing": 1}}, True),
        ({"year": {"$gte": 2021, "$lte": 2021}}, True),
        ({"$or": [{"category": "x"}, {"score": {"$lt": 1}}]}, True),
        ({"$and": [{"category": "AI"}, {"draft": True}]}, False),
        ({}, True),
        (None, True),
    ],
)
def test_reference_semantics(spec, expected):
    assert matches(spec, RECORD) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": {"$regex": "x"}}, "unknown operator '$regex'"),
        ({"$nor": []}, "unknown operator '$nor'"),
        ({"a": {"$gt": None}}, "null"),
        ({"a": {"$in": [None]}}, "null"),
        ({"a": {"$exists": "yes"}}, "true or false"),
        ({"a": {"$gt": "b"}}, "needs a number"),
        ({"a": {"$in": []}}, "non-empty list"),
        ({"a": {"$in": "x"}}, "non-empty list"),
        ({"a": {"$in": [1, "x"]}}, "mixes value types"),
        ({"a": {"$eq": [1]}}, "is not a str"),
        ({"a": {}}, "empty operator object"),
        ({"a": {"b": 1}}, "nested objects"),
        ({"$and": {}}, "non-empty list"),
        ({"$or": [1]}, "must be a JSON object"),
        ({"$not": []}, "must be a JSON object"),
        ({"bad\x00key": 1}, "NUL"),
        ({"k" * 129: 1}, "the limit is 128"),
        ({"a": float("nan")}, "not a finite number"),
        ({"a": 2**60}, "outside"),
        ([{"a": 1}], "must be a JSON object"),
    ],
)
def test_malformed_filters_name_the_problem(spec, message):
    with pytest.raises(InvalidFilter, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_filter(spec)


def test_tree_shape_and_operators():
    tree = parse_filter({"a": 1, "b": {"$in": ["x"]}, "$not": {"c": {"$gt": 2}}})
    assert tree == And((Comparison("a", FilterOp.EQ, 1), Comparison("b", FilterOp.IN, ("x",)),
                        Not(Comparison("c", FilterOp.GT, 2))))
    assert operators_used(tree) == {FilterOp.AND, FilterOp.EQ, FilterOp.IN, FilterOp.NOT, FilterOp.GT}
    assert parse_filter(tree) is tree


scalars = st.one_of(st.text(max_size=3), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False), st.booleans())
fields = st.sampled_from(["a", "b", "c"])
leaf = st.builds(
    lambda f, op, v: {f: {op: v}},
    fields,
    st.sampled_from(["$eq", "$ne"]),
    scalars,
) | st.builds(lambda f, op, v: {f: {op: v}}, fields, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
              st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False))
homogeneous = st.lists(st.text(max_size=2), min_size=1, max_size=3) | st.lists(
    st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False), min_size=1, max_size=3
) | st.lists(st.booleans(), min_size=1, max_size=2)
leaf = leaf | st.builds(lambda f, op, v: {f: {op: v}}, fields, st.sampled_from(["$in", "$nin"]), homogeneous)
filters = st.recursive(
    leaf,
    lambda inner: st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3))
    | st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3))
    | st.builds(lambda x: {"$not": x}, inner),
    max_leaves=6,
)
metadata = st.dictionaries(fields, scalars | st.lists(st.text(max_size=2), max_size=2), max_size=3)


@given(filters, metadata)
def test_negation_is_complement(spec, record):
    node = parse_filter(spec)
    assert evaluate(Not(node), record) is (not evaluate(node, record))


@given(filters)
def test_dict_form_round_trips(spec):
    node = parse_filter(spec)
    assert parse_filter(to_dict(node)) == node
    assert canonical_json(parse_filter(to_dict(node))) == canonical_json(node)


@given(filters, metadata)
def test_or_is_any_and_is_all(spec, record):
    node = parse_filter(spec)
    assert evaluate(Or((node, Not(node))), record)
    assert not evaluate(And((node, Not(node))), record)


@given(filters, st.lists(metadata, max_size=12))
def test_memory_store_column_index_agrees_with_the_reference(spec, records):
    from vpa.stores.memory_filter import ColumnIndex

    node = parse_filter(spec)
    expected = [evaluate(node, record) for record in records]
    assert ColumnIndex(records).mask(node).tolist() == expected
