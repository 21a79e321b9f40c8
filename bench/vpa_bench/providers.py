"""Which store providers the benchmark runs, how each is configured, and what each can hold.

Providers are found by name in VPA's plugin registry: every registered store whose plugin loads
is benchmarked. Embedded engines (memory, chroma, qdrant local mode, milvus lite) run in a data
folder of their own. Providers that need a server (pinecone, weaviate) run against the plugin's
wire-level stand-in when the plugin ships one (``plugins/vpa-<name>/tests/standin``), started on
a free loopback port and stopped by its PID; their figures measure VPA's plugin, the vendor SDK
and HTTP on this machine — not the vendor's service — and the output says so. Without a stand-in
they run against a real server only if ``VPA_BENCH_<NAME>_HOST`` (and ``_PORT``, ``_API_KEY``)
are set, else they are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EMBEDDED = {"memory", "chroma", "qdrant", "milvus"}

#: Sizes a provider cannot hold sensibly here, and why (checked against the requested sizes).
LIMITS: dict[str, dict[str, Any]] = {
    "qdrant": {
        "why": "qdrant-client's local mode (the embedded engine) keeps points in SQLite and scores by brute "
        "force; Qdrant's own client warns that it is not recommended past 20,000 points, and a Qdrant "
        "server is the way to large collections",
    },
    "pinecone": {
        "max_search_chunks": 10_000,
        "max_ingest_docs": 1_000,
        "compare_records": 0,
        "why": "wire-level stand-in (an in-memory Python model behind HTTP), not Pinecone: kept to "
        "10k chunks and 1k documents, figures measure VPA + the pinecone SDK + loopback HTTP",
    },
    "weaviate": {
        "max_search_chunks": 10_000,
        "max_ingest_docs": 1_000,
        "compare_records": 0,
        "why": "wire-level stand-in (an in-memory Python model behind REST + gRPC), not Weaviate: kept "
        "to 10k chunks and 1k documents, figures measure VPA + weaviate-client + loopback gRPC",
    },
}


@dataclass
class Server:
    """A stand-in started for one provider's run."""

    provider: str
    process: subprocess.Popen[str] | None
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def stop(self) -> None:
        p = self.process
        if p is None:
            return
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        if p.stdout is not None:
            p.stdout.close()


def _poll(url: str, headers: dict[str, str], process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the stand-in exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("the stand-in did not become ready")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _spawn(tests_dir: Path, args: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tests_dir) + os.pathsep + env.get("PYTHONPATH", "")
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=tests_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=5)
        raise RuntimeError(f"the stand-in exited with status {process.returncode} before listening")
    return process, line.strip()


_PINECONE_SCRIPT = """
import json, signal, threading
from standin import PineconeStandIn
server = PineconeStandIn({key!r}, lag=0.0).start()
stop = threading.Event()
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: stop.set())
print(json.dumps({{"url": server.url}}), flush=True)
stop.wait()
server.stop()
"""
_STANDIN_KEY = "bench-standin-key"


def start_standin(provider: str, root: Path) -> Server:
    """Start the plugin's stand-in for ``provider``; raises if it has none or it fails."""
    tests_dir = root / "plugins" / f"vpa-{provider}" / "tests"
    if not (tests_dir / "standin").is_dir():
        raise RuntimeError(f"vpa-{provider} ships no stand-in")
    if provider == "weaviate":
        process, line = _spawn(tests_dir, ["-m", "standin"])
        server = Server(provider, process)
        try:
            ports = json.loads(line)
            _poll(f"http://127.0.0.1:{ports['http_port']}/v1/.well-known/ready", {}, process)
        except Exception:
            server.stop()
            raise
        server.overrides = {
            "host": "127.0.0.1",
            "port": int(ports["http_port"]),
            "providers": {"weaviate": {"grpc_host": "127.0.0.1", "grpc_port": int(ports["grpc_port"])}},
        }
        server.note = "wire-level stand-in (plugins/vpa-weaviate/tests/standin), not Weaviate"
        return server
    if provider == "pinecone":
        if (tests_dir / "standin" / "__main__.py").is_file():
            process, line = _spawn(tests_dir, ["-m", "standin", "--api-key", _STANDIN_KEY, "--lag", "0"])
            url = line.partition("=")[2]
        else:
            process, line = _spawn(tests_dir, ["-c", _PINECONE_SCRIPT.format(key=_STANDIN_KEY)])
            url = json.loads(line)["url"] if line.startswith("{") else ""
        server = Server(provider, process)
        try:
            if not url.startswith("http"):
                raise RuntimeError(f"unexpected first line from the stand-in: {line[:80]!r}")
            headers = {"Api-Key": _STANDIN_KEY, "X-Pinecone-Api-Version": "2026-07"}
            _poll(f"{url}/indexes", headers, process)
        except Exception:
            server.stop()
            raise
        server.overrides = {
            "api_key": _STANDIN_KEY,
            "providers": {"pinecone": {"host": url, "dimension": 384, "index": "vpa-bench"}},
        }
        server.note = "wire-level stand-in (plugins/vpa-pinecone/tests/standin), not Pinecone"
        return server
    raise RuntimeError(f"no stand-in launcher for {provider}")


def external_server(provider: str) -> Server | None:
    """A real server named by ``VPA_BENCH_<NAME>_HOST`` / ``_PORT`` / ``_API_KEY``, if set."""
    prefix = f"VPA_BENCH_{provider.upper()}_"
    host = os.environ.get(prefix + "HOST")
    if not host:
        return None
    overrides: dict[str, Any] = {"host": host}
    if os.environ.get(prefix + "PORT"):
        overrides["port"] = int(os.environ[prefix + "PORT"])
    if os.environ.get(prefix + "API_KEY"):
        overrides["api_key"] = os.environ[prefix + "API_KEY"]
    return Server(provider, None, overrides, note=f"server at {prefix}HOST")


def discover(wanted: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """Store names in the registry (filtered by ``wanted``), and plugins that failed to load."""
    from vpa.plugins import get_registry

    registry = get_registry()
    names = registry.names("store")
    errors = {e.plugin: e.error for e in registry.errors}
    if wanted:
        unknown = [w for w in wanted if w not in names]
        for w in unknown:
            errors.setdefault(w, "not registered (plugin not installed)")
        names = [n for n in names if n in wanted]
    order = ["memory", "chroma", "qdrant", "milvus"]
    names.sort(key=lambda n: (order.index(n) if n in order else len(order), n))
    return names, errors
