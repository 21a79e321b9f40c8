#!/usr/bin/env python3
"""Entry point of ``make bench``: install the bench-only requirements if missing, then run the
harness (``bench/vpa_bench``). ``--quick`` for a < 2 minute run; ``--help`` for the options."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
#: import name → what bench/requirements.txt installs it from
REQUIRED = {
    "matplotlib": "matplotlib",
    "psutil": "psutil",
    "langchain_core": "langchain-core",
    "langchain_chroma": "langchain-chroma",
    "langchain_qdrant": "langchain-qdrant",
}


def ensure_requirements() -> None:
    missing = [pkg for mod, pkg in REQUIRED.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return
    print(
        f"[bench] installing bench requirements ({', '.join(missing)} missing)", file=sys.stderr, flush=True
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "-r", str(BENCH / "requirements.txt")],
        check=False,
    )
    if done.returncode != 0:
        print("[bench] could not install them; the figures that need them are skipped", file=sys.stderr)
    importlib.invalidate_caches()


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    if "--worker" not in sys.argv:
        ensure_requirements()
    from vpa_bench.cli import main

    sys.exit(main())
