"""The suite catches broken stores: each clause listed in `broken_stores.EXPECTED` must fail.

All the chosen clauses run in one pytest subprocess (shrinking off, so a failure is reported as
soon as it is found; derandomised, so every run draws the same examples), in the active
hypothesis profile; the JUnit report says which failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import broken_stores
import pytest

HERE = Path(__file__).resolve().parent
MODULE = HERE / "broken_stores.py"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """nodeid (class::test) → "passed" / "failed", for every expected clause of every store."""
    work = tmp_path_factory.mktemp("broken")
    junit = work / "junit.xml"
    node_ids = [
        f"{MODULE}::Test{store.__name__}::{clause}"
        for store, clauses in broken_stores.EXPECTED.items()
        for clause in clauses
    ]
    # Derandomised: the same examples every run, so a mutant caught once is caught on every run.
    env = dict(os.environ, VPA_CONFORMANCE_NO_SHRINK="1", VPA_CONFORMANCE_DERANDOMIZE="1", PYTHONPATH=str(HERE))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *node_ids,
            "-q",
            "-p",
            "no:cacheprovider",
            "--tb=line",
            f"--junitxml={junit}",
            "--rootdir",
            str(work),
            "-c",
            os.devnull,
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        results[f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"] = (
            "failed" if failed else "passed"
        )
    return results


@pytest.mark.parametrize(
    "store_class", list(broken_stores.EXPECTED), ids=[c.__name__ for c in broken_stores.EXPECTED]
)
def test_broken_store_is_caught(store_class: type, outcomes: dict[str, str]) -> None:
    expected = broken_stores.EXPECTED[store_class]
    got = {clause: outcomes.get(f"Test{store_class.__name__}::{clause}", "not run") for clause in expected}
    missed = {clause: result for clause, result in got.items() if result != "failed"}
    assert not missed, f"{store_class.__name__}: {store_class.__doc__.strip()} — not caught by {missed}"
