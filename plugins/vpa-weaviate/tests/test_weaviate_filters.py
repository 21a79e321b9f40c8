"""Filter translation: the Weaviate filter built for each VPA operator and value type, and its
exactness on the values that break naive translations (checked through the stand-in)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from vpa.errors import UnsupportedFilter
from vpa.filters import evaluate, parse_filter
from vpa.models import Record
from vpa_weaviate import filters as wf
from vpa_weaviate.naming import frame
from weaviate.collections.filters import _FilterToGRPC

TYPES = {"s": wf.TEXT, "l": wf.TEXT_ARRAY, "i": wf.INT, "x": wf.NUMBER, "b": wf.BOOL, "d": wf.DATE}
NOON = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
PARIS = dt.timezone(dt.timedelta(hours=2))


def wire(spec: Any, types: dict[str, str] = TYPES, *, null_state: bool = True) -> Any:
    """The translated filter as the gRPC message the client sends (or TRUE / FALSE)."""
    translated = wf.to_native(parse_filter(spec), types, null_state=null_state)
    if translated is wf.TRUE or translated is wf.FALSE:
        return translated
    return MessageToDict(_FilterToGRPC.convert(translated), preserving_proto_field_name=True)


def leaf(op: str, prop: str, **value: Any) -> dict[str, Any]:
    return {"operator": op, "target": {"property": prop}, **value}


# --- one leaf per operator and type --------------------------------------------------------------


def test_eq_on_text_is_equal_on_the_framed_value() -> None:
    assert wire({"s": " a "}) == leaf("OPERATOR_EQUAL", "m_s", value_text=frame(" a "))


def test_eq_on_a_text_list_means_contains() -> None:
    assert wire({"l": "a"}) == leaf("OPERATOR_CONTAINS_ANY", "m_l", value_text_array={"values": [frame("a")]})


def test_in_on_a_scalar_is_an_or_of_equals() -> None:
    assert wire({"s": {"$in": ["a", "b", "a"]}}) == {
        "operator": "OPERATOR_OR",
        "filters": [
            leaf("OPERATOR_EQUAL", "m_s", value_text=frame("a")),
            leaf("OPERATOR_EQUAL", "m_s", value_text=frame("b")),
        ],
    }
    assert wire({"b": {"$in": [True]}}) == leaf("OPERATOR_EQUAL", "m_b", value_boolean=True)


def test_in_on_a_text_list_is_contains_any() -> None:
    assert wire({"l": {"$in": ["a", "b"]}}) == leaf(
        "OPERATOR_CONTAINS_ANY", "m_l", value_text_array={"values": [frame("a"), frame("b")]}
    )


def test_int_property_takes_int_operands_and_integral_floats() -> None:
    assert wire({"i": 3}) == leaf("OPERATOR_EQUAL", "m_i", value_int="3")
    assert wire({"i": 3.0}) == leaf("OPERATOR_EQUAL", "m_i", value_int="3")
    assert wire({"i": 3.5}) is wf.FALSE
    assert wire({"i": {"$in": [1.5, 2.0, 2]}}) == leaf("OPERATOR_EQUAL", "m_i", value_int="2")
    assert wire({"i": {"$in": [1.5]}}) is wf.FALSE


@pytest.mark.parametrize(
    ("op", "value", "expected_op", "bound"),
    [
        ("$gt", 2.5, "OPERATOR_GREATER_THAN", "2"),
        ("$gte", 2.5, "OPERATOR_GREATER_THAN_EQUAL", "3"),
        ("$lt", 2.5, "OPERATOR_LESS_THAN", "3"),
        ("$lte", 2.5, "OPERATOR_LESS_THAN_EQUAL", "2"),
        ("$gt", -2.5, "OPERATOR_GREATER_THAN", "-3"),
        ("$lte", -2.5, "OPERATOR_LESS_THAN_EQUAL", "-3"),
        ("$gt", 1e308, "OPERATOR_GREATER_THAN", str(2**53 + 1)),
        ("$lt", -1e308, "OPERATOR_LESS_THAN", str(-(2**53 + 1))),
    ],
)
def test_ordering_on_an_int_property_uses_the_equivalent_integer_bound(
    op: str, value: float, expected_op: str, bound: str
) -> None:
    assert wire({"i": {op: value}}) == leaf(expected_op, "m_i", value_int=bound)


def test_number_property_takes_float_operands() -> None:
    assert wire({"x": 2}) == leaf("OPERATOR_EQUAL", "m_x", value_number=2.0)
    assert wire({"x": {"$gte": -0.0}}) == leaf("OPERATOR_GREATER_THAN_EQUAL", "m_x", value_number=0.0)
    assert wire({"x": {"$in": [1, 2.5]}}) == {
        "operator": "OPERATOR_OR",
        "filters": [
            leaf("OPERATOR_EQUAL", "m_x", value_number=1.0),
            leaf("OPERATOR_EQUAL", "m_x", value_number=2.5),
        ],
    }


@pytest.mark.parametrize(
    ("spec", "result"),
    [
        ({"b": 1}, wf.FALSE),  # bool is not a number
        ({"i": True}, wf.FALSE),
        ({"x": True}, wf.FALSE),
        ({"s": 1}, wf.FALSE),  # a str never equals a number
        ({"i": "1"}, wf.FALSE),
        ({"l": 1}, wf.FALSE),
        ({"s": {"$gt": 1}}, wf.FALSE),  # ordering is defined on numbers only
        ({"l": {"$lt": 1}}, wf.FALSE),
        ({"b": {"$gte": 0}}, wf.FALSE),
        ({"s": {"$ne": 1}}, wf.TRUE),
        ({"b": {"$nin": [0, 1]}}, wf.TRUE),
        ({"d": "2024-05-01T12:00:00Z"}, wf.FALSE),  # a datetime never equals a string...
        ({"d": 1714564800}, wf.FALSE),  # ...or a number
        ({"d": {"$gt": 0}}, wf.FALSE),
        ({"s": NOON}, wf.FALSE),
        ({"x": {"$lt": NOON}}, wf.FALSE),
        ({"l": {"$in": [NOON]}}, wf.FALSE),
        ({"i": {"$ne": NOON}}, wf.TRUE),
    ],
)
def test_type_mismatches_fold_to_constants(spec: dict[str, Any], result: Any) -> None:
    assert wire(spec) is result


def test_missing_fields_follow_the_complement_rules() -> None:
    for op in ("$eq", "$gt", "$gte", "$lt", "$lte"):
        assert wire({"absent": {op: 1}}) is wf.FALSE
    assert wire({"absent": {"$in": [1]}}) is wf.FALSE
    assert wire({"absent": {"$ne": 1}}) is wf.TRUE
    assert wire({"absent": {"$nin": ["a"]}}) is wf.TRUE


def test_datetimes_compare_as_rfc3339_in_utc_to_the_microsecond() -> None:
    text = "2024-05-01T12:00:00.123456+00:00"
    assert wire({"d": NOON.astimezone(PARIS)}) == leaf("OPERATOR_EQUAL", "m_d", value_text=text)
    assert wire({"d": {"$gte": NOON}}) == leaf("OPERATOR_GREATER_THAN_EQUAL", "m_d", value_text=text)
    assert wire({"d": {"$in": [NOON, NOON.astimezone(PARIS)]}}) == leaf(
        "OPERATOR_EQUAL", "m_d", value_text=text
    )


def test_exists_is_is_null_and_needs_the_null_state_index() -> None:
    assert wire({"s": {"$exists": True}}) == leaf("OPERATOR_IS_NULL", "m_s", value_boolean=False)
    assert wire({"l": None}) == leaf("OPERATOR_IS_NULL", "m_l", value_boolean=True)
    assert wire({"d": {"$ne": None}}) == leaf("OPERATOR_IS_NULL", "m_d", value_boolean=False)
    assert wire({"absent": {"$exists": True}}) is wf.FALSE  # no property: nothing has the key
    assert wire({"absent": None}) is wf.TRUE
    assert wire({"absent": None}, null_state=False) is wf.TRUE  # folded: no index needed
    with pytest.raises(UnsupportedFilter, match="null-state index"):
        wire({"s": {"$exists": False}}, null_state=False)


def test_negations_use_not_never_not_equal() -> None:
    assert wire({"s": {"$ne": "a"}}) == {
        "operator": "OPERATOR_NOT",
        "filters": [leaf("OPERATOR_EQUAL", "m_s", value_text=frame("a"))],
    }
    assert wire({"l": {"$nin": ["a", "b"]}}) == {
        "operator": "OPERATOR_NOT",
        "filters": [
            leaf("OPERATOR_CONTAINS_ANY", "m_l", value_text_array={"values": [frame("a"), frame("b")]})
        ],
    }
    assert wire({"$not": {"i": {"$gt": 1}}}) == {
        "operator": "OPERATOR_NOT",
        "filters": [leaf("OPERATOR_GREATER_THAN", "m_i", value_int="1")],
    }


def test_logic_folds_constants_away() -> None:
    assert wire({"$and": [{"absent": 1}, {"s": "a"}]}) is wf.FALSE
    assert wire({"$or": [{"absent": {"$ne": 1}}, {"s": "a"}]}) is wf.TRUE
    assert wire({"$or": [{"absent": 1}, {"s": "a"}]}) == leaf("OPERATOR_EQUAL", "m_s", value_text=frame("a"))
    assert wire({"$not": {"absent": 1}}) is wf.TRUE
    both = wire({"s": "a", "i": {"$gte": 2}})
    assert both["operator"] == "OPERATOR_AND" and len(both["filters"]) == 2
    assert wire({"$or": [{"s": "a"}, {"i": 2}]})["operator"] == "OPERATOR_OR"


def test_uses_not() -> None:
    assert wf.uses_not(wf.to_native(parse_filter({"s": {"$ne": "a"}}), TYPES))
    assert not wf.uses_not(wf.to_native(parse_filter({"s": "a"}), TYPES))
    assert not wf.uses_not(wf.TRUE)


# --- exactness through the wire ------------------------------------------------------------------

TRICKY_RECORDS = [
    {"s": "a", "l": ["a", " a"], "i": 0, "x": 0.0, "b": True},
    {"s": " a", "l": ["A"], "i": 2**53, "x": -0.0, "b": False},
    {"s": "a ", "l": [], "i": -(2**53), "x": 2.5, "b": True},
    {"s": "", "l": [""], "i": 3, "x": 1e308},
    {"s": "A", "l": ["a b"], "x": -1e-300},
    {"s": "a b", "i": 2},
    {"s": "b, A!"},
    {},
]
PROBES: list[Any] = [
    "a",
    " a",
    "a ",
    "",
    "A",
    "a b",
    "b",
    0,
    -0.0,
    0.0,
    2,
    2.5,
    3,
    2**53,
    -(2**53),
    1e308,
    True,
    False,
]


def _specs() -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    for field, value in itertools.product([*TYPES, "absent"], PROBES):
        specs += [{field: {"$eq": value}}, {field: {"$ne": value}}, {field: {"$in": [value]}}]
        specs += [{field: {"$nin": [value]}}]
        if isinstance(value, int | float) and not isinstance(value, bool):
            specs += [{field: {op: value}} for op in ("$gt", "$gte", "$lt", "$lte")]
    return specs


async def test_tricky_values_filter_exactly_through_the_standin(standin, unique_name) -> None:
    """Whitespace, empty strings, case, -0.0, ±2**53 and huge floats: count(filter) and
    count($not filter) agree with vpa.filters.evaluate on every probe."""
    store = standin.store()
    try:
        await store.create_collection(unique_name, 2)
        records = [Record(f"r{i}", [1.0, float(i)], "", m) for i, m in enumerate(TRICKY_RECORDS)]
        await store.upsert(unique_name, records)
        wrong = []
        for spec in _specs():
            want = sum(evaluate(parse_filter(spec), m) for m in TRICKY_RECORDS)
            got = await store.count(unique_name, spec)
            got_not = await store.count(unique_name, {"$not": spec})
            if got != want or got_not != len(records) - want:
                wrong.append(f"{spec}: got {got}/{got_not}, want {want}/{len(records) - want}")
        assert not wrong, "\n".join(wrong[:20])
        hits = await store.query(unique_name, [1.0, 0.0], 10, {"s": {"$in": [" a", "a "]}})
        assert sorted(h.id for h in hits) == ["r1", "r2"]
        assert await store.delete(unique_name, filter={"l": {"$eq": " a"}}) == 1
        assert await store.count(unique_name) == len(records) - 1
    finally:
        await store.drop_collection(unique_name)
        await store.close()
