"""``python bench/run.py [--quick]``: run every measurement, print the table, write the JSON and
the chart. Each provider runs in a worker process of its own (so resident memory, thread pools
and file locks of one engine cannot disturb another), unless ``--no-isolate``."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vpa_bench import FIGURE_KEYS, SCHEMA_VERSION
from vpa_bench.machine import load_average, machine_info
from vpa_bench.providers import EMBEDDED, LIMITS, Server, discover, external_server, start_standin
from vpa_bench.report import chart, render
from vpa_bench.workloads import Params

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
RUN_PY = BENCH_DIR / "run.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run.py", description="VPA benchmarks (issue 7); see bench/README.md"
    )
    ap.add_argument(
        "--quick", action="store_true", help="small sizes, < 2 minutes; quality only from cached embeddings"
    )
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the smoke test's configuration
    ap.add_argument(
        "--providers", help="comma-separated store names (default: every registered store; 'none' for none)"
    )
    ap.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results", help="folder for latest.json and latest.png"
    )
    ap.add_argument(
        "--no-isolate", action="store_true", help="run providers in this process (memory figures less clean)"
    )
    ap.add_argument("--skip-quality", action="store_true", help="leave out the SciFact quality run")
    ap.add_argument(
        "--skip-st", action="store_true", help="leave out the sentence-transformers ingest figure"
    )
    ap.add_argument(
        "--scifact",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "scifact",
        help="BEIR SciFact folder (corpus.jsonl, queries.jsonl, qrels.tsv)",
    )
    ap.add_argument(
        "--quality-chunked",
        action="store_true",
        help="also score SciFact with default chunking (1000/200), best chunk per document",
    )
    ap.add_argument(
        "--state-dir",
        type=Path,
        default=ROOT / ".vpa",
        help="where the embedding cache (bench-cache/) and the engines' data (bench-work/) go",
    )
    ap.add_argument(
        "--blas-threads", type=int, help="limit numpy's BLAS threads in the workers (threadpoolctl)"
    )
    ap.add_argument("--worker", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# --- workers -----------------------------------------------------------------------------------


async def _work(spec: dict[str, Any], out_file: Path | None = None) -> dict[str, Any]:
    if spec["kind"] == "provider":
        from vpa_bench.workloads import run_provider

        def progress(result: dict[str, Any]) -> None:  # a timed-out worker still leaves its finished phases
            if out_file is not None:
                out_file.write_text(json.dumps(result))

        return await run_provider(
            spec["provider"],
            Params(**spec["params"]),
            Path(spec["root"]),
            Path(spec["workdir"]),
            spec.get("overrides"),
            spec["phases"],
            progress,
        )
    if spec["kind"] == "model":  # the sentence-transformers figures share one process (one torch import)
        from vpa_bench.quality import run_quality
        from vpa_bench.workloads import run_provider

        out: dict[str, Any] = {}
        if spec.get("st"):
            r = await run_provider(
                "memory",
                Params(**spec["params"]),
                Path(spec["root"]),
                Path(spec["workdir"]) / "st",
                phases=["st_ingest"],
            )
            out["st"] = r.get("st_ingest") or {"skipped": f"failed: {r.get('errors', {}).get('st_ingest')}"}
        for key, chunked in (("quality", False), ("quality_chunked", True)):
            q = spec.get(key)
            if not q:
                continue
            try:
                out[key] = await run_quality(
                    Path(spec["root"]),
                    Path(q["scifact"]),
                    Path(spec["workdir"]) / key,
                    max_queries=q.get("max_queries"),
                    allow_compute=q["allow_compute"],
                    chunked=chunked,
                )
            except Exception as exc:
                out[key] = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
            if out_file is not None:
                out_file.write_text(json.dumps(out))
        shutil.rmtree(spec["workdir"], ignore_errors=True)
        return out
    raise ValueError(spec["kind"])


def _worker_main(spec_file: Path, out_file: Path) -> int:
    spec = json.loads(spec_file.read_text())
    result = asyncio.run(_work(spec, out_file))
    out_file.write_text(json.dumps(result))
    return 0


def run_worker(spec: dict[str, Any], isolate: bool, timeout: float) -> dict[str, Any]:
    if not isolate:
        return asyncio.run(_work(spec))
    with tempfile.TemporaryDirectory(prefix="vpa-bench-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec))
        try:
            proc = subprocess.run(
                [sys.executable, str(RUN_PY), "--worker", str(spec_file), str(out_file)],
                cwd=ROOT,
                timeout=timeout,
                capture_output=True,
                text=True,
            )
        except subprocess.TimeoutExpired:
            partial = json.loads(out_file.read_text()) if out_file.is_file() else {"errors": {}}
            done = ", ".join(partial.get("timings_s", {})) or "none"
            partial.setdefault("errors", {})["worker"] = (
                f"timed out after {timeout:.0f} s (phases finished: {done})"
            )
            return partial
        if proc.returncode != 0 or not out_file.is_file():
            tail = (proc.stderr or "").strip().splitlines()[-12:]
            return {"errors": {"worker": f"exit status {proc.returncode}", "worker_stderr": "\n".join(tail)}}
        return json.loads(out_file.read_text())


# --- assembly ----------------------------------------------------------------------------------


def _target(
    target: str, value: float | None, limit: float, smaller_is_better: bool = True, absolute: bool = False
) -> dict[str, Any]:
    met = None
    if value is not None:
        v = abs(value) if absolute else value
        met = v < limit if smaller_is_better else v > limit
    return {"target": target, "value": value, "limit": limit, "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for prov, r in results["overhead_vs_bare"].items():
        out.append(
            _target(f"{prov}: VPA store upsert ÷ bare {r.get('library', '')}", r.get("upsert_ratio"), 1.05)
        )
        out.append(_target(f"{prov}: VPA store query p50 ÷ bare", r.get("query_ratio_p50"), 1.05))
        out.append(
            _target(
                f"{prov}: VPA ingest pipeline ÷ bare client + embedder", r.get("ingest_pipeline_ratio"), 1.05
            )
        )
        out.append(
            _target(
                f"{prov}: VPA search_knowledge p50 ÷ bare client + embedder",
                r.get("search_pipeline_ratio_p50"),
                1.05,
            )
        )
    mem = results["search"].get("memory", {})
    if mem:
        largest = max(mem, key=int)
        out.append(
            _target(
                f"memory store: top-10 over {int(largest):,} 384-d chunks, store.query p50 (ms)",
                mem[largest].get("store_query", {}).get("p50_ms"),
                15.0,
            )
        )
        out.append(
            _target(
                f"memory: cached search_knowledge p50 over {int(largest):,} chunks (ms)",
                mem[largest].get("cached", {}).get("p50_ms"),
                1.0,
            )
        )
    for prov, sizes in results["search"].items():
        if prov == "memory" or not sizes:
            continue
        largest = max(sizes, key=int)
        caps = results["providers"].get(prov, {}).get("capabilities") or {}
        if caps.get("eventually_consistent"):  # the RAG layer caches no results of such stores, by design
            out.append(
                {
                    "target": f"{prov}: cached search_knowledge p50 (ms)",
                    "value": None,
                    "limit": 1.0,
                    "met": None,
                    "note": "not applicable: results of eventually consistent stores are never cached",
                }
            )
            continue
        out.append(
            _target(
                f"{prov}: cached search_knowledge p50 (ms)",
                sizes[largest].get("cached", {}).get("p50_ms"),
                1.0,
            )
        )
    q = results["quality"]
    if q.get("vpa") and not q.get("subset"):
        out.append(
            _target(
                "SciFact nDCG@10 within 0.01 of the published 0.6451",
                q.get("delta_vs_published"),
                0.01,
                absolute=True,
            )
        )
    return out


def assemble(
    machine: dict[str, Any],
    run: dict[str, Any],
    provider_runs: dict[str, dict[str, Any]],
    overhead: dict[str, Any],
    st: dict[str, Any],
    quality: dict[str, Any],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "machine": machine,
        "run": run,
        "providers": {},
        "ingest": {},
        "reingest": {},
        "memory": {},
        "search": {},
        "throughput": {},
        "overhead_vs_bare": {},
        "overhead_vs_langchain": {},
        "vpa_overhead": overhead,
        "sentence_transformers_ingest": st,
        "quality": quality,
        "targets": [],
        "skipped": list(skipped),
    }
    for prov, r in provider_runs.items():
        res["providers"][prov] = {
            k: r.get(k)
            for k in (
                "status",
                "kind",
                "note",
                "package",
                "capabilities",
                "public_overrides",
                "errors",
                "timings_s",
            )
        }
        res["skipped"] += r.get("skipped", [])
        for size, ing in (r.get("ingest") or {}).items():
            res["ingest"].setdefault(prov, {})[size] = {k: v for k, v in ing.items() if k != "reingest"}
            res["reingest"].setdefault(prov, {})[size] = ing.get("reingest")
            if "rss_mb_per_1000_docs" in ing:
                res["memory"][prov] = {
                    "documents": ing["documents"],
                    "chunks": ing["chunks"],
                    **{
                        k: ing[k]
                        for k in (
                            "rss_mb_per_1000_docs",
                            "disk_mb_per_1000_docs",
                            "rss_mb_before",
                            "rss_mb_after",
                        )
                    },
                }
        for size, s in (r.get("search") or {}).items():
            res["search"].setdefault(prov, {})[size] = {k: v for k, v in s.items() if k != "throughput"}
            res["throughput"].setdefault(prov, {})[size] = s.get("throughput", {})
        cmp_ = r.get("compare") or {}
        libs = cmp_.get("libraries", {})
        sl, pl = cmp_.get("store_level"), cmp_.get("pipeline")
        if sl or (pl and "bare" in pl.get("ingest_ratio", {})):
            entry: dict[str, Any] = {"library": libs.get("bare")}
            if sl:
                entry.update(
                    {
                        "upsert_ratio": sl["upsert_ratio"],
                        "query_ratio_p50": sl["query_ratio_p50"],
                        "query_ratio_mean": sl["query_ratio_mean"],
                        "query_ratio_p50_vs_bare_in_thread": sl.get("query_ratio_p50_vs_bare_in_thread"),
                        "store_level": sl,
                    }
                )
            if pl and "bare" in pl["ingest_ratio"]:
                entry.update(
                    {
                        "ingest_pipeline_ratio": pl["ingest_ratio"]["bare"],
                        "search_pipeline_ratio_p50": pl["search_ratio_p50"]["bare"],
                        "search_pipeline_ratio_p50_vs_bare_in_thread": pl["search_ratio_p50"].get(
                            "bare_in_thread"
                        ),
                        "pipeline": {
                            "documents": pl["documents"],
                            "ingest_s": pl["ingest_s"],
                            "search": {
                                k: pl["search"][k]
                                for k in ("vpa", "bare", "bare_in_thread")
                                if k in pl["search"]
                            },
                        },
                    }
                )
            res["overhead_vs_bare"][prov] = entry
        if pl and "langchain" in pl.get("ingest_ratio", {}):
            res["overhead_vs_langchain"][prov] = {
                "library": libs.get("langchain"),
                "ingest_pipeline_ratio": pl["ingest_ratio"]["langchain"],
                "search_pipeline_ratio_p50": pl["search_ratio_p50"]["langchain"],
                "pipeline": {
                    "documents": pl["documents"],
                    "ingest_s": pl["ingest_s"],
                    "search": {k: pl["search"][k] for k in ("vpa", "langchain")},
                },
            }
    res["targets"] = targets(res)
    return res


# --- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    params = Params.preset(mode)
    params.blas_threads = args.blas_threads
    isolate = not args.no_isolate
    started = time.perf_counter()
    machine = machine_info()
    state = args.state_dir
    workroot = state / "bench-work"
    worker_timeout = {"full": 1800.0, "quick": 60.0, "tiny": 60.0}[mode]
    wanted = [p.strip() for p in args.providers.split(",")] if args.providers else None
    names, load_errors = discover(wanted) if wanted != ["none"] else ([], {})
    skipped: list[dict[str, str]] = [
        {"provider": n, "what": "provider", "why": f"plugin failed to load: {e}"}
        for n, e in load_errors.items()
    ]
    provider_runs: dict[str, dict[str, Any]] = {}
    base_spec = {"kind": "provider", "params": asdict(params), "root": str(state)}
    for name in names:
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        server: Server | None = None
        kind = "built-in" if name == "memory" else "embedded"
        note = ""
        if name not in EMBEDDED:
            server = external_server(name)
            kind = "server"
            if server is None:
                try:
                    server = start_standin(name, ROOT)
                    kind = "stand-in"
                except Exception as exc:
                    why = (
                        f"needs a server: none reachable ({type(exc).__name__}: {exc}); set "
                        f"VPA_BENCH_{name.upper()}_HOST/_PORT/_API_KEY to benchmark a real one"
                    )
                    skipped.append({"provider": name, "what": "provider", "why": why})
                    provider_runs[name] = {"status": "skipped", "kind": "server", "note": why}
                    continue
            note = server.note
        t = time.perf_counter()
        try:
            phases = ["ingest", "search", "compare"] + (["overhead"] if name == "memory" else [])
            spec = {
                **base_spec,
                "provider": name,
                "workdir": str(workroot / name),
                "overrides": server.overrides if server else {},
                "phases": phases,
            }
            result = run_worker(spec, isolate, worker_timeout)
        finally:
            if server is not None:
                server.stop()
        worker_error = result.get("errors", {}).get("worker")
        status = "ran" if not worker_error else "partial" if result.get("timings_s") else "failed"
        result.update(status=status, kind=kind, note=note or LIMITS.get(name, {}).get("why", ""))
        provider_runs[name] = result
        print(f"[bench] {name} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)

    if "memory" in provider_runs and "overhead" in provider_runs["memory"]:
        overhead = provider_runs["memory"].pop("overhead")
    else:
        print("[bench] VPA overhead micro-measurements …", file=sys.stderr, flush=True)
        r = run_worker(
            {
                **base_spec,
                "provider": "memory",
                "workdir": str(workroot / "overhead"),
                "phases": ["overhead"],
            },
            isolate,
            worker_timeout,
        )
        overhead = r.get("overhead") or {"skipped": f"failed: {r.get('errors')}"}

    have_st = importlib.util.find_spec("sentence_transformers") is not None
    st: dict[str, Any] = {}
    quality: dict[str, Any] = {}
    scifact = args.scifact
    if args.skip_st or mode == "tiny":
        st = {"skipped": "left out (--skip-st or the smoke-test configuration)"}
    elif not have_st:
        st = {
            "skipped": "sentence-transformers is not installed "
            "(pip install 'vpa-core[sentence-transformers]')"
        }
    if args.skip_quality or mode == "tiny":
        quality = {"skipped": "left out (--skip-quality or the smoke-test configuration)"}
    elif not have_st:
        quality = {"skipped": "sentence-transformers is not installed"}
    elif not (scifact / "corpus.jsonl").is_file():
        quality = {
            "skipped": f"BEIR SciFact not found at {scifact.name}/ "
            "(pass --scifact DIR; see ../shared/data/SOURCES.md)"
        }
    if not st or not quality:
        print("[bench] sentence-transformers ingest and SciFact quality …", file=sys.stderr, flush=True)
        q = {
            "scifact": str(scifact),
            "allow_compute": mode == "full",
            "max_queries": 50 if mode == "quick" else None,
        }
        mspec = {
            "kind": "model",
            "params": asdict(params),
            "root": str(state),
            "workdir": str(workroot / "model"),
            "st": not st,
            "quality": q if not quality else None,
            "quality_chunked": q if not quality and args.quality_chunked and mode == "full" else None,
        }
        r = run_worker(mspec, isolate, 5400.0 if mode == "full" else 90.0)
        failed = r.get("errors", {}).get("worker")
        if not st:
            st = r.get("st") or {"skipped": f"failed: {failed}"}
        if not quality:
            quality = r.get("quality") or {"skipped": f"failed: {failed}"}
            if r.get("quality_chunked"):
                quality["chunked"] = r["quality_chunked"]

    run_info = {
        "mode": mode,
        "isolated": isolate,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 1),
        "load_average_at_end": load_average(),
        "params": asdict(params),
        "argv": sys.argv[1:] if args.worker is None else [],
    }
    results = assemble(machine, run_info, provider_runs, overhead, st, quality, skipped)
    for key in FIGURE_KEYS:
        assert key in results, key
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _worker_main(Path(args.worker[0]), Path(args.worker[1]))
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    chart_error = chart(results, args.out / "latest.png")
    results["run"]["chart"] = "latest.png" if chart_error is None else f"not drawn: {chart_error}"
    tmp = args.out / "latest.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False))
    os.replace(tmp, args.out / "latest.json")
    print(render(results))
    print(f"\nwrote {args.out / 'latest.json'}" + ("" if chart_error else f" and {args.out / 'latest.png'}"))
    return 0
