#!/usr/bin/env python3
"""Migrate N records between every ordered pair of local engines with ``vpa.portability.migrate``
(verification on), against each engine's own bulk upsert rate measured in the same run. Writes
``bench/results/migrate-latest.json``; ``--help`` for the options; see bench/README.md,
"Migration"."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vpa_bench.migrate import main

    sys.exit(main())
