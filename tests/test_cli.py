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
    assert found[0]["document_id"] == "docs/cats.md"  # ids are paths from the current folder
    assert set(found[0]) >= {"document_id", "chunk_id", "similarity", "content", "metadata"}
    assert found[0]["metadata"]["tags"] == ["pets"] and "rank" not in found[0]["metadata"]

    filtered = json.loads(run("search", "wild yeast", "--filter", '{"category": "animals"}', "--json").stdout)
    assert [r["document_id"] for r in filtered] == ["docs/cats.md"]
    readable = run("search", "wild yeast")
    assert "Bread" in readable.stdout and "docs/bread.html" in readable.stdout

    assert "Sourdough uses wild yeast." in run("get", "docs/bread.html").stdout  # as the README prints it
    assert json.loads(run("stats", "--json").stdout)["documents"] == 3
    assert run("delete", "docs/bread.html").returncode == 0
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
    bad = tmp_path / "binary.txt"
    bad.write_bytes(b"\x00\x01\x02\xff\xfe\x00 not text")
    result = run("ingest", str(bad))
    assert result.returncode == 2 and "cannot read" in result.stderr and "binary.txt" in result.stderr


def test_same_named_files_in_two_folders_are_both_kept(run, tmp_path):
    for folder, text in (("a", "Alpha readme about apples."), ("b", "Beta readme about bananas.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(text)
    result = run("ingest", "a", "b")
    assert result.returncode == 0, result.stderr
    assert "ingested 2 documents" in result.stdout
    assert "apples" in run("get", "a/README.md").stdout and "bananas" in run("get", "b/README.md").stdout


def test_one_bad_file_does_not_abort_a_folder(run, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"good{i}.txt").write_text(f"good document number {i}")
    (docs / "latin1.txt").write_bytes("Un café crème à la terrasse, s'il vous plaît, garçon.".encode("latin-1"))
    (docs / "binary.txt").write_bytes(b"\x00\x9f\x92\x96" * 50)
    (docs / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    result = run("ingest", "docs")
    assert result.returncode == 2
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 2 and any("binary.txt" in line for line in skipped)
    assert any("broken.md" in line and "malformed front matter" in line for line in skipped)
    assert "Traceback" not in result.stderr
    assert "ingested 6 documents" in result.stdout and "2 skipped" in result.stdout
    assert "café crème" in run("get", "docs/latin1.txt").stdout  # detected, not refused
    strict_dir = tmp_path / "strict-data"
    strict = subprocess.run([VPA, "ingest", "docs", "--strict"], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "VPA_DATA_DIR": str(strict_dir), "VPA_EMBEDDER": "hashing"},
                            timeout=120)
    assert strict.returncode == 2 and len(strict.stderr.strip().splitlines()) == 1
    assert not (strict_dir / "memory").exists() or "ingested" not in strict.stdout


def test_an_unreadable_subfolder_is_reported(tmp_path, monkeypatch):
    from vpa import ingest

    (tmp_path / "docs" / "locked").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("a")
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = ingest.find_files([tmp_path / "docs"])
    assert len(found.files) == 1
    assert found.problems == [f"cannot read folder {tmp_path / 'docs' / 'locked'}: Permission denied"]


def test_plugins_lists_builtins_with_versions(run):
    listing = json.loads(run("plugins", "--json").stdout)
    rows = {(p["kind"], p["name"]): p for p in listing["plugins"]}
    assert rows[("store", "memory")]["package"] == "vpa-core"
    assert rows[("store", "memory")]["capabilities"]["exact"] is True
    assert ("embedder", "sentence-transformers") in rows
    assert "memory" in run("plugins").stdout


def test_search_groups_by_document_unless_asked_for_chunks(run, tmp_path):
    (tmp_path / "long.txt").write_text("Tides rise and fall with the moon. " * 200)
    assert run("ingest", "long.txt").returncode == 0
    by_document = json.loads(run("search", "tides moon", "--top-k", "5", "--json").stdout)
    by_chunk = json.loads(run("search", "tides moon", "--top-k", "5", "--group-by", "chunk", "--json").stdout)
    assert [r["document_id"] for r in by_document] == ["long.txt"]
    assert len(by_chunk) == 5 and {r["document_id"] for r in by_chunk} == {"long.txt"}
