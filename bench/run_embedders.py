#!/usr/bin/env python3
"""Embedding backends of all-MiniLM-L6-v2 (``VPA_EMBEDDING_BACKEND``): documents/s and SciFact
nDCG@10 for torch fp32, ONNX fp32 and ONNX int8, on this machine's CPU.

Speed: ``--docs`` SciFact abstracts (title + text, as the RAG layer embeds them) per round, the
backends interleaved in every round (``--rounds``), so a busy moment costs each of them alike;
the median and the spread (min–max) of the rounds are reported. Quality: exact whole-document
search (numpy, cosine) over the whole corpus with each backend's own vectors, the SciFact test
queries embedded by the same backend. Writes ``bench/results/embedders-latest.json``; see
bench/README.md, "Embedding backends"."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("torch", "onnx", "onnx-int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--docs", type=int, default=256, help="documents per speed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quality-docs", type=int, default=0, help="corpus size for nDCG (0: all)")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "embedders-latest.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "bench"))
    from vpa.embedders.sentence_transformers import SentenceTransformerEmbedder
    from vpa_bench.data import load_scifact, ndcg_at
    from vpa_bench.machine import load_average

    data = load_scifact(Path(args.scifact))
    texts = [f"{t}\n{x}" if t else x for _, t, x in data["corpus"]]
    with tempfile.TemporaryDirectory(prefix="vpa-embedders-") as tmp:
        embedders = {b: SentenceTransformerEmbedder(backend=b, batch_size=64, cache_dir=Path(tmp))
                     for b in BACKENDS}
        export_seconds = {}
        for b, e in embedders.items():
            started = time.perf_counter()
            e.embed(["warm up"])  # loads the model (and exports it, for the ONNX backends)
            export_seconds[b] = round(time.perf_counter() - started, 1)
        sample = texts[: args.docs]
        rates: dict[str, list[float]] = {b: [] for b in BACKENDS}
        for r in range(args.rounds):
            order = BACKENDS if r % 2 == 0 else tuple(reversed(BACKENDS))
            for b in order:
                started = time.perf_counter()
                embedders[b].embed(sample)
                rates[b].append(len(sample) / (time.perf_counter() - started))
        result: dict = {
            "model": "all-MiniLM-L6-v2", "docs_per_round": len(sample), "rounds": args.rounds,
            "load_average": load_average(), "backends": {},
        }
        for b in BACKENDS:
            result["backends"][b] = {
                "fingerprint": embedders[b].fingerprint.model,
                "docs_per_second": round(statistics.median(rates[b]), 1),
                "spread": [round(min(rates[b]), 1), round(max(rates[b]), 1)],
                "first_load_seconds": export_seconds[b],
            }
        if not args.no_quality:
            corpus = data["corpus"][: args.quality_docs or None]
            ids = [d for d, _, _ in corpus]
            known = set(ids)
            qids = [q for q in data["qrels"] if q in data["queries"]
                    and any(d in known for d in data["qrels"][q])]
            reference = None
            for b in BACKENDS:
                started = time.perf_counter()
                docs = embedders[b].embed(texts[: len(corpus)])
                queries = embedders[b].embed([data["queries"][q] for q in qids])
                scores = queries @ docs.T
                top = np.argsort(-scores, axis=1)[:, :10]
                ndcg = float(np.mean([ndcg_at([ids[i] for i in row], data["qrels"][q], 10)
                                      for q, row in zip(qids, top)]))
                entry = result["backends"][b]
                entry["ndcg@10"] = round(ndcg, 4)
                entry["quality_seconds"] = round(time.perf_counter() - started, 1)
                if reference is None:
                    reference = docs
                else:
                    entry["min_cosine_to_torch"] = round(float((docs * reference).sum(axis=1).min()), 5)
            result["quality"] = {"corpus": len(corpus), "queries": len(qids)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
