"""Runs conformance clauses (mutants and controls) in one fresh pytest process, derandomised and
without shrinking, and reads each one's outcome from its JUnit report: what the mutant tests of
the portability and lexical clauses share."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_clauses(work: Path, node_ids: Sequence[str], timeout: float = 900) -> dict[str, dict[str, str]]:
    """class::test → {"result": passed/failed, "message": ..., and the clause's vpa_* properties}.
    Derandomised: the same examples every run, so a mutant caught once is caught on every run."""
    junit = work / "junit.xml"
    env = dict(os.environ, VPA_CONFORMANCE_NO_SHRINK="1", VPA_CONFORMANCE_DERANDOMIZE="1",
               PYTHONPATH=str(HERE))
    subprocess.run(
        [sys.executable, "-m", "pytest", *node_ids, "-q", "-p", "no:cacheprovider", "--tb=line",
         f"--junitxml={junit}", "--rootdir", str(work), "-c", os.devnull],
        cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    results: dict[str, dict[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        row = {"result": "passed" if problem is None else "failed"}
        if problem is not None:
            row["message"] = f"{problem.get('message', '')}\n{problem.text or ''}"
        for prop in case.iter("property"):
            row[prop.get("name", "").removeprefix("vpa_")] = prop.get("value", "")
        results[f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"] = row
    return results
