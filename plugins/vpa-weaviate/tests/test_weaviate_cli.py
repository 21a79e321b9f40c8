"""``vpa conformance weaviate``, as the issue asks for it: the registered store, built from VPA_*
settings and ``[providers.weaviate]`` like an application builds it, against the stand-in.

The full contract runs in-process in `test_conformance`; here a subset of clauses proves the
command's path (registration, configuration, persistence across instances)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from weaviate_support import StandIn

CLAUSES = (
    "registration or capabilities or collection_lifecycle or persistence or filter_semantics or missing "
    "or lexical_declaration or lexical_bad_input or lexical_recall"
)


def test_vpa_conformance_weaviate_against_the_standin(standin: StandIn, tmp_path: Path) -> None:
    config = tmp_path / "vpa.toml"
    config.write_text(f'[providers.weaviate]\ngrpc_port = {standin.grpc_port}\nclass_prefix = "Cli"\n')
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "VPA_VECTOR_DB_PROVIDER": "weaviate",
        "VPA_VECTOR_DB_HOST": "127.0.0.1",
        "VPA_VECTOR_DB_PORT": str(standin.http_port),
        "VPA_CONFIG_FILE": str(config),
        "HYPOTHESIS_PROFILE": "dev",
    }
    vpa = Path(sys.executable).parent / "vpa"
    result = subprocess.run(
        [str(vpa), "conformance", "weaviate", "--report", str(report), "--", "-k", CLAUSES],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["passed"] and data["package"] == "vpa-weaviate"
    statuses = {row["clause"]: row["status"] for row in data["clauses"]}
    assert statuses["registration"] == "pass" and statuses["persistence"] == "pass", statuses
    # Lexical search (0.3.1) is declared: the clauses run, and pass.
    assert all(
        statuses[c] == "pass" for c in ("lexical_declaration", "lexical_bad_input", "lexical_recall")
    ), statuses
    assert all(status == "pass" for status in statuses.values()), statuses
    schema = standin.requests()
    assert schema.get("rest:POST /v1/schema", 0) > 0  # the command really used the stand-in
