"""The document-atomicity clause catches a RAG layer that can serve half-written documents."""

from __future__ import annotations

import asyncio

import pytest
from vpa.rag import RAGSystem
from vpa.stores.memory import MemoryStore
from vpa_conformance.checks import ContractViolation
from vpa_conformance.document_atomicity import DocumentAtomicityClauses
from vpa_conformance.harness import StoreHarness


def _run_clause() -> None:
    runner = asyncio.Runner()
    harness = StoreHarness(MemoryStore(), runner)
    try:
        DocumentAtomicityClauses().test_document_atomicity(harness)
    finally:
        harness.cleanup()
        harness.close()
        runner.close()


def test_the_real_rag_layer_passes() -> None:
    _run_clause()


def test_heads_written_with_their_bodies_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout before the fix: chunks in document order, the head first."""
    original = RAGSystem._chunk_records

    def head_not_last(self, p):  # noqa: ANN001, ANN202
        return original(self, p)

    async def write_in_document_order(self, info, todo):  # noqa: ANN001, ANN202
        records = []
        for p in todo:
            for rid, text, metadata in head_not_last(self, p):
                (vector,) = await self.embedder.aembed([text])
                records.append((p, rid, text, metadata, vector))
        from vpa.models import Record

        for start in range(0, len(records), 4):
            batch = [Record(rid, v, t, m) for _, rid, t, m, v in records[start : start + 4]]
            await self.store.upsert(info.name, batch)
        for p, rid, t, m, v in records:
            p.records.append(Record(rid, v, t, m))
        return len(records)

    monkeypatch.setattr(RAGSystem, "_write", write_in_document_order)
    with pytest.raises(ContractViolation):
        _run_clause()


def test_search_that_trusts_every_chunk_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    async def trust_all(self, info, hits):  # noqa: ANN001, ANN202
        return hits

    monkeypatch.setattr(RAGSystem, "_complete_hits", trust_all)
    with pytest.raises(ContractViolation, match="search served"):
        _run_clause()
