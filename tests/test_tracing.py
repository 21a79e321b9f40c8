"""VPA_ENABLE_TRACING: OpenTelemetry spans for an ingest and a search, with counts and names only."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from vpa import tracing  # noqa: E402
from vpa.rag import create_enhanced_rag_system  # noqa: E402


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure(None, exporter=exporter)
    yield exporter
    tracing.shutdown()


def _tree(finished):
    by_id = {s.context.span_id: s for s in finished}
    return {s.name: (by_id[s.parent.span_id].name if s.parent and s.parent.span_id in by_id else None)
            for s in finished}


async def test_the_span_tree_of_an_ingest_and_a_search(config, spans):
    system = create_enhanced_rag_system(config)
    await system.add_document("doc", "Title", "A secret sentence about rivers. " * 30, {"k": "v"})
    tree = _tree(spans.get_finished_spans())
    assert tree["vpa.ingest"] is None
    assert tree["vpa.chunk"] == tree["vpa.embed"] == tree["vpa.store.upsert"] == "vpa.ingest"
    upsert = next(s for s in spans.get_finished_spans() if s.name == "vpa.store.upsert")
    assert upsert.attributes["provider"] == "memory" and upsert.attributes["records"] >= 1
    spans.clear()
    await system.search_knowledge("user", "secret rivers query", top_k=3, filters={"k": "v"})
    tree = _tree(spans.get_finished_spans())
    assert tree["vpa.search"] is None
    assert tree["vpa.cache.get"] == tree["vpa.embed"] == tree["vpa.store.query"] == "vpa.search"
    query = next(s for s in spans.get_finished_spans() if s.name == "vpa.store.query")
    assert query.attributes["top_k"] >= 3 and query.attributes["filtered"] is True
    for span in spans.get_finished_spans():  # never text, queries or keys
        assert not any("secret" in str(v) or "rivers" in str(v) for v in span.attributes.values())
    spans.clear()
    await system.search_knowledge("user", "secret rivers hybrid", top_k=3, mode="hybrid")
    tree = _tree(spans.get_finished_spans())
    assert tree["vpa.store.query"] == "vpa.search" and tree["vpa.fusion"] == "vpa.store.query"
    fusion = next(s for s in spans.get_finished_spans() if s.name == "vpa.fusion")
    assert fusion.attributes["fusion"] == "rrf" and fusion.attributes["top_k"] >= 3
    assert fusion.attributes["lexical"] >= 1
    await system.shutdown()


def test_tracing_off_records_nothing_and_costs_a_shared_no_op():
    tracing.shutdown()
    assert tracing.span("x") is tracing.span("y") and tracing.current_trace_id() is None
