"""The portable metadata-filter language: parse, validate, evaluate.

Syntax (MongoDB style, as Chroma, Pinecone and LangChain use it)::

    {"category": "AI"}                                  # shorthand for {"category": {"$eq": "AI"}}
    {"year": {"$gte": 2020, "$lt": 2025}}               # several operators on a field: all must hold
    {"category": "AI", "year": {"$gte": 2020}}          # several keys: all must hold
    {"$or": [{"lang": "en"}, {"tags": {"$in": ["x", "y"]}}]}
    {"$not": {"draft": True}}

Semantics, defined here once and checked by the conformance suite on every store:

- **Values.** ``$eq``/``$ne`` take a str, int, float, bool or datetime. ``$gt $gte $lt $lte``
  take a number or a datetime (ordering strings or lists is not portable: most backends refuse
  it). ``$in``/``$nin`` take a non-empty list of str, of numbers, of bools or of datetimes (not
  mixed). A datetime is a timezone-aware `datetime.datetime` in Python and ``{"$date":
  "2024-05-01T12:00:00Z"}`` in JSON (`vpa.typedjson`); a naive one is refused.
- **Types.** int and float compare as numbers (``1 == 1.0``); bool is not a number
  (``True != 1``); a str never equals a number; a datetime never equals a number or a string.
  A comparison between different types is false.
- **Missing and null** (contract 1.1). ``{"k": {"$exists": true}}`` matches the records that have
  ``k``, ``false`` those without. ``None`` means "absent": ``{"k": None}`` and ``{"k": {"$eq":
  None}}`` are ``$exists: false``, ``{"k": {"$ne": None}}`` is ``$exists: true`` (Haystack's
  definition); ``None`` with any other operator is refused.
- **Lists.** On a list-of-str field, ``$eq x`` means "contains x" and ``$in xs`` means "contains
  any of xs". Ordering operators on a list are false.
- **Missing fields.** ``$eq $gt $gte $lt $lte $in`` are false on a record that lacks the field.
- **Negation is complement.** ``$ne`` is exactly ``not $eq``, ``$nin`` exactly ``not $in`` and
  ``$not`` exactly ``not``: so ``$ne``/``$nin`` are *true* on a record that lacks the field, and
  every record matches exactly one of ``f`` and ``{"$not": f}``.
- ``None`` or ``{}`` as a whole filter matches everything.

**Size.** A filter's *terms* are its comparisons, where an ``$in``/``$nin`` counts one term per
value (``{"a": {"$in": [1, 2, 3]}}`` is 3 terms, as the ``$or`` of three ``$eq`` it means); its
*depth* is the number of nodes on the longest path from the root to a comparison (a lone
comparison has depth 1, ``{"$or": [{"a": 1}, {"b": 2}]}`` depth 2; several keys or several
operators on one field are an implicit ``$and``, one level). `parse_filter` refuses a filter over
`MAX_FILTER_TERMS` terms or `MAX_FILTER_DEPTH` levels — or over the smaller bounds a store
declares — with `LimitExceeded` as soon as it sees it, before building the tree: never a
``RecursionError``, never a huge tree built only to be refused. These ceilings hold on every
surface (Python API, CLI, HTTP); `filter_size` measures a tree.

A parsed filter is a small immutable tree (`Comparison`, `And`, `Or`, `Not`) that drives query,
count and delete alike; stores translate the tree into their native filter.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import attrs

from vpa.errors import InvalidFilter, LimitExceeded
from vpa.models import FilterOp
from vpa.typedjson import DateError, check_datetime, decode_value, encode_value, is_date_object
from vpa.validation import MAX_SAFE_INT, is_encodable, key_problem

Scalar: TypeAlias = str | int | float | bool | dt.datetime

COMPARISON_OPS = frozenset(
    {FilterOp.EQ, FilterOp.NE, FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE, FilterOp.IN, FilterOp.NIN,
     FilterOp.EXISTS}
)
ORDERING_OPS = frozenset({FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE})
LIST_OPS = frozenset({FilterOp.IN, FilterOp.NIN})

#: The ceilings of every filter, whatever a store declares: a store's ``max_filter_depth`` and
#: ``max_filter_terms`` can only lower them.
MAX_FILTER_DEPTH = 32
MAX_FILTER_TERMS = 4096


@attrs.frozen
class Comparison:
    """``field op value``; for ``$in``/``$nin`` the value is a tuple, for ``$exists`` a bool."""

    field: str
    op: FilterOp
    value: Scalar | tuple[Scalar, ...]


@attrs.frozen
class And:
    children: tuple[Node, ...]


@attrs.frozen
class Or:
    children: tuple[Node, ...]


@attrs.frozen
class Not:
    child: Node


Node: TypeAlias = Comparison | And | Or | Not
FilterLike: TypeAlias = Mapping[str, Any] | Node | None


# --- parsing ---------------------------------------------------------------------------------


def parse_filter(
    spec: FilterLike,
    *,
    max_terms: int | None = None,
    max_depth: int | None = None,
    what: str = "filter",
) -> Node | None:
    """Parse and validate a filter; None means "match everything". Raises `InvalidFilter`, or
    `LimitExceeded` (naming ``max_filter_terms`` or ``max_filter_depth``) for a filter over
    ``max_terms``/``max_depth`` — each at most, and by default, `MAX_FILTER_TERMS`/`MAX_FILTER_DEPTH`.

    A tree passed in is returned as it is, after the same size check. A filter refused while
    parsing is refused at the first term or level past the bound, so the ``value`` the error
    reports is a lower bound of the filter's size."""
    terms = MAX_FILTER_TERMS if max_terms is None else min(max_terms, MAX_FILTER_TERMS)
    depth = MAX_FILTER_DEPTH if max_depth is None else min(max_depth, MAX_FILTER_DEPTH)
    if spec is None:
        return None
    if isinstance(spec, Comparison | And | Or | Not):
        check_filter_size(spec, max_terms=terms, max_depth=depth, what=what)
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidFilter(f"a filter must be a JSON object, got {type(spec).__name__}")
    if not spec:
        return None
    return _Parser(terms, depth, what).object(spec, "filter", 1)


