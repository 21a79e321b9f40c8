"""The snapshot round-trip clause (`vpa_conformance.store.portability`): the memory store passes
it, and each store of `broken_stores.PORTABILITY_EXPECTED` fails it with the clause's own message.

As in `test_broken_stores`, the clauses run in one pytest subprocess, shrinking off and
derandomised, so a mutant caught once is caught on every run; the JUnit report says which failed
and with what message. The memory store runs in the same subprocess, under the same settings, so
the clause that catches the mutants is shown to pass on the reference.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import broken_stores
import pytest
from clause_runs import run_clauses
from hypothesis import given, settings
from hypothesis import strategies as st
from vpa.models import StoreCapabilities
from vpa.stores.memory import MemoryStore
from vpa_conformance.checks import ContractViolation
from vpa_conformance.harness import StoreHarness
from vpa_conformance.profiles import SUPPRESSED
from vpa_conformance.store.portability import WAY, PortabilityClauses

HERE = Path(__file__).resolve().parent
CLAUSE = "test_snapshot_round_trip"
#: the reference (test_memory_contract's class; its persisted twin runs the clause there)
CONTROLS = ("TestMemoryStore",)
#: broken store → what the clause's failure message must say (which check caught it)
MESSAGES = {
    broken_stores.ScrollDropsLastPage: "a scroll must list every record exactly once",
    broken_stores.ScrollIntsBecomeFloats: "did not come back as written",
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """class::test → {"result": passed/failed, "message": ..., "examples": ..., "status": ...}."""
    work = tmp_path_factory.mktemp("portability")
    node_ids = [
        f"{HERE / 'broken_stores.py'}::Test{store.__name__}::{clause}"
        for store, clauses in broken_stores.PORTABILITY_EXPECTED.items()
        for clause in clauses
    ] + [f"{HERE / 'test_memory_contract.py'}::{control}::{CLAUSE}" for control in CONTROLS]
    return run_clauses(work, node_ids)


@pytest.mark.parametrize(
    "store_class",
    list(broken_stores.PORTABILITY_EXPECTED),
    ids=[c.__name__ for c in broken_stores.PORTABILITY_EXPECTED],
)
def test_broken_store_is_caught_by_the_round_trip(
    store_class: type, outcomes: dict[str, dict[str, str]]
) -> None:
    for clause in broken_stores.PORTABILITY_EXPECTED[store_class]:
        row = outcomes.get(f"Test{store_class.__name__}::{clause}", {"result": "not run"})
        assert row["result"] == "failed", (
            f"{store_class.__name__}: {store_class.__doc__.strip()} — not caught by {clause}"
        )
        assert WAY in row["message"] and MESSAGES[store_class] in row["message"], row["message"][:2000]


@pytest.mark.parametrize("control", CONTROLS)
def test_memory_store_passes_the_round_trip(control: str, outcomes: dict[str, dict[str, str]]) -> None:
    row = outcomes.get(f"{control}::{CLAUSE}", {"result": "not run"})
    assert row["result"] == "passed", row.get("message", row)
    assert row.get("status") is None, (
        "the memory store meets contract 1.1: the clause must run, not be 'not declared'"
    )
    assert int(row["examples"]) >= 2, row  # a collection per example (and one per import, not counted)


def test_the_round_trip_never_leaves_a_collection() -> None:
    """Every collection the clause makes (the written one, the imported one) is dropped: run in
    this process, on a few examples (the clause's own, undecorated, under settings of its own)."""
    clause = settings(max_examples=3, deadline=None, suppress_health_check=SUPPRESSED, database=None)(
        given(data=st.data())(PortabilityClauses.test_snapshot_round_trip.hypothesis.inner_test)
    )
    harnesses: list[StoreHarness] = []
    assert _run(MemoryStore(), harnesses, clause) == []
    assert harnesses[0].examples == 3


# --- a contract 1.0 store -------------------------------------------------------------------------


class Contract10Store(MemoryStore):
    """The memory store declaring contract 1.0: scroll (hence export) is refused."""

    capabilities = StoreCapabilities(exact=True)


class Contract10ExportsAnyway(Contract10Store):
    """Declares contract 1.0 but scrolls anyway (skips the base class's check)."""

    def _require_1_1(self, what: str) -> None:
        return None


def _run(store: MemoryStore, harnesses: list[StoreHarness] | None = None, clause: Any = None) -> list[str]:
    """Run the clause in this process; the collections left in the store when it ends."""
    runner = asyncio.Runner()
    harness = StoreHarness(store, runner)
    if harnesses is not None:
        harnesses.append(harness)
    try:
        (clause or PortabilityClauses.test_snapshot_round_trip)(PortabilityClauses(), harness)
        return harness.run(store.list_collections())
    finally:
        harness.cleanup()
        harness.close()
        runner.close()


def test_a_contract_1_0_store_is_not_declared() -> None:
    """Not skipped silently: reported "not declared", after checking that export is refused."""
    harnesses: list[StoreHarness] = []
    assert _run(Contract10Store(), harnesses) == []
    assert harnesses[0].status == "not declared"
    assert harnesses[0].examples >= 1


def test_a_contract_1_0_store_that_exports_is_caught() -> None:
    with pytest.raises(ContractViolation, match="did not raise UnsupportedOperation"):
        _run(Contract10ExportsAnyway())
