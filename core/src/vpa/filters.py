"""The portable metadata-filter language: parse, validate, evaluate.

Syntax (MongoDB style, as Chroma, Pinecone and LangChain use it)::

    {"category": "AI"}                                  # shorthand for {"category": {"$eq": "AI"}}
    {"year": {"$gte": 2020, "$lt": 2025}}               # several operators on a field: all must hold
    {"category": "AI", "year": {"$gte": 2020}}          # several keys: all must hold
    {"$or": [{"lang": "en"}, {"tags": {"$in": ["x", "y"]}}]}
    {"$not": {"draft": True}}

Semantics, defined here once and checked by the conformance suite on every store:

- **Values.** ``$eq``/``$ne`` take a str, int, float or bool. ``$gt $gte $lt $lte`` take a number
  only (ordering strings or lists is not portable: most backends refuse it). ``$in``/``$nin`` take
  a non-empty list of str, of numbers or of bools (not mixed). ``None`` is never a value.
- **Types.** int and float compare as numbers (``1 == 1.0``); bool is not a number
  (``True != 1``); a str never equals a number. A comparison between different types is false.
- **Lists.** On a list-of-str field, ``$eq x`` means "contains x" and ``$in xs`` means "contains
  any of xs". Ordering operators on a list are false.
- **Missing fields.** ``$eq $gt $gte $lt $lte $in`` are false on a record that lacks the field.
- **Negation is complement.** ``$ne`` is exactly ``not $eq``, ``$nin`` exactly ``not $in`` and
  ``$not`` exactly ``not``: so ``$ne``/``$nin`` are *true* on a record that lacks the field, and
  every record matches exactly one of ``f`` and ``{"$not": f}``.
- ``None`` or ``{}`` as a whole filter matches everything.

A parsed filter is a small immutable tree (`Comparison`, `And`, `Or`, `Not`) that drives query,
count and delete alike; stores translate the tree into their native filter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import attrs

from vpa.errors import InvalidFilter
from vpa.models import FilterOp
from vpa.validation import MAX_SAFE_INT, METADATA_KEY_RE, is_encodable

Scalar: TypeAlias = str | int | float | bool

COMPARISON_OPS = frozenset(
    {FilterOp.EQ, FilterOp.NE, FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE, FilterOp.IN, FilterOp.NIN}
)
ORDERING_OPS = frozenset({FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE})
LIST_OPS = frozenset({FilterOp.IN, FilterOp.NIN})


@attrs.frozen
class Comparison:
    """``field op value``; for ``$in``/``$nin`` the value is a tuple."""

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


def parse_filter(spec: FilterLike) -> Node | None:
    """Parse and validate a filter; None means "match everything". Raises `InvalidFilter`."""
    if spec is None:
        return None
    if isinstance(spec, Comparison | And | Or | Not):
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidFilter(f"a filter must be a JSON object, got {type(spec).__name__}")
    if not spec:
        return None
    return _parse_object(spec, path="filter")


def _parse_object(spec: Any, path: str) -> Node:
    if not isinstance(spec, Mapping):
        raise InvalidFilter(f"{path} must be a JSON object, got {_describe(spec)}")
    if not spec:
        raise InvalidFilter(f"{path} is an empty object")
    nodes = [_parse_entry(key, value, path) for key, value in spec.items()]
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _parse_entry(key: Any, value: Any, path: str) -> Node:
    if not isinstance(key, str):
        raise InvalidFilter(f"{path} has a non-string key {key!r}")
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise InvalidFilter(f"{path}.{key} must be a non-empty list of filters")
        children = tuple(_parse_object(v, f"{path}.{key}[{i}]") for i, v in enumerate(value))
        return And(children) if key == "$and" else Or(children)
    if key == "$not":
        return Not(_parse_object(value, f"{path}.$not"))
    if key.startswith("$"):
        raise InvalidFilter(f"unknown operator {key!r} at {path}; logical operators are $and, $or, $not")
    if not METADATA_KEY_RE.fullmatch(key):
        raise InvalidFilter(f"field name {key!r} at {path} is not a valid metadata key")
    if isinstance(value, Mapping):
        if not value:
            raise InvalidFilter(f"{path}.{key} is an empty operator object")
        if not all(isinstance(op, str) and op.startswith("$") for op in value):
            raise InvalidFilter(
                f"{path}.{key}: nested objects are not metadata values; operator keys start with '$'"
            )
        comparisons = [_parse_comparison(key, op, operand, path) for op, operand in value.items()]
        return comparisons[0] if len(comparisons) == 1 else And(tuple(comparisons))
    return _parse_comparison(key, "$eq", value, path)


def _parse_comparison(field: str, op_name: str, operand: Any, path: str) -> Comparison:
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
    if op in LIST_OPS:
        if not isinstance(operand, list | tuple) or not operand:
            raise InvalidFilter(f"{where} needs a non-empty list, got {_describe(operand)}")
        values = tuple(_check_scalar(v, where) for v in operand)
        kinds = {_kind(v) for v in values}
        if len(kinds) > 1:
            raise InvalidFilter(f"{where} mixes value types {sorted(kinds)}; use one type per list")
        return Comparison(field, op, values)
    value = _check_scalar(operand, where)
    if op in ORDERING_OPS and _kind(value) != "number":
        raise InvalidFilter(f"{where} needs a number, got {_describe(operand)}; ordering is defined on numbers only")
    return Comparison(field, op, value)


def _check_scalar(value: Any, where: str) -> Scalar:
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
    raise InvalidFilter(f"{where}: {_describe(value)} is not a str, int, float or bool")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    return "other"


def _describe(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


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
    """The explicit dict form of a tree; ``parse_filter(to_dict(t)) == t``."""
    if node is None:
        return {}
    if isinstance(node, Comparison):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
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
    if _kind(stored) != "number" or _kind(value) != "number":
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
