#!/usr/bin/env python3
"""List (scroll) a collection of N records on every local engine, through VPA and through the
bare client: completeness (every id exactly once, filtered too) and records/s. Writes
``bench/results/scroll-latest.json``; ``--help`` for the options; see bench/README.md,
"Listing (scroll)"."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vpa_bench.scroll import main

    sys.exit(main())
