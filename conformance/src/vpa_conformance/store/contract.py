"""`StoreContract`: the behavioural contract of a VPA vector store, as pytest tests.

Subclass it and provide a synchronous fixture ``store`` returning a fresh store instance
(constructed without I/O)::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(path=tmp_path / "db")

Optionally provide ``store_factory``: a zero-argument callable that returns *another* instance
over the same data (same path or server). With it, and ``capabilities.persistent``, the suite
checks that collections, their definition and records survive into a new instance.

Every test drives the store only through its public async API (``create_collection``,
``upsert``, ``query``, ``get``, ``delete``, ``count``, ``drop_collection``,
``list_collections``, ``settle``, ``close``, ``capabilities``; ``lexical_query`` and
``hybrid_query`` for a store that declares ``lexical_search``) on the suite's own event loop,
in uniquely named collections that it drops afterwards, and compares the answers with the
`vpa_conformance.oracle.Oracle`. The clauses and their exact meaning are those of the docstrings
of `vpa.stores.base` and `vpa.filters`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from vpa.filters import MAX_FILTER_DEPTH, MAX_FILTER_TERMS
from vpa.models import (
    CONTRACT_VERSION,
    CONTRACT_VERSIONS,
    FILTER_OPS_1_0,
    METADATA_TYPES_1_0,
    StoreCapabilities,
)
from vpa.stores.base import VectorStore

from vpa_conformance.checks import fail
from vpa_conformance.document_atomicity import DocumentAtomicityClauses
from vpa_conformance.harness import StoreHarness
from vpa_conformance.store.bad_input import BadInputClauses
from vpa_conformance.store.collections import CollectionClauses
from vpa_conformance.store.common import (
    BASE_EXAMPLES,
    LIMIT_FLOORS,
    MAX_LOOP_STALL,
)
from vpa_conformance.store.concurrency import ConcurrencyClauses
from vpa_conformance.store.filters import FilterClauses
from vpa_conformance.store.lexical import LexicalClauses
from vpa_conformance.store.lifecycle import LifecycleClauses
from vpa_conformance.store.limits import LimitClauses
from vpa_conformance.store.machine import StateMachineClauses
from vpa_conformance.store.portability import PortabilityClauses
from vpa_conformance.store.queries import QueryClauses
from vpa_conformance.store.records import RecordClauses

__all__ = ["BASE_EXAMPLES", "MAX_LOOP_STALL", "StoreContract"]


class StoreContract(
    CollectionClauses,
    RecordClauses,
    QueryClauses,
    FilterClauses,
    LimitClauses,
    BadInputClauses,
    StateMachineClauses,
    ConcurrencyClauses,
    DocumentAtomicityClauses,
    LifecycleClauses,
    PortabilityClauses,
    LexicalClauses,
):
    """The store contract. Subclass it and provide the ``store`` fixture."""

    # --- fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def store(self) -> VectorStore:
        pytest.fail("a StoreContract subclass must define a `store` fixture returning a fresh store")

    @pytest.fixture
    def store_factory(self) -> Callable[[], VectorStore] | None:
        """Override to return a callable that opens another instance over the same data."""
        return None

    @pytest.fixture
    def vpa_store(self, store: VectorStore, request: pytest.FixtureRequest) -> Iterator[StoreHarness]:
        runner = asyncio.Runner()
        harness = StoreHarness(store, runner, request.node)
        try:
            yield harness
        finally:
            try:
                harness.cleanup()
                harness.close()
            finally:
                runner.close()
                request.node.user_properties.append(("vpa_examples", harness.examples))

    # --- capabilities --------------------------------------------------------------------------

    def test_capabilities(self, vpa_store: StoreHarness) -> None:
        """The store declares the contract version it meets and coherent capabilities."""
        vpa_store.examples += 1
        caps = vpa_store.capabilities
        if not isinstance(caps, StoreCapabilities):
            fail(f"capabilities must be a StoreCapabilities, got {type(caps).__name__}")
        ours = CONTRACT_VERSION.split(".")[0]
        if str(caps.contract_version).split(".")[0] != ours:
            fail(
                f"the store meets contract {caps.contract_version!r}; this suite checks contract "
                f"{CONTRACT_VERSION}"
            )
        if caps.contract_version not in CONTRACT_VERSIONS:
            fail(
                f"contract_version {caps.contract_version!r} is not one this suite checks: "
                f"{', '.join(CONTRACT_VERSIONS)}"
            )
        if caps.contract_1_1:
            page = caps.max_page_size
            if isinstance(page, bool) or not isinstance(page, int) or page < 10:
                fail(f"max_page_size must be an int of at least 10, got {page!r}")
        else:
            newer = sorted(
                [op.value for op in caps.filter_operators - FILTER_OPS_1_0]
                + [t.value for t in caps.metadata_types - METADATA_TYPES_1_0]
            )
            if newer:
                fail(f"a contract 1.0 store declares {newer}, which are contract 1.1's: declare contract 1.1")
        if not 0.0 < caps.min_recall <= 1.0:
            fail(f"min_recall must be in (0, 1], got {caps.min_recall}")
        for field in ("max_batch_size", "max_top_k", "max_record_bytes"):
            value = getattr(caps, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                fail(f"{field} must be None or a positive int, got {value!r}")
        if caps.max_record_bytes is not None and caps.max_record_bytes < 1024:
            fail(
                f"max_record_bytes={caps.max_record_bytes} is too small to hold a useful chunk (at "
                "least 1024)"
            )
        if caps.max_top_k is not None and caps.max_top_k < 10:
            fail(f"max_top_k={caps.max_top_k}: a store must answer at least top_k=10")
        for field, floor in LIMIT_FLOORS.items():
            value = getattr(caps, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < floor:
                fail(
                    f"{field} must be an int of at least {floor} (what a portable app counts on), "
                    f"got {value!r}"
                )
        for field, ceiling in (
            ("max_filter_terms", MAX_FILTER_TERMS),
            ("max_filter_depth", MAX_FILTER_DEPTH),
        ):
            if getattr(caps, field) > ceiling:
                fail(
                    f"{field}={getattr(caps, field)} is above the core's ceiling of {ceiling}: vpa.filters "
                    "refuses more on every surface, so the store would never be asked"
                )
