"""Translate VPA's portable filter tree into Pinecone's native metadata filter.

Every VPA operator is expressed exactly as `vpa.filters.evaluate` defines it; nothing is filtered
in Python. Fields are addressed by their stored key (`codec.stored_key`: a VPA key starting with
``vpa-`` is stored as ``vpa-u-<key>``), ``T`` below is the field's type tag ``vpa-n-<stored
key>`` (``"i"``/``"f"`` for numbers, ``"d"`` for datetimes, ``"x"`` once an in-place update set
something else; absent on other values) and ``E`` is ``vpa-empty``, the list of keys holding an
empty list. Where Pinecone's operators differ from VPA's, the translation adds what is missing:

- **``$ne`` / ``$nin`` on a missing field.** VPA: true (negation is complement). Pinecone: a
  record without the field does not match ``$ne`` (observed since 2024, see the README). So
  ``{f: {$ne: v}}`` becomes ``{$or: [{f: {$ne: v}}, {f: {$exists: false}}]}`` — exact whichever
  way Pinecone treats missing fields.
- **``$in`` / ``$nin`` with booleans.** Pinecone's ``$in`` takes strings and numbers only, so a
  list of booleans becomes an ``$or`` of ``$eq`` (and its negation an ``$and`` of negated ``$eq``).
- **Datetimes** are numbers (microseconds) tagged ``"d"``: a comparison with a datetime also
  requires ``T == "d"``, a comparison with a number requires ``T != "d"`` (a datetime never
  equals, nor orders against, a number); their negations admit the other kind.
- **``$exists``** (and ``None``): ``f`` is present when it holds a value or is listed in ``E``
  (an empty list is present): ``{$or: [{f: {$exists: true}}, {E: {$eq: f}}]}``; absent is the
  exact negation (Pinecone's ``$ne`` on a list means "contains none", false when ``E`` is missing,
  hence the extra ``{E: {$exists: false}}``).
- **``$not``.** Pinecone's vector filters have no negation operator: it is pushed down to the
  leaves with De Morgan (``not (a and b)`` = ``not a or not b``), and every leaf has an exact
  negation: ``not $eq`` is VPA's ``$ne`` (above), ``not $in`` is ``$nin``, ``not $exists`` flips,
  and ``not (f > v)`` is "``f <= v``, or ``f`` is not a number" — where "not a number" (missing, a
  string, a bool, a list, a datetime) is ``{$or: [{T: {$exists: false}}, {T: {$nin: ["i", "f"]}}]}``.
- **Other types** need nothing: Pinecone, like VPA, never equates values of different types,
  treats booleans as non-numbers, compares ints and floats as numbers, and reads ``$eq``/``$in``
  on a list of strings as "contains".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vpa.filters import And, Comparison, Node, Not
from vpa.models import FilterOp

from vpa_pinecone.codec import DATE, EMPTY_KEY, NUMBER_TAGS, encode_scalar, stored_key, tag_key

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


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, int | float):
        return "number"
    return "str"


class _Field:
    """The native conditions on one VPA field."""

    def __init__(self, key: str) -> None:
        self.name = stored_key(key)
        self.tag = tag_key(key)

    def missing(self) -> dict[str, Any]:
        return {self.name: {"$exists": False}}

    def kind_is(self, kind: str) -> dict[str, Any]:
        """The value is of this kind, given that it compared as a number."""
        return {self.tag: {"$eq": DATE}} if kind == "datetime" else {self.tag: {"$ne": DATE}}

    def kind_is_not(self, kind: str) -> dict[str, Any]:
        """The value is not of this kind, given that it compared as a number."""
        return {self.tag: {"$ne": DATE}} if kind == "datetime" else {self.tag: {"$eq": DATE}}

    def is_not(self, kind: str) -> list[dict[str, Any]]:
        """The value (if any) is not of this kind, whatever it is (conditions of an $or)."""
        untagged = {self.tag: {"$exists": False}}
        if kind == "datetime":
            return [untagged, {self.tag: {"$ne": DATE}}]
        return [untagged, {self.tag: {"$nin": list(NUMBER_TAGS)}}]

    # --- the leaves -------------------------------------------------------------------------

    def equal(self, value: Any) -> dict[str, Any]:
        kind = _kind(value)
        condition = {self.name: {"$eq": encode_scalar(value)}}
        if kind in ("number", "datetime"):
            return {"$and": [condition, self.kind_is(kind)]}
        return condition

    def not_equal(self, value: Any) -> dict[str, Any]:
        kind = _kind(value)
        conditions = [{self.name: {"$ne": encode_scalar(value)}}, self.missing()]
        if kind in ("number", "datetime"):
            conditions.append(self.kind_is_not(kind))
        return {"$or": conditions}

    def member(self, values: list[Any]) -> dict[str, Any]:
        kind = _kind(values[0])
        if kind == "bool":  # Pinecone's $in/$nin take strings and numbers only
            return _combine("$or", [self.equal(v) for v in values])
        condition = {self.name: {"$in": [encode_scalar(v) for v in values]}}
        if kind in ("number", "datetime"):
            return {"$and": [condition, self.kind_is(kind)]}
        return condition

    def not_member(self, values: list[Any]) -> dict[str, Any]:
        kind = _kind(values[0])
        if kind == "bool":
            return _combine("$and", [self.not_equal(v) for v in values])
        conditions = [{self.name: {"$nin": [encode_scalar(v) for v in values]}}, self.missing()]
        if kind in ("number", "datetime"):
            conditions.append(self.kind_is_not(kind))
        return {"$or": conditions}

    def ordered(self, op: FilterOp, value: Any) -> dict[str, Any]:
        kind = _kind(value)
        return {"$and": [{self.name: {op.value: encode_scalar(value)}}, self.kind_is(kind)]}

    def not_ordered(self, op: FilterOp, value: Any) -> dict[str, Any]:
        # not (f > v)  ==  f <= v (f of v's kind)  or  f is not of v's kind (missing, str, ...)
        kind = _kind(value)
        return {"$or": [{self.name: {_COMPLEMENT[op].value: encode_scalar(value)}}, *self.is_not(kind)]}

    def present(self) -> dict[str, Any]:
        return {"$or": [{self.name: {"$exists": True}}, {EMPTY_KEY: {"$eq": self.name}}]}

    def absent(self) -> dict[str, Any]:
        return {
            "$and": [
                self.missing(),
                {"$or": [{EMPTY_KEY: {"$ne": self.name}}, {EMPTY_KEY: {"$exists": False}}]},
            ]
        }


def _leaf(node: Comparison, negate: bool) -> dict[str, Any]:
    field, op, value = _Field(node.field), node.op, node.value
    if op is FilterOp.EXISTS:
        return field.present() if bool(value) != negate else field.absent()
    if op in (FilterOp.EQ, FilterOp.NE):
        positive = (op is FilterOp.EQ) != negate
        return field.equal(value) if positive else field.not_equal(value)
    if op in (FilterOp.IN, FilterOp.NIN):
        positive = (op is FilterOp.IN) != negate
        values = list(dict.fromkeys(value))  # type: ignore[arg-type]
        return field.member(values) if positive else field.not_member(values)
    return field.not_ordered(op, value) if negate else field.ordered(op, value)
