"""Translate VPA's portable filter tree into a Chroma ``where`` clause, exactly.

Every rule below was measured against the Chroma engine this plugin pins (local and server mode
share the same Rust executor); ``tests/test_filters.py`` checks each one against
`vpa.filters.evaluate` on a real collection.

How records are stored, and why:

- **Floats are stored as ordered integers.** Chroma writes float metadata through a lossy
  decimal conversion (about a quarter of random doubles come back one or more ulps off, -0.0
  comes back 0.0), and compares float operands against int fields after truncating them
  (``$eq 1.5`` matches the int 1). Chroma's int64 values, though, are exact. So a float field
  ``f`` is stored under ``vpa:float:f`` as the int64 `float_key`, a bijection from finite doubles
  to integers that preserves order (``-0.0`` and ``0.0`` share 0, as they are equal); ints stay
  under ``f``. A numeric comparison is then an exact int comparison on each side: on ``f`` with
  an integer operand derived from the value (``x > 2.5`` is ``x > 2`` for ints), on
  ``vpa:float:f`` with the key of the value.
- Chroma refuses empty lists as values: an empty list is not stored (VPA evaluates an empty list
  exactly like a missing field) and its name goes into `EMPTY_LIST_KEY` so ``get`` restores it.
- `NUMERIC_KEY` lists a record's int/float fields, so that ``not (x > v)`` — true on a missing
  field or a string — can be written ``x <= v or field not in NUMERIC_KEY``.

What Chroma does natively, and what the translation adds:

- ``$ne``/``$nin``/``$not_contains`` are true on a record that lacks the field; ints and bools
  are kept apart (``True != 1``): as VPA defines them.
- Chroma keeps list values apart from scalars: ``$eq "x"`` does not look inside a list and
  ``$contains`` looks only inside lists. VPA's ``$eq "x"`` ("equals, or the list contains") is
  ``{"$or": [{"$eq": "x"}, {"$contains": "x"}]}``; ``$in`` adds one ``$contains`` per value; the
  negations use ``$ne``/``$nin``/``$not_contains`` under ``$and``.
- ``$not`` is pushed down (De Morgan): ``$eq``/``$ne`` and ``$in``/``$nin`` swap, ``$and`` and
  ``$or`` swap, and ordering uses `NUMERIC_KEY` as above. Every leaf's negation is exact, so
  ``f`` and ``{"$not": f}`` partition the records.
- Chroma refuses ``$and``/``$or`` with fewer than two operands and more than one key per object;
  the builder flattens and unwraps accordingly.

The bookkeeping keys contain ``:``, which no VPA metadata key can contain, so they never collide
with user fields; they are turned back into the record's metadata on every read.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

from vpa.filters import And, Comparison, Node, Not, Or
from vpa.models import FilterOp
from vpa.validation import MAX_SAFE_INT

#: Per record: the names of its int/float fields (absent when there are none).
NUMERIC_KEY = "vpa:numeric"
#: Per record: the names of its fields whose value is an empty list (absent when there are none).
EMPTY_LIST_KEY = "vpa:empty_lists"
#: A float field ``f`` is stored as ``FLOAT_PREFIX + f``: its `float_key`.
FLOAT_PREFIX = "vpa:float:"
RESERVED_KEYS = (NUMERIC_KEY, EMPTY_LIST_KEY)

_SIGN = 1 << 63
_MAGNITUDE = _SIGN - 1
#: An integer beyond every VPA int (VPA ints are within ±2**53): clamps integer operands.
_INT_BOUND = MAX_SAFE_INT + 1


def float_key(value: float) -> int:
    """An int64 with the order of the doubles: ``a < b`` iff ``float_key(a) < float_key(b)``."""
    bits = struct.unpack("<q", struct.pack("<d", float(value)))[0]
    return bits if bits >= 0 else -(bits & _MAGNITUDE)


def key_float(key: int) -> float:
    """The inverse of `float_key` (``-0.0`` comes back as ``0.0``)."""
    bits = key if key >= 0 else (-key) | _SIGN
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


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


def to_where(node: Node | None) -> Where | None:
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
        negated = _NEGATE[node.op]
        where = _leaf(node.field, negated, node.value)
        if node.op in _ORDERING:  # not (x > v)  ==  x <= v  or  x is not a number (or missing)
            return _any([where, {NUMERIC_KEY: {"$not_contains": node.field}}])
        return where
    raise TypeError(f"not a filter node: {node!r}")


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    if op in (FilterOp.IN, FilterOp.NIN):
        return _list_leaf(field, op, tuple(value))
    if isinstance(value, str):
        if op is FilterOp.EQ:
            return _any([{field: {"$eq": value}}, {field: {"$contains": value}}])
        if op is FilterOp.NE:
            return _all([{field: {"$ne": value}}, {field: {"$not_contains": value}}])
    if _is_number(value):
        return _number_leaf(field, op, value)
    return {field: {op.value: value}}  # bools: $eq / $ne are exact as they are


def _number_leaf(field: str, op: FilterOp, value: int | float) -> Where:
    """ints live under ``field``, floats under ``FLOAT_PREFIX + field``: one exact int
    comparison on each side."""
    stored_float = {FLOAT_PREFIX + field: {op.value: float_key(float(value))}}
    if op in (FilterOp.EQ, FilterOp.NE):
        as_int = _as_int(value)
        if as_int is None:  # no int equals it: $eq is false on ints, $ne true
            return stored_float
        ints = {field: {op.value: as_int}}
        return _any([ints, stored_float]) if op is FilterOp.EQ else _all([ints, stored_float])
    # For an int x: x > v iff x > floor(v), x <= v iff x <= floor(v); x >= v iff x >= ceil(v),
    # x < v iff x < ceil(v).
    rounded = math.floor(value) if op in (FilterOp.GT, FilterOp.LTE) else math.ceil(value)
    bound = _clamp(rounded)
    return _any([{field: {op.value: bound}}, stored_float])


def _list_leaf(field: str, op: FilterOp, values: tuple[Any, ...]) -> Where:
    positive = op is FilterOp.IN
    if all(isinstance(v, str) for v in values):
        contains = "$contains" if positive else "$not_contains"
        parts = [{field: {op.value: list(values)}}] + [{field: {contains: v}} for v in dict.fromkeys(values)]
        return _any(parts) if positive else _all(parts)
    if all(isinstance(v, bool) for v in values):
        return {field: {op.value: list(values)}}
    ints = list(dict.fromkeys(i for i in map(_as_int, values) if i is not None))
    keys = list(dict.fromkeys(float_key(float(v)) for v in values))
    parts = [{FLOAT_PREFIX + field: {op.value: keys}}]
    if ints:
        parts.insert(0, {field: {op.value: ints}})
    return _any(parts) if positive else _all(parts)


# --- record metadata ---------------------------------------------------------------------------


def encode_metadata(
    metadata: Mapping[str, Any], previous_keys: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The Chroma metadata for a VPA record, with the bookkeeping keys.

    Chroma's upsert *merges* metadata into an existing record; ``previous_keys`` are the keys the
    stored record has, and those absent from the new metadata are sent as None (delete the key),
    so the result is a replacement, as VPA's upsert defines.
    """
    out: dict[str, Any] = {}
    numeric: list[str] = []
    empty: list[str] = []
    for key, value in metadata.items():
        if isinstance(value, list | tuple):
            if not value:
                empty.append(key)
                continue
            out[key] = list(value)
        elif isinstance(value, float):
            out[FLOAT_PREFIX + key] = float_key(value)
            numeric.append(key)
        else:
            out[key] = value
            if _is_number(value):
                numeric.append(key)
    if numeric:
        out[NUMERIC_KEY] = numeric
    if empty:
        out[EMPTY_LIST_KEY] = empty
    for key in previous_keys:
        if key not in out:
            out[key] = None
    return out or None


def decode_metadata(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The VPA metadata of a stored Chroma record (bookkeeping keys removed, empty lists restored)."""
    if not stored:
        return {}
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key in RESERVED_KEYS:
            continue
        if key.startswith(FLOAT_PREFIX):
            out[key[len(FLOAT_PREFIX) :]] = key_float(value)
        else:
            out[key] = list(value) if isinstance(value, list | tuple) else value
    for key in stored.get(EMPTY_LIST_KEY) or ():
        out[key] = []
    return out
