"""Store-to-store migration (`vpa.portability.migrate`) between every ordered pair of local engines:
is a copy as fast as the slower engine's own bulk upsert, and does it verify?

Run with ``python bench/run_migrate.py [--n 100000] [--dim 32|384] [--engines memory,chroma,qdrant,milvus]``.
Per source engine A, in a worker process of its own, one engine after another, each engine in a
temporary data folder of its own:

1. **fill**: N records (random unit vectors; metadata ``i`` int, ``g`` one of 10 strings, ``x``
   float, ``flag`` bool, ``tags`` list of str, ``at`` datetime; a short text) are upserted into A
   through VPA's store (created by name from the plugin registry) in batches of
   `vpa.portability.BATCH`, the batch a migration writes with; ``settle`` included. This is A's
   **bulk upsert rate** — measured once per run, and the same records into a fresh collection as
   every other engine gets, so it is also the target-side figure of every pair into A. Then A's
   **read rate**: every record listed with its vector through `portability.pages`, as `migrate`
   reads it (not part of the ratio; it says when the source's own listing is the bound).
2. for every other engine B: a fresh store in its own folder, then
   ``portability.migrate(A, collection, B, f"{collection}_from_{A}", verify=True)``: the records/s
   of the copy (``MigrateSummary.seconds``: scroll, upsert, no verification), the whole call's
   time, and the verification's figures (counts, sampled records compared field by field, top-k
   overlap against what the two stores' declared recall allows). Then the target collection is
   dropped and its folder removed.

Per pair the figure is ``migrate rate ÷ min(upsert A, upsert B)``: the copy against the slower
engine's own bulk upsert (issue 16's target: at least 0.80). Errors are recorded per step
(registry, fill, each pair's migrate / drop) and the run goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from vpa.portability import BATCH

from vpa_bench.scroll import LOCAL_ENGINES, PACKAGES, _config, default_tmp

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
RUN_MIGRATE = BENCH_DIR / "run_migrate.py"
OUT_FILE = BENCH_DIR / "results" / "migrate-latest.json"

COLLECTION = "migbench"
DIMENSION = 32
MAX_DIMENSION = 4096
GROUPS = 10
#: The records are generated, and upserted by a fill, in blocks of this many (a migration's batch),
#: each block from its own seed: the same N records on every engine.
BLOCK = BATCH
SEED = 20261204
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TARGET_RATIO = 0.80
SCHEMA_VERSION = 1


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 and count else None


def record_id(i: int) -> str:
    return f"rec-{i:07d}"


def block(n: int, dim: int, k: int) -> list[Any]:
    """Records ``k * BLOCK`` .. (at most) ``n - 1``: unit vectors and typed metadata, deterministic."""
    from vpa.models import Record

    start, stop = k * BLOCK, min(n, (k + 1) * BLOCK)
    rng = np.random.default_rng([SEED, dim, k])
    vectors = rng.standard_normal((stop - start, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        Record(
            record_id(i),
            vectors[i - start],
            f"record {i} of the migration benchmark, group g{i % GROUPS}",
            {
                "i": i,
                "g": f"g{i % GROUPS}",
                "x": i / 7.0,
                "flag": i % 2 == 0,
                "tags": [f"t{i % 3}", f"u{i % 5}"],
                "at": EPOCH + dt.timedelta(seconds=i),
            },
        )
        for i in range(start, stop)
    ]


def blocks(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK


def _store(provider: str, data_dir: Path) -> Any:
    from vpa.plugins import get_registry

    return get_registry().create("store", provider, _config(provider, data_dir))


# --- one source engine (the worker) ----------------------------------------------------------------


async def _fill(store: Any, n: int, dim: int) -> dict[str, Any]:
    """Upsert the N records a block (`BLOCK`, the batch a migration writes with) at a time; only
    the upserts and ``settle`` are timed (each block is built before its call, one at a time)."""
    await store.create_collection(COLLECTION, dim)
    seconds = 0.0
    for k in range(blocks(n)):
        batch = block(n, dim, k)
        t = time.perf_counter()
        await store.upsert(COLLECTION, batch)
        seconds += time.perf_counter() - t
    t = time.perf_counter()
    await store.settle(COLLECTION)
    seconds += time.perf_counter() - t
    caps = store.capabilities
    return {
        "records": n,
        "count": await store.count(COLLECTION),
        "batch": BLOCK,
        "seconds": round(seconds, 3),
        "records_per_s": _rate(n, seconds),
        "max_batch_size": caps.max_batch_size,
        "max_page_size": caps.max_page_size,
        "store_class": f"{type(store).__module__}.{type(store).__qualname__}",
    }


async def _read(store: Any, n: int) -> dict[str, Any]:
    """The source side alone: every record listed with its vector, as `migrate` reads it
    (`portability.pages`, the store's largest page up to `portability.BATCH`)."""
    from vpa.portability import _page_size, pages

    listed = 0
    t = time.perf_counter()
    async for page in pages(store, COLLECTION):
        listed += len(page)
    seconds = time.perf_counter() - t
    return {
        "records": listed,
        "complete": listed == n,
        "page_size": _page_size(store, BATCH),
        "seconds": round(seconds, 3),
        "records_per_s": _rate(listed, seconds),
    }


async def _pair(source: Any, source_name: str, target_name: str, workdir: Path, n: int) -> dict[str, Any]:
    """Migrate the source's collection into a fresh ``target_name`` store; every step's error kept."""
    from vpa.portability import VerificationFailed, migrate

    out: dict[str, Any] = {"source": source_name, "target": target_name, "errors": {}}
    data_dir = workdir / f"target-{target_name}"
    target = _store(target_name, data_dir)
    collection = f"{COLLECTION}_from_{source_name}"
    try:
        t = time.perf_counter()
        await target.list_collections()  # starts the engine (Milvus Lite: its server), timed apart
        out["target_open_seconds"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        try:
            summary = await migrate(source, COLLECTION, target, collection, verify=True)
        except VerificationFailed as exc:
            out["call_seconds"] = round(time.perf_counter() - t, 3)
            out["verified"] = False
            out["errors"]["verify"] = _error(exc)
        except Exception as exc:
            out["errors"]["migrate"] = _error(exc)
            out["errors"]["migrate_traceback"] = traceback.format_exc(limit=8)
        else:
            call = time.perf_counter() - t
            data = summary.to_json()
            out.update(
                records=summary.records,
                written=summary.written,
                skipped=summary.skipped,
                replaced=summary.replaced,
                copy_seconds=round(summary.seconds, 3),
                migrate_records_per_s=_rate(summary.records, summary.seconds),
                call_seconds=round(call, 3),
                # creating the target collection, and the verification
                setup_verify_seconds=round(call - summary.seconds, 3),
                verification=data["verification"],
                verified=summary.verification is not None,
                complete=summary.records == n and summary.written == n,
            )
        try:
            out["dropped"] = await target.drop_collection(collection)
        except Exception as exc:
            out["errors"]["drop"] = _error(exc)
    finally:
        try:
            await target.close()
        except Exception as exc:
            out["errors"]["close"] = _error(exc)
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


async def _source_run(provider: str, targets: list[str], n: int, dim: int, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"engine": provider, "n": n, "dim": dim, "errors": {}, "pairs": {}}
    store = _store(provider, workdir / "source")
    try:
        try:
            result["fill"] = await _fill(store, n, dim)
        except Exception as exc:
            result["errors"]["fill"] = _error(exc)
            result["errors"]["fill_traceback"] = traceback.format_exc(limit=8)
            return result
        try:
            result["read"] = await _read(store, n)
        except Exception as exc:
            result["errors"]["read"] = _error(exc)
        for target in targets:
            print(f"[migrate] {provider} -> {target}", file=sys.stderr, flush=True)
            try:
                result["pairs"][target] = await _pair(store, provider, target, workdir, n)
            except Exception as exc:  # building the target store failed
                result["pairs"][target] = {
                    "source": provider,
                    "target": target,
                    "errors": {"migrate": _error(exc)},
                }
    finally:
        try:
            await store.close()
        except Exception as exc:
            result["errors"]["close"] = _error(exc)
    return result


def run_source(provider: str, targets: list[str], n: int, dim: int, workdir: Path) -> dict[str, Any]:
    """Fill ``provider`` and migrate it into each of ``targets``; errors recorded, never raised."""
    from vpa.log import configure_logging

    configure_logging("WARNING", "console")
    started = time.perf_counter()
    try:
        from vpa.plugins import get_registry

        registration = get_registry().get("store", provider)
        package = f"{registration.package} {registration.version}"
    except Exception as exc:
        return {"engine": provider, "n": n, "dim": dim, "errors": {"registry": _error(exc)}, "pairs": {}}
    try:
        result = asyncio.run(_source_run(provider, targets, n, dim, workdir))
    except Exception as exc:
        result = {"engine": provider, "n": n, "dim": dim, "errors": {"run": _error(exc)}, "pairs": {}}
    result["package"] = package
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


# --- the driver ------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _worker(
    provider: str, targets: list[str], n: int, dim: int, timeout: float, tmp: Path | None
) -> dict[str, Any]:
    """``run_source`` in a process of its own (its memory, threads, file locks and Milvus Lite's
    server go with it), in a temporary folder removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"vpa-migrate-{provider}-", dir=tmp))
    out = workdir / "result.json"
    cmd = [
        sys.executable, str(RUN_MIGRATE), "--worker", provider, "--targets", ",".join(targets),
        "--n", str(n), "--dim", str(dim), "--workdir", str(workdir),
    ]  # fmt: skip
    failed = {"engine": provider, "n": n, "dim": dim, "pairs": {}}
    try:
        process = subprocess.Popen(cmd, cwd=ROOT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # our own child, by its PID
            process.wait()
            return {**failed, "errors": {"worker": f"timed out after {timeout:.0f} s"}}
        if out.is_file():
            return json.loads(out.read_text())
        return {**failed, "errors": {"worker": f"exited with status {process.returncode}"}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def summarize(sources: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two tables: each engine's bulk upsert, and each pair's migration against the slower one."""
    fills = {}
    for name, r in sources.items():
        fill = r.get("fill") or {}
        fills[name] = {
            "records_per_s": fill.get("records_per_s"),
            "seconds": fill.get("seconds"),
            "count": fill.get("count"),
            "read_records_per_s": (r.get("read") or {}).get("records_per_s"),
            "errors": {k: v for k, v in r.get("errors", {}).items() if not k.endswith("_traceback")},
        }
    pairs = {}
    for a, r in sources.items():
        for b, p in r.get("pairs", {}).items():
            up_a, up_b = fills[a]["records_per_s"], (fills.get(b) or {}).get("records_per_s")
            slower = min(up_a, up_b) if up_a and up_b else None
            rate = p.get("migrate_records_per_s")
            ratio = round(rate / slower, 2) if rate and slower else None
            verification = p.get("verification") or {}
            pairs[f"{a}->{b}"] = {
                "source": a,
                "target": b,
                "records": p.get("records"),
                "complete": p.get("complete"),
                "migrate_records_per_s": rate,
                "copy_seconds": p.get("copy_seconds"),
                "setup_verify_seconds": p.get("setup_verify_seconds"),
                "source_read_records_per_s": fills[a]["read_records_per_s"],
                "upsert_source_records_per_s": up_a,
                "upsert_target_records_per_s": up_b,
                "slower_upsert_records_per_s": slower,
                "ratio": ratio,
                "meets_target": None if ratio is None else ratio >= TARGET_RATIO,
                "verified": p.get("verified"),
                "overlap": verification.get("overlap"),
                "required_overlap": verification.get("required_overlap"),
                "errors": {k: v for k, v in p.get("errors", {}).items() if not k.endswith("_traceback")},
            }
    return fills, pairs


def _fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int | float):
        return format(value, spec)
    return str(value)


