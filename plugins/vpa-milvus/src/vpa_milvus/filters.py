"""Translate VPA's parsed filter tree into a native Milvus boolean expression.

Every comparison is translated to a *positive* expression that is exactly true or false — never
NULL — for every record, so that ``not`` is an exact complement in Milvus (whose JSON comparisons
on a missing key are NULL in Milvus Lite's Kleene logic, and false in the server):

- it only reads the typed keys of codec.py that can match (``i_``/``f_`` for a number, ``s_`` and
  ``l_`` for a string, ``b_`` for a bool), each with a literal of that key's own type, so no
  cross-type comparison is ever evaluated (bool is never a number, a str never equals a number);
- each read is guarded: ``(exists m["i_year"]) and m["i_year"] >= 2020``; ``exists`` is a plain
  true/false, and ``false and NULL`` is false.

Then, as `vpa.filters.evaluate` defines them:

==========  ====================================================================================
``$eq``     str: ``s_`` equals, or ``l_`` contains (``json_contains``); number: ``i_`` equals the
            int (when the value is integral) or ``f_`` equals the float; bool: ``b_`` equals
``$in``     a disjunction of ``$eq`` (Milvus Lite has no ``in`` on JSON paths); for strings the
            list part is one ``json_contains_any``
``$gt``...  ``i_`` against the nearest integer bound (``x > 2.5`` ⇔ ``x > 2`` for an int x) and
            ``f_`` against the float; lists, strings and bools never match
``$ne``     ``not ($eq)``; ``$nin`` is ``not ($in)``; ``$not`` is ``not (...)``: exact complements,
            true on records that lack the field
``$exists`` ``exists`` of any of the key's typed keys (a present empty list included); ``false`` is
            its ``not``
datetime    ``d_`` (integer microseconds) against the integer literal of the bound, for ``$eq``,
            ``$in`` and the orderings; never the number or string keys
==========  ====================================================================================

Every key, whatever it holds (contract 1.1 keys such as ``og:title``, ``a"]b``), is addressed
through `codec.typed_key` — an identifier or an escaped form of only ``[A-Za-z0-9_]`` — and then
quoted, so no key can add syntax to an expression.

String literals are double-quoted with ``\\``, ``"``, newline, carriage return and tab escaped
(the escapes both Milvus's grammar and Milvus Lite's accept); every other character, unicode
included, is written as it is.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence

from vpa.filters import And, Comparison, Node, Not, Or
from vpa.models import FilterOp
from vpa.typedjson import to_micros

from vpa_milvus.codec import BOOL, DATE, FLOAT, ID_FIELD, INT, LIST, METADATA_FIELD, PREFIXES, STR, typed_key

#: Stored ints are within ±2**53 (VPA's portable range): a bound beyond this is as good as infinite.
_INT_BOUND = 2**53 + 1

_SYMBOLS = {FilterOp.GT: ">", FilterOp.GTE: ">=", FilterOp.LT: "<", FilterOp.LTE: "<="}

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """A Milvus string literal for ``value``."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def int_literal(value: int) -> str:
    return str(int(value))


def float_literal(value: float) -> str:
    text = repr(float(value))
    if not math.isfinite(float(value)):  # the filter parser refuses these; never emit them
        raise ValueError(f"not a finite number: {value!r}")
    return text


def bool_literal(value: bool) -> str:
    return "true" if value else "false"


def id_in(ids: Sequence[str]) -> str:
    """``id in ["a", "b"]``."""
    return f"{ID_FIELD} in [{', '.join(quote(i) for i in ids)}]"


def id_after(last: str | None, expression: str) -> str:
    """``expression`` restricted to ids after ``last`` (the keyset of a scroll): the id bound
    first, as pymilvus' query iterator puts it; ``expression`` alone for the first page."""
    if last is None:
        return expression
    bound = f"{ID_FIELD} > {quote(last)}"
    return f"{bound} and ({expression})" if expression else bound


def to_native(node: Node | None, field: str = METADATA_FIELD) -> str:
    """The Milvus expression for a parsed VPA filter; "" for no filter."""
    if node is None:
        return ""
    return _Translator(field).node(node)


