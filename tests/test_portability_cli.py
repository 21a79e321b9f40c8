"""`vpa export`, `vpa import`, `vpa migrate`, `vpa backup` and `vpa restore` on real stores: the
memory store in a temporary data folder, and chroma (embedded, in the same folder) as a second
engine. Most calls run in-process through click's runner (each command opens and closes its own
stores, as a separate run would); one test runs the installed `vpa` as a subprocess to check
that ``--json`` leaves nothing else on stdout."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("pyarrow")

from vpa import portability
from vpa.cli import main
from vpa.models import EmbedderFingerprint, Record

VPA = str(Path(sys.executable).parent / "vpa")
DIM = 8
FINGERPRINT = EmbedderFingerprint("test-embedder", "model-1", DIM)
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean VPA environment on a temporary data folder; the current folder is ``tmp_path``."""
    for name in list(os.environ):
        if name.startswith("VPA_"):
            monkeypatch.delenv(name)
    values = {"VPA_DATA_DIR": str(tmp_path / "data"), "VPA_EMBEDDER": "hashing", "VPA_LOG_LEVEL": "WARNING",
              "VPA_CHUNK_SIZE": "200", "VPA_CHUNK_OVERLAP": "40"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return values


def vpa(*args: str) -> Any:
    """One `vpa` run in-process; stdout and stderr apart."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr or result.stdout
    return result


def as_json(result: Any) -> Any:
    return json.loads(ok(result).stdout)


def one_line_error(result: Any, *words: str) -> str:
    assert result.exit_code == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not result.stdout
    return lines[0]


def config(data_dir: Path | None = None) -> Any:
    from vpa.config import load_config

    return load_config({"data_dir": data_dir} if data_dir is not None else None)


def sample_records(n: int = 60, seed: int = 1) -> list[Record]:
    """Records whose metadata has every type a snapshot must keep: int, float (whole ones too),
    bool, list of str, datetime, unicode text."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        metadata = {
            "n": i, "score": i / 7, "whole": 2.0, "flag": i % 2 == 0, "tags": ["a", f"t{i % 4}", "ünï"],
            "when": T0 + dt.timedelta(minutes=i, microseconds=i), "city": "Zürich — 東京 🙂",
            "group": f"g{i % 3}",
        }
        text = f"record {i}: naïve café, 東京, emoji 🙂, quote \" and newline\n"
        records.append(Record(f"r{i:03d}-ü", rng.normal(size=DIM).astype(np.float32), text, metadata))
    return records


async def _write(cfg: Any, provider: str | None, collection: str, records: list[Record], *,
                 fingerprint: EmbedderFingerprint | None = FINGERPRINT,
                 delete: list[str] | None = None) -> None:
    store = portability.open_store(cfg, provider)
    try:
        await store.create_collection(collection, DIM, fingerprint=fingerprint)
        if records:
            await store.upsert(collection, records)
        if delete:
            await store.delete(collection, ids=delete)
    finally:
        await store.close()


def write(collection: str, records: list[Record], provider: str | None = None, data_dir: Path | None = None,
          **options: Any) -> None:
    asyncio.run(_write(config(data_dir), provider, collection, records, **options))


async def _read(cfg: Any, provider: str | None, collection: str) -> tuple[Any, dict[str, Record]]:
    store = portability.open_store(cfg, provider)
    try:
        info = await store.open_collection(collection)
        found: dict[str, Record] = {}
        async for page in store.scroll(collection, batch_size=100, with_vectors=True):
            for record in page.records:
                assert record.id not in found
                found[record.id] = record
        return info, found
    finally:
        await store.close()


def read(collection: str, provider: str | None = None,
         data_dir: Path | None = None) -> tuple[Any, dict[str, Record]]:
    return asyncio.run(_read(config(data_dir), provider, collection))


def collections(provider: str | None = None, data_dir: Path | None = None) -> list[str]:
    async def go() -> list[str]:
        store = portability.open_store(config(data_dir), provider)
        try:
            return sorted(await store.list_collections())
        finally:
            await store.close()

    return asyncio.run(go())


def assert_same(got: dict[str, Record], want: list[Record]) -> None:
    assert sorted(got) == sorted(r.id for r in want)
    for record in want:
        difference = portability.record_difference(got[record.id], record)
        assert difference is None, (record.id, difference)
        # the types themselves, not only equal values: 2.0 stays a float, True a bool, a datetime aware
        for key, value in record.metadata.items():
            assert type(got[record.id].metadata[key]) is type(value), key
        assert got[record.id].metadata["when"] == record.metadata["when"]


# --- export / import ---------------------------------------------------------------------------


