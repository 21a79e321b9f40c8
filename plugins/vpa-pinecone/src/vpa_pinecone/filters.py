"""Translate VPA's portable filter tree into Pinecone's native metadata filter.

Every VPA operator is expressed exactly as `vpa.filters.evaluate` defines it; nothing is filtered
in Python. Where Pinecone's operators differ from VPA's, the translation adds what is missing:

- **``$ne`` / ``$nin`` on a missing field.** VPA: true (negation is complement). Pinecone: a
  record without the field does not match ``$ne`` (observed since 2024, see the README). So
  ``{f: {$ne: v}}`` becomes ``{$or: [{f: {$ne: v}}, {f: {$exists: false}}]}`` — exact whichever
  way Pinecone treats missing fields.
- **``$in`` / ``$nin`` with booleans.** Pinecone's ``$in`` takes strings and numbers only, so a
  list of booleans becomes an ``$or`` of ``$eq`` (and its negation an ``$and`` of negated ``$eq``).
- **``$not``.** Pinecone has no negation operator: it is pushed down to the leaves with De Morgan
  (``not (a and b)`` = ``not a or not b``), and every leaf has an exact negation:
  ``not $eq`` is VPA's ``$ne`` (above), ``not $in`` is ``$nin``, and ``not (f > v)`` is
  "``f <= v``, or ``f`` is not a number" — where "not a number" (missing, a string, a bool, a list)
  is ``{vpa-n-f: {$exists: false}}``, the shadow key the codec writes for every numeric field.
- **Types** need nothing: Pinecone, like VPA, never equates values of different types, treats
  booleans as non-numbers, compares ints and floats as numbers, and reads ``$eq``/``$in`` on a
  list of strings as "contains".
"""

from __future__ import annotations

from typing import Any

from vpa.filters import And, Comparison, Node, Not
from vpa.models import FilterOp

from vpa_pinecone.codec import number_key

_COMPLEMENT = {
    FilterOp.GT: FilterOp.LTE,
    FilterOp.GTE: FilterOp.LT,
    FilterOp.LT: FilterOp.GTE,
    FilterOp.LTE: FilterOp.GT,
}


def to_native(node: Node | None) -> dict[str, Any] | None:
    """The Pinecone filter for a parsed VPA filter (None: no filter)."""
    if node is None:
        return None
    return _translate(node, negate=False)


def _translate(node: Node, negate: bool) -> dict[str, Any]:
    if isinstance(node, Comparison):
        return _leaf(node, negate)
    if isinstance(node, Not):
        return _translate(node.child, not negate)
    children = [_translate(child, negate) for child in node.children]
    conjunction = isinstance(node, And) != negate  # De Morgan swaps and/or under negation
    return _combine("$and" if conjunction else "$or", children)


def _combine(op: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for child in children:
        if list(child) == [op]:
            flat.extend(child[op])  # (a and (b and c)) == (a and b and c)
        else:
            flat.append(child)
    return flat[0] if len(flat) == 1 else {op: flat}


def _equal(field: str, value: Any) -> dict[str, Any]:
    return {field: {"$eq": value}}


def _not_equal(field: str, value: Any) -> dict[str, Any]:
    return {"$or": [{field: {"$ne": value}}, {field: {"$exists": False}}]}


def _leaf(node: Comparison, negate: bool) -> dict[str, Any]:
    field, op, value = node.field, node.op, node.value
    if op in (FilterOp.EQ, FilterOp.NE):
        positive = (op is FilterOp.EQ) != negate
        return _equal(field, value) if positive else _not_equal(field, value)
    if op in (FilterOp.IN, FilterOp.NIN):
        positive = (op is FilterOp.IN) != negate
        values = list(dict.fromkeys(value))  # type: ignore[arg-type]
        if isinstance(values[0], bool):  # Pinecone's $in/$nin take strings and numbers only
            if positive:
                return _combine("$or", [_equal(field, v) for v in values])
            return _combine("$and", [_not_equal(field, v) for v in values])
        if positive:
            return {field: {"$in": values}}
        return {"$or": [{field: {"$nin": values}}, {field: {"$exists": False}}]}
    if not negate:
        return {field: {op.value: value}}
    # not (f > v)  ==  f <= v (f is a number)  or  f is not a number (missing, str, bool, list)
    return {"$or": [{field: {_COMPLEMENT[op].value: value}}, {number_key(field): {"$exists": False}}]}
