"""VPA's benchmark harness (issue 7): ingest, search, memory, overhead against the bare vendor
clients and LangChain, and retrieval quality on BEIR SciFact. Run it with ``make bench`` or
``python bench/run.py [--quick]``; see bench/README.md."""

#: Every top-level key of ``bench/results/latest.json`` that holds figures (or says why not).
FIGURE_KEYS = (
    "machine",
    "run",
    "providers",
    "ingest",
    "reingest",
    "memory",
    "search",
    "throughput",
    "overhead_vs_bare",
    "overhead_vs_langchain",
    "vpa_overhead",
    "sentence_transformers_ingest",
    "quality",
    "targets",
    "skipped",
)

SCHEMA_VERSION = 1