class _Parser:
    """One parse: counts terms as it goes and refuses, at once, a term or a level past a bound.

    ``level`` is the depth of the node being built (the root is 1). The recursion goes one level
    deeper with every ``$and``/``$or``/``$not`` and implicit conjunction, so it is bounded by
    ``max_depth``: Python's recursion limit is never reached."""

    __slots__ = ("max_depth", "max_terms", "terms", "what")

    def __init__(self, max_terms: int, max_depth: int, what: str) -> None:
        self.max_terms = max_terms
        self.max_depth = max_depth
        self.what = what
        self.terms = 0

    def _level(self, level: int) -> None:
        if level > self.max_depth:
            raise LimitExceeded("max_filter_depth", level, self.max_depth, what=self.what)

    def _add_terms(self, count: int) -> None:
        self.terms += count
        if self.terms > self.max_terms:
            raise LimitExceeded("max_filter_terms", self.terms, self.max_terms, what=self.what)

    def object(self, spec: Any, path: str, level: int) -> Node:
        if not isinstance(spec, Mapping):
            raise InvalidFilter(f"{path} must be a JSON object, got {_describe(spec)}")
        if not spec:
            raise InvalidFilter(f"{path} is an empty object")
        self._level(level)
        if len(spec) == 1:
            ((key, value),) = spec.items()
            return self.entry(key, value, path, level)
        self._level(level + 1)  # an implicit $and of the entries
        return And(tuple(self.entry(key, value, path, level + 1) for key, value in spec.items()))

    def entry(self, key: Any, value: Any, path: str, level: int) -> Node:
        if not isinstance(key, str):
            raise InvalidFilter(f"{path} has a non-string key {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilter(f"{path}.{key} must be a non-empty list of filters")
            self._level(level + 1)
            if self.terms + len(value) > self.max_terms:  # every operand holds at least one term
                raise LimitExceeded(
                    "max_filter_terms", self.terms + len(value), self.max_terms, what=self.what
                )
            children = tuple(self.object(v, f"{path}.{key}[{i}]", level + 1) for i, v in enumerate(value))
            return And(children) if key == "$and" else Or(children)
        if key == "$not":
            self._level(level + 1)
            return Not(self.object(value, f"{path}.$not", level + 1))
        if key.startswith("$"):
            raise InvalidFilter(f"unknown operator {key!r} at {path}; logical operators are $and, $or, $not")
        problem = key_problem(key)
        if problem is not None:
            raise InvalidFilter(f"field name at {path}: {problem}")
        if value is None:  # {"k": None}: the field is absent
            self._add_terms(1)
            return Comparison(key, FilterOp.EXISTS, False)
        if is_date_object(value):
            return self.comparison(key, "$eq", value, path)
        if isinstance(value, Mapping):
            if not value:
                raise InvalidFilter(f"{path}.{key} is an empty operator object")
            if not all(isinstance(op, str) and op.startswith("$") for op in value):
                raise InvalidFilter(
                    f"{path}.{key}: nested objects are not metadata values; operator keys start with '$'"
                )
            if len(value) == 1:
                ((op, operand),) = value.items()
                return self.comparison(key, op, operand, path)
            self._level(level + 1)  # an implicit $and of the operators
            return And(tuple(self.comparison(key, op, operand, path) for op, operand in value.items()))
        return self.comparison(key, "$eq", value, path)

    def comparison(self, field: str, op_name: str, operand: Any, path: str) -> Comparison:
        try:
            op = FilterOp(op_name)
        except ValueError:
            op = None
        if op is None or op not in COMPARISON_OPS:
            raise InvalidFilter(
                f"unknown operator {op_name!r} on field {field!r} at {path}; "
                f"use one of {', '.join(sorted(COMPARISON_OPS))}"
            )
        where = f"{field!r} {op_name}"
        if op is FilterOp.EXISTS:
            if not isinstance(operand, bool):
                raise InvalidFilter(f"{where} needs true or false, got {_describe(operand)}")
            self._add_terms(1)
            return Comparison(field, op, operand)
        if operand is None:
            if op in (FilterOp.EQ, FilterOp.NE):  # Haystack's null: absent / present
                self._add_terms(1)
                return Comparison(field, FilterOp.EXISTS, op is FilterOp.NE)
            raise InvalidFilter(f"{where} cannot compare with null; use {{\"$exists\": false}} for a missing field")
        if op in LIST_OPS:
            if not isinstance(operand, list | tuple) or not operand:
                raise InvalidFilter(f"{where} needs a non-empty list, got {_describe(operand)}")
            self._add_terms(len(operand))  # before a single value is looked at
            values = tuple(_check_scalar(v, where) for v in operand)
            kinds = {_kind(v) for v in values}
            if len(kinds) > 1:
                raise InvalidFilter(f"{where} mixes value types {sorted(kinds)}; use one type per list")
            return Comparison(field, op, values)
        self._add_terms(1)
        value = _check_scalar(operand, where)
        if op in ORDERING_OPS and _kind(value) not in ("number", "datetime"):
            raise InvalidFilter(
                f"{where} needs a number or a datetime, got {_describe(operand)}; ordering is defined "
                "on numbers and datetimes only"
            )
        return Comparison(field, op, value)


def _check_scalar(value: Any, where: str) -> Scalar:
    if value is None:
        raise InvalidFilter(f"{where}: null is not a value in a list; use $exists for a missing field")
    try:
        value = decode_value(value, where)
    except DateError as exc:
        raise InvalidFilter(str(exc)) from None
    if isinstance(value, dt.datetime):
        try:
            return check_datetime(value, where)
        except DateError as exc:
            raise InvalidFilter(str(exc)) from None
    if isinstance(value, str):
        if not is_encodable(value):
            raise InvalidFilter(f"{where}: {value!r} is not valid Unicode (a lone surrogate)")
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise InvalidFilter(f"{where}: integer {value} is outside ±2**53")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter(f"{where}: {value} is not a finite number")
        return value
    raise InvalidFilter(f"{where}: {_describe(value)} is not a str, int, float, bool or datetime")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    return "other"


def _describe(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


# --- size ------------------------------------------------------------------------------------


@attrs.frozen
class FilterSize:
    """How big a filter is: its terms (an ``$in``/``$nin`` counts its values) and its depth."""

    terms: int
    depth: int


def _walk(node: Node, max_terms: int | None, max_depth: int | None, what: str) -> FilterSize:
    """Terms and depth of a tree, without recursion (a tree built in Python may be any depth);
    with bounds, stops at the first term or level past one and raises `LimitExceeded`."""
    terms = deepest = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if max_depth is not None and depth > max_depth:
                raise LimitExceeded("max_filter_depth", depth, max_depth, what=what)
        if isinstance(current, Comparison):
            terms += len(current.value) if current.op in LIST_OPS else 1  # type: ignore[arg-type]
            if max_terms is not None and terms > max_terms:
                raise LimitExceeded("max_filter_terms", terms, max_terms, what=what)
        elif isinstance(current, Not):
            stack.append((current.child, depth + 1))
        elif isinstance(current, And | Or):
            stack.extend((child, depth + 1) for child in current.children)
        else:
            raise InvalidFilter(f"not a filter node: {type(current).__name__}")
    return FilterSize(terms=terms, depth=deepest)


def filter_size(node: Node | None) -> FilterSize:
    """The terms and depth of a parsed filter (``None``: 0 and 0)."""
    return FilterSize(0, 0) if node is None else _walk(node, None, None, "filter")


def check_filter_size(
    node: Node | None, *, max_terms: int | None = None, max_depth: int | None = None, what: str = "filter"
) -> None:
    """Raise `LimitExceeded` if the tree has more than ``max_terms`` terms or ``max_depth`` levels
    (each at most `MAX_FILTER_TERMS`/`MAX_FILTER_DEPTH`); stops at the first one past a bound."""
    if node is not None:
        terms = MAX_FILTER_TERMS if max_terms is None else min(max_terms, MAX_FILTER_TERMS)
        depth = MAX_FILTER_DEPTH if max_depth is None else min(max_depth, MAX_FILTER_DEPTH)
        _walk(node, terms, depth, what)


# --- inspection and printing -----------------------------------------------------------------


def operators_used(node: Node | None) -> frozenset[FilterOp]:
    """Every operator a tree uses (an implicit conjunction counts as ``$and``)."""
    if node is None:
        return frozenset()
    if isinstance(node, Comparison):
        return frozenset({node.op})
    if isinstance(node, Not):
        return frozenset({FilterOp.NOT}) | operators_used(node.child)
    own = FilterOp.AND if isinstance(node, And) else FilterOp.OR
    return frozenset({own}).union(*(operators_used(c) for c in node.children))


def fields_used(node: Node | None) -> frozenset[str]:
    if node is None:
        return frozenset()
    if isinstance(node, Comparison):
        return frozenset({node.field})
    if isinstance(node, Not):
        return fields_used(node.child)
    return frozenset().union(*(fields_used(c) for c in node.children))


def to_dict(node: Node | None) -> dict[str, Any]:
    """The explicit dict form of a tree, as typed JSON (datetimes as ``{"$date": ...}``);
    ``parse_filter(to_dict(t)) == t``."""
    if node is None:
        return {}
    if isinstance(node, Comparison):
        if isinstance(node.value, tuple):
            value: Any = [encode_value(v) for v in node.value]
        else:
            value = encode_value(node.value)
        return {node.field: {node.op.value: value}}
    if isinstance(node, Not):
        return {"$not": to_dict(node.child)}
    key = "$and" if isinstance(node, And) else "$or"
    return {key: [to_dict(c) for c in node.children]}


def canonical_json(node: Node | None) -> str:
    """A stable string for a tree, for cache keys and logs."""
    return json.dumps(to_dict(node), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- the reference evaluator -----------------------------------------------------------------

_MISSING = object()


def _equals(stored: Any, value: Scalar) -> bool:
    if stored is _MISSING:
        return False
    if isinstance(stored, list):
        return isinstance(value, str) and value in stored
    kind = _kind(stored)
    return kind == _kind(value) and stored == value


def _ordered(stored: Any, op: FilterOp, value: Scalar) -> bool:
    kind = _kind(value)
    if kind not in ("number", "datetime") or _kind(stored) != kind:
        return False
    if op is FilterOp.GT:
        return stored > value
    if op is FilterOp.GTE:
        return stored >= value
    if op is FilterOp.LT:
        return stored < value
    return stored <= value


def _compare(node: Comparison, metadata: Mapping[str, Any]) -> bool:
    stored = metadata.get(node.field, _MISSING)
    op = node.op
    if op is FilterOp.EXISTS:
        return (stored is not _MISSING) is node.value
    if op is FilterOp.EQ:
        return _equals(stored, node.value)  # type: ignore[arg-type]
    if op is FilterOp.NE:
        return not _equals(stored, node.value)  # type: ignore[arg-type]
    if op is FilterOp.IN:
        return any(_equals(stored, v) for v in node.value)  # type: ignore[union-attr]
    if op is FilterOp.NIN:
        return not any(_equals(stored, v) for v in node.value)  # type: ignore[union-attr]
    return _ordered(stored, op, node.value)  # type: ignore[arg-type]


def evaluate(node: Node | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a record's metadata matches the filter: the reference every store must agree with."""
    if node is None:
        return True
    if isinstance(node, Comparison):
        return _compare(node, metadata)
    if isinstance(node, And):
        return all(evaluate(c, metadata) for c in node.children)
    if isinstance(node, Or):
        return any(evaluate(c, metadata) for c in node.children)
    return not evaluate(node.child, metadata)


def matches(spec: FilterLike, metadata: Mapping[str, Any]) -> bool:
    """Parse ``spec`` and evaluate it against one record's metadata."""
    return evaluate(parse_filter(spec), metadata)


def predicate(spec: FilterLike) -> Callable[[Mapping[str, Any]], bool]:
    """A one-argument function for filtering many records with the same tree."""
    node = parse_filter(spec)
    return lambda metadata: evaluate(node, metadata)