def test_export_import_round_trip_keeps_ids_text_typed_metadata_and_vectors(env, tmp_path):
    records = sample_records()
    write("docs", records)
    exported = as_json(vpa("export", "docs", "snap", "--json"))
    assert exported == {"collection": "docs", "path": "snap", "records": len(records), "files": 1,
                        "bytes": exported["bytes"], "encrypted": False}
    assert (tmp_path / "snap" / "manifest.json").is_file() and exported["bytes"] > 0
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["source"] == {"provider": "memory"} and manifest["fingerprint"]["name"] == "test-embedder"

    imported = as_json(vpa("import", "snap", "--collection", "copy", "--json"))
    assert imported == {"collection": "copy", "records": len(records), "written": len(records), "skipped": 0,
                        "replaced": 0, "removed": 0}
    info, got = read("copy")
    assert info.dimension == DIM and info.fingerprint == FINGERPRINT
    assert_same(got, records)

    # without --collection: into the collection it was exported from, in another data folder
    line = ok(vpa("import", "snap", "--data-dir", str(tmp_path / "other"))).stdout.strip()
    n = len(records)
    assert line == f"imported {n} records into 'docs': {n} written, 0 already there (skipped)"
    assert_same(read("docs", data_dir=tmp_path / "other")[1], records)


def test_import_twice_skips_everything_the_second_time(env):
    records = sample_records(40)
    write("docs", records)
    ok(vpa("export", "docs", "snap"))
    assert "40 written, 0 already there" in ok(vpa("import", "snap", "--collection", "copy")).stdout
    again = ok(vpa("import", "snap", "--collection", "copy")).stdout.strip()
    assert again == "imported 40 records into 'copy': 0 written, 40 already there (skipped)"
    assert_same(read("copy")[1], records)

    # a changed record is rewritten from the snapshot, the others skipped
    changed = Record(records[3].id, records[3].vector, "changed", records[3].metadata)
    write("copy", [changed])
    third = as_json(vpa("import", "snap", "--collection", "copy", "--json"))
    assert (third["written"], third["skipped"], third["replaced"]) == (1, 39, 1)
    assert_same(read("copy")[1], records)


def test_import_no_resume_refuses_a_collection_that_holds_records(env):
    records = sample_records(10)
    write("docs", records)
    ok(vpa("export", "docs", "snap"))
    write("copy", records[:2])
    one_line_error(vpa("import", "snap", "--collection", "copy", "--no-resume"), "already holds 2 records")
    assert_same(read("copy")[1], records[:2])  # nothing written
    assert "10 written" in ok(vpa("import", "snap", "--collection", "fresh", "--no-resume")).stdout


def test_filtered_export_into_a_tar(env, tmp_path):
    records = sample_records()
    write("docs", records)
    spec = '{"$and": [{"group": "g1"}, {"when": {"$gte": {"$date": "2024-05-01T12:10:00Z"}}}]}'
    summary = as_json(vpa("export", "docs", "part.tar", "--filter", spec, "--json"))
    want = [r for r in records if r.metadata["group"] == "g1" and r.metadata["n"] >= 10]
    assert summary["records"] == len(want) > 0
    assert (tmp_path / "part.tar").is_file() and not list(tmp_path.glob("part.tar.partial-*"))
    with portability.Snapshot(tmp_path / "part.tar") as snap:
        assert snap.manifest.records == len(want) and snap.manifest.filter is not None
    ok(vpa("import", "part.tar", "--collection", "part"))
    assert_same(read("part")[1], want)

    # OUT that exists is refused, and left alone
    one_line_error(vpa("export", "docs", "part.tar"), "already exists")
    assert portability.Snapshot(tmp_path / "part.tar").manifest.records == len(want)


@pytest.mark.parametrize(("bad", "word"), [
    ('{"year": {"$bad": 1}}', "$bad"),
    ('{"year": ', "--filter is not valid JSON"),
    ('{"$and": [' * 200 + '{"a": 1}' + "]}" * 200, "depth"),
    ('{"when": {"$gte": {"$date": "yesterday"}}}', "yesterday"),
])
def test_a_bad_filter_is_one_line_and_creates_nothing(env, tmp_path, bad, word):
    one_line_error(vpa("export", "docs", "out", "--filter", bad), word)
    one_line_error(vpa("migrate", "--from", "memory:docs", "--to", "chroma:docs", "--filter", bad), word)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial-*"))
    assert not (tmp_path / "data").exists()  # no store was even opened


