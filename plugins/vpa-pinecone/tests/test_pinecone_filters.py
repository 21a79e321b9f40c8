"""The filter translation, checked without the network: for random metadata and random VPA filters,
Pinecone's semantics (the stand-in's evaluator) applied to the translated filter over the encoded
metadata must give exactly what `vpa.filters.evaluate` gives over the original metadata."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standin.filters import FilterError, compile_filter
from standin.model import normalise_metadata
from vpa.filters import And, Comparison, Not, Or, evaluate, parse_filter
from vpa.models import FilterOp, Record
from vpa.typedjson import to_micros
from vpa_pinecone import codec
from vpa_pinecone.filters import to_native

UTC = dt.UTC
#: Plain keys, contract 1.1's wider keys, and keys that look like the codec's reserved ones.
FIELDS = ["a", "tags", "og:title", "page.number", 'q"[0]', "Größe", "vpa-text", "vpa-n-a", "vpa-u-x"]
STRINGS = ["x", "y", "", "ü"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
#: Datetimes whose microseconds equal some of the numbers below (a datetime never equals a number).
DATES = [
    EPOCH,
    EPOCH + dt.timedelta(microseconds=1),
    EPOCH + dt.timedelta(microseconds=2),
    dt.datetime(2024, 5, 1, 12, tzinfo=UTC),
    dt.datetime(1700, 1, 1, tzinfo=UTC),
]
NUMBERS = [0, 1, 2, -1, 1.0, 1.5, 2.0]

scalars = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans(), st.sampled_from(DATES))
values = st.one_of(scalars, st.lists(st.sampled_from(STRINGS), max_size=3))
metadata_st = st.dictionaries(st.sampled_from(FIELDS), values, max_size=4)


def _in_values() -> st.SearchStrategy[tuple]:
    return st.one_of(
        st.lists(st.sampled_from(STRINGS), min_size=1, max_size=3),
        st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3),
        st.lists(st.booleans(), min_size=1, max_size=2),
        st.lists(st.sampled_from(DATES), min_size=1, max_size=3),
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
        st.one_of(st.sampled_from(NUMBERS), st.sampled_from(DATES)),
    ),
    st.builds(Comparison, st.sampled_from(FIELDS), st.just(FilterOp.EXISTS), st.booleans()),
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


def updated(metadata: dict, changes: dict) -> dict:
    """What Pinecone holds after an in-place update set ``changes`` (``setMetadata`` merged in:
    keys are added or replaced, none removed)."""
    return normalise_metadata("id", {**stored(metadata), **codec.encode_set(changes)})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metadata=metadata_st, tree=trees)
def test_translation_agrees_with_reference(metadata: dict, tree) -> None:
    native = to_native(tree)
    held = stored(metadata)
    assert codec.decode_metadata(held)[2] == metadata  # every key and type round-trips
    assert compile_filter(native)(held) == evaluate(tree, metadata), native


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    metadata=metadata_st,
    changes=st.dictionaries(
        st.sampled_from(FIELDS), values.filter(lambda v: v != []), min_size=1, max_size=3
    ),
    tree=trees,
)
def test_translation_agrees_after_an_in_place_update(metadata: dict, changes: dict, tree) -> None:
    """A record changed by Pinecone's merging update (type tags rewritten, a stale ``vpa-empty``
    entry left behind) reads back and filters exactly as the merged VPA metadata."""
    merged = {**metadata, **changes}
    held = updated(metadata, changes)
    assert codec.decode_metadata(held)[2] == merged
    assert compile_filter(to_native(tree))(held) == evaluate(tree, merged), to_native(tree)


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
    # a number comparison also says "not a datetime" (datetimes are tagged numbers)
    assert to_native(parse_filter({"a": {"$ne": 1}})) == {
        "$or": [{"a": {"$ne": 1}}, {"a": {"$exists": False}}, {"vpa-n-a": {"$eq": "d"}}]
    }
    assert to_native(parse_filter({"a": {"$in": [1, 2]}})) == {
        "$and": [{"a": {"$in": [1, 2]}}, {"vpa-n-a": {"$ne": "d"}}]
    }
    assert to_native(parse_filter({"a": {"$in": [True]}})) == {"a": {"$eq": True}}
    assert to_native(parse_filter({"$not": {"a": {"$gt": 3}}})) == {
        "$or": [{"a": {"$lte": 3}}, {"vpa-n-a": {"$exists": False}}, {"vpa-n-a": {"$nin": ["i", "f"]}}]
    }
    when = dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert to_native(parse_filter({"d": {"$gte": when}})) == {
        "$and": [{"d": {"$gte": to_micros(when)}}, {"vpa-n-d": {"$eq": "d"}}]
    }
    assert to_native(parse_filter({"a": None})) == {
        "$and": [
            {"a": {"$exists": False}},
            {"$or": [{"vpa-empty": {"$ne": "a"}}, {"vpa-empty": {"$exists": False}}]},
        ]
    }
    assert to_native(parse_filter({"a": {"$ne": None}})) == {
        "$or": [{"a": {"$exists": True}}, {"vpa-empty": {"$eq": "a"}}]
    }
    # a VPA key that starts with the reserved prefix is addressed by its escaped name
    assert to_native(parse_filter({"vpa-text": "x"})) == {"vpa-u-vpa-text": {"$eq": "x"}}
    assert to_native(parse_filter({"og:title": "x"})) == {"og:title": {"$eq": "x"}}
    assert to_native(parse_filter({"$not": {"$and": [{"a": "x"}, {"b": True}]}})) == {
        "$or": [
            {"a": {"$ne": "x"}},
            {"a": {"$exists": False}},
            {"b": {"$ne": True}},
            {"b": {"$exists": False}},
        ]
    }
    # the translation uses nothing Pinecone lacks: no $not anywhere
    assert "$not" not in repr(to_native(parse_filter({"$not": {"$or": [{"a": {"$nin": ["x"]}}, {"b": 1}]}})))


def test_codec_reserved_keys_and_types() -> None:
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    metadata = {"vpa-text": "mine", "vpa-id": "also mine", "n": 3, "f": 3.0, "d": when, "e": [], "vpa-e": []}
    held = codec.encode_metadata(Record("r", np.ones(2, dtype=np.float32), "the text", metadata))
    assert held["vpa-text"] == "the text" and held["vpa-id"] == "r"
    assert held["vpa-u-vpa-text"] == "mine" and held["vpa-u-vpa-id"] == "also mine"
    assert held["d"] == to_micros(when) and held["vpa-n-d"] == "d"
    assert held["vpa-n-n"] == "i" and held["vpa-n-f"] == "f"
    assert held["vpa-empty"] == ["e", "vpa-u-vpa-e"]
    record_id, text, back = codec.decode_metadata(normalise_metadata("r", held))
    assert (record_id, text) == ("r", "the text")
    assert back == metadata and type(back["n"]) is int and type(back["f"]) is float
    assert back["d"] == when and back["d"].tzinfo is not None
    # an in-place set tags every key, so none is left stale
    assert codec.encode_set({"n": "now a string", "d": when, "vpa-text": True}) == {
        "n": "now a string",
        "vpa-n-n": "x",
        "d": to_micros(when),
        "vpa-n-d": "d",
        "vpa-u-vpa-text": True,
        "vpa-n-vpa-u-vpa-text": "x",
    }
    with pytest.raises(ValueError):
        codec.encode_set({"e": []})  # an empty list needs a key removed: read-modify-write


@pytest.mark.parametrize(
    ("spec", "metadata", "expected"),
    [
        ({"d": {"$eq": EPOCH + dt.timedelta(microseconds=1)}}, {"d": 1}, False),  # a number is no datetime
        ({"d": {"$eq": 1}}, {"d": EPOCH + dt.timedelta(microseconds=1)}, False),
        ({"d": {"$ne": 1}}, {"d": EPOCH + dt.timedelta(microseconds=1)}, True),
        ({"d": {"$gt": 0}}, {"d": EPOCH + dt.timedelta(microseconds=1)}, False),
        ({"d": {"$gt": EPOCH}}, {"d": 5}, False),
        ({"$not": {"d": {"$gt": EPOCH}}}, {"d": 5}, True),
        ({"d": {"$lt": EPOCH}}, {"d": dt.datetime(1700, 1, 1, tzinfo=UTC)}, True),
        ({"d": {"$in": [EPOCH]}}, {"d": EPOCH}, True),
        ({"d": {"$nin": [EPOCH]}}, {"d": 0}, True),
        ({"e": {"$exists": True}}, {"e": []}, True),  # an empty list is present
        ({"e": None}, {"e": []}, False),
        ({"e": None}, {}, True),
        ({"$not": {"e": {"$exists": True}}}, {"x": 1}, True),
    ],
)
def test_documented_1_1_cases(spec: dict, metadata: dict, expected: bool) -> None:
    tree = parse_filter(spec)
    assert evaluate(tree, metadata) is expected
    assert compile_filter(to_native(tree))(stored(metadata)) is expected


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
