"""Run the store contract against an installed store by name, print a table, write a report.

``vpa conformance NAME [--report PATH]`` calls `run`. It runs pytest on this package with
``--vpa-store NAME`` (isolated from the current directory's pytest configuration), collects one
row per contract clause — pass, fail or "not declared" (the store does not declare the capability
the clause is about; the clause then checked that the store refuses it with the typed error) —
with the number of hypothesis examples each ran, prints the table and writes a JSON report.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest

from vpa_conformance import __version__
from vpa_conformance.profiles import active_profile

PACKAGE_DIR = Path(__file__).resolve().parent
INI_FILE = PACKAGE_DIR / "conformance.ini"
REPORT_FORMAT = 1


def clause_name(nodeid: str) -> str:
    """``...::TestRegisteredStore::test_filter_operator[$gt]`` → ``filter_operator[$gt]``."""
    name = nodeid.rsplit("::", 1)[-1]
    return name.removeprefix("test_")


class _Collector:
    """A pytest plugin object gathering one row per test (= contract clause)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def _row(self, nodeid: str) -> dict[str, Any]:
        return self.rows.setdefault(
            nodeid,
            {
                "clause": clause_name(nodeid),
                "description": "",
                "status": "pass",
                "examples": None,
                "seconds": 0.0,
                "message": None,
                "details": {},
            },
        )

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            doc = getattr(getattr(item, "obj", None), "__doc__", None) or ""
            first = " ".join(doc.strip().split("\n\n")[0].split())
            self._row(item.nodeid)["description"] = first

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = self._row(report.nodeid)
        row["seconds"] += report.duration
        for key, value in report.user_properties:
            if key == "vpa_examples":
                row["examples"] = value
            elif key == "vpa_status":
                if row["status"] == "pass":
                    row["status"] = value
            else:
                row["details"][key.removeprefix("vpa_")] = value
        if report.failed:
            row["status"] = "fail"
            crash = getattr(report.longrepr, "reprcrash", None)
            message = getattr(crash, "message", None) or str(report.longrepr)
            row["message"] = message.strip()[:2000]
        elif report.skipped and row["status"] != "fail":
            row["status"] = "xfail" if hasattr(report, "wasxfail") else "skipped"


def _store_facts(store_name: str) -> dict[str, Any]:
    from vpa.models import CONTRACT_VERSION, to_json_dict
    from vpa.plugins import get_registry

    facts: dict[str, Any] = {"store": store_name, "contract_version": CONTRACT_VERSION}
    try:
        registration = get_registry().get("store", store_name)
    except Exception as exc:  # the table still gets written, saying why
        facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts
    capabilities = registration.capabilities
    try:
        from vpa.config import load_config

        capabilities = registration.declared(load_config({"provider": store_name}))
    except Exception:  # the default mode's declaration is still worth reporting
        pass
    facts.update(
        package=registration.package,
        package_version=registration.version,
        capabilities=to_json_dict(capabilities),
        declared_contract_version=capabilities.contract_version if capabilities else None,
    )
    return facts


def format_table(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    width = max([len("clause"), *(len(r["clause"]) for r in rows)])
    out.write(f"{'clause':<{width}}  {'result':<12}  {'examples':>8}  {'seconds':>8}\n")
    out.write(f"{'-' * width}  {'-' * 12}  {'-' * 8}  {'-' * 8}\n")
    for r in rows:
        examples = "" if r["examples"] is None else str(r["examples"])
        status = "FAIL" if r["status"] == "fail" else r["status"]
        out.write(f"{r['clause']:<{width}}  {status:<12}  {examples:>8}  {r['seconds']:>8.2f}\n")


def run(store_name: str, *, report_path: Path | None = None, extra_args: Sequence[str] = ()) -> int:
    """Run the store contract against the store registered as ``store_name``.

    Returns the exit status: 0 when every clause passed (or is not declared), non-zero otherwise.
    """
    collector = _Collector()
    args = [
        "--pyargs",
        "vpa_conformance",
        f"--vpa-store={store_name}",
        "-c",
        str(INI_FILE),
        "--rootdir",
        str(PACKAGE_DIR),
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=short",
        *extra_args,
    ]
    facts = _store_facts(store_name)
    profile = active_profile()
    started = time.monotonic()
    code = int(pytest.main(args, plugins=[collector]))
    elapsed = time.monotonic() - started
    rows = list(collector.rows.values())
    failed = [r for r in rows if r["status"] in ("fail", "skipped")]
    if code == 0 and failed:
        code = 1
    if not rows and code == 0:
        code = 5
    counts = {
        status: sum(1 for r in rows if r["status"] == status)
        for status in ("pass", "fail", "not declared", "xfail", "skipped")
    }

    out = sys.stdout
    title = f"VPA conformance: store {store_name!r}"
    if "package" in facts:
        title += f" ({facts['package']} {facts['package_version']})"
    out.write(f"\n{title}; contract {facts['contract_version']}; profile {profile.name}\n\n")
    format_table(rows, out)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    out.write(f"\n{len(rows)} clauses: {summary or 'none ran'}; {elapsed:.1f} s\n")
    for r in failed:
        first_line = (r["message"] or "").splitlines()[0] if r["message"] else ""
        out.write(f"  FAIL {r['clause']}: {first_line[:300]}\n")
    out.write(("PASSED" if code == 0 else f"FAILED (exit status {code})") + "\n")
    out.flush()

    if report_path is not None:
        report = {
            "format": REPORT_FORMAT,
            "suite": {"name": "vpa-conformance", "version": __version__, "profile": profile.name},
            **facts,
            "python": platform.python_version(),
            "exit_code": code,
            "passed": code == 0,
            "seconds": round(elapsed, 2),
            "counts": counts,
            "clauses": [{**r, "seconds": round(r["seconds"], 3)} for r in rows],
        }
        report_path = Path(report_path)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(
            json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        out.write(f"report: {report_path}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vpa_conformance.runner NAME [--report PATH] [pytest args...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vpa_conformance.runner")
    parser.add_argument("name")
    parser.add_argument("--report", type=Path)
    args, extra = parser.parse_known_args(argv)
    return run(args.name, report_path=args.report, extra_args=extra)


if __name__ == "__main__":
    sys.exit(main())
