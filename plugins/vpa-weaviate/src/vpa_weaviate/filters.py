"""Translate VPA's portable filter tree into Weaviate's v4 ``Filter`` API, exactly.

The translation needs the collection's schema (the data type of each ``m_<key>`` property),
because Weaviate's filters are typed and VPA's semantics are defined per value type:

==============  ==========================================================================
VPA             Weaviate (``P`` is ``m_<key>``; text operands are framed, see `naming`)
==============  ==========================================================================
``$eq v``       text: ``P Equal v``; text[]: ``P ContainsAny [v]`` (list means contains);
                int: ``P Equal v`` (a float operand only if integral); number: ``P Equal
                float(v)``; boolean: ``P Equal v``. Any other pairing of operand and property
                type is *false* (a str never equals a number; bool is not a number).
``$in vs``      text[]: ``P ContainsAny vs``; a scalar property: ``Or`` of ``P Equal v`` (the
                operands of the property's type only: non-integral floats dropped for an int
                property); false when none is left.
``$gt`` ...     number: ``P GreaterThan float(v)``; int: the integer bound that is equivalent
                (``> 2.5`` is ``> 2``, ``>= 2.5`` is ``>= 3``); any other type: false.
``$ne``         ``Not(<$eq>)``; ``$nin``: ``Not(<$in>)``; ``$not f``: ``Not(<f>)``.
datetimes       date: ``Equal``/``GreaterThan``/... with the datetime (RFC 3339 in UTC, to the
                microsecond); a datetime against any other type, or a number or string
                against a date, is false. ``$in`` of datetimes: ``Or`` of ``Equal``.
``$exists b``   ``P IsNull (not b)`` — the class indexes null state, and an empty list is
                stored as a one-item mark (`naming`), so null means exactly "no value".
missing key     a key the collection has no property for matches nothing: ``$eq``-like
                operators are false and ``$ne``/``$nin`` are true, as for records lacking it;
                ``$exists`` on it is false (and its negation true).
==============  ==========================================================================

Negation is always Weaviate's ``Not`` operator (Weaviate >= 1.33), which is the complement over
all objects — records lacking the property included — exactly VPA's ``$ne``/``$nin``/``$not``.
``NotEqual`` is never used: its result on objects without the property changed between Weaviate
versions. Constants are folded away (``And`` with a false child is false, and so on), so the
result is a Weaviate filter, `TRUE` (no filter) or `FALSE` (the caller skips the request).

``$exists`` needs the class's null-state index (``indexNullState``), which collections created by
vpa-weaviate 0.3 have and older ones lack (Weaviate cannot add it later): on those it is
`UnsupportedFilter`, naming the collection.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from vpa.errors import UnsupportedFilter
from vpa.filters import And, Comparison, Node, Not
from vpa.models import FilterOp
from vpa.typedjson import UTC
from weaviate.classes.query import Filter
from weaviate.collections.classes.filters import _Filters

from vpa_weaviate.naming import frame, prop_name

TEXT: Final = "text"
INT: Final = "int"
NUMBER: Final = "number"
BOOL: Final = "boolean"
TEXT_ARRAY: Final = "text[]"
DATE: Final = "date"
DATA_TYPES: Final = (TEXT, INT, NUMBER, BOOL, TEXT_ARRAY, DATE)
#: One past the largest int VPA stores (±2**53).
INT_LIMIT: Final = 2**53 + 1


class _Const:
    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "TRUE" if self.value else "FALSE"


#: Matches every object: the caller sends no filter.
TRUE: Final = _Const(True)
#: Matches no object: the caller answers without asking Weaviate.
FALSE: Final = _Const(False)

Translated = _Filters | _Const


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, int | float):
        return "number"
    return "str"


def _as_float(value: int | float) -> float:
    number = float(value)
    return 0.0 if number == 0 else number  # -0.0 is stored as 0.0, see codec.encode_value


def _int_like(value: int | float) -> bool:
    """Whether a number can equal a stored int (ints are stored within ±2**53)."""
    if isinstance(value, float) and not value.is_integer():
        return False
    return abs(value) <= 2**53


def _equal(prop: str, data_type: str, value: Any) -> Translated:
    kind = _kind(value)
    where = Filter.by_property(prop)
    if data_type == TEXT:
        return where.equal(frame(value)) if kind == "str" else FALSE
    if data_type == TEXT_ARRAY:
        return where.contains_any([frame(value)]) if kind == "str" else FALSE
    if data_type == BOOL:
        return where.equal(value) if kind == "bool" else FALSE
    if data_type == DATE:
        return where.equal(value.astimezone(UTC)) if kind == "datetime" else FALSE
    if kind != "number":
        return FALSE
    if data_type == INT:
        if not _int_like(value):
            return FALSE
        return where.equal(int(value))
    if data_type == NUMBER:
        return where.equal(_as_float(value))
    return FALSE


def _contains_any(prop: str, data_type: str, values: tuple[Any, ...]) -> Translated:
    kind = _kind(values[0])  # the parser refuses mixed lists
    where = Filter.by_property(prop)
    operands: list[Any]
    if data_type in (TEXT, TEXT_ARRAY):
        if kind != "str":
            return FALSE
        operands = [frame(v) for v in dict.fromkeys(values)]
    elif data_type == BOOL:
        if kind != "bool":
            return FALSE
        operands = list(dict.fromkeys(values))
    elif data_type == DATE:
        if kind != "datetime":
            return FALSE
        operands = list(dict.fromkeys(v.astimezone(UTC) for v in values))
    elif data_type == INT:
        if kind != "number":
            return FALSE
        operands = list(dict.fromkeys(int(v) for v in values if _int_like(v)))
    elif data_type == NUMBER:
        if kind != "number":
            return FALSE
        operands = list(dict.fromkeys(_as_float(v) for v in values))
    else:
        return FALSE
    if not operands:
        return FALSE
    if data_type == TEXT_ARRAY:
        return where.contains_any(operands)
    # ContainsAny is documented for arrays and text; Or of Equal is the same on every scalar type
    return _any_of([where.equal(v) for v in operands])


def _ordered(prop: str, data_type: str, op: FilterOp, value: Any) -> Translated:
    kind = _kind(value)
    where = Filter.by_property(prop)
    if data_type == DATE and kind == "datetime":
        bound: int | float | dt.datetime = value.astimezone(UTC)
    elif kind != "number" or data_type not in (INT, NUMBER):
        return FALSE
    elif data_type == NUMBER:
        bound = _as_float(value)
    elif isinstance(value, int):
        bound = value
    elif op in (FilterOp.GT, FilterOp.LTE):  # x > 2.5 <=> x > 2 ; x <= 2.5 <=> x <= 2
        bound = math.floor(value)
    else:  # x >= 2.5 <=> x >= 3 ; x < 2.5 <=> x < 3
        bound = math.ceil(value)
    if data_type == INT:  # stored ints are within ±2**53: a farther bound means the same, and fits int64
        bound = max(-INT_LIMIT, min(INT_LIMIT, int(bound)))  # type: ignore[arg-type]
    methods: dict[FilterOp, Callable[[Any], _Filters]] = {
        FilterOp.GT: where.greater_than,
        FilterOp.GTE: where.greater_or_equal,
        FilterOp.LT: where.less_than,
        FilterOp.LTE: where.less_or_equal,
    }
    return methods[op](bound)


def negate(translated: Translated) -> Translated:
    if translated is TRUE:
        return FALSE
    if translated is FALSE:
        return TRUE
    return Filter.not_(translated)  # type: ignore[arg-type]


def _all_of(parts: list[Translated]) -> Translated:
    if any(p is FALSE for p in parts):
        return FALSE
    kept = [p for p in parts if p is not TRUE]
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else Filter.all_of(kept)  # type: ignore[arg-type]


def _any_of(parts: list[Translated]) -> Translated:
    if any(p is TRUE for p in parts):
        return TRUE
    kept = [p for p in parts if p is not FALSE]
    if not kept:
        return FALSE
    return kept[0] if len(kept) == 1 else Filter.any_of(kept)  # type: ignore[arg-type]


def _comparison(node: Comparison, types: Mapping[str, str], null_state: bool) -> Translated:
    data_type = types.get(node.field)
    op = node.op
    if data_type is None:  # no record of this collection has ever had the key
        if op is FilterOp.EXISTS:
            return FALSE if node.value else TRUE
        return TRUE if op in (FilterOp.NE, FilterOp.NIN) else FALSE
    prop = prop_name(node.field)
    if op is FilterOp.EXISTS:
        if not null_state:
            raise UnsupportedFilter(
                "$exists needs Weaviate's null-state index, which this collection lacks (created by "
                "vpa-weaviate before 0.3; Weaviate cannot add it to a class): copy it into a new one"
            )
        return Filter.by_property(prop).is_none(not node.value)
    if op is FilterOp.EQ:
        return _equal(prop, data_type, node.value)
    if op is FilterOp.NE:
        return negate(_equal(prop, data_type, node.value))
    if op is FilterOp.IN:
        return _contains_any(prop, data_type, node.value)  # type: ignore[arg-type]
    if op is FilterOp.NIN:
        return negate(_contains_any(prop, data_type, node.value))  # type: ignore[arg-type]
    return _ordered(prop, data_type, op, node.value)


def to_native(node: Node | None, types: Mapping[str, str], *, null_state: bool = True) -> Translated:
    """The Weaviate filter equivalent to ``node``; ``types`` maps metadata keys to data types,
    ``null_state`` says whether the class indexes null state (needed by ``$exists``)."""
    if node is None:
        return TRUE
    if isinstance(node, Comparison):
        return _comparison(node, types, null_state)
    if isinstance(node, Not):
        return negate(to_native(node.child, types, null_state=null_state))
    parts = [to_native(child, types, null_state=null_state) for child in node.children]
    return _all_of(parts) if isinstance(node, And) else _any_of(parts)


def uses_not(translated: Translated) -> bool:
    """Whether the translated filter needs Weaviate's ``Not`` operator (Weaviate >= 1.33)."""
    if isinstance(translated, _Const):
        return False
    from weaviate.collections.classes.filters import _FilterAnd, _FilterNot, _FilterOr

    if isinstance(translated, _FilterNot):
        return True
    if isinstance(translated, _FilterAnd | _FilterOr):
        return any(uses_not(f) for f in translated.filters)  # type: ignore[arg-type]
    return False