def _table(head: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(line[k]) for line in lines)) if lines else len(h) for k, h in enumerate(head)]

    def row(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [row(head), "  ".join("-" * w for w in widths), *(row(line) for line in lines)]


def render(n: int, dim: int, fills: dict[str, Any], pairs: dict[str, Any]) -> str:
    text = [f"N = {n:,}, dimension {dim}", ""]
    text += _table(
        ["engine", "bulk upsert rec/s", "seconds", "read rec/s (scroll, vectors)"],
        [
            [name, _fmt(f["records_per_s"]), _fmt(f["seconds"], ".1f"), _fmt(f["read_records_per_s"])]
            for name, f in fills.items()
        ],
    )
    text.append("")
    text += _table(
        [
            "pair",
            "migrate rec/s",
            "slower upsert rec/s",
            "source read rec/s",
            "ratio",
            f">= {TARGET_RATIO:.2f}",
            "verified",
            "setup+verify s",
        ],
        [
            [
                f"{p['source']} -> {p['target']}",
                _fmt(p["migrate_records_per_s"]),
                _fmt(p["slower_upsert_records_per_s"]),
                _fmt(p["source_read_records_per_s"]),
                _fmt(p["ratio"], ".2f"),
                _fmt(p["meets_target"]),
                _fmt(p["verified"]),
                _fmt(p["setup_verify_seconds"], ".1f"),
            ]
            for p in pairs.values()
        ],
    )
    for name, f in fills.items():
        for step, why in f["errors"].items():
            text.append(f"- {name} {step}: {why}")
    for name, p in pairs.items():
        for step, why in p["errors"].items():
            text.append(f"- {name} {step}: {why}")
    return "\n".join(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run_migrate.py",
        description="Migrate N records between every ordered pair of local engines through "
        "vpa.portability.migrate, against each engine's bulk upsert; see bench/README.md, 'Migration'",
    )
    ap.add_argument("--n", type=int, default=100_000, help="records (default 100,000)")
    ap.add_argument(
        "--dim", type=int, default=DIMENSION, help="vector dimension (default 32; 384 as a MiniLM embedder)"
    )
    ap.add_argument(
        "--engines", default=",".join(LOCAL_ENGINES), help="comma-separated local engines (default all four)"
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=OUT_FILE,
        metavar="OUT",
        help=f"the results file (default {OUT_FILE.relative_to(ROOT)})",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=7200.0,
        help="seconds allowed per source engine (its fill and its pairs)",
    )
    ap.add_argument(
        "--tmp",
        type=Path,
        default=None,
        help="folder for the engines' temporary data (default: /dev/shm when it has room, else the system's)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--targets", default="", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be at least 1")
    if not 1 <= args.dim <= MAX_DIMENSION:
        ap.error(f"--dim must be between 1 and {MAX_DIMENSION}")
    if args.tmp is not None and not args.tmp.is_dir():
        ap.error(f"--tmp {args.tmp} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        targets = [t for t in args.targets.split(",") if t]
        result = run_source(args.worker, targets, args.n, args.dim, args.workdir)
        (args.workdir / "result.json").write_text(json.dumps(result, indent=2))
        return 0
    from vpa_bench.machine import load_average, machine_info

    wanted = list(dict.fromkeys(p.strip() for p in args.engines.split(",") if p.strip()))
    unknown = [p for p in wanted if p not in LOCAL_ENGINES]
    if unknown:
        raise SystemExit(f"--engines: {', '.join(unknown)} not a local engine ({', '.join(LOCAL_ENGINES)})")
    tmp = args.tmp if args.tmp is not None else default_tmp()
    load_start = load_average()
    started = datetime.now(UTC)
    t = time.perf_counter()
    sources: dict[str, Any] = {}
    for provider in wanted:  # one source after another, never in parallel
        targets = [p for p in wanted if p != provider]
        print(
            f"[migrate] {provider}: fill {args.n:,} records, then into {', '.join(targets) or 'nothing'}",
            file=sys.stderr,
            flush=True,
        )
        sources[provider] = _worker(provider, targets, args.n, args.dim, args.timeout, tmp)
    fills, pairs = summarize(sources)
    results = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": "migrate",
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t, 1),
        "load_average": {"start": load_start, "end": load_average()},
        "machine": machine_info(),
        "versions": {p: _version(p) for p in PACKAGES},
        "params": {
            "n": args.n,
            "dimension": args.dim,
            "vectors": "random unit vectors (seeded)",
            "metadata": {
                "i": "int",
                "g": f"str, {GROUPS} values",
                "x": "float",
                "flag": "bool",
                "tags": "list[str]",
                "at": "datetime",
            },
            "upsert_batch": BATCH,
            "migrate": "vpa.portability.migrate(verify=True), default batch and sample",
            "data_folder": str(tmp or tempfile.gettempdir()),
        },
        "ratio": "migrate records/s (copy, without verification) ÷ the slower of the two engines' "
        f"bulk upsert records/s; target >= {TARGET_RATIO}",
        "upsert": fills,
        "pairs": pairs,
        "sources": sources,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(args.n, args.dim, fills, pairs))
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
