"""What the figures were measured on: CPU, cores, memory, OS, Python, package versions, load."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
import sys
from pathlib import Path
from typing import Any

PACKAGES = (
    "vpa-core", "vpa-chroma", "vpa-qdrant", "vpa-milvus", "vpa-pinecone", "vpa-weaviate",
    "numpy", "chromadb", "qdrant-client", "pymilvus", "milvus-lite", "pinecone", "weaviate-client",
    "sentence-transformers", "torch", "transformers", "langchain-core", "langchain-chroma",
    "langchain-qdrant", "matplotlib", "psutil",
)  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _os_name() -> str:
    try:
        info = platform.freedesktop_os_release()
        return f"{info.get('PRETTY_NAME', info.get('NAME', 'Linux'))} (kernel {platform.release()})"
    except OSError:
        return f"{platform.system()} {platform.release()}"


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": _os_name(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "blas": _blas(),
        "openblas_coretype_set": "OPENBLAS_CORETYPE" in os.environ,
        "load_average_at_start": load_average(),
        "executable_is_venv": sys.prefix != sys.base_prefix,
    }


def rss_bytes(include_children: bool = True) -> int:
    """Resident memory of this process (and its children, e.g. Milvus Lite's server)."""
    try:
        import psutil

        proc = psutil.Process()
        total = proc.memory_info().rss
        if include_children:
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        return total
    except ImportError:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total
