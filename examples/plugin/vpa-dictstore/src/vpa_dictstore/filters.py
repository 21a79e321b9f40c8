"""The portable filter tree → the backend's native filter (here a predicate). It must mean exactly
what `vpa.filters` defines — e.g. ``$ne`` is true on a record that lacks the field — and the
conformance suite checks that it does against the reference evaluator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vpa.filters import And, Comparison, Node, Not
from vpa.models import FilterOp

Predicate = Callable[[dict[str, Any]], bool]
_MISSING = object()


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else type(value).__name__


def _equals(stored: Any, value: Any) -> bool:
    if isinstance(stored, list):  # a list field "equals" x when it contains x
        return isinstance(value, str) and value in stored
    return _kind(stored) == _kind(value) and stored == value


def to_native(node: Node | None) -> Predicate | None:
    if node is None:
        return None
    if isinstance(node, Comparison):
        field, op, value = node.field, node.op, node.value

        def compare(metadata: dict[str, Any]) -> bool:
            stored = metadata.get(field, _MISSING)
            if op is FilterOp.EQ:
                return stored is not _MISSING and _equals(stored, value)
            if op is FilterOp.NE:
                return stored is _MISSING or not _equals(stored, value)
            if op is FilterOp.IN:
                return stored is not _MISSING and any(_equals(stored, v) for v in value)
            return stored is _MISSING or not any(_equals(stored, v) for v in value)  # $nin

        return compare
    if isinstance(node, Not):
        child = to_native(node.child)
        assert child is not None
        return lambda metadata: not child(metadata)
    children = [to_native(c) for c in node.children]
    combine = all if isinstance(node, And) else any
    return lambda metadata: combine(c(metadata) for c in children)  # type: ignore[misc]