def test_a_damaged_snapshot_is_refused_and_the_target_is_unchanged(env, tmp_path):
    records = sample_records(30)
    write("docs", records)
    ok(vpa("export", "docs", "snap"))
    write("copy", records[:5])
    data = tmp_path / "snap" / "records-00000.parquet"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    data.write_bytes(bytes(blob))

    one_line_error(vpa("import", "snap", "--collection", "copy"), "records-00000.parquet", "checksum")
    one_line_error(vpa("import", "snap", "--collection", "new"), "checksum")
    assert_same(read("copy")[1], records[:5])
    assert "new" not in collections()
    one_line_error(vpa("import", "no-such-snapshot"), "no snapshot")


def test_export_of_a_missing_collection_is_one_line(env, tmp_path):
    one_line_error(vpa("export", "nope", "out"), "nope")
    one_line_error(vpa("export", "not a name!", "out"), "not portable")
    assert not (tmp_path / "out").exists()


def test_an_encrypted_snapshot_needs_its_key(env, tmp_path, monkeypatch):
    key = "ab" * 32
    monkeypatch.setenv("VPA_ENCRYPT_AT_REST", "true")
    monkeypatch.setenv("VPA_ENCRYPTION_KEY", key)
    records = sample_records(10)
    write("docs", records)
    assert as_json(vpa("export", "docs", "sealed", "--json"))["encrypted"] is True
    import pyarrow.parquet as pq

    texts = pq.read_table(tmp_path / "sealed" / "records-00000.parquet").column("text").to_pylist()
    assert len(texts) == 10 and not any("café" in t for t in texts)  # sealed in the file

    monkeypatch.delenv("VPA_ENCRYPT_AT_REST")
    monkeypatch.delenv("VPA_ENCRYPTION_KEY")
    one_line_error(vpa("import", "sealed", "--data-dir", str(tmp_path / "plain")), "VPA_ENCRYPT_AT_REST")
    monkeypatch.setenv("VPA_ENCRYPT_AT_REST", "true")
    monkeypatch.setenv("VPA_ENCRYPTION_KEY", "cd" * 32)
    one_line_error(vpa("import", "sealed", "--data-dir", str(tmp_path / "other-key")), "another key")
    monkeypatch.setenv("VPA_ENCRYPTION_KEY", key)
    ok(vpa("import", "sealed", "--data-dir", str(tmp_path / "same-key")))
    assert_same(read("docs", data_dir=tmp_path / "same-key")[1], records)


# --- migrate -----------------------------------------------------------------------------------


def test_migrate_memory_to_chroma_verifies_and_keeps_the_fingerprint(env):
    pytest.importorskip("vpa_chroma")
    records = sample_records(80)
    write("docs", records)
    summary = as_json(vpa("migrate", "--from", "memory:docs", "--to", "chroma", "--sample", "50",
                          "--queries", "10", "--json"))
    assert [summary[k] for k in ("source", "target", "records", "written")] == ["docs", "docs", 80, 80]
    check = summary["verification"]
    assert [check[k] for k in ("count_source", "count_target", "sampled", "queries")] == [80, 80, 50, 10]
    assert check["overlap"] >= check["required_overlap"] > 0
    info, got = read("docs", "chroma")
    assert info.fingerprint == FINGERPRINT and info.dimension == DIM
    assert_same(got, records)

    again = ok(vpa("migrate", "--from", "memory:docs", "--to", "chroma:docs")).stdout
    assert "migrated 80 records memory:docs -> chroma:docs: 0 written, 80 already there (skipped)" in again
    assert "verified: 80 records in the source, 80 in the target; 80 sampled records equal; 20 queries" \
        in again


def test_migrate_a_rag_collection_to_chroma_and_search_it_there(env, tmp_path):
    pytest.importorskip("vpa_chroma")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cats.md").write_text("---\ntitle: Cats\nyear: 2021\n---\n" + "Cats purr when content. " * 20)
    (folder / "bread.md").write_text("---\ntitle: Bread\nyear: 2019\n---\nSourdough uses wild yeast.")
    ok(vpa("ingest", "docs"))
    recent = '{"year": {"$gte": 2020}}'
    out = ok(vpa("migrate", "--from", "memory", "--to", "chroma", "--filter", recent)).stdout
    assert "memory:vpa -> chroma:vpa" in out and "verified:" in out
    info, _ = read("vpa", "chroma")
    assert info.fingerprint == read("vpa")[0].fingerprint and info.fingerprint.name == "hashing"
    # the RAG layer opens the copy with the configured embedder: the fingerprint came along
    found = json.loads(ok(vpa("search", "cats purr", "--provider", "chroma", "--json")).stdout)
    assert [r["document_id"] for r in found] == ["docs/cats.md"]  # bread (2019) was not copied


