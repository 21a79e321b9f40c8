"""Vectorised filter evaluation for the memory store: the reference semantics, column-wise.

`vpa.filters.evaluate` is the specification, one record at a time. Over 100k records that is a
Python loop per query; here each metadata field becomes typed numpy columns (numbers, bools,
strings) plus an inverted index for list values, built on first use and rebuilt after writes, so a
filter costs a few array operations. The conformance suite checks that this agrees with the
specification on generated filters and metadata.

Strings compare exactly, code point for code point: they are kept as Python objects (an object
column, dict keys for list items), never as numpy 'U' strings, which silently drop trailing NULs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from vpa.filters import And, Comparison, Node, Not, Or
from vpa.models import FilterOp
from vpa.typedjson import to_micros


class _Column:
    """One metadata field over all rows, split by value type."""

    def __init__(self, field: str, metadata: Sequence[dict[str, Any]]) -> None:
        n = len(metadata)
        self.numbers = np.full(n, np.nan)
        self.dates = np.full(n, np.nan)  # microseconds since the epoch: exact in a float64
        self.bools = np.full(n, -1, dtype=np.int8)
        self.strings = np.full(n, None, dtype=object)
        self.present = np.zeros(n, dtype=bool)
        self.list_rows: dict[str, list[int]] = {}
        for row, meta in enumerate(metadata):
            value = meta.get(field)
            if value is None:
                continue
            self.present[row] = True
            if isinstance(value, dt.datetime):
                self.dates[row] = to_micros(value)
            elif isinstance(value, bool):
                self.bools[row] = value
            elif isinstance(value, int | float):
                self.numbers[row] = value
            elif isinstance(value, str):
                self.strings[row] = value
            elif isinstance(value, list):
                for item in set(value):
                    self.list_rows.setdefault(item, []).append(row)

    def equals(self, value: Any) -> np.ndarray:
        if isinstance(value, dt.datetime):
            return self.dates == to_micros(value)
        if isinstance(value, bool):
            return self.bools == int(value)
        if isinstance(value, int | float):
            return self.numbers == value
        # Compare against a 0-d object array: a bare str would become a numpy 'U' scalar, which
        # drops trailing NULs, so "a\x00" would equal "a". Object-to-object compares are exact.
        exact = np.empty((), dtype=object)
        exact[()] = value
        mask = self.strings == exact
        rows = self.list_rows.get(value)
        if rows:
            mask[rows] = True
        return mask

    def ordered(self, op: FilterOp, value: float | dt.datetime) -> np.ndarray:
        if isinstance(value, dt.datetime):
            column, bound = self.dates, float(to_micros(value))
        else:
            column, bound = self.numbers, float(value)
        with np.errstate(invalid="ignore"):
            if op is FilterOp.GT:
                return column > bound
            if op is FilterOp.GTE:
                return column >= bound
            if op is FilterOp.LT:
                return column < bound
            return column <= bound


class ColumnIndex:
    """Typed columns of a table's metadata, for evaluating filter trees as numpy masks."""

    def __init__(self, metadata: Sequence[dict[str, Any]]) -> None:
        self._metadata = metadata
        self._size = len(metadata)
        self._columns: dict[str, _Column] = {}

    def _column(self, field: str) -> _Column:
        column = self._columns.get(field)
        if column is None:
            column = self._columns[field] = _Column(field, self._metadata)
        return column

    def mask(self, node: Node) -> np.ndarray:
        if isinstance(node, Comparison):
            return self._compare(node)
        if isinstance(node, Not):
            return ~self.mask(node.child)
        masks = [self.mask(child) for child in node.children]
        combine = np.logical_and if isinstance(node, And) else np.logical_or
        assert isinstance(node, And | Or)
        return combine.reduce(masks) if len(masks) > 1 else masks[0]

    def _compare(self, node: Comparison) -> np.ndarray:
        column = self._column(node.field)
        op = node.op
        if op is FilterOp.EXISTS:
            return column.present.copy() if node.value else ~column.present
        if op in (FilterOp.EQ, FilterOp.NE):
            mask = column.equals(node.value)
            return ~mask if op is FilterOp.NE else mask
        if op in (FilterOp.IN, FilterOp.NIN):
            mask = np.zeros(self._size, dtype=bool)
            for value in node.value:  # type: ignore[union-attr]
                mask |= column.equals(value)
            return ~mask if op is FilterOp.NIN else mask
        return column.ordered(op, node.value)  # type: ignore[arg-type]
