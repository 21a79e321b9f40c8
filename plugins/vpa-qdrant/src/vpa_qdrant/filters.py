"""Translate VPA's filter tree into a native Qdrant `models.Filter`.

User metadata lives in the payload under ``m`` (see `vpa_qdrant.codec`), so a VPA field ``year``
is the Qdrant key ``m.year``. Each operator maps to a native condition whose semantics equal
`vpa.filters.evaluate` exactly, on the local engine and on the server alike:

- ``$eq`` on a str or bool: ``MatchValue``. Qdrant keeps bool, int, float and str apart in exact
  matches, and a match on an array field means "some element equals" — VPA's "list contains".
- ``$eq`` on a number: ``Range(gte=v, lte=v)``. ``MatchValue`` takes no floats and never matches a
  float payload, whereas a range compares int and float payloads numerically (``1 == 1.0``), and
  skips bools (bool is not a number). Integers are within ±2**53, exact as float64.
- ``$gt $gte $lt $lte``: ``Range``; false on strings, bools, lists of strings and missing fields.
- ``$in``: ``MatchAny`` for strings; a ``should`` of the ``$eq`` conditions for numbers and bools.
- ``$ne``, ``$nin``, ``$not``: ``must_not`` of the positive condition. Qdrant's ``must_not`` is
  the complement of its conditions, so a record that lacks the field matches ``$ne``/``$nin``,
  and every record matches exactly one of ``f`` and ``{"$not": f}``.
- ``$and``: ``must``; ``$or``: ``should`` (at least one).

Nothing is post-filtered in Python: the result is handed to Qdrant whole.
"""

from __future__ import annotations

from qdrant_client import models
from vpa.filters import And, Comparison, Node, Not, Or
from vpa.models import FilterOp

from vpa_qdrant.codec import METADATA_KEY

Condition = models.FieldCondition | models.Filter


def field_key(field: str) -> str:
    """The payload key of a VPA metadata field."""
    return f"{METADATA_KEY}.{field}"


def to_native(node: Node | None) -> models.Filter | None:
    """The native filter for a parsed VPA filter; None matches everything."""
    if node is None:
        return None
    condition = _condition(node)
    if isinstance(condition, models.Filter):
        return condition
    return models.Filter(must=[condition])


def with_ids(native: models.Filter, point_ids: list[str]) -> models.Filter:
    """``native`` restricted to the points ``point_ids``."""
    return models.Filter(must=[models.HasIdCondition(has_id=list(point_ids)), native])


def _condition(node: Node) -> Condition:
    if isinstance(node, Comparison):
        return _comparison(node)
    if isinstance(node, And):
        return models.Filter(must=[_condition(c) for c in node.children])
    if isinstance(node, Or):
        return models.Filter(should=[_condition(c) for c in node.children])
    if isinstance(node, Not):
        return models.Filter(must_not=[_condition(node.child)])
    raise TypeError(f"not a filter node: {node!r}")


def _comparison(node: Comparison) -> Condition:
    key = field_key(node.field)
    op = node.op
    if op is FilterOp.EQ:
        return _equals(key, node.value)  # type: ignore[arg-type]
    if op is FilterOp.NE:
        return models.Filter(must_not=[_equals(key, node.value)])  # type: ignore[arg-type]
    if op is FilterOp.IN:
        return _any_of(key, node.value)  # type: ignore[arg-type]
    if op is FilterOp.NIN:
        return models.Filter(must_not=[_any_of(key, node.value)])  # type: ignore[arg-type]
    value = float(node.value)  # type: ignore[arg-type]  # the parser allows numbers only here
    bounds = {
        FilterOp.GT: {"gt": value},
        FilterOp.GTE: {"gte": value},
        FilterOp.LT: {"lt": value},
        FilterOp.LTE: {"lte": value},
    }[op]
    return models.FieldCondition(key=key, range=models.Range(**bounds))


def _equals(key: str, value: str | int | float | bool) -> models.FieldCondition:
    if isinstance(value, bool | str):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    number = float(value)
    return models.FieldCondition(key=key, range=models.Range(gte=number, lte=number))


def _any_of(key: str, values: tuple[str | int | float | bool, ...]) -> Condition:
    distinct = list(dict.fromkeys(values))
    if all(isinstance(v, str) for v in distinct):
        return models.FieldCondition(key=key, match=models.MatchAny(any=distinct))
    if len(distinct) == 1:
        return _equals(key, distinct[0])
    return models.Filter(should=[_equals(key, v) for v in distinct])
