"""What the store clauses share: example counts, bounds and small helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st
from vpa.errors import (
    LimitExceeded,
)
from vpa.filters import COMPARISON_OPS
from vpa.models import (
    FilterOp,
    MetadataType,
    Record,
    StoreCapabilities,
)
from vpa.stores.base import VectorStore

from vpa_conformance import strategies as vst
from vpa_conformance.checks import ContractViolation, check_get, fail
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle

#: Examples per clause in the ``ci`` profile (the profile scales them).
BASE_EXAMPLES = {
    "round_trip": 20,
    "upsert_idempotent": 15,
    "get_order": 10,
    "delete_by_ids": 10,
    "delete_ids_and_filter": 12,
    "query": 25,
    "filters": 25,
    "filter_operator": 5,
    "metadata_type": 4,
    "bad_input": 12,
    "state_machine": 10,
    "scroll": 12,
    "scroll_writes": 6,
    "update": 15,
}

#: The longest the event loop may stall while a store works (seconds). A 5 ms ticker runs beside
#: big store calls; generous, because CI machines are shared.
MAX_LOOP_STALL = 0.5

#: The least a store may declare of each bound: what a portable app (the RAG layer's reserved
#: keys and tenant filter included) can count on from any store.
LIMIT_FLOORS = {
    "max_filter_terms": 64,
    "max_filter_depth": 8,
    "max_metadata_keys": 32,
    "max_metadata_bytes": 4096,
}

DIMENSIONS = st.integers(2, 16)
COMPARISONS = [op for op in FilterOp if op in COMPARISON_OPS]
ALL_OPS = list(FilterOp)
ALL_TYPES = list(MetadataType)


def _fields(schema: dict[str, Any]) -> list[str]:
    return [*schema, vst.ABSENT_FIELD]


def _has_filters(caps: StoreCapabilities) -> bool:
    return any(op in caps.filter_operators for op in COMPARISONS)


def _fill(h: StoreHarness, name: str, oracle: Oracle, records: list[Record]) -> None:
    if not records:
        return
    written = h.upsert(name, records)
    expected = oracle.upsert(records)
    if written != expected:
        fail(f"upsert returned {written!r}; {expected} distinct ids were written")


def _check_unchanged(
    h: StoreHarness, name: str, oracle: Oracle, extra_ids: list[str] | tuple[str, ...] = ()
) -> None:
    """The collection holds exactly what the oracle holds (after a rejected call, say)."""
    total = h.count(name)
    if total != len(oracle.records):
        fail(f"count() is {total}; the collection should hold {len(oracle.records)} records")
    asked = [*oracle.records, *extra_ids]
    check_get(h.get(name, asked), oracle, asked)


def _raises(expected: type[BaseException], call: Callable[[], Any], what: str) -> None:
    try:
        call()
    except expected:
        return
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__}: {exc}; expected {expected.__name__}")
    fail(f"{what} did not raise {expected.__name__}")


#: The underscore methods a refusal "before any I/O" must not reach.
_BACKEND_CALLS = ("_upsert", "_query", "_get", "_delete", "_count", "_lexical_query", "_hybrid_query")


@contextlib.contextmanager
def _backend_untouched(store: VectorStore, what: str) -> Iterator[None]:
    """Inside, any call of the store's backend methods fails the clause: what happens in here
    must be refused before any I/O."""

    def guard(name: str) -> Callable[..., Any]:
        async def refused(*args: Any, **kwargs: Any) -> Any:
            fail(f"{what} reached the backend ({name}) instead of being refused before any I/O")

        return refused

    saved = {name: store.__dict__.get(name) for name in _BACKEND_CALLS}
    for name in _BACKEND_CALLS:
        setattr(store, name, guard(name))
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                store.__dict__.pop(name, None)
            else:
                setattr(store, name, previous)


def _raises_limit(limit: str, call: Callable[[], Any], what: str) -> None:
    """``call`` raises `LimitExceeded` naming ``limit``."""
    try:
        call()
    except LimitExceeded as exc:
        if exc.limit != limit:
            fail(f"{what} raised LimitExceeded for {exc.limit!r}; expected {limit!r}")
        return
    except ContractViolation:
        raise
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__}: {str(exc)[:300]}; expected LimitExceeded ({limit})")
    fail(f"{what} did not raise LimitExceeded ({limit})")


def _values_of(records: list[Record]) -> dict[str, list[Any]]:
    return vst.field_values([r.metadata for r in records])
