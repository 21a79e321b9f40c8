"""Pinecone's metadata filter language, as the stand-in evaluates it.

This is deliberately *not* `vpa.filters`: it follows Pinecone's own rules, so that the plugin's
translation from VPA's portable filters into Pinecone filters is what the tests exercise.

Sources for the semantics (Pinecone docs, "Filter by metadata" / "Understanding metadata"):

- operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or``; MongoDB-style syntax;
  ``{"f": v}`` is shorthand for ``{"f": {"$eq": v}}``; several operators on one field, or several
  fields in one object, must all hold;
- ``$eq``/``$ne`` take a number, string or boolean; ``$gt $gte $lt $lte`` a number;
  ``$in``/``$nin`` an array of strings or numbers; ``$exists`` a boolean;
- a list-of-strings value "takes on every value in the list": ``$eq x`` / ``$in xs`` match when
  the list contains x / any of xs; ``$ne`` / ``$nin`` (MongoDB semantics, which Pinecone's
  language is based on) match when the list contains none of them;
- numbers are float64: ``1`` and ``1.0`` are equal; booleans are not numbers; values of
  different types never compare equal and never order;
- **missing fields**: since March 2024 Pinecone's ``$ne`` (and ``$nin``) match only records where
  the field is set (observed and reported in deepset-ai/haystack-core-integrations#590); every
  other comparison is false on a missing field, too. Only ``{"$exists": false}`` selects records
  that lack a field. A store that wants "not equal, or missing" must say so with ``$exists``.

A malformed filter raises `FilterError`, which the server answers with HTTP 400.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_MISSING = object()
_FIELD_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})


class FilterError(ValueError):
    """The filter is not valid Pinecone filter syntax (HTTP 400)."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "other"


def compile_filter(spec: Any) -> Predicate:
    """Compile a filter object into a predicate over one record's metadata."""
    if not isinstance(spec, Mapping):
        raise FilterError("filter must be a JSON object")
    return _compile_object(spec, "filter")


def _compile_object(spec: Any, where: str) -> Predicate:
    if not isinstance(spec, Mapping):
        raise FilterError(f"{where} must be a JSON object")
    if not spec:
        return lambda metadata: True
    parts = [_compile_entry(key, value, where) for key, value in spec.items()]
    if len(parts) == 1:
        return parts[0]
    return lambda metadata: all(p(metadata) for p in parts)


def _compile_entry(key: str, value: Any, where: str) -> Predicate:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise FilterError(f"{key} at {where} must be a non-empty array of filters")
        children = [_compile_object(v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
        if key == "$and":
            return lambda metadata: all(c(metadata) for c in children)
        return lambda metadata: any(c(metadata) for c in children)
    if key.startswith("$"):
        raise FilterError(f"unknown operator {key} at {where}")
    if isinstance(value, Mapping):
        if not value:
            raise FilterError(f"field {key!r} at {where} has an empty operator object")
        parts = [_compile_op(key, op, operand, where) for op, operand in value.items()]
        if len(parts) == 1:
            return parts[0]
        return lambda metadata: all(p(metadata) for p in parts)
    return _compile_op(key, "$eq", value, where)


def _check_scalar(op: str, field: str, operand: Any) -> None:
    if _kind(operand) not in ("bool", "number", "string"):
        raise FilterError(f"{op} on {field!r} must be a number, string or boolean, got {operand!r}")


def _compile_op(field: str, op: str, operand: Any, where: str) -> Predicate:
    if op not in _FIELD_OPS:
        raise FilterError(f"unknown operator {op} on field {field!r} at {where}")
    if op in ("$eq", "$ne"):
        _check_scalar(op, field, operand)
        if op == "$eq":
            return lambda metadata: _eq(metadata.get(field, _MISSING), operand)
        return lambda metadata: _ne(metadata.get(field, _MISSING), operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if _kind(operand) != "number":
            raise FilterError(f"{op} on {field!r} must be a number, got {operand!r}")
        return lambda metadata: _order(metadata.get(field, _MISSING), op, operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise FilterError(f"{op} on {field!r} must be an array")
        for item in operand:
            if _kind(item) not in ("number", "string"):
                raise FilterError(f"{op} on {field!r} takes strings or numbers, got {item!r}")
        strings = frozenset(v for v in operand if isinstance(v, str))
        numbers = frozenset(v for v in operand if not isinstance(v, str))
        if op == "$in":
            return lambda metadata: _in(metadata.get(field, _MISSING), strings, numbers)
        return lambda metadata: _nin(metadata.get(field, _MISSING), strings, numbers)
    if not isinstance(operand, bool):
        raise FilterError(f"$exists on {field!r} must be a boolean")
    return lambda metadata: (field in metadata) is operand


def _scalar_equal(stored: Any, value: Any) -> bool:
    return _kind(stored) == _kind(value) and stored == value


def _eq(stored: Any, value: Any) -> bool:
    if stored is _MISSING:
        return False
    if isinstance(stored, list):
        return isinstance(value, str) and value in stored
    return _scalar_equal(stored, value)


def _ne(stored: Any, value: Any) -> bool:
    if stored is _MISSING:
        return False  # Pinecone: $ne selects only records that have the field
    if isinstance(stored, list):
        return not (isinstance(value, str) and value in stored)
    return not _scalar_equal(stored, value)


def _member(stored: Any, strings: frozenset[str], numbers: frozenset[float]) -> bool:
    """Whether the stored value equals one of the listed values (a list: contains one of them)."""
    if isinstance(stored, list):
        return any(item in strings for item in stored)
    if isinstance(stored, str):
        return stored in strings
    if isinstance(stored, bool):
        return False  # $in/$nin take strings and numbers, and a boolean is neither
    return stored in numbers  # 1 == 1.0: numbers compare as float64


def _in(stored: Any, strings: frozenset[str], numbers: frozenset[float]) -> bool:
    return stored is not _MISSING and _member(stored, strings, numbers)


def _nin(stored: Any, strings: frozenset[str], numbers: frozenset[float]) -> bool:
    return stored is not _MISSING and not _member(stored, strings, numbers)


def _order(stored: Any, op: str, value: float) -> bool:
    if _kind(stored) != "number":
        return False
    if op == "$gt":
        return stored > value
    if op == "$gte":
        return stored >= value
    if op == "$lt":
        return stored < value
    return stored <= value
