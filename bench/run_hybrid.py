#!/usr/bin/env python3
"""Retrieval quality by search mode on BEIR SciFact (test), through VPA's public RAG API with the
default chunking (1,000 characters, 200 overlap) and all-MiniLM-L6-v2: nDCG@10, recall@10/@100
and mean latency for ``dense``, ``lexical`` and ``hybrid`` (RRF) on each store that declares
lexical search, against exact whole-document dense search over the same model (one chunk per
abstract, exact numpy). Writes ``bench/results/hybrid-latest.json``; see bench/README.md,
"Search modes (dense, lexical, hybrid)"."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".vpa"  # the bench's state folder (its embedding cache: .vpa/bench-cache)


async def _run(args: argparse.Namespace) -> dict:
    from vpa_bench.quality import run_quality

    scifact = Path(args.scifact)
    out: dict = {"dataset": "BEIR SciFact (test)", "max_queries": args.max_queries, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="vpa-hybrid-") as tmp:
        whole = await run_quality(STATE, scifact, Path(tmp) / "whole", max_queries=args.max_queries)
        out["whole_document_exact"] = whole.get("exact_numpy_same_vectors")
        out["whole_document_vpa"] = whole.get("vpa")
        for provider in args.providers:
            try:
                result = await run_quality(
                    STATE, scifact, Path(tmp) / provider, max_queries=args.max_queries, chunked=True,
                    provider=provider, modes=("dense", "lexical", "hybrid"),
                )
                out["stores"][provider] = {
                    "chunks": result.get("chunks"), "ingest_seconds": result.get("ingest_seconds"),
                    "modes": result.get("modes"),
                }
            except Exception as exc:  # noqa: BLE001 - one store's failure is recorded, not fatal
                out["stores"][provider] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--providers", nargs="+", default=["memory"], help="stores to score (default: memory)")
    ap.add_argument("--max-queries", type=int, default=None, help="the first N test queries (default: all 300)")
    ap.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "hybrid-latest.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = asyncio.run(_run(args))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    ref = out.get("whole_document_exact") or {}
    print(f"exact whole-document dense: nDCG@10 {ref.get('ndcg@10')}, recall@100 {ref.get('recall@100')}")
    print(f"{'store':<10} {'mode':<8} {'nDCG@10':>8} {'R@100':>7} {'ms':>7}")
    for store, result in out["stores"].items():
        if "error" in result:
            print(f"{store:<10} error: {result['error']}")
            continue
        for mode, m in (result.get("modes") or {}).items():
            print(f"{store:<10} {mode:<8} {m['ndcg@10']:>8.4f} {m['recall@100']:>7.4f} {m['mean_ms']:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
