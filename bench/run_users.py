#!/usr/bin/env python3
"""Search latency and throughput at 1, 10 and 50 concurrent users, with the real model, against
the REST server on loopback — before (``VPA_QUERY_BATCH_SIZE=1``: each query encoded alone) and
after (query micro-batching, `vpa.embedders.batching`).

Run with ``python bench/run_users.py [--users 1,10,50] [--requests 20] [--batch-sizes 1,32]``.
Per batch size, one ``vpa serve`` process (memory store, all-MiniLM-L6-v2 offline, auth on with
one reader key, rate limit out of the way) on a free port of 127.0.0.1, in a temporary data folder,
stopped by its PID. ``--docs`` short documents are added through ``POST /documents/batch``, a few
searches warm the model, then per user count U: U asyncio tasks, each on its own keep-alive connection, issue
``--requests`` searches one after another (``top_k=5``), every query distinct so neither the query
cache nor the results cache answers. Figures per level: p50/p90/p99 of the request's wall time as
the client sees it, and searches/s over the level's wall time. Errors are counted, not retried.

The client runs in this process on the same 2 cores as the server: its own CPU (a hand-written
HTTP/1.1 client on asyncio streams, microseconds a request; httpx's pool cost milliseconds at 50
connections) is part of every figure, as wrk's was in the issue's measurement. Writes
``bench/results/users-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
OUT_FILE = BENCH_DIR / "results" / "users-latest.json"
VPA = str(Path(sys.executable).parent / "vpa")
START_TIMEOUT = 180.0
REQUEST_TIMEOUT = 120.0
#: Bounds of the options: every loop of the bench is bounded.
MAX_USERS = 500
MAX_REQUESTS = 10_000
MAX_DOCS = 10_000

TOPICS = [
    ("photosynthesis", "Plants capture sunlight in chloroplasts and turn carbon dioxide and water into sugar."),
    ("sourdough", "Sourdough bread rises with wild yeast and lactic acid bacteria kept alive in a starter."),
    ("index funds", "An index fund buys every stock of a market index, which keeps its fees low."),
    ("volcanoes", "Magma rises through the crust and erupts as lava, ash and gas from a volcano."),
    ("vaccines", "A vaccine trains the immune system to recognise a pathogen before an infection."),
    ("black holes", "A black hole bends spacetime so strongly that not even light escapes its horizon."),
    ("tides", "The Moon's gravity pulls the oceans into two bulges, which the Earth turns beneath."),
    ("compilers", "A compiler parses source code, checks its types and emits machine instructions."),
]
QUESTIONS = [
    "how does {t} work", "what is the main idea behind {t}", "explain {t} to a child",
    "a short history of {t}", "common mistakes about {t}", "why does {t} matter today",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _query(user: int, i: int, level: int, batch_size: int) -> str:
    """A distinct, realistic query: no cache answers it."""
    topic = TOPICS[(user + i) % len(TOPICS)][0]
    question = QUESTIONS[(user * 7 + i) % len(QUESTIONS)].format(t=topic)
    return f"{question} (case {batch_size}-{level}-{user}-{i})"


class Server:
    """One ``vpa serve`` process on loopback, stopped by its PID."""

    def __init__(self, folder: Path, batch_size: int, window_ms: float, embedder: str) -> None:
        self.folder = folder
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
        self.env.update({
            "VPA_DATA_DIR": str(folder / "data"),
            "VPA_VECTOR_DB_PROVIDER": "memory",
            "VPA_EMBEDDER": embedder,
            "VPA_AUTH_ENABLED": "true",
            "VPA_RATE_LIMIT_PER_MINUTE": "10000000",
            "VPA_LOG_LEVEL": "WARNING",
            "VPA_QUERY_BATCH_SIZE": str(batch_size),
            "VPA_QUERY_BATCH_WINDOW_MS": str(window_ms),
            "HF_HUB_OFFLINE": "1",
        })
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def key(self) -> str:
        """A reader-and-writer key written into the server's key file, as `vpa keys create` does."""
        from vpa.auth.api_keys import ApiKeyAuthenticator

        _, secret = ApiKeyAuthenticator(Path(self.env["VPA_DATA_DIR"]) / "keys.json").create_key(
            "writer", "bench", "users-bench"
        )
        return secret

    def start(self) -> None:
        Path(self.env["VPA_DATA_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [VPA, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vpa serve exited with {self.process.returncode}: {self.log_tail()}")
            try:
                httpx.get(f"{self.url}/api/v1/health", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"vpa serve did not answer within {START_TIMEOUT} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def _documents(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        topic, text = TOPICS[i % len(TOPICS)]
        out.append({"id": f"doc-{i:05d}", "title": f"{topic} {i}",
                    "content": f"{text} Note {i}: {text.lower()} Part {i % 13} of the {topic} series."})
    return out


async def _fill(client: httpx.AsyncClient, docs: int) -> float:
    started = time.perf_counter()
    documents = _documents(docs)
    for start in range(0, len(documents), 100):
        response = await client.post("/api/v1/documents/batch", json={"documents": documents[start:start + 100]})
        response.raise_for_status()
    return time.perf_counter() - started


class _Connection:
    """One user's keep-alive HTTP/1.1 connection, by hand on asyncio streams: a few microseconds
    of client CPU a request, where httpx's pool took milliseconds at 50 connections on this
    machine and so measured the client more than the server."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.head = (f"POST /api/v1/search HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def search(self, body: dict[str, Any]) -> int:
        """POST /api/v1/search; the response's status (its body is read whole and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        payload = json.dumps(body).encode()
        self.writer.write(self.head + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        await self.writer.drain()
        header = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in fields:
            raise RuntimeError(f"response without Content-Length (status {status})")
        await asyncio.wait_for(self.reader.readexactly(int(fields["content-length"])), REQUEST_TIMEOUT)
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _level(port: int, key: str, users: int, requests: int, batch_size: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def user(u: int) -> None:
        connection = _Connection(port, key)
        try:
            for i in range(requests):
                body = {"query": _query(u, i, users, batch_size), "top_k": 5}
                started = time.perf_counter()
                try:
                    status = await connection.search(body)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, RuntimeError, ValueError) as exc:
                    name = type(exc).__name__
                    errors[name] = errors.get(name, 0) + 1
                    await connection.close()
                    continue
                if status != 200:
                    errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
                    continue
                latencies.append(time.perf_counter() - started)
        finally:
            await connection.close()

    load_before = _load_average()
    started = time.perf_counter()
    await asyncio.gather(*(user(u) for u in range(users)))
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return {
        "users": users, "requests": users * requests, "ok": len(latencies), "errors": errors,
        "wall_s": round(wall, 3), "searches_per_s": round(len(latencies) / wall, 1) if wall > 0 else None,
        "p50_ms": round(float(np.percentile(ms, 50)), 1), "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1), "max_ms": round(float(ms.max()), 1),
        "load_average_before": load_before, "load_average_after": _load_average(),
    }


async def _measure(server: Server, key: str, levels: list[int], requests: int, docs: int,
                   batch_size: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=REQUEST_TIMEOUT) as client:
        fill_s = await _fill(client, docs)
        for i in range(5):  # the model's first calls are slower (allocation, thread pools)
            (await client.post("/api/v1/search", json={"query": f"warm up {i}", "top_k": 5})).raise_for_status()
        results = []
        for users in levels:
            row = await _level(server.port, key, users, requests, batch_size)
            results.append(row)
            print(f"  batch {batch_size:>3}  users {users:>3}: p50 {row['p50_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms"
                  f"  {row['searches_per_s']:>6} searches/s  errors {sum(row['errors'].values())}", flush=True)
    return {"batch_size": batch_size, "fill_seconds": round(fill_s, 2), "levels": results}


def _positive_list(text: str, bound: int, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: comma-separated whole numbers, got {text!r}") from None
    if not values or any(not 1 <= v <= bound for v in values):
        raise argparse.ArgumentTypeError(f"{what}: each from 1 to {bound}, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1,10,50", type=lambda t: _positive_list(t, MAX_USERS, "--users"),
                        help="concurrent users per level (default 1,10,50)")
    parser.add_argument("--requests", type=int, default=20, help="searches per user per level (default 20)")
    parser.add_argument("--batch-sizes", default="1,32", type=lambda t: _positive_list(t, 1024, "--batch-sizes"),
                        help="VPA_QUERY_BATCH_SIZE values to compare (default 1,32: before and after)")
    parser.add_argument("--window-ms", type=float, default=2.0, help="VPA_QUERY_BATCH_WINDOW_MS (default 2)")
    parser.add_argument("--docs", type=int, default=200, help="documents in the collection (default 200)")
    parser.add_argument("--embedder", default="sentence-transformers", help="VPA_EMBEDDER (default the real model)")
    parser.add_argument("--out", type=Path, default=OUT_FILE, help="the JSON results file")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--requests must be from 1 to {MAX_REQUESTS}")
    if not 1 <= args.docs <= MAX_DOCS:
        parser.error(f"--docs must be from 1 to {MAX_DOCS}")
    if not 0 <= args.window_ms <= 100:
        parser.error("--window-ms must be from 0 to 100")

    from vpa_bench.machine import machine_info

    report: dict[str, Any] = {
        "bench": "users", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(), "embedder": args.embedder, "docs": args.docs, "requests_per_user": args.requests,
        "window_ms": args.window_ms, "runs": [], "errors": [],
    }
    print(f"users bench: {args.embedder}, {args.docs} docs, {args.requests} searches per user; "
          f"load average {_load_average()}", flush=True)
    for batch_size in args.batch_sizes:
        folder = Path(tempfile.mkdtemp(prefix="vpa-users-"))
        server = Server(folder, batch_size, args.window_ms, args.embedder)
        try:
            server.start()
            report["runs"].append(asyncio.run(_measure(server, server.key(), args.users, args.requests, args.docs,
                                                       batch_size)))
        except Exception as exc:  # recorded, and the next batch size still runs
            report["errors"].append({"batch_size": batch_size, "error": f"{type(exc).__name__}: {exc}"})
            print(f"  batch {batch_size}: {type(exc).__name__}: {exc}", flush=True)
        finally:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    sys.exit(main())
