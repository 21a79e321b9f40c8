"""The lexical and hybrid clauses (`vpa_conformance.store.lexical`) and the oracle's BM25.

The memory store passes every clause; each store of `broken_stores.LEXICAL_EXPECTED` fails the
clauses listed for it, with the message of the check meant to catch it. As in
`test_broken_stores`, the clauses run in one pytest subprocess, shrinking off and derandomised, so
a mutant caught once is caught on every run; the memory store runs in the same subprocess under
the same settings. A store that does not declare lexical search is reported "not declared" by
every clause, after checking that it refuses both queries; one that answers anyway is caught.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import broken_stores
import pytest
from clause_runs import run_clauses
from hypothesis import given, settings
from hypothesis import strategies as st
from vpa.lexical import MAX_QUERY_CHARS, MAX_QUERY_TERMS, bm25_scores, query_terms, tokenize
from vpa.models import Record, StoreCapabilities, contract_1_1
from vpa.stores.memory import MemoryStore
from vpa_conformance import strategies as vst
from vpa_conformance.checks import ContractViolation
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import SUPPRESSED
from vpa_conformance.store.lexical import LexicalClauses

HERE = Path(__file__).resolve().parent
CLAUSES = (
    "test_lexical_declaration",
    "test_lexical_query",
    "test_lexical_filters",
    "test_hybrid_query",
    "test_lexical_recall",
    "test_lexical_bad_input",
)
#: (broken store, clause) → what the clause's failure message must say (which check caught it)
MESSAGES = {
    (broken_stores.LexicalIgnoresFilter, "test_lexical_filters"): "which does not match the filter",
    (broken_stores.LexicalIgnoresFilter, "test_hybrid_query"): "which does not match the filter",
    (
        broken_stores.LexicalStatsFromFilteredSet,
        "test_lexical_filters",
    ): "over every record of the collection",
    (broken_stores.LexicalStatsFromFilteredSet, "test_lexical_recall"): "over every record of the collection",
    (broken_stores.HybridDenseOnly, "test_hybrid_query"): "sum 1 / (60 + rank)",
    (broken_stores.LexicalStaleAfterDelete, "test_lexical_query"): "by VPA's BM25 it is",
    (broken_stores.LexicalStaleAfterDelete, "test_state_machine"): "by VPA's BM25 it is",
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """class::test → {"result": passed/failed, "message": ..., "examples": ..., "status": ...}."""
    work = tmp_path_factory.mktemp("lexical")
    node_ids = [
        f"{HERE / 'broken_stores.py'}::Test{store.__name__}::{clause}"
        for store, clauses in broken_stores.LEXICAL_EXPECTED.items()
        for clause in clauses
    ] + [f"{HERE / 'test_memory_contract.py'}::TestMemoryStore::{clause}" for clause in CLAUSES]
    return run_clauses(work, node_ids)


@pytest.mark.parametrize(
    "store_class",
    list(broken_stores.LEXICAL_EXPECTED),
    ids=[c.__name__ for c in broken_stores.LEXICAL_EXPECTED],
)
def test_broken_store_is_caught(store_class: type, outcomes: dict[str, dict[str, str]]) -> None:
    for clause in broken_stores.LEXICAL_EXPECTED[store_class]:
        row = outcomes.get(f"Test{store_class.__name__}::{clause}", {"result": "not run"})
        assert row["result"] == "failed", (
            f"{store_class.__name__}: {store_class.__doc__.strip()} — not caught by {clause}"
        )
        assert "ContractViolation" in row["message"], row["message"][:2000]  # a finding, not a crash
        wanted = MESSAGES.get((store_class, clause))
        if wanted is not None:
            assert wanted in row["message"], row["message"][:2000]


@pytest.mark.parametrize("clause", CLAUSES)
def test_memory_store_passes(clause: str, outcomes: dict[str, dict[str, str]]) -> None:
    row = outcomes.get(f"TestMemoryStore::{clause}", {"result": "not run"})
    assert row["result"] == "passed", row.get("message", row)
    assert row.get("status") is None, "the memory store declares lexical search: the clause must run"
    assert int(row["examples"]) >= 1, row


# --- a store that does not declare lexical search --------------------------------------------------


class NoLexicalStore(MemoryStore):
    """The memory store without lexical search (as a contract 1.1 store with everything else)."""

    capabilities = contract_1_1(exact=True)


class AnswersUndeclared(NoLexicalStore):
    """Does not declare lexical search but answers anyway (skips the base class's check)."""

    def _require_lexical(self, what: str) -> None:
        return None


class FusesWithoutLexical(NoLexicalStore):
    capabilities = contract_1_1(exact=True, native_fusion=True)


def _run(store: MemoryStore, clause: str) -> StoreHarness:
    """One clause in this process, a few examples, on its own event loop."""
    method = getattr(LexicalClauses, clause)
    inner = getattr(getattr(method, "hypothesis", None), "inner_test", None)
    if inner is not None:
        method = settings(max_examples=3, deadline=None, suppress_health_check=SUPPRESSED, database=None)(
            given(data=st.data())(inner)
        )
    runner = asyncio.Runner()
    harness = StoreHarness(store, runner)
    try:
        method(LexicalClauses(), harness)
        assert harness.run(store.list_collections()) == [], "a clause left a collection behind"
        return harness
    finally:
        harness.cleanup()
        harness.close()
        runner.close()


@pytest.mark.parametrize("clause", CLAUSES)
def test_a_store_without_lexical_search_is_not_declared(clause: str) -> None:
    harness = _run(NoLexicalStore(), clause)
    assert harness.status == "not declared"
    assert harness.examples >= 1  # it created a collection to check the refusal


@pytest.mark.parametrize("clause", CLAUSES)
def test_a_store_that_answers_without_declaring_is_caught(clause: str) -> None:
    with pytest.raises(ContractViolation, match="did not raise UnsupportedOperation"):
        _run(AnswersUndeclared(), clause)


def test_native_fusion_without_lexical_search_is_incoherent() -> None:
    with pytest.raises(ContractViolation, match="native_fusion is declared without lexical_search"):
        _run(FusesWithoutLexical(), "test_lexical_declaration")


def test_the_clauses_pass_on_the_memory_store_in_process() -> None:
    """The in-process runner above really runs the clauses (so the refusals it sees are real)."""
    for clause in CLAUSES:
        assert _run(MemoryStore(), clause).status is None


# --- the oracle's BM25 ----------------------------------------------------------------------------


def _oracle(texts: dict[str, str], metadata: dict[str, dict[str, Any]] | None = None) -> Oracle:
    oracle = Oracle(2)
    oracle.upsert(Record(i, [1.0, 0.0], t, (metadata or {}).get(i, {})) for i, t in texts.items())
    return oracle


def test_oracle_bm25_by_hand() -> None:
    """Three records, lengths 3, 2 and 0 (avgdl 5/3); "Straße" and "STRASSE" are one token."""
    oracle = _oracle({"a": "straße Straße café", "b": "STRASSE \ufb01le", "c": "\u2014"}, {"b": {"k": 1}})
    weight = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    a = weight * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / (5 / 3)))
    b = weight * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / (5 / 3)))
    ranked = oracle.lexical("Strasse strasse")  # a repeated query token counts once
    assert [i for i, _ in ranked] == ["a", "b"]
    assert ranked[0][1] == pytest.approx(a, rel=1e-12) and ranked[1][1] == pytest.approx(b, rel=1e-12)
    # The filter selects b; b's statistics are still over all three records.
    assert oracle.lexical("strasse", filter={"k": 1}) == [("b", pytest.approx(b, rel=1e-12))]
    assert oracle.lexical("FILE") == [("b", pytest.approx(math.log(1 + 2.5 / 1.5) * 2.2 / 2.38, rel=1e-12))]
    assert oracle.lexical("zebra") == [] and oracle.lexical("strasse", top_k=1)[0][0] == "a"
    assert Oracle(2).lexical("strasse") == []


