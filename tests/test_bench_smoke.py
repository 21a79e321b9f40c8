"""Smoke test of the benchmark harness (bench/): a tiny in-process run on the memory store must
write a results file holding every top-level figure key. The benchmark itself is `make bench`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import structlog

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def harness():
    sys.path.insert(0, str(BENCH))
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    try:
        import vpa_bench.cli

        yield vpa_bench
    finally:
        sys.path.remove(str(BENCH))
        if was_configured:  # the harness configures logging for its run; leave the process as it was
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


def test_tiny_run_writes_every_figure(harness, tmp_path: Path) -> None:
    out = tmp_path / "results"
    status = harness.cli.main(
        [
            "--tiny",
            "--providers",
            "memory",
            "--no-isolate",
            "--out",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ]
    )
    assert status == 0
    results = json.loads((out / "latest.json").read_text())
    missing = [key for key in harness.FIGURE_KEYS if key not in results]
    assert not missing, missing
    assert results["providers"]["memory"]["status"] == "ran", results["providers"]["memory"]
    ingest = results["ingest"]["memory"]
    assert ingest and all(r["docs_per_s"] > 0 and r["chunks"] >= r["documents"] for r in ingest.values())
    reingest = results["reingest"]["memory"]
    assert all(reingest[size]["unchanged"] == r["documents"] for size, r in ingest.items())
    search = results["search"]["memory"]
    assert search and all(s["cold"]["n"] > 0 and s["cached"]["p50_ms"] > 0 for s in search.values())
    assert results["memory"]["memory"]["rss_mb_per_1000_docs"] is not None
    assert results["vpa_overhead"]["check_records_ms_per_1000"] > 0
    assert "skipped" in results["quality"]


def test_tiny_migration_between_two_engines(harness, tmp_path: Path) -> None:
    """bench/run_migrate.py at a tiny size: both directions copied whole and verified, each engine's
    bulk upsert measured once, the ratio computed (its value is not asserted: no speed asserts)."""
    pytest.importorskip("vpa_chroma")
    from vpa_bench import migrate

    out = tmp_path / "migrate.json"
    argv = ["--n", "120", "--engines", "memory,chroma", "--json", str(out), "--tmp", str(tmp_path)]
    status = migrate.main(argv)
    assert status == 0
    results = json.loads(out.read_text())
    assert set(results["pairs"]) == {"memory->chroma", "chroma->memory"}
    upsert = results["upsert"]
    for name, fill in upsert.items():
        assert fill["count"] == 120 and fill["records_per_s"] > 0 and not fill["errors"], (name, fill)
        assert fill["read_records_per_s"] > 0, (name, fill)
    for name, pair in results["pairs"].items():
        assert not pair["errors"], (name, pair["errors"])
        assert pair["records"] == 120 and pair["complete"] and pair["verified"], (name, pair)
        rates = (upsert[pair["source"]]["records_per_s"], upsert[pair["target"]]["records_per_s"])
        assert pair["slower_upsert_records_per_s"] == min(rates)
        assert pair["ratio"] is not None and pair["meets_target"] in (True, False)
        verification = results["sources"][pair["source"]]["pairs"][pair["target"]]["verification"]
        assert verification["count_source"] == verification["count_target"] == 120
    assert not list(tmp_path.glob("vpa-migrate-*")), "worker folders are removed"
