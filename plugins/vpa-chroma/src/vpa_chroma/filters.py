"""Translate VPA's portable filter tree into a Chroma ``where`` clause, exactly: `to_native`.

Every rule below was measured against the Chroma engine this plugin pins (local and server mode
share the same Rust executor); ``tests/test_filters.py`` checks each one against
`vpa.filters.evaluate` on a real collection. How records are stored (user keys under their
`stored_name`, floats as ordered int64 keys under ``~f:<k>``, datetimes as int microseconds under
``~d:<k>``, a type tag per key under ``~t:<k>``) is in `vpa_chroma.codec`. A numeric comparison
is an exact int comparison on each side: on the key's name with an integer operand derived from
the value (``x > 2.5`` is ``x > 2`` for ints), on ``~f:<k>`` with the key of the value.

What Chroma does natively, and what the translation adds:

- ``$ne``/``$nin``/``$not_contains`` are true on a record that lacks the field; ints and bools
  are kept apart (``True != 1``): as VPA defines them.
- Chroma keeps list values apart from scalars: ``$eq "x"`` does not look inside a list and
  ``$contains`` looks only inside lists. VPA's ``$eq "x"`` ("equals, or the list contains") is
  ``{"$or": [{"$eq": "x"}, {"$contains": "x"}]}``; ``$in`` adds one ``$contains`` per value; the
  negations use ``$ne``/``$nin``/``$not_contains`` under ``$and``.
- ``$exists`` (and ``None``, which the parser turns into it) is a comparison on the type tag:
  ``~t:k >= 1`` for present, ``~t:k $nin`` every tag for absent (true on a record without it).
- A datetime operand compares ``~d:<k>`` with its exact microseconds: never a number or a string,
  which live under other names.
- ``$not`` is pushed down (De Morgan): ``$eq``/``$ne`` and ``$in``/``$nin`` swap, ``$and`` and
  ``$or`` swap, ``$exists`` flips, and ``not (x > v)`` is ``x <= v or x is not a number`` (or not
  a datetime: the tag says). Every leaf's negation is exact, so ``f`` and ``{"$not": f}``
  partition the records.
- Chroma refuses ``$and``/``$or`` with fewer than two operands and more than one key per object;
  the builder flattens and unwraps accordingly.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from vpa.filters import And, Comparison, Node, Not, Or
from vpa.models import FilterOp
from vpa.typedjson import to_micros
from vpa.validation import MAX_SAFE_INT

from vpa_chroma.codec import (
    DATE_PREFIX,
    DATETIME,
    FLOAT_PREFIX,
    NUMBER_TAGS,
    SEQ_KEY,
    TAGS,
    TYPE_PREFIX,
    float_key,
    is_number,
    stored_name,
)

#: An integer beyond every VPA int (VPA ints are within ±2**53): clamps integer operands.
_INT_BOUND = MAX_SAFE_INT + 1

Where = dict[str, Any]

_NEGATE = {
    FilterOp.EQ: FilterOp.NE,
    FilterOp.NE: FilterOp.EQ,
    FilterOp.IN: FilterOp.NIN,
    FilterOp.NIN: FilterOp.IN,
    FilterOp.GT: FilterOp.LTE,
    FilterOp.GTE: FilterOp.LT,
    FilterOp.LT: FilterOp.GTE,
    FilterOp.LTE: FilterOp.GT,
}
_ORDERING = frozenset({FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE})


def to_native(node: Node | None) -> Where | None:
    """The Chroma ``where`` clause for a parsed VPA filter (None: no filter)."""
    if node is None:
        return None
    return _translate(node, negate=False)


def _translate(node: Node, negate: bool) -> Where:
    if isinstance(node, Not):
        return _translate(node.child, not negate)
    if isinstance(node, And | Or):
        parts = [_translate(child, negate) for child in node.children]
        conjunction = isinstance(node, And) != negate  # De Morgan swaps $and and $or
        return _all(parts) if conjunction else _any(parts)
    if isinstance(node, Comparison):
        if not negate:
            return _leaf(node.field, node.op, node.value)
        if node.op is FilterOp.EXISTS:
            return _leaf(node.field, node.op, not node.value)
        negated = _NEGATE[node.op]
        where = _leaf(node.field, negated, node.value)
        if node.op in _ORDERING:  # not (x > v)  ==  x <= v  or  x is not a number (or missing)
            kinds = [DATETIME] if isinstance(node.value, dt.datetime) else list(NUMBER_TAGS)
            return _any([where, {TYPE_PREFIX + node.field: {"$nin": kinds}}])
        return where
    raise TypeError(f"not a filter node: {node!r}")


def scroll_where(
    where: Where | None, *, above: int | None = None, upto: int | None = None, at: int | None = None
) -> Where:
    """``where`` and a range of the scroll key (`SEQ_KEY`): ``above < seq <= upto``, or ``seq == at``."""
    if at is not None:
        bounds: list[Where] = [{SEQ_KEY: {"$eq": at}}]
    else:
        bounds = [{SEQ_KEY: {"$gt": -1 if above is None else above}}]
        if upto is not None:
            bounds.append({SEQ_KEY: {"$lte": upto}})
    return _all(([where] if where else []) + bounds)


def _all(parts: list[Where]) -> Where:
    flat: list[Where] = []
    for part in parts:
        flat.extend(part["$and"] if set(part) == {"$and"} else [part])
    return flat[0] if len(flat) == 1 else {"$and": flat}


def _any(parts: list[Where]) -> Where:
    flat: list[Where] = []
    for part in parts:
        flat.extend(part["$or"] if set(part) == {"$or"} else [part])
    return flat[0] if len(flat) == 1 else {"$or": flat}


def _clamp(n: int) -> int:
    return max(-_INT_BOUND, min(_INT_BOUND, n))


def _as_int(value: int | float) -> int | None:
    """The int equal to ``value``, if a VPA int can equal it."""
    if isinstance(value, int):
        return value
    if value.is_integer() and abs(value) <= MAX_SAFE_INT:
        return int(value)
    return None


def _leaf(field: str, op: FilterOp, value: Any) -> Where:
    if op is FilterOp.EXISTS:
        tag = TYPE_PREFIX + field
        return {tag: {"$gte": min(TAGS)}} if value else {tag: {"$nin": list(TAGS)}}
    if op in (FilterOp.IN, FilterOp.NIN):
        return _list_leaf(field, op, tuple(value))
    name = stored_name(field)
    if isinstance(value, dt.datetime):
        return {DATE_PREFIX + field: {op.value: to_micros(value)}}
    if isinstance(value, str):
        if op is FilterOp.EQ:
            return _any([{name: {"$eq": value}}, {name: {"$contains": value}}])
        if op is FilterOp.NE:
            return _all([{name: {"$ne": value}}, {name: {"$not_contains": value}}])
    if is_number(value):
        return _number_leaf(field, op, value)
    return {name: {op.value: value}}  # bools: $eq / $ne are exact as they are


def _number_leaf(field: str, op: FilterOp, value: int | float) -> Where:
    """ints live under the key's name, floats under ``FLOAT_PREFIX + field``: one exact int
    comparison on each side."""
    name = stored_name(field)
    stored_float = {FLOAT_PREFIX + field: {op.value: float_key(float(value))}}
    if op in (FilterOp.EQ, FilterOp.NE):
        as_int = _as_int(value)
        if as_int is None:  # no int equals it: $eq is false on ints, $ne true
            return stored_float
        ints = {name: {op.value: as_int}}
        return _any([ints, stored_float]) if op is FilterOp.EQ else _all([ints, stored_float])
    # For an int x: x > v iff x > floor(v), x <= v iff x <= floor(v); x >= v iff x >= ceil(v),
    # x < v iff x < ceil(v).
    rounded = math.floor(value) if op in (FilterOp.GT, FilterOp.LTE) else math.ceil(value)
    bound = _clamp(rounded)
    return _any([{name: {op.value: bound}}, stored_float])


def _list_leaf(field: str, op: FilterOp, values: tuple[Any, ...]) -> Where:
    positive = op is FilterOp.IN
    name = stored_name(field)
    if all(isinstance(v, dt.datetime) for v in values):
        return {DATE_PREFIX + field: {op.value: list(dict.fromkeys(to_micros(v) for v in values))}}
    if all(isinstance(v, str) for v in values):
        contains = "$contains" if positive else "$not_contains"
        parts = [{name: {op.value: list(values)}}] + [{name: {contains: v}} for v in dict.fromkeys(values)]
        return _any(parts) if positive else _all(parts)
    if all(isinstance(v, bool) for v in values):
        return {name: {op.value: list(values)}}
    ints = list(dict.fromkeys(i for i in map(_as_int, values) if i is not None))
    keys = list(dict.fromkeys(float_key(float(v)) for v in values))
    parts = [{FLOAT_PREFIX + field: {op.value: keys}}]
    if ints:
        parts.insert(0, {name: {op.value: ints}})
    return _any(parts) if positive else _all(parts)
