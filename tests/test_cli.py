"""The `vpa` command, run as users run it: a real subprocess per call."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VPA = str(Path(sys.executable).parent / "vpa")


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "VPA_DATA_DIR": str(tmp_path / "data"), "VPA_EMBEDDER": "hashing", "VPA_LOG_LEVEL": "WARNING"}

    def invoke(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([VPA, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    return invoke


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cats.md").write_text("---\ntitle: Cats\ncategory: animals\nyear: 2020\ntags: [pets]\n---\nCats purr when content.\n")
    (folder / "stocks.txt").write_text("The stock market fell on Monday.")
    (folder / "bread.html").write_text("<html><head><title>Bread</title></head><body><p>Sourdough uses wild yeast.</p></body></html>")
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    return folder


def test_ingest_search_get_delete_stats(run, corpus):
    result = run("ingest", str(corpus), "--meta", "source_set=demo", "--meta", "rank=3")
    assert result.returncode == 0, result.stderr
    assert "ingested 3 documents" in result.stdout
    assert "3 unchanged" in run("ingest", str(corpus), "--meta", "source_set=demo", "--meta", "rank=3").stdout
    assert "0 unchanged" in run("ingest", str(corpus)).stdout  # other metadata: re-embedded

    found = json.loads(run("search", "cats purr", "--top-k", "2", "--json").stdout)
    assert found[0]["document_id"] == "cats.md"
    assert set(found[0]) >= {"document_id", "chunk_id", "similarity", "content", "metadata"}
    assert found[0]["metadata"]["tags"] == ["pets"] and "rank" not in found[0]["metadata"]

    filtered = json.loads(run("search", "wild yeast", "--filter", '{"category": "animals"}', "--json").stdout)
    assert [r["document_id"] for r in filtered] == ["cats.md"]
    readable = run("search", "wild yeast")
    assert "Bread" in readable.stdout and "bread.html" in readable.stdout

    assert "Sourdough uses wild yeast." in run("get", "bread.html").stdout
    assert json.loads(run("stats", "--json").stdout)["documents"] == 3
    assert run("delete", "bread.html").returncode == 0
    assert json.loads(run("stats", "--json").stdout)["documents"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "--filter", '{"year": {"$near": 1}}'], "unknown operator '$near'"),
        (["search", "x", "--filter", "{not json"], "not valid JSON"),
        (["search", "x", "--provider", "nosuchdb"], "unknown store 'nosuchdb'; installed:"),
        (["ingest", "missing-folder"], "no such file or folder"),
        (["get", "nope"], "does not exist"),
        (["conformance", "nosuchdb"], "unknown store 'nosuchdb'"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(run, args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unreadable_file_is_named(run, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    result = run("ingest", str(bad))
    assert result.returncode == 2 and "cannot read" in result.stderr and "latin1.txt" in result.stderr


def test_plugins_lists_builtins_with_versions(run):
    listing = json.loads(run("plugins", "--json").stdout)
    rows = {(p["kind"], p["name"]): p for p in listing["plugins"]}
    assert rows[("store", "memory")]["package"] == "vpa-core"
    assert rows[("store", "memory")]["capabilities"]["exact"] is True
    assert ("embedder", "sentence-transformers") in rows
    assert "memory" in run("plugins").stdout
