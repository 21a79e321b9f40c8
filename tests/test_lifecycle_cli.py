"""`vpa list`, `vpa collections` and `vpa update` (store contract 1.1), run as users run them: a
real subprocess per call, on the memory store in a temporary data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VPA = str(Path(sys.executable).parent / "vpa")


@pytest.fixture
def run(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VPA_")},
           "VPA_DATA_DIR": str(tmp_path / "data"), "VPA_EMBEDDER": "hashing", "VPA_LOG_LEVEL": "WARNING",
           "VPA_CHUNK_SIZE": "200", "VPA_CHUNK_OVERLAP": "40"}

    def invoke(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([VPA, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    return invoke


@pytest.fixture
def corpus(tmp_path, run):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cats.md").write_text("---\ntitle: Cats\ncategory: animals\n---\n" + "Cats purr when content. " * 30)
    (folder / "stocks.txt").write_text("The stock market fell on Monday.")
    (folder / "bread.md").write_text("---\ntitle: Bread\ncategory: cooking\n---\nSourdough uses wild yeast.")
    result = run("ingest", "docs", "--meta", "set=demo")
    assert result.returncode == 0, result.stderr
    return folder


def _json(result: subprocess.CompletedProcess) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_prints_every_document_and_resumes_from_its_cursor(run, corpus):
    table = run("list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["DOCUMENT", "ID", "CHUNKS", "TITLE"]
    assert [line.split()[0] for line in lines if line.startswith("docs/")] == [
        "docs/bread.md", "docs/cats.md", "docs/stocks.txt"]
    assert "category=animals" in table.stdout and "Cats purr" not in table.stdout  # metadata, never text

    everything = _json(run("list", "--json"))
    assert everything["next_cursor"] is None
    cats = next(d for d in everything["documents"] if d["id"] == "docs/cats.md")
    assert cats["title"] == "Cats" and cats["chunks"] >= 2 and cats["metadata"]["category"] == "animals"
    assert not any(k.startswith("vpa_") for d in everything["documents"] for k in d["metadata"])

    first = _json(run("list", "--json", "--limit", "2"))
    assert [d["id"] for d in first["documents"]] == ["docs/bread.md", "docs/cats.md"] and first["next_cursor"]
    rest = _json(run("list", "--json", "--cursor", first["next_cursor"]))
    assert [d["id"] for d in rest["documents"]] == ["docs/stocks.txt"] and rest["next_cursor"] is None
    text = run("list", "--limit", "1")
    assert text.returncode == 0 and "more documents: vpa list --cursor " in text.stderr

    other = run("list", "--cursor", first["next_cursor"], "--filter", '{"category": "animals"}')
    assert other.returncode == 2 and "cursor" in other.stderr and not other.stdout  # bound to its filter


def test_update_by_id_and_by_filter_with_typed_dates(run, corpus):
    updated = run("update", "docs/cats.md", "--set",
                  '{"reviewed": {"$date": "2024-05-01T12:00:00+02:00"}, "og:title": "Cats!", "category": null}')
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.startswith("updated 1 document (") and "chunks)" in updated.stdout
    got = _json(run("get", "docs/cats.md", "--json"))
    assert got["metadata"] == {"source": "cats.md", "set": "demo", "og:title": "Cats!",
                               "reviewed": {"$date": "2024-05-01T10:00:00Z"}}  # UTC, the same instant
    assert got["content"].startswith("Cats purr")

    recent = _json(run("list", "--json", "--filter", '{"reviewed": {"$gte": {"$date": "2024-05-01T00:00:00Z"}}}'))
    assert [d["id"] for d in recent["documents"]] == ["docs/cats.md"]
    assert recent["documents"][0]["metadata"]["reviewed"] == {"$date": "2024-05-01T10:00:00Z"}
    assert [d["id"] for d in _json(run("list", "--json", "--filter", '{"category": null}'))["documents"]] == [
        "docs/cats.md", "docs/stocks.txt"]

    counted = _json(run("update", "--filter", '{"category": {"$exists": true}}', "--set", '{"shelf": 2}',
                        "--unset", "set", "--json"))
    assert counted == {"documents": 1, "chunks": 1}  # bread only: cats has no category now
    assert _json(run("get", "docs/bread.md", "--json"))["metadata"] == {
        "category": "cooking", "source": "bread.md", "shelf": 2}
    everything = _json(run("update", "--filter", "{}", "--unset", "shelf", "--json"))
    assert everything["documents"] == 3

    found = _json(run("search", "wild yeast", "--filter", '{"shelf": {"$exists": false}}', "--json"))
    assert found[0]["document_id"] == "docs/bread.md"


BAD_INPUT = [
    (("update", "docs/cats.md", "--set", '{"vpa_title": "x"}'), "reserved"),
    (("update", "docs/cats.md", "--unset", "vpa_document_id"), "reserved"),
    (("update", "docs/cats.md", "--set", "{not json"), "--set is not valid JSON"),
    (("update", "docs/cats.md", "--set", '["a"]'), "JSON object"),
    (("update", "docs/cats.md", "--set", '{"d": {"$date": "2024-05-01T12:00:00"}}'), "naive"),
    (("update", "docs/cats.md", "--filter", "{}", "--set", '{"a": 1}'), "one of them"),
    (("update", "docs/cats.md"), "--set or --unset"),
    (("update", "docs/missing.md", "--set", '{"a": 1}'), "does not exist"),
    (("list", "--filter", '{"a": {"$near": 1}}'), "$near"),
    (("list", "nope"), "nope"),
]


def test_bad_input_exits_2_with_one_line_and_changes_nothing(run, corpus):
    before = _json(run("list", "--json"))
    for args, message in BAD_INPUT:  # one corpus for all: each run is a process start
        result = run(*args)
        assert result.returncode == 2, (args, result.stdout)
        assert message in result.stderr and not result.stdout, (args, result.stderr)
    assert _json(run("list", "--json")) == before


def test_collections_and_listing_another_collection(run, corpus):
    assert run("ingest", "docs/stocks.txt", "--collection", "archive").returncode == 0
    rows = _json(run("collections", "--json"))
    assert [(r["name"], r["documents"], r["dimension"]) for r in rows] == [("archive", 1, 384), ("vpa", 3, 384)]
    assert all(r["embedder"].startswith("hashing") for r in rows)
    table = run("collections").stdout
    assert table.splitlines()[0].split() == ["NAME", "DIMENSION", "DOCUMENTS", "EMBEDDER"]
    listed = _json(run("list", "archive", "--json"))
    assert [d["id"] for d in listed["documents"]] == ["docs/stocks.txt"]
    both = run("list", "archive", "--collection", "vpa")
    assert both.returncode == 2 and "disagree" in both.stderr


def test_tenants_are_listed_and_changed_apart(run, corpus):
    assert run("ingest", "docs/cats.md", "--tenant", "acme").returncode == 0
    assert [d["id"] for d in _json(run("list", "--tenant", "acme", "--json"))["documents"]] == ["docs/cats.md"]
    assert _json(run("update", "--filter", "{}", "--tenant", "acme", "--set", '{"owner": "acme"}', "--json")) == {
        "documents": 1, "chunks": _json(run("list", "--tenant", "acme", "--json"))["documents"][0]["chunks"]}
    untenanted = _json(run("list", "--json"))["documents"]
    assert len(untenanted) == 3 and all("owner" not in d["metadata"] for d in untenanted)
