"""Translate VPA's filter tree into a native Qdrant `models.Filter`.

User metadata lives in the payload under ``m`` (see `vpa_qdrant.codec`), so a VPA field ``year``
is the Qdrant key ``m.year``, and ``page.number`` is ``m."page.number"`` (`codec.key_path`: a key
reaches Qdrant's JSON path parser as exactly one segment, so no key can address another, a nested
value or an array element). Each operator maps to a native condition whose semantics equal
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
- ``$exists``: ``IsEmpty`` on the key is true for a missing key, a ``null`` and ``[]``; the codec
  stores no ``[]`` (an empty list is a tagged object) and no ``null`` (an unset key is removed),
  so ``$exists: false`` is ``IsEmpty`` and ``$exists: true`` its ``must_not`` — on a list field
  too (a list is never empty), inside ``$not``/``$or`` alike. (An empty list written by
  vpa-qdrant 0.2 is a plain ``[]``: it reads back as ``[]`` but counts as absent until the
  record is written again.)
- Datetimes (stored as ``{"_vpa_datetime_us": µs}``): ``$eq``/``$in`` are ``MatchValue``/
  ``MatchAny`` of the integer microseconds, and ordering a ``Range``, on ``m.<key>._vpa_datetime_us``,
  which only a datetime has: a datetime never equals a number or a string, and numbers and
  datetimes are never ordered against each other. Microseconds are within ±2**53, exact as
  float64.

The tree is translated to ``qdrant_client.models`` once, here; every engine that takes them (the
server, local mode) gets the same objects.

Nothing is post-filtered in Python: the result is handed to Qdrant whole.
"""

from __future__ import annotations

import datetime as dt

from qdrant_client import models
from vpa.filters import And, Comparison, Node, Not, Or
from vpa.models import FilterOp
from vpa.typedjson import to_micros

from vpa_qdrant.codec import DATETIME_TAG, key_path

Condition = models.FieldCondition | models.IsEmptyCondition | models.Filter
Scalar = str | int | float | bool | dt.datetime


def field_key(field: str) -> str:
    """The payload key (a JSON path) of a VPA metadata field."""
    return key_path(field)


def datetime_key(field: str) -> str:
    """The payload key of a datetime field's microseconds."""
    return f"{field_key(field)}.{DATETIME_TAG}"


def to_native(node: Node | None) -> models.Filter | None:
    """The native filter for a parsed VPA filter; None matches everything."""
    if node is None:
        return None
    condition = _condition(node)
    if isinstance(condition, models.Filter):
        return condition
    return models.Filter(must=[condition])


def with_ids(native: models.Filter | None, point_ids: list[str]) -> models.Filter:
    """``native`` (None: any point) restricted to the points ``point_ids``."""
    has_id = models.HasIdCondition(has_id=list(point_ids))
    return models.Filter(must=[has_id] if native is None else [has_id, native])


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
    field = node.field
    op = node.op
    if op is FilterOp.EXISTS:
        empty = models.IsEmptyCondition(is_empty=models.PayloadField(key=field_key(field)))
        return models.Filter(must_not=[empty]) if node.value else empty
    if op is FilterOp.EQ:
        return _equals(field, node.value)  # type: ignore[arg-type]
    if op is FilterOp.NE:
        return models.Filter(must_not=[_equals(field, node.value)])  # type: ignore[arg-type]
    if op is FilterOp.IN:
        return _any_of(field, node.value)  # type: ignore[arg-type]
    if op is FilterOp.NIN:
        return models.Filter(must_not=[_any_of(field, node.value)])  # type: ignore[arg-type]
    return _ordered(field, op, node.value)  # type: ignore[arg-type]  # a number or a datetime


def _ordered(field: str, op: FilterOp, value: float | dt.datetime) -> models.FieldCondition:
    if isinstance(value, dt.datetime):
        key, bound = datetime_key(field), float(to_micros(value))
    else:
        key, bound = field_key(field), float(value)
    name = {FilterOp.GT: "gt", FilterOp.GTE: "gte", FilterOp.LT: "lt", FilterOp.LTE: "lte"}[op]
    return models.FieldCondition(key=key, range=models.Range(**{name: bound}))


def _equals(field: str, value: Scalar) -> models.FieldCondition:
    if isinstance(value, dt.datetime):
        return models.FieldCondition(key=datetime_key(field), match=models.MatchValue(value=to_micros(value)))
    key = field_key(field)
    if isinstance(value, bool | str):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    number = float(value)
    return models.FieldCondition(key=key, range=models.Range(gte=number, lte=number))


def _any_of(field: str, values: tuple[Scalar, ...]) -> Condition:
    distinct = list(dict.fromkeys(values))
    if all(isinstance(v, str) for v in distinct):
        return models.FieldCondition(key=field_key(field), match=models.MatchAny(any=distinct))
    if all(isinstance(v, dt.datetime) for v in distinct):
        micros = list(dict.fromkeys(to_micros(v) for v in distinct))  # type: ignore[arg-type]
        return models.FieldCondition(key=datetime_key(field), match=models.MatchAny(any=micros))
    if len(distinct) == 1:
        return _equals(field, distinct[0])
    return models.Filter(should=[_equals(field, v) for v in distinct])
