"""Listing a collection (contract 1.1 ``scroll``) on every local engine: does a collection of
100,000 chunks list completely, and what does VPA's listing cost against the engine's own cursor?

Run with ``python bench/run_scroll.py [--n 100000] [--providers memory,chroma,qdrant,milvus]``.
Per engine, in a worker process of its own and a temporary data folder, one engine after another:

1. N records (dimension 32; metadata ``i`` an int, ``g`` one of 10 strings ``g0``..``g9``) are
   upserted through VPA's store, created by name from VPA's plugin registry, in a shuffled order
   (so storage order is not id order); the store is closed.
2. A new store instance opens the collection (timed apart from the listing: ``open_s``) and
   ``store.scroll(collection, batch_size=max_page_size, with_vectors=False)`` lists it: every id
   must come back exactly once, each with its own metadata.
3. The same with the filter ``{"g": "g3"}``: exactly the N/10 matching ids, each once.
4. The store is closed and the bare client opens the very same native collection (the name is the
   plugin's: `vpa_chroma.codec.chroma_name`, `vpa_milvus.codec.milvus_name`; Qdrant keeps VPA's
   name) and pages through it with its own cursor, page size the same: chromadb
   ``collection.get(limit, offset, include=["metadatas", "documents"])``; qdrant-client
   ``scroll(offset=next_page_offset, with_payload=True, with_vectors=False)``; pymilvus
   ``MilvusClient.query_iterator(output_fields=[id, text, metadata])``. The memory store has no
   client of its own. The bare client is called synchronously, as its documentation shows.

A plugin that does not declare contract 1.1, or whose scroll fails, gets its error string in the
results and the run goes on. The figures are records listed per second of wall time; ``ratio``
is VPA's listing time ÷ the bare client's (1.00 = no overhead), as in the rest of the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
RUN_SCROLL = BENCH_DIR / "run_scroll.py"
OUT_FILE = BENCH_DIR / "results" / "scroll-latest.json"

LOCAL_ENGINES = ("memory", "chroma", "qdrant", "milvus")
COLLECTION = "scrollbench"
DIMENSION = 32
GROUPS = 10
FILTER = {"g": "g3"}
FILTER_GROUP = 3
INSERT_BATCH = 1000
SEED = 20261126
SCHEMA_VERSION = 1

PACKAGES = (
    "vpa-core",
    "vpa-chroma",
    "vpa-qdrant",
    "vpa-milvus",
    "chromadb",
    "qdrant-client",
    "pymilvus",
    "milvus-lite",
    "numpy",
)


def record_id(i: int) -> str:
    return f"rec-{i:07d}"


def expected_ids(n: int, group: int | None = None) -> set[str]:
    return {record_id(i) for i in range(n) if group is None or i % GROUPS == group}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def completeness(listed: list[str], expected: set[str]) -> dict[str, Any]:
    """How a listing compares with the ids it should hold: every one exactly once, nothing else."""
    distinct = set(listed)
    return {
        "listed": len(listed),
        "expected": len(expected),
        "distinct": len(distinct),
        "duplicates": len(listed) - len(distinct),
        "missing": len(expected - distinct),
        "unexpected": len(distinct - expected),
        "exactly_once": len(listed) == len(distinct) and distinct == expected,
    }


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 and count else None


# --- VPA -----------------------------------------------------------------------------------------


def _config(provider: str, data_dir: Path) -> Any:
    """A configuration that depends on nothing outside the run (no VPA_* variables, no vpa.toml)."""
    from vpa.config import load_config

    values = {
        "provider": provider,
        "embedder": "hashing",
        "data_dir": str(data_dir),
        "log_level": "WARNING",
        "collection": COLLECTION,
    }
    return load_config(values, environ={}, config_file=os.devnull)


def _store(provider: str, data_dir: Path) -> Any:
    from vpa.plugins import get_registry

    return get_registry().create("store", provider, _config(provider, data_dir))


async def _insert(provider: str, data_dir: Path, n: int) -> dict[str, Any]:
    from vpa.models import Record

    rng = np.random.default_rng(SEED)
    vectors = rng.standard_normal((n, DIMENSION), dtype=np.float32)
    order = rng.permutation(n)
    store = _store(provider, data_dir)
    try:
        await store.create_collection(COLLECTION, DIMENSION)
        t = time.perf_counter()
        for s in range(0, n, INSERT_BATCH):
            batch = [
                Record(record_id(i), vectors[i], f"record {i}", {"i": i, "g": f"g{i % GROUPS}"})
                for i in (int(j) for j in order[s : s + INSERT_BATCH])
            ]
            await store.upsert(COLLECTION, batch)
        await store.settle(COLLECTION)
        seconds = time.perf_counter() - t
        caps = store.capabilities
        return {
            "records": n,
            "seconds": round(seconds, 3),
            "records_per_s": _rate(n, seconds),
            "contract_version": caps.contract_version,
            "contract_1_1": bool(caps.contract_1_1),
            "max_page_size": caps.max_page_size,
            "scroll_filters": caps.scroll_filters,
            "store_class": f"{type(store).__module__}.{type(store).__qualname__}",
        }
    finally:
        await store.close()


async def _vpa_listing(store: Any, filter: Any, page_size: int, n: int, group: int | None) -> dict[str, Any]:
    ids: list[str] = []
    wrong = 0  # records whose metadata is not their own (or does not match the filter)
    pages = 0
    t = time.perf_counter()
    async for page in store.scroll(COLLECTION, filter, batch_size=page_size, with_vectors=False):
        pages += 1
        for r in page.records:
            ids.append(r.id)
            i = r.metadata.get("i")
            if (
                not isinstance(i, int)
                or record_id(i) != r.id
                or r.metadata.get("g") != f"g{i % GROUPS}"
                or (group is not None and i % GROUPS != group)
            ):
                wrong += 1
    seconds = time.perf_counter() - t
    return {
        **completeness(ids, expected_ids(n, group)),
        "wrong_metadata": wrong,
        "pages": pages,
        "page_size": page_size,
        "seconds": round(seconds, 3),
        "records_per_s": _rate(len(ids), seconds),
    }


async def _vpa_scrolls(provider: str, data_dir: Path, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    store = _store(provider, data_dir)
    try:
        caps = store.capabilities
        page_size = int(caps.max_page_size or 1000)
        t = time.perf_counter()
        await store.open_collection(COLLECTION)
        out["counted"] = await store.count(COLLECTION)  # connects, and loads what the engine loads
        out["open_s"] = round(time.perf_counter() - t, 3)
        if not caps.contract_1_1:
            why = f"the store declares contract {caps.contract_version}, not 1.1: no scroll"
            out["scroll_error"] = out["filtered_error"] = why
            return out
        for key, filter, group in (("scroll", None, None), ("filtered", FILTER, FILTER_GROUP)):
            try:
                out[key] = await _vpa_listing(store, filter, page_size, n, group)
            except Exception as exc:
                out[key + "_error"] = _error(exc)
                out[key + "_traceback"] = traceback.format_exc(limit=6)
    finally:
        await store.close()
    return out


# --- the bare clients ----------------------------------------------------------------------------


#: what a bare opener returns: the listing (pages of ids), how to close the client, what it calls
Bare = tuple[Callable[[], Iterable[list[str]]], Callable[[], None], str]


def _bare_chroma(data_dir: Path, page_size: int) -> Bare:
    import chromadb
    from chromadb.config import Settings
    from vpa_chroma import codec

    client = chromadb.PersistentClient(
        path=str(data_dir / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_collection(codec.chroma_name(COLLECTION), embedding_function=None)
    collection.count()

    def pages() -> Iterable[list[str]]:
        offset = 0
        while True:
            got = collection.get(limit=page_size, offset=offset, include=["metadatas", "documents"])["ids"]
            if got:
                yield got
            if len(got) < page_size:
                return
            offset += len(got)

    return pages, client.close, "collection.get(limit, offset, include=[metadatas, documents])"


def _bare_qdrant(data_dir: Path, page_size: int) -> Bare:
    from qdrant_client import QdrantClient
    from vpa_qdrant import codec

    client = QdrantClient(path=str(data_dir / "qdrant"))
    client.count(COLLECTION, exact=True)

    def pages() -> Iterable[list[str]]:
        offset = None
        while True:
            points, offset = client.scroll(
                COLLECTION, limit=page_size, offset=offset, with_payload=True, with_vectors=False
            )
            if points:
                yield [p.payload[codec.ID_KEY] for p in points]
            if offset is None:
                return

    return pages, client.close, "QdrantClient(path).scroll(offset=next_page_offset, with_payload, no vectors)"


def _bare_milvus(data_dir: Path, page_size: int) -> Bare:
    from pymilvus import MilvusClient
    from vpa_milvus import codec

    uri = str(data_dir / "milvus" / "vpa.db")
    client = MilvusClient(uri=uri)
    name = codec.milvus_name(COLLECTION)
    client.load_collection(name)
    fields = [codec.ID_FIELD, codec.TEXT_FIELD, codec.METADATA_FIELD]

    def pages() -> Iterable[list[str]]:
        iterator = client.query_iterator(name, batch_size=page_size, filter="", output_fields=fields)
        try:
            while True:
                rows = iterator.next()
                if not rows:
                    return
                yield [row[codec.ID_FIELD] for row in rows]
        finally:
            iterator.close()

    def close() -> None:
        # pymilvus serves a .db file from a Milvus Lite server in this process; it keeps the file
        # locked after the client closes, until it is released (else: at exit)
        from milvus_lite.server_manager import server_manager_instance

        try:
            client.close()
        finally:
            server_manager_instance.release_server(uri)

    return (
        pages,
        close,
        "MilvusClient(uri=file.db).query_iterator(batch_size, output_fields=[id, text, metadata])",
    )


BARE = {"chroma": _bare_chroma, "qdrant": _bare_qdrant, "milvus": _bare_milvus}
BARE_LIBRARY = {"chroma": "chromadb", "qdrant": "qdrant-client", "milvus": "pymilvus"}


def _bare_listing(provider: str, data_dir: Path, n: int, page_size: int) -> dict[str, Any]:
    out: dict[str, Any] = {"library": f"{BARE_LIBRARY[provider]} {_version(BARE_LIBRARY[provider])}"}
    t = time.perf_counter()
    pages, close, how = BARE[provider](data_dir, page_size)
    out["open_s"] = round(time.perf_counter() - t, 3)
    out["how"] = how
    try:
        ids: list[str] = []
        count = 0
        t = time.perf_counter()
        for page in pages():
            count += 1
            ids.extend(page)
        seconds = time.perf_counter() - t
        out.update(completeness(ids, expected_ids(n)))
        out.update(
            pages=count,
            page_size=page_size,
            seconds=round(seconds, 3),
            records_per_s=_rate(len(ids), seconds),
        )
    finally:
        close()
    return out


# --- one engine (the worker) ---------------------------------------------------------------------


def run_engine(provider: str, n: int, workdir: Path, rounds: int = 2) -> dict[str, Any]:
    """Every figure for one engine; errors are recorded per step, never raised. The listings run
    ``rounds`` times, VPA and the bare client alternating, each on a freshly opened client."""
    from vpa.log import configure_logging

    configure_logging("WARNING", "console")
    result: dict[str, Any] = {"provider": provider, "n": n, "errors": {}, "rounds": []}
    data_dir = workdir / "vpa"
    started = time.perf_counter()
    try:
        from vpa.plugins import get_registry

        registration = get_registry().get("store", provider)
        result["package"] = f"{registration.package} {registration.version}"
    except Exception as exc:
        result["errors"]["registry"] = _error(exc)
        return result
    try:
        result["insert"] = asyncio.run(_insert(provider, data_dir, n))
    except Exception as exc:
        result["errors"]["insert"] = _error(exc)
        result["errors"]["insert_traceback"] = traceback.format_exc(limit=6)
        return result
    page_size = int(result["insert"].get("max_page_size") or 1000)
    if provider not in BARE:
        result["bare_note"] = "the memory store has no client of its own"
    for _ in range(rounds):
        one: dict[str, Any] = {}
        try:
            vpa = asyncio.run(_vpa_scrolls(provider, data_dir, n))
        except Exception as exc:
            vpa = {"scroll_error": _error(exc), "scroll_traceback": traceback.format_exc(limit=6)}
        for key in ("scroll_error", "filtered_error", "scroll_traceback", "filtered_traceback"):
            if key in vpa:
                # the same failure in every round is recorded once, under the step's name
                result["errors"].setdefault(key.replace("_error", ""), vpa.pop(key))
        one["vpa"] = vpa
        if provider in BARE:
            try:
                one["bare"] = _bare_listing(provider, data_dir, n, page_size)
            except Exception as exc:
                result["errors"].setdefault("bare", _error(exc))
                result["errors"].setdefault("bare_traceback", traceback.format_exc(limit=6))
        result["rounds"].append(one)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _combine(listings: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from every round's listing: counts from the worst round, the median time."""
    if not listings:
        return {}
    worst = min(listings, key=lambda x: (x["exactly_once"], -abs(x["listed"] - x["expected"])))
    seconds = _median([x["seconds"] for x in listings])
    return {
        "listed": worst["listed"],
        "expected": worst["expected"],
        "exactly_once": all(x["exactly_once"] and not x.get("wrong_metadata") for x in listings),
        "rounds": len(listings),
        "seconds": None if seconds is None else round(seconds, 3),
        "records_per_s": _rate(worst["listed"], seconds or 0.0),
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The row of the table: the figures the brief asks for."""
    rounds = result.get("rounds", [])
    scroll = _combine([r["vpa"]["scroll"] for r in rounds if "scroll" in r.get("vpa", {})])
    filtered = _combine([r["vpa"]["filtered"] for r in rounds if "filtered" in r.get("vpa", {})])
    bare = _combine([r["bare"] for r in rounds if r.get("bare")])
    vpa_s, bare_s = scroll.get("seconds"), bare.get("seconds")
    return {
        "n": result.get("n"),
        "inserted_records_per_s": (result.get("insert") or {}).get("records_per_s"),
        "listed": scroll.get("listed"),
        "exactly_once": scroll.get("exactly_once"),
        "filtered_listed": filtered.get("listed"),
        "filtered_expected": filtered.get("expected"),
        "filtered_exactly_once": filtered.get("exactly_once"),
        "vpa_seconds": vpa_s,
        "vpa_records_per_s": scroll.get("records_per_s"),
        "vpa_filtered_records_per_s": filtered.get("records_per_s"),
        "bare_listed": bare.get("listed"),
        "bare_exactly_once": bare.get("exactly_once"),
        "bare_seconds": bare_s,
        "bare_records_per_s": bare.get("records_per_s"),
        "ratio_vpa_time_over_bare": round(vpa_s / bare_s, 2) if vpa_s and bare_s else None,
        "rounds": len(rounds),
        "errors": {k: v for k, v in result.get("errors", {}).items() if not k.endswith("_traceback")},
    }


# --- the driver ----------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def default_tmp() -> Path | None:
    """Where the data folders go: tmpfs (``/dev/shm``) when there is one with room, else the
    system's temporary folder. Qdrant local mode and Chroma commit to SQLite on every write; on a
    disk shared with other work those syncs, not the engines, would set the insert rate (Qdrant:
    50 vs 1,000 records/s here). The listings read from memory either way (page cache)."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 << 30:
            return shm
    except OSError:
        pass
    return None


def _worker(provider: str, n: int, rounds: int, timeout: float, tmp: Path | None) -> dict[str, Any]:
    """``run_engine`` in a process of its own (its memory, threads, file locks and Milvus Lite's
    server go with it), in a temporary data folder removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"vpa-scroll-{provider}-", dir=tmp))
    out = workdir / "result.json"
    cmd = [
        sys.executable,
        str(RUN_SCROLL),
        "--worker",
        provider,
        "--n",
        str(n),
        "--rounds",
        str(rounds),
        "--workdir",
        str(workdir),
    ]
    try:
        process = subprocess.Popen(cmd, cwd=ROOT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # our own child, by its PID
            process.wait()
            return {"provider": provider, "n": n, "errors": {"worker": f"timed out after {timeout:.0f} s"}}
        if out.is_file():
            return json.loads(out.read_text())
        return {
            "provider": provider,
            "n": n,
            "errors": {"worker": f"exited with status {process.returncode}"},
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int | float):
        return format(value, spec)
    return str(value)


def render(rows: dict[str, dict[str, Any]]) -> str:
    head = ["engine", "N", "listed", "exactly once", "filtered", "VPA rec/s", "bare rec/s", "VPA÷bare time"]
    lines = []
    for name, r in rows.items():
        filtered = "-"
        if r["filtered_listed"] is not None:
            ok = " ok" if r["filtered_exactly_once"] else " NOT exactly once"
            filtered = f"{r['filtered_listed']:,}/{r['filtered_expected']:,}{ok}"
        lines.append(
            [
                name,
                _fmt(r["n"]),
                _fmt(r["listed"]),
                _fmt(r["exactly_once"]),
                filtered,
                _fmt(r["vpa_records_per_s"]),
                _fmt(r["bare_records_per_s"]),
                _fmt(r["ratio_vpa_time_over_bare"], ".2f"),
            ]
        )
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(head)]
    text = [
        "  ".join(
            h.ljust(w) if k == 0 else h.rjust(w) for k, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    ]
    text.append("  ".join("-" * w for w in widths))
    for line in lines:
        text.append(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    for name, r in rows.items():
        for step, why in r["errors"].items():
            text.append(f"- {name} {step}: {why}")
    return "\n".join(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run_scroll.py",
        description="List (scroll) N records on every local engine, through VPA and the bare client; "
        "see bench/README.md, 'Listing (scroll)'",
    )
    ap.add_argument("--n", type=int, default=100_000, help="records per engine (default 100,000)")
    ap.add_argument("--providers", default=",".join(LOCAL_ENGINES), help="comma-separated local engines")
    ap.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="listings per engine, VPA and bare alternating; the median is reported",
    )
    ap.add_argument("--out", type=Path, default=OUT_FILE, help="the results file (JSON)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per engine")
    ap.add_argument(
        "--tmp",
        type=Path,
        default=None,
        help="folder for the engines' temporary data (default: /dev/shm when it has room, else the system's)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        raise SystemExit("--n and --rounds must be at least 1")
    if args.worker:
        result = run_engine(args.worker, args.n, args.workdir, args.rounds)
        (args.workdir / "result.json").write_text(json.dumps(result, indent=2))
        return 0
    from vpa_bench.machine import load_average, machine_info

    tmp = args.tmp if args.tmp is not None else default_tmp()
    wanted = [p.strip() for p in args.providers.split(",") if p.strip()]
    load_start = load_average()
    started = datetime.now(UTC)
    t = time.perf_counter()
    engines: dict[str, Any] = {}
    for provider in wanted:  # one after another, never in parallel
        if provider not in LOCAL_ENGINES:
            engines[provider] = {
                "provider": provider,
                "n": args.n,
                "errors": {"worker": "not a local engine (memory, chroma, qdrant, milvus)"},
            }
            continue
        print(f"[scroll] {provider}: {args.n:,} records", file=sys.stderr, flush=True)
        engines[provider] = _worker(provider, args.n, args.rounds, args.timeout, tmp)
    rows = {name: summarize(r) for name, r in engines.items()}
    results = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": "scroll",
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t, 1),
        "load_average": {"start": load_start, "end": load_average()},
        "machine": machine_info(),
        "versions": {p: _version(p) for p in PACKAGES},
        "params": {
            "n": args.n,
            "dimension": DIMENSION,
            "metadata": {"i": "int", "g": f"str, {GROUPS} values"},
            "filter": FILTER,
            "page_size": "the store's max_page_size (1000 when it declares none)",
            "insert_batch": INSERT_BATCH,
            "insert_order": "shuffled (seeded)",
            "with_vectors": False,
            "rounds": args.rounds,
            "data_folder": str(tmp or tempfile.gettempdir()),
        },
        "bare_data": "the same native collection, opened by the bare client after VPA's store is closed",
        "ratio": "VPA listing time ÷ bare listing time, medians over the rounds (1.00 = no overhead)",
        "summary": rows,
        "engines": engines,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(rows))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0
