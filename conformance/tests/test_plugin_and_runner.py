"""The pytest plugin (--vpa-store) and the runner behind `vpa conformance NAME`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(HERE), **extra)


def test_ordinary_runs_are_unchanged(pytester: pytest.Pytester) -> None:
    """Installed, the plugin adds an option and nothing else: a project's own `store` fixture
    and tests run as before, and none of the suite's tests are collected."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def store():
            return "mine"

        def test_own(store):
            assert store == "mine"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    help_text = pytester.runpytest("--help").stdout.str()
    assert "--vpa-store" in help_text


def test_pyargs_without_a_store_collects_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "vpa_conformance", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 5, proc.stdout + proc.stderr  # no tests collected


def test_pyargs_with_a_store_name(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "vpa_conformance",
            "--vpa-store",
            "memory",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "capabilities or registration or persistence",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "3 passed" in proc.stdout


RUNNER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from vpa.hookspecs import hookimpl
    from vpa.plugins import get_registry
    import broken_stores


    class Plugin:
        @staticmethod
        @hookimpl
        def vpa_register_stores(register):
            for cls in (broken_stores.DropsLastHit,):
                register("drops-last-hit", lambda config: cls(), capabilities=cls.capabilities)


    get_registry().register_plugin(Plugin, "broken-test-plugin", ("broken-stores", "0"))
    from vpa_conformance.runner import run

    sys.exit(run(sys.argv[1], report_path=Path(sys.argv[2]), extra_args=sys.argv[3:]))
    """
)


@pytest.mark.parametrize(
    ("store", "selection", "code", "statuses"),
    [
        (
            "memory",
            "capabilities or unicode or max_top_k or unencodable or filter_operator",
            0,
            {
                "capabilities": "pass",
                "unicode": "pass",
                "max_top_k": "not declared",
                "unencodable_strings": "pass",
                "filter_operator[$lte]": "pass",
            },
        ),
        ("drops-last-hit", "capabilities or test_query", 1, {"capabilities": "pass", "query": "fail"}),
    ],
)
def test_runner_table_and_report(
    tmp_path: Path, store: str, selection: str, code: int, statuses: dict
) -> None:
    script = tmp_path / "run_it.py"
    script.write_text(RUNNER_SCRIPT)
    report = tmp_path / "out" / "report.json"
    proc = subprocess.run(
        [sys.executable, str(script), store, str(report), "-k", selection],
        cwd=tmp_path,
        env=_env(VPA_CONFORMANCE_NO_SHRINK="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == code, proc.stdout[-4000:] + proc.stderr[-3000:]
    data = json.loads(report.read_text())
    rows = {row["clause"]: row for row in data["clauses"]}
    for clause, status in statuses.items():
        assert rows[clause]["status"] == status, rows[clause]
    assert data["store"] == store and data["exit_code"] == code and data["passed"] is (code == 0)
    assert data["capabilities"]["exact"] is True
    if code == 0:
        assert rows["filter_operator[$lte]"]["examples"] >= 1
        assert "clause" in proc.stdout and "PASSED" in proc.stdout
    else:
        assert rows["query"]["message"] and "FAIL query" in proc.stdout
