"""Run every test suite of the workspace and print one summary row per suite.

Suites: the core's tests, the conformance suite's own tests, `vpa conformance memory`, and each
provider plugin's tests (which run the conformance suite against that provider's real engine or
stand-in). Each runs in its own pytest process, so one provider's engine cannot disturb another's.
Exit status is non-zero if any suite fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".vpa" / "test-results"


def suites() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = [("core", ["tests"])]
    if (ROOT / "conformance" / "tests").is_dir():
        out.append(("conformance-suite", ["conformance/tests"]))
    for plugin in sorted((ROOT / "plugins").glob("vpa-*")):
        if (plugin / "tests").is_dir():
            out.append((plugin.name.removeprefix("vpa-"), [str(plugin.relative_to(ROOT) / "tests")]))
    return out


def junit_counts(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    return {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="run only this suite (core, conformance-suite, memory or a provider)")
    args, extra = parser.parse_known_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("HYPOTHESIS_PROFILE", "ci" if env.get("CI") else "dev")
    selected = suites()
    if args.only == "memory":
        selected = []
    elif args.only:
        selected = [s for s in selected if s[0] == args.only]
        if not selected:
            print(f"no test suite named {args.only!r}", file=sys.stderr)
            return 2
    rows = []
    for name, paths in selected:
        junit = RESULTS / f"{name}.xml"
        started = time.monotonic()
        print(f"\n=== {name}: pytest {' '.join(paths)}", flush=True)
        code = subprocess.call(
            [sys.executable, "-m", "pytest", *paths, "-q", f"--junitxml={junit}", *extra], cwd=ROOT, env=env
        )
        rows.append((name, code, time.monotonic() - started, junit_counts(junit)))
    if args.only in (None, "memory"):
        started = time.monotonic()
        print("\n=== memory: vpa conformance memory", flush=True)
        report = RESULTS / "conformance-memory.json"
        code = subprocess.call([str(Path(sys.executable).parent / "vpa"), "conformance", "memory", "--report", str(report)], cwd=ROOT, env=env)
        rows.append(("memory (vpa conformance)", code, time.monotonic() - started, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}))
    print("\n" + "=" * 78)
    print(f"{'suite':<28} {'result':<7} {'tests':>6} {'failed':>7} {'skipped':>8} {'seconds':>9}")
    for name, code, seconds, counts in rows:
        result = "pass" if code == 0 else "FAIL"
        failed = counts["failures"] + counts["errors"]
        print(f"{name:<28} {result:<7} {counts['tests']:>6} {failed:>7} {counts['skipped']:>8} {seconds:>9.1f}")
    print("=" * 78)
    return 0 if all(code == 0 for _, code, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