class _Translator:
    def __init__(self, field: str) -> None:
        self.field = field

    # --- pieces --------------------------------------------------------------------------------

    def path(self, tag: str, key: str) -> str:
        return f"{self.field}[{quote(typed_key(tag, key))}]"

    def guarded(self, tag: str, key: str, condition: str) -> str:
        return f"((exists {self.path(tag, key)}) and ({condition}))"

    @staticmethod
    def balanced(parts: Sequence[str], word: str) -> str:
        """``parts`` joined by ``word`` as a balanced tree of pairs, ``((a or b) or (c or d))``:
        its depth grows with log2 of the terms, not with their count. A flat ``a or b or c ...``
        parses into a chain as deep as it is long, and a Milvus 2.3 server fails a *search*
        whose filter chain is past ~50 terms deep ("unsupported expr proto node": the plan no
        longer parses within protobuf's nesting limit), while a declared 256-term ``$or`` is
        8 pairs deep this way."""
        if len(parts) == 1:
            return parts[0]
        middle = len(parts) // 2
        left, right = _Translator.balanced(parts[:middle], word), _Translator.balanced(parts[middle:], word)
        return f"({left} {word} {right})"

    @staticmethod
    def any_of(parts: Iterable[str]) -> str:
        return _Translator.balanced(list(parts), "or")

    @staticmethod
    def all_of(parts: Iterable[str]) -> str:
        return _Translator.balanced(list(parts), "and")

    @staticmethod
    def negate(expr: str) -> str:
        return f"(not {expr})"

    # --- the tree ------------------------------------------------------------------------------

    def node(self, node: Node) -> str:
        if isinstance(node, Comparison):
            return self.comparison(node)
        if isinstance(node, And):
            return self.all_of(self.node(c) for c in node.children)
        if isinstance(node, Or):
            return self.any_of(self.node(c) for c in node.children)
        if isinstance(node, Not):
            return self.negate(self.node(node.child))
        raise TypeError(f"not a filter node: {node!r}")

    def comparison(self, c: Comparison) -> str:
        op = c.op
        if op is FilterOp.EQ:
            return self.equals(c.field, c.value)  # type: ignore[arg-type]
        if op is FilterOp.NE:
            return self.negate(self.equals(c.field, c.value))  # type: ignore[arg-type]
        if op is FilterOp.IN:
            return self.one_of(c.field, c.value)  # type: ignore[arg-type]
        if op is FilterOp.NIN:
            return self.negate(self.one_of(c.field, c.value))  # type: ignore[arg-type]
        if op is FilterOp.EXISTS:
            present = self.any_of(f"(exists {self.path(tag, c.field)})" for tag in PREFIXES)
            return present if c.value else self.negate(present)
        if isinstance(c.value, dt.datetime):
            return self.date_ordered(c.field, op, c.value)
        return self.ordered(c.field, op, c.value)  # type: ignore[arg-type]

    def equals(self, key: str, value: str | int | float | bool | dt.datetime) -> str:
        if isinstance(value, dt.datetime):
            micros = int_literal(to_micros(value))
            return self.guarded(DATE, key, f"{self.path(DATE, key)} == {micros}")
        if isinstance(value, bool):
            return self.guarded(BOOL, key, f"{self.path(BOOL, key)} == {bool_literal(value)}")
        if isinstance(value, str):
            literal = quote(value)
            return self.any_of(
                [
                    self.guarded(STR, key, f"{self.path(STR, key)} == {literal}"),
                    self.guarded(LIST, key, f"json_contains({self.path(LIST, key)}, {literal})"),
                ]
            )
        parts = []
        integral = _as_int(value)
        if integral is not None:
            parts.append(self.guarded(INT, key, f"{self.path(INT, key)} == {int_literal(integral)}"))
        parts.append(self.guarded(FLOAT, key, f"{self.path(FLOAT, key)} == {float_literal(value)}"))
        return self.any_of(parts)

    def one_of(self, key: str, values: Sequence[str | int | float | bool | dt.datetime]) -> str:
        values = list(dict.fromkeys(values))  # 1 and 1.0 collapse too: they are equal numbers
        if values and all(isinstance(v, dt.datetime) for v in values):
            path = self.path(DATE, key)
            either = self.any_of(f"{path} == {int_literal(to_micros(v))}" for v in values)  # type: ignore[arg-type]
            return self.guarded(DATE, key, either)
        if values and all(isinstance(v, str) for v in values):
            scalar = self.any_of(f"{self.path(STR, key)} == {quote(v)}" for v in values)  # type: ignore[arg-type]
            listed = f"json_contains_any({self.path(LIST, key)}, [{', '.join(quote(v) for v in values)}])"  # type: ignore[arg-type]
            return self.any_of([self.guarded(STR, key, scalar), self.guarded(LIST, key, listed)])
        return self.any_of(self.equals(key, v) for v in values)

    def date_ordered(self, key: str, op: FilterOp, value: dt.datetime) -> str:
        """Datetimes are whole microseconds: one exact integer comparison on the ``d_`` key."""
        condition = f"{self.path(DATE, key)} {_SYMBOLS[op]} {int_literal(to_micros(value))}"
        return self.guarded(DATE, key, condition)

    def ordered(self, key: str, op: FilterOp, value: int | float) -> str:
        symbol = _SYMBOLS[op]
        # For an int x: x > v ⇔ x > floor(v); x >= v ⇔ x >= ceil(v); x < v ⇔ x < ceil(v);
        # x <= v ⇔ x <= floor(v). Clamping to ±(2**53 + 1) keeps the truth for |x| <= 2**53.
        bound = math.floor(value) if op in (FilterOp.GT, FilterOp.LTE) else math.ceil(value)
        bound = max(-_INT_BOUND, min(_INT_BOUND, bound))
        return self.any_of(
            [
                self.guarded(INT, key, f"{self.path(INT, key)} {symbol} {int_literal(bound)}"),
                self.guarded(FLOAT, key, f"{self.path(FLOAT, key)} {symbol} {float_literal(value)}"),
            ]
        )


def _as_int(value: int | float) -> int | None:
    """The int equal to ``value`` if a stored int could equal it, else None."""
    if isinstance(value, int):
        return value
    if value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return None