def test_migrate_to_the_same_store_and_collection_is_refused(env):
    records = sample_records(12)
    write("docs", records)
    one_line_error(vpa("migrate", "--from", "memory:docs", "--to", "memory"), "different target")
    one_line_error(vpa("migrate", "--from", "memory:docs", "--to", "memory:docs"), "different target")
    assert collections() == ["docs"]
    # another collection of the same store: one store object serves both sides (the memory store
    # locks its folder, so a second one on it would fail)
    out = ok(vpa("migrate", "--from", "memory:docs", "--to", "memory:copy")).stdout
    assert "12 written" in out and "required 1.000" in out
    assert_same(read("copy")[1], records)


def test_migrate_bad_endpoints_and_options_are_one_line(env):
    write("docs", sample_records(3))
    one_line_error(vpa("migrate", "--from", ":docs", "--to", "memory:x"), "--from")
    one_line_error(vpa("migrate", "--from", "memory:", "--to", "memory:x"), "empty")
    one_line_error(vpa("migrate", "--from", "memory:docs", "--to", "nosuchdb:x"), "nosuchdb")
    one_line_error(vpa("migrate", "--from", "memory:missing", "--to", "memory:x"), "missing")
    usage = vpa("migrate", "--from", "memory:docs", "--to", "memory:x", "--no-verify", "--sample", "5")
    assert usage.exit_code == 2 and "--no-verify" in usage.stderr
    assert collections() == ["docs"]
    out = ok(vpa("migrate", "--from", "memory:docs", "--to", "memory:x", "--no-verify")).stdout
    assert "not verified (--no-verify)" in out


# --- backup / restore --------------------------------------------------------------------------


def test_backup_restore_round_trip_with_the_key_file(env, tmp_path):
    docs, notes = sample_records(30, seed=1), sample_records(7, seed=2)
    write("docs", docs)
    write("notes", notes, fingerprint=None)
    key = as_json(vpa("keys", "create", "--role", "admin", "--tenant", "acme", "--json"))
    keys_file = tmp_path / "data" / "keys.json"
    assert keys_file.is_file()

    summary = as_json(vpa("backup", "bk", "--json"))
    assert summary["key_file"] is True and summary["records"] == 37
    assert [c["collection"] for c in summary["collections"]] == ["docs", "notes"]
    assert (tmp_path / "bk" / "keys.json").read_bytes() == keys_file.read_bytes()

    fresh = tmp_path / "fresh"
    restored = as_json(vpa("restore", "bk", "--data-dir", str(fresh), "--json"))
    assert restored["key_file"] == "restored" and restored["records"] == 37
    assert (fresh / "keys.json").read_bytes() == keys_file.read_bytes()
    assert collections(data_dir=fresh) == ["docs", "notes"]
    assert_same(read("docs", data_dir=fresh)[1], docs)
    info, got = read("notes", data_dir=fresh)
    assert info.fingerprint is None
    assert_same(got, notes)
    listed = as_json(vpa("keys", "list", "--data-dir", str(fresh), "--json"))
    assert [k["key_id"] for k in listed] == [key["key_id"]]



def test_restore_refuses_a_collection_with_records_and_overwrite_makes_it_the_snapshot(env, tmp_path):
    docs = sample_records(25)
    write("docs", docs)
    ok(vpa("backup", "bk"))
    changed = Record(docs[0].id, docs[0].vector, "edited after the backup", docs[0].metadata)
    extra = sample_records(1, seed=9)[0]
    extra = Record("extra-record", extra.vector, extra.text, extra.metadata)
    write("docs", [changed, extra], delete=[docs[1].id])
    after = read("docs")[1]

    one_line_error(vpa("restore", "bk"), "not empty", "--overwrite")
    assert read("docs")[1] == after  # nothing changed

    result = as_json(vpa("restore", "bk", "--overwrite", "--json"))
    (only,) = result["collections"]
    assert (only["written"], only["replaced"], only["removed"], only["skipped"]) == (2, 1, 1, 23)
    assert_same(read("docs")[1], docs)

    one_line_error(vpa("restore", "nothing-here"), "not a VPA backup")
    one_line_error(vpa("backup", "bk"), "already exists")


def test_json_is_all_there_is_on_stdout_of_the_installed_command(env, tmp_path):
    write("docs", sample_records(20))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([VPA, *args], capture_output=True, text=True, env=dict(os.environ),
                              cwd=tmp_path, timeout=180)

    for args in (("export", "docs", "snap.tar", "--json"),
                 ("migrate", "--from", "memory:docs", "--to", "memory:copy", "--json")):
        result = run(*args)
        assert result.returncode == 0, result.stderr
        assert isinstance(json.loads(result.stdout), dict), args
    refused = run("import", "snap.tar", "--collection", "copy", "--no-resume", "--json")
    assert refused.returncode == 2 and not refused.stdout
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: ")