def test_oracle_follows_writes() -> None:
    oracle = _oracle({"a": "search", "b": "search vector", "c": "vector"})
    before = dict(oracle.lexical("search"))
    oracle.delete(ids=["c"])
    after = dict(oracle.lexical("search"))
    assert set(before) == set(after) == {"a", "b"} and after["a"] != before["a"]  # N and avgdl changed


@settings(max_examples=60, deadline=None, suppress_health_check=SUPPRESSED)
@given(st.lists(vst.lexical_texts(), min_size=1, max_size=12), vst.lexical_queries())
def test_oracle_agrees_with_the_core_reference(texts: list[str], query: str) -> None:
    """Two readings of one definition agree (the core's `bm25_scores` is not used by the oracle)."""
    oracle = _oracle({f"r{i}": t for i, t in enumerate(texts)})
    got = oracle.lexical_scores(query)
    want = {f"r{i}": s for i, s in enumerate(bm25_scores(texts, query)) if s > 0}
    assert set(got) == set(want)
    for key, score in want.items():
        assert got[key] == pytest.approx(score, rel=1e-9)


# --- the strategies --------------------------------------------------------------------------------


_VOCABULARY = {token for word in vst.LEXICAL_WORDS for token in tokenize(word)}


@settings(max_examples=100, deadline=None)
@given(vst.lexical_texts(), vst.lexical_queries())
def test_lexical_strategies(text: str, query: str) -> None:
    assert set(tokenize(text)) <= _VOCABULARY
    terms = query_terms(query)  # a valid query: at least one word, within the bounds
    assert 1 <= len(terms) <= MAX_QUERY_TERMS and len(query) <= MAX_QUERY_CHARS


def test_the_vocabulary_has_its_spellings() -> None:
    """Spellings that are one token, and the query words no text holds."""
    assert len({tokenize(w)[0] for w in ("Straße", "STRASSE", "strasse")}) == 1
    assert tokenize("cafe\u0301") == tokenize("CAFÉ") != tokenize("cafe")
    assert tokenize(vst.LEXICAL_WORDS[-1]) == tokenize(vst.LEXICAL_WORDS[-2])  # cut at 64 characters
    assert "zebra" not in _VOCABULARY


def test_the_memory_store_declares_lexical_search() -> None:
    assert MemoryStore.capabilities.lexical_search and not StoreCapabilities().lexical_search
