"""The portability API (issue 16) on real stores: snapshots written and read back exactly, damaged
snapshots refused before any write, an import killed with SIGKILL and resumed, interrupted and
disk-full exports that leave nothing behind, sealed snapshots, store-to-store migration with
verification, and backup / restore of every collection with the key file.

Stores are real: the memory store (on a folder), embedded Chroma and Qdrant local mode (each
skipped cleanly when its plugin is not installed). Faults are real too: the import is killed by
its PID, and the full disk is a tmpfs when this process may mount one, else an injected ENOSPC.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import importlib.metadata
import json
import os
import queue
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from vpa import portability
from vpa.config import load_config
from vpa.crypto import TEXT_PREFIX, EncryptionKeyMismatch, generate_key
from vpa.errors import StorageFull, ValidationError
from vpa.layout import TITLE
from vpa.models import EmbedderFingerprint, Record
from vpa.portability import (
    CollectionNotEmpty,
    Snapshot,
    SnapshotError,
    SnapshotSealer,
    VerificationFailed,
    backup,
    export_collection,
    import_snapshot,
    migrate,
    record_difference,
    required_overlap,
    restore,
    verify_copy,
)
from vpa.stores.memory import MemoryStore

ENGINES = ["memory", "chroma", "qdrant"]
FINGERPRINT = EmbedderFingerprint("hashing", "test-model", 384)
#: Generous bounds for a loaded 2-core machine: a failure past them is a hang, not slowness.
TIMEOUT = 120.0


def make_store(engine: str, path: Path) -> Any:
    """A real store of ``engine`` persisted under ``path`` (skips if the plugin is missing)."""
    if engine == "memory":
        return MemoryStore(path)
    if engine == "chroma":
        pytest.importorskip("vpa_chroma")
        from vpa_chroma.store import ChromaStore

        return ChromaStore(path=path)
    if engine == "qdrant":
        pytest.importorskip("vpa_qdrant")
        from vpa_qdrant.settings import QdrantSettings
        from vpa_qdrant.store import QdrantStore

        return QdrantStore(QdrantSettings(path=str(path)))
    raise AssertionError(engine)


@contextlib.asynccontextmanager
async def opened(engine: str, path: Path) -> AsyncIterator[Any]:
    store = make_store(engine, path)
    try:
        yield store
    finally:
        await store.close()


async def everything(store: Any, collection: str) -> dict[str, Record]:
    """Every record of ``collection``, vectors included, by id."""
    found: dict[str, Record] = {}
    size = store.capabilities.max_page_size
    async for page in store.scroll(collection, batch_size=size, with_vectors=True):
        for record in page.records:
            assert record.id not in found, f"{record.id} listed twice"
            found[record.id] = record
    return found


def assert_same(got: dict[str, Record], want: dict[str, Record]) -> None:
    assert sorted(got) == sorted(want)
    for record_id, record in want.items():
        difference = record_difference(got[record_id], record)
        assert difference is None, (record_id, difference)


# --- records of every kind --------------------------------------------------------------------

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
PST = dt.timezone(dt.timedelta(hours=-8))
NEPAL = dt.timezone(dt.timedelta(hours=5, minutes=45))


def varied_records(dim: int) -> list[Record]:
    """Records with every metadata type (and awkward values of each), empty and unicode text."""
    rng = np.random.default_rng(dim)
    metadatas: list[dict[str, Any]] = [
        {"n": 0, "f": 0.1, "flag": True, "s": "plain", "tags": ["a", "b"],
         "when": dt.datetime(2024, 5, 1, 12, 0, tzinfo=IST)},
        {"n": -7, "f": 1e300, "flag": False, "s": "Ünïcödé ✓ 日本語 🎉", "tags": ["ß", "🎉", "日本"],
         "when": dt.datetime(1999, 12, 31, 23, 59, 59, 123456, tzinfo=PST)},
        {"n": 2**53, "f": -0.0, "s": "", "tags": [], "when": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
        {"n": -(2**40), "f": 1e-300, "flag": True, "when": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=NEPAL)},
        {"f": -2.5e-7, "s": "quote \" backslash \\ newline \n tab \t", "tags": ["x"]},
        {TITLE: "A title — with émoji 🚀", "lang": "fr"},
        {},
    ]
    texts = ["", "Texte en français, 日本語のテキスト, emoji 🎉 and Ελληνικά.", "x" * 5000,
             "line one\nline two\r\nline three", "🎉", "a", "zero\u200bwidth"]
    records = []
    for i, metadata in enumerate(metadatas):
        vector = rng.normal(size=dim).astype(np.float32)
        if dim == 1:
            vector = np.array([(-1.0) ** i * (i + 0.5)], dtype=np.float32)
        records.append(Record(f"rec-{i}-é", vector, texts[i], metadata))
    return records


def plain_records(count: int, dim: int, text: str = "t") -> list[Record]:
    rng = np.random.default_rng(count * 31 + dim)
    vectors = rng.normal(size=(count, dim)).astype(np.float32)
    return [Record(f"r{i:05}", vectors[i], f"{text}{i}", {"i": i}) for i in range(count)]


async def seed(
    store: Any, name: str, records: list[Record], dim: int, fingerprint: EmbedderFingerprint | None = None
) -> None:
    await store.create_collection(name, dim, fingerprint=fingerprint)
    await store.upsert(name, records)
    await store.settle(name)


def snapshot_member(snapshot: Path, name: str) -> bytes:
    if snapshot.is_dir():
        return (snapshot / name).read_bytes()
    with tarfile.open(snapshot) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def all_bytes(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes()
    return b"".join(f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file())


# --- 1. round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "tar"])
@pytest.mark.parametrize("dim", [1, 384])
@pytest.mark.parametrize("engine", ENGINES)
async def test_round_trip_is_exact(tmp_path, engine, dim, kind):
    """export → import into a fresh store: every record equal, typed metadata intact, datetimes
    back in UTC at the same instant; the manifest and Parquet files are as documented."""
    records = varied_records(dim)
    fingerprint = FINGERPRINT if dim == 384 else None
    out = tmp_path / ("snap.tar" if kind == "tar" else "snap")
    async with opened(engine, tmp_path / "source") as source:
        await seed(source, "docs", records, dim, fingerprint)
        summary = await export_collection(source, "docs", out, source={"provider": engine})
    assert (summary.records, summary.files, summary.encrypted) == (len(records), 1, False)
    assert out.is_file() if kind == "tar" else out.is_dir()
    assert not list(tmp_path.glob("*.partial-*"))

    async with opened(engine, tmp_path / "target") as target:
        result = await import_snapshot(target, out, collection="copy")
        counts = (result.records, result.written, result.skipped, result.replaced)
        assert counts == (len(records), len(records), 0, 0)
        info = await target.open_collection("copy")
        assert (info.dimension, str(info.metric), info.fingerprint) == (dim, "cosine", fingerprint)
        got = await everything(target, "copy")
    want = {r.id: r for r in records}
    assert_same(got, want)
    for record in records:
        when = record.metadata.get("when")
        if when is not None:
            back = got[record.id].metadata["when"]
            assert back == when and back.utcoffset() == dt.timedelta(0), (back, when)
        assert type(got[record.id].metadata.get("n")) is type(record.metadata.get("n"))  # an int stays an int

    # the manifest
    manifest = json.loads(snapshot_member(out, "manifest.json"))
    assert manifest["format"] == "vpa-snapshot" and manifest["format_version"] == 1
    assert (manifest["collection"], manifest["dimension"], manifest["metric"]) == ("docs", dim, "cosine")
    assert manifest["fingerprint"] == (None if fingerprint is None else
                                       {"name": "hashing", "model": "test-model", "dimension": 384})
    assert manifest["records"] == len(records) and manifest["encryption"] is None
    assert manifest["vpa_version"] == importlib.metadata.version("vpa-core")
    assert manifest["source"] == {"provider": engine}
    created = dt.datetime.fromisoformat(manifest["created_at"].replace("Z", "+00:00"))
    assert manifest["created_at"].endswith("Z")
    assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(hours=1)
    [entry] = manifest["files"]
    blob = snapshot_member(out, entry["name"])
    assert entry["records"] == len(records) and entry["bytes"] == len(blob)
    assert entry["sha256"] == hashlib.sha256(blob).hexdigest()

    # the data file, read by plain pyarrow with nothing of VPA
    table = pq.read_table(pa.BufferReader(blob))
    assert table.schema.names == ["id", "vector", "text", "metadata"]
    assert [table.schema.field(n).type for n in table.schema.names] == [
        pa.string(), pa.list_(pa.float32()), pa.string(), pa.string()]
    rows = {row["id"]: row for row in table.to_pylist()}
    assert sorted(rows) == sorted(want)
    for record in records:
        row = rows[record.id]
        assert row["text"] == record.text
        vector = np.asarray(row["vector"], np.float32)
        if engine == "memory":  # float32 in, the same float32 out
            np.testing.assert_array_equal(vector, record.vector)
        else:  # an engine may round a vector by an ulp on the way in
            tolerance = 1e-5 * float(np.linalg.norm(record.vector))
            np.testing.assert_allclose(vector, record.vector, rtol=0, atol=tolerance)
        plain = json.loads(row["metadata"])
        assert set(plain) == set(record.metadata)
        if "when" in record.metadata:
            stamp = plain["when"]["$date"]
            assert stamp.endswith("Z")
            assert dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) == record.metadata["when"]
        if "f" in record.metadata:
            assert plain["f"] == record.metadata["f"]


async def test_import_twice_skips_everything_and_changes_nothing(tmp_path):
    """An import is idempotent: a second run writes nothing and counts every record skipped."""
    records = varied_records(8)
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 8)
        await export_collection(store, "docs", tmp_path / "snap")
        first = await import_snapshot(store, tmp_path / "snap", collection="copy")
        second = await import_snapshot(store, tmp_path / "snap", collection="copy")
        assert (first.written, first.skipped) == (len(records), 0)
        assert (second.written, second.skipped, second.replaced) == (0, len(records), 0)
        assert_same(await everything(store, "copy"), {r.id: r for r in records})


async def test_export_with_a_filter_holds_only_the_matching_records(tmp_path):
    records = varied_records(8)
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 8)
        summary = await export_collection(store, "docs", tmp_path / "snap", filter={"flag": True})
        with Snapshot(tmp_path / "snap") as snap:
            ids = sorted(r.id for batch in snap.batches() for r in batch)
            assert snap.manifest.filter == {"flag": True}
    assert ids == sorted(r.id for r in records if r.metadata.get("flag") is True)
    assert summary.records == len(ids) == 2


async def test_several_data_files(tmp_path):
    """A snapshot split over several Parquet files (rows_per_file) reads back whole."""
    records = plain_records(1200, 4)
    async with opened("memory", tmp_path / "m") as store:
        await store.create_collection("big", 4)
        await store.upsert("big", records)
        summary = await export_collection(store, "big", tmp_path / "snap", rows_per_file=500)
        assert summary.files == 3
        await import_snapshot(store, tmp_path / "snap", collection="copy")
        assert_same(await everything(store, "copy"), {r.id: r for r in records})
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert [f["records"] for f in manifest["files"]] == [500, 500, 200]


# --- 2. damaged snapshots -----------------------------------------------------------------------


def _rewrite_manifest(snapshot: Path, change) -> None:
    path = snapshot / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _flip_byte(snapshot: Path) -> None:
    data_file = next(snapshot.glob("*.parquet"))
    blob = bytearray(data_file.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    data_file.write_bytes(bytes(blob))


def _truncate(snapshot: Path) -> None:
    data_file = next(snapshot.glob("*.parquet"))
    data_file.write_bytes(data_file.read_bytes()[:-100])


def _name(name: str):
    def change(data: dict) -> None:
        data["files"][0]["name"] = name
    return change


DAMAGE = {
    "flipped byte": (_flip_byte, "checksum"),
    "truncated file": (_truncate, "checksum"),
    "missing data file": (lambda s: next(s.glob("*.parquet")).unlink(), "missing"),
    "newer format": (lambda s: _rewrite_manifest(s, lambda d: d.update(format_version=2)), "newer"),
    "not json": (lambda s: (s / "manifest.json").write_bytes(b'{"format": "vpa-snapshot", '), "not JSON"),
    "not a snapshot": (lambda s: _rewrite_manifest(s, lambda d: d.update(format="other")), "not a VPA"),
    "no manifest": (lambda s: (s / "manifest.json").unlink(), "missing"),
    "record count": (lambda s: _rewrite_manifest(s, lambda d: d.update(records=d["records"] + 1)), "declare"),
    "name with slash": (lambda s: _rewrite_manifest(s, _name("sub/records-00000.parquet")), "plain"),
    "name with dotdot": (lambda s: _rewrite_manifest(s, _name("../records-00000.parquet")), "plain"),
    "name is dotdot": (lambda s: _rewrite_manifest(s, _name("..")), "plain"),
    "absolute name": (lambda s: _rewrite_manifest(s, _name("/etc/records-00000.parquet")), "plain"),
}


def _pack(folder: Path) -> Path:
    """The (damaged) folder as a .tar of the same members."""
    packed = folder.with_name(folder.name + ".tar")
    with tarfile.open(packed, "w") as tar:
        for member in sorted(folder.iterdir()):
            tar.add(member, arcname=member.name)
    return packed


@pytest.mark.parametrize("kind", ["folder", "tar"])
@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_a_damaged_snapshot_changes_nothing(tmp_path, damage, kind):
    """Each damage is a SnapshotError before any write: a new target is not created, an existing
    one keeps exactly what it held."""
    spoil, message = DAMAGE[damage]
    records = varied_records(8)
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 8)
        await export_collection(store, "docs", tmp_path / "snap")
        spoil(tmp_path / "snap")
        snapshot = _pack(tmp_path / "snap") if kind == "tar" else tmp_path / "snap"
        kept = [Record("kept", np.ones(8), "kept text", {"k": 1})]
        await seed(store, "existing", kept, 8)
        with pytest.raises(SnapshotError, match=message):
            await import_snapshot(store, snapshot, collection="fresh")
        with pytest.raises(SnapshotError, match=message):
            await import_snapshot(store, snapshot, collection="existing", if_not_empty="replace")
        assert sorted(await store.list_collections()) == ["docs", "existing"]
        assert_same(await everything(store, "existing"), {"kept": kept[0]})


@pytest.mark.parametrize("cut", ["in the manifest", "half-way", "near the end"])
async def test_a_truncated_tar_changes_nothing(tmp_path, cut):
    records = plain_records(500, 16, "t" * 200)
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 16)
        await export_collection(store, "docs", tmp_path / "snap.tar")
        blob = (tmp_path / "snap.tar").read_bytes()
        with tarfile.open(tmp_path / "snap.tar") as tar:
            last = max(tar.getmembers(), key=lambda m: m.offset_data)
            end = last.offset_data + last.size  # past it: only the tar's zero padding
        keep = {"in the manifest": 700, "half-way": len(blob) // 2, "near the end": end - 10}[cut]
        (tmp_path / "snap.tar").write_bytes(blob[:keep])
        with pytest.raises(SnapshotError):
            await import_snapshot(store, tmp_path / "snap.tar", collection="fresh")
        assert await store.list_collections() == ["docs"]


async def test_a_snapshot_that_is_not_there_or_not_a_snapshot(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    async with opened("memory", tmp_path / "m") as store:
        with pytest.raises(SnapshotError, match="no snapshot"):
            await import_snapshot(store, tmp_path / "absent")
        with pytest.raises(SnapshotError, match="neither"):
            await import_snapshot(store, tmp_path / "junk.tar")
        assert await store.list_collections() == []


async def test_a_wrong_schema_is_refused(tmp_path):
    """A data file whose checksum matches but whose columns are not VPA's (a hand-made snapshot)."""
    records = varied_records(8)
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 8)
        await export_collection(store, "docs", tmp_path / "snap")
        data_file = next((tmp_path / "snap").glob("*.parquet"))
        wrong = pa.table({"id": [r.id for r in records], "vector": [[0.0] * 8] * len(records)})
        pq.write_table(wrong, data_file)
        blob = data_file.read_bytes()

        def fix(data: dict) -> None:
            data["files"][0].update(bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())

        _rewrite_manifest(tmp_path / "snap", fix)
        with pytest.raises(SnapshotError, match="record columns"):
            await import_snapshot(store, tmp_path / "snap", collection="fresh")
        assert await store.list_collections() == ["docs"]


# --- 3. an import killed with SIGKILL, then resumed ------------------------------------------------

KILL_RECORDS = 20_000
KILL_DIM = 8
KILL_AFTER = 5_000
CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from vpa.portability import import_snapshot
    from vpa.stores.memory import MemoryStore

    async def main(data, snapshot, threshold):
        store = MemoryStore(data)
        written = 0

        def progress(count):
            nonlocal written
            written += count
            print("written", written, flush=True)  # only after the batch was acknowledged
            if written >= threshold:
                time.sleep(1.0)  # from here on, slow: the parent kills us long before the end

        summary = await import_snapshot(store, snapshot, progress=progress)
        await store.close()
        print("done", summary.written, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def kill_records() -> list[Record]:
    rng = np.random.default_rng(16)
    vectors = rng.normal(size=(KILL_RECORDS, KILL_DIM)).astype(np.float32)
    start = dt.datetime(2024, 1, 1, tzinfo=IST)
    return [
        Record(f"k{i:06}", vectors[i], f"record {i} ✓",
               {"i": i, "half": i % 2 == 0, "when": start + dt.timedelta(minutes=i), "tags": [f"t{i % 7}"]})
        for i in range(KILL_RECORDS)
    ]


class Child:
    """A subprocess whose stdout lines arrive on a queue, so every read has a deadline."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def wait_for_written(self, threshold: int) -> int:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the import reported nothing for {TIMEOUT} s") from None
            if line is None:
                self.proc.wait(timeout=TIMEOUT)
                raise AssertionError(f"the import ended before the kill: {self.proc.stderr.read()[-2000:]}")
            assert not line.startswith("done"), "the import finished before the kill"
            if int(line.split()[1]) >= threshold:
                return int(line.split()[1])

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


async def test_an_import_killed_mid_way_resumes_to_exactly_one_copy(tmp_path):
    """kill -9 part-way through an import into a memory store's folder; the import run again ends
    with exactly the snapshot's records, skipping every one the killed run had written."""
    records = kill_records()
    async with opened("memory", None) as scratch:
        await scratch.create_collection("big", KILL_DIM)
        for start in range(0, KILL_RECORDS, 1000):
            await scratch.upsert("big", records[start : start + 1000])
        await export_collection(scratch, "big", tmp_path / "snap")
    data = tmp_path / "data"

    child = Child(str(data), str(tmp_path / "snap"), str(KILL_AFTER))
    try:
        acknowledged = child.wait_for_written(KILL_AFTER)
        child.kill()
        assert child.proc.returncode == -signal.SIGKILL
    finally:
        child.close()

    async with opened("memory", data) as store:
        before = await store.count("big")
        assert acknowledged <= before < KILL_RECORDS, (acknowledged, before)  # killed part-way, nothing lost
        summary = await import_snapshot(store, tmp_path / "snap")
        assert summary.records == KILL_RECORDS
        assert (summary.skipped, summary.written, summary.replaced) == (before, KILL_RECORDS - before, 0)
        assert await store.count("big") == KILL_RECORDS
        with Snapshot(tmp_path / "snap") as snap:
            for batch in snap.batches():
                got = {r.id: r for r in await store.get("big", [r.id for r in batch])}
                assert_same(got, {r.id: r for r in batch})


# --- 4. interrupted exports ------------------------------------------------------------------------


class FailingScroll(MemoryStore):
    """A real memory store whose scroll fails after ``pages`` pages (a source that goes away),
    noting what the export had put on disk by then."""

    def __init__(self, path: Path, pages: int) -> None:
        super().__init__(path)
        self.pages = pages
        self.on_disk: list[Path] = []

    async def scroll(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        served = 0
        async for page in super().scroll(*args, **kwargs):
            if served == self.pages:
                self.on_disk = sorted(Path(self.path).parent.rglob("*.parquet"))
                raise ConnectionError("the source store went away")
            served += 1
            yield page


@pytest.mark.parametrize("kind", ["folder", "tar"])
async def test_an_interrupted_export_leaves_no_snapshot(tmp_path, kind):
    records = plain_records(5000, 8)
    out = tmp_path / ("snap.tar" if kind == "tar" else "snap")
    store = FailingScroll(tmp_path / "m", pages=3)
    try:
        await seed(store, "docs", records, 8)
        with pytest.raises(ConnectionError):
            await export_collection(store, "docs", out, batch_size=1000)
    finally:
        await store.close()
    assert any(".partial-" in str(p) for p in store.on_disk), store.on_disk  # it had begun writing
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial-*"))


async def test_export_onto_an_existing_snapshot_is_refused(tmp_path):
    records = varied_records(8)
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 8)
        await export_collection(store, "docs", tmp_path / "snap")
        before = all_bytes(tmp_path / "snap")
        with pytest.raises(ValidationError, match="already exists"):
            await export_collection(store, "docs", tmp_path / "snap")
        (tmp_path / "file.tar").write_bytes(b"precious")
        with pytest.raises(ValidationError, match="already exists"):
            await export_collection(store, "docs", tmp_path / "file.tar")
        (tmp_path / "empty").mkdir()
        await export_collection(store, "docs", tmp_path / "empty")  # an empty folder is fine
    assert all_bytes(tmp_path / "snap") == before
    assert (tmp_path / "file.tar").read_bytes() == b"precious"
    assert (tmp_path / "empty" / "manifest.json").is_file()
    assert not list(tmp_path.glob("*.partial-*"))


class InjectedFullDisk:
    """Data-file and manifest writes that fail like a full disk after ``budget`` bytes: the
    Parquet writer gets a Python file (so every byte goes through here), and the module's
    ``open`` (the manifest, the checksums) is wrapped alike."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
        self.budget = budget
        fault = self

        class Limited:
            def __init__(self, handle: Any) -> None:
                self._handle = handle

            def write(self, data: Any) -> int:
                size = len(data) if not isinstance(data, memoryview) else data.nbytes
                if size > fault.budget:
                    fault.budget = 0
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                fault.budget -= size
                return self._handle.write(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._handle, name)

            def __enter__(self) -> Limited:
                return self

            def __exit__(self, *exc: object) -> None:
                self._handle.close()

        real_open = open

        def limited_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = real_open(file, mode, *args, **kwargs)
            return Limited(handle) if any(c in mode for c in "wa+") else handle

        real_writer = pq.ParquetWriter

        class Writer(real_writer):  # type: ignore[misc, valid-type]
            def __init__(self, where: Any, schema: Any, **kwargs: Any) -> None:
                self._file = Limited(real_open(where, "wb"))
                super().__init__(self._file, schema, **kwargs)

            def close(self) -> None:
                try:
                    super().close()
                finally:
                    self._file.close()

        monkeypatch.setattr(pq, "ParquetWriter", Writer)
        monkeypatch.setattr(portability, "open", limited_open, raising=False)


@contextlib.contextmanager
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 512 KiB tmpfs under ``tmp_path`` when this process may mount one, else None."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)],
                            capture_output=True, timeout=TIMEOUT, check=False)
    if result.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        for _attempt in range(50):
            unmounted = subprocess.run(["umount", str(mount)], capture_output=True, timeout=TIMEOUT)
            if unmounted.returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=TIMEOUT, check=False)


def incompressible(count: int, dim: int = 64) -> list[Record]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(count, dim)).astype(np.float32)
    return [Record(f"r{i:05}", vectors[i], rng.bytes(48).hex(), {"i": i}) for i in range(count)]


@pytest.mark.parametrize("fault", ["tmpfs", "data file", "manifest"])
@pytest.mark.parametrize("kind", ["folder", "tar"])
async def test_a_full_disk_is_storage_full_and_leaves_nothing(tmp_path, monkeypatch, fault, kind):
    """ENOSPC anywhere in an export (a real tmpfs filling up, or injected while writing a data
    file or the manifest) is `StorageFull`, and neither the snapshot nor a partial one is left."""
    records = incompressible(3000)  # ~1 MB of vectors and text: more than the 512 KiB tmpfs
    source = None
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 64)
        with contextlib.ExitStack() as stack:
            where = tmp_path / "out"
            where.mkdir()
            if fault == "tmpfs":
                mount = stack.enter_context(small_disk(tmp_path))
                if mount is None:  # no privilege to mount here: an injected fault stands in
                    fault = "data file"
                else:
                    where = mount
            if fault == "data file":
                InjectedFullDisk(monkeypatch, budget=200_000)
            elif fault == "manifest":  # the data files fit; the manifest (padded by a long note) does not
                await store.delete("docs", ids=[r.id for r in records[100:]])
                InjectedFullDisk(monkeypatch, budget=100_000)
                source = {"note": "m" * 200_000}
            out = where / ("snap.tar" if kind == "tar" else "snap")
            with pytest.raises(StorageFull, match="no space left"):
                await export_collection(store, "docs", out, source=source)
            assert not out.exists()
            assert [p.name for p in where.iterdir()] == []  # no partial folder, file or tar
            monkeypatch.undo()
            if fault == "tmpfs":  # the space is all back: a smaller export now fits
                await store.delete("docs", ids=[r.id for r in records[500:]])
                summary = await export_collection(store, "docs", out)
                assert summary.records == 500 and out.exists()


# --- 5. encryption ------------------------------------------------------------------------------------

KEY_A = generate_key()
KEY_B = generate_key()
SECRET_TEXT = "Grandma's secret marmalade: Seville oranges, sugar and patience"
SECRET_TITLE = "The marmalade recipe nobody may read"


def sealed_config(tmp_path: Path, key: str) -> Any:
    return load_config({"data_dir": tmp_path / "data", "embedder": "hashing", "encrypt_at_rest": True,
                        "encryption_key": key}, environ={})


def secret_records() -> list[Record]:
    rng = np.random.default_rng(3)
    return [
        Record(
            f"s{i}", rng.normal(size=8), f"{SECRET_TEXT} #{i}", {TITLE: f"{SECRET_TITLE} #{i}", "lang": "en"}
        )
        for i in range(20)
    ]


@pytest.mark.parametrize("kind", ["folder", "tar"])
async def test_a_sealed_snapshot(tmp_path, kind):
    """With encryption at rest, text and titles are ciphertext in the snapshot; the same key opens
    them, no key or another key is EncryptionKeyMismatch before anything is created."""
    sealer = SnapshotSealer.from_config(sealed_config(tmp_path, KEY_A))
    assert sealer is not None
    assert SnapshotSealer.from_config(load_config({"data_dir": tmp_path}, environ={})) is None
    records = secret_records()
    out = tmp_path / ("snap.tar" if kind == "tar" else "snap")
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", records, 8)
        summary = await export_collection(store, "docs", out, sealer=sealer)
        assert summary.encrypted

        raw = all_bytes(out)
        for needle in ("marmalade", "Seville", "nobody may read"):
            assert needle.encode() not in raw
        manifest = json.loads(snapshot_member(out, "manifest.json"))
        assert manifest["encryption"]["scheme"] == "aes-256-gcm" and manifest["encryption"]["key_check"]
        assert KEY_A not in json.dumps(manifest)
        table = pq.read_table(pa.BufferReader(snapshot_member(out, manifest["files"][0]["name"])))
        for row in table.to_pylist():
            metadata = json.loads(row["metadata"])
            assert row["text"].startswith(TEXT_PREFIX) and "marmalade" not in row["text"]
            assert metadata[TITLE].startswith(TEXT_PREFIX) and "marmalade" not in metadata[TITLE]
            assert metadata["lang"] == "en"  # other metadata stays in clear

        with pytest.raises(EncryptionKeyMismatch, match="encrypted"):
            await import_snapshot(store, out, collection="nokey")
        other = SnapshotSealer.from_config(sealed_config(tmp_path, KEY_B))
        with pytest.raises(EncryptionKeyMismatch, match="another key"):
            await import_snapshot(store, out, collection="otherkey", sealer=other)
        with Snapshot(out) as snap, pytest.raises(EncryptionKeyMismatch):
            next(snap.batches())
        assert await store.list_collections() == ["docs"]

        again = SnapshotSealer.from_config(sealed_config(tmp_path, KEY_A))  # a new process, the same key
        result = await import_snapshot(store, out, collection="copy", sealer=again)
        assert result.written == len(records)
        assert_same(await everything(store, "copy"), {r.id: r for r in records})


async def test_a_sealed_snapshot_with_a_tampered_record_is_refused(tmp_path):
    """Sealed text is bound to its record id: moved to another record it does not open."""
    from vpa.crypto import DecryptionError

    sealer = SnapshotSealer.from_config(sealed_config(tmp_path, KEY_A))
    async with opened("memory", tmp_path / "m") as store:
        await seed(store, "docs", secret_records(), 8)
        await export_collection(store, "docs", tmp_path / "snap", sealer=sealer)
        data_file = next((tmp_path / "snap").glob("*.parquet"))
        table = pq.read_table(data_file)
        texts = table.column("text").to_pylist()
        texts[0], texts[1] = texts[1], texts[0]
        table = table.set_column(2, table.schema.field("text"), pa.array(texts, pa.string()))
        pq.write_table(table, data_file)
        blob = data_file.read_bytes()
        _rewrite_manifest(tmp_path / "snap", lambda d: d["files"][0].update(
            bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest()))
        with pytest.raises(DecryptionError):
            await import_snapshot(store, tmp_path / "snap", collection="copy", sealer=sealer)
        assert await store.count("copy") == 0  # the batch failed to open before it was written


# --- 6. migrate -----------------------------------------------------------------------------------------


def migrate_records(count: int = 300, dim: int = 16) -> list[Record]:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(count, dim)).astype(np.float32)
    return [
        Record(f"m{i:04}", vectors[i], f"text {i} ✓",
               {"i": i, "f": i / 7, "g": f"g{i % 5}", "ok": i % 3 == 0, "tags": [f"t{i % 4}"],
                "when": dt.datetime(2020, 1, 1, tzinfo=PST) + dt.timedelta(hours=i)})
        for i in range(count)
    ]


@pytest.mark.parametrize(("source_engine", "target_engine"), [("memory", "chroma"), ("chroma", "memory"),
                                                              ("memory", "qdrant")])
async def test_migrate_copies_and_verifies(tmp_path, source_engine, target_engine):
    records = migrate_records()
    fingerprint = EmbedderFingerprint("hashing", "m", 16)
    async with (
        opened(source_engine, tmp_path / "source") as source,
        opened(target_engine, tmp_path / "target") as target,
    ):
        await seed(source, "docs", records, 16, fingerprint)
        summary = await migrate(source, "docs", target, "copy", sample=50, queries=10)
        assert (summary.records, summary.written, summary.skipped) == (len(records), len(records), 0)
        verification = summary.verification
        assert verification is not None
        assert (verification.count_source, verification.count_target, verification.sampled) == (300, 300, 50)
        assert verification.overlap >= verification.required_overlap == required_overlap(source, target)
        assert (await target.open_collection("copy")).fingerprint == fingerprint
        assert_same(await everything(target, "copy"), {r.id: r for r in records})

        again = await migrate(source, "docs", target, "copy", sample=50, queries=10)  # resumable, idempotent
        assert (again.written, again.skipped) == (0, len(records))

        # the target changed behind the copy's back: verification names what differs
        changed = records[42]
        altered = Record(changed.id, changed.vector, changed.text, {**changed.metadata, "g": "zz"})
        await target.upsert("copy", [altered])
        await target.settle("copy")
        with pytest.raises(VerificationFailed, match=r"m0042.*metadata 'g'"):
            await verify_copy(source, "docs", target, "copy", [records[1].id, changed.id])
        await target.upsert("copy", [Record(changed.id, changed.vector, "other text", changed.metadata)])
        await target.settle("copy")
        with pytest.raises(VerificationFailed, match="differs in the target: text"):
            await verify_copy(source, "docs", target, "copy", [changed.id])
        await target.delete("copy", ids=[changed.id])
        await target.settle("copy")
        with pytest.raises(VerificationFailed, match="299 records, the source 300"):
            await verify_copy(source, "docs", target, "copy", [changed.id])


async def test_migrate_with_a_filter_and_a_missing_record(tmp_path):
    records = migrate_records(100)
    async with opened("memory", tmp_path / "a") as source, opened("memory", tmp_path / "b") as target:
        await seed(source, "docs", records, 16)
        summary = await migrate(source, "docs", target, filter={"g": "g1"}, sample=100)
        assert summary.records == summary.written == 20
        copied = sorted(r.id for r in records if r.metadata["g"] == "g1")
        assert sorted(await everything(target, "docs")) == copied
        # records[0] is in g0: not copied
        with pytest.raises(VerificationFailed, match="missing from the target"):
            await verify_copy(source, "docs", target, "docs", [records[0].id], filter={"g": "g1"})
        with pytest.raises(ValidationError, match="different target"):
            await migrate(source, "docs", source)


async def test_required_overlap_follows_the_declared_recall(tmp_path):
    pytest.importorskip("vpa_chroma")
    pytest.importorskip("vpa_qdrant")
    memory, chroma, qdrant = (make_store(e, tmp_path / e) for e in ENGINES)
    try:
        assert (memory.capabilities.exact, chroma.capabilities.exact) == (True, False)
        assert required_overlap(memory, memory) == 1.0
        assert required_overlap(memory, qdrant) == 1.0  # local mode is exact (brute force)
        assert chroma.capabilities.min_recall == pytest.approx(0.9)
        assert required_overlap(memory, chroma) == pytest.approx(0.9)
        assert required_overlap(chroma, memory) == required_overlap(memory, chroma)
        assert required_overlap(chroma, chroma) == pytest.approx(0.8)
    finally:
        for store in (memory, chroma, qdrant):
            await store.close()


# --- 7. backup and restore -----------------------------------------------------------------------------


def two_collections() -> dict[str, list[Record]]:
    rng = np.random.default_rng(5)
    return {
        "alpha": [Record(f"a{i}", rng.normal(size=8), f"alpha {i}", {"i": i}) for i in range(40)],
        "beta": varied_records(8),
    }


async def _backed_up(tmp_path: Path) -> tuple[Path, Path, dict[str, list[Record]]]:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{"name": "app", "hash": "sha256:" + "ab" * 32}]}))
    data = two_collections()
    async with opened("memory", tmp_path / "source") as store:
        for name, records in data.items():
            await seed(store, name, records, 8)
        summary = await backup(store, tmp_path / "backup", key_file=keys)
    assert summary.key_file and [c.collection for c in summary.collections] == ["alpha", "beta"]
    assert not list(tmp_path.glob("*.partial-*"))
    return tmp_path / "backup", keys, data


async def test_backup_then_restore_into_a_fresh_store(tmp_path):
    folder, keys, data = await _backed_up(tmp_path)
    assert json.loads((folder / "backup.json").read_text())["format"] == "vpa-backup"
    assert (folder / "keys.json").stat().st_mode & 0o777 == 0o600
    restored_keys = tmp_path / "fresh" / "keys.json"
    async with opened("memory", tmp_path / "fresh" / "memory") as store:
        summary = await restore(store, folder, key_file=restored_keys)
        assert summary.key_file == "restored"
        assert sorted(await store.list_collections()) == ["alpha", "beta"]
        for name, records in data.items():
            assert_same(await everything(store, name), {r.id: r for r in records})
    assert restored_keys.read_bytes() == keys.read_bytes()
    assert restored_keys.stat().st_mode & 0o777 == 0o600


async def test_restore_into_a_busy_store_changes_nothing(tmp_path):
    folder, _keys, _data = await _backed_up(tmp_path)
    restored_keys = tmp_path / "target-keys.json"
    intruder = [Record("other", np.ones(8), "already here", {"x": 1})]
    async with opened("memory", tmp_path / "target") as store:
        await seed(store, "beta", intruder, 8)
        with pytest.raises(CollectionNotEmpty, match="beta"):
            await restore(store, folder, key_file=restored_keys)
        assert await store.list_collections() == ["beta"]  # alpha was not created
        assert_same(await everything(store, "beta"), {"other": intruder[0]})
    assert not restored_keys.exists()


async def test_restore_with_overwrite_ends_exactly_as_the_backup(tmp_path):
    folder, _keys, data = await _backed_up(tmp_path)
    async with opened("memory", tmp_path / "target") as store:
        beta = data["beta"]
        stale = [Record("extra-1", np.ones(8), "extra", {}), Record("extra-2", -np.ones(8), "extra", {}),
                 Record(beta[0].id, beta[0].vector, "changed text", beta[0].metadata)]
        await seed(store, "beta", stale, 8)
        await seed(store, "unrelated", [Record("u", np.ones(8), "kept", {})], 8)
        summary = await restore(store, folder, overwrite=True)
        by_name = {c.collection: c for c in summary.collections}
        assert (by_name["beta"].removed, by_name["beta"].replaced) == (2, 1)
        assert by_name["alpha"].written == len(data["alpha"])
        for name, records in data.items():
            assert_same(await everything(store, name), {r.id: r for r in records})
        assert [r.text for r in (await everything(store, "unrelated")).values()] == ["kept"]


async def test_a_damaged_backup_restores_nothing(tmp_path):
    folder, _keys, _data = await _backed_up(tmp_path)
    _flip_byte(folder / "collections" / "beta")
    async with opened("memory", tmp_path / "target") as store:
        with pytest.raises(SnapshotError, match="checksum"):
            await restore(store, folder, key_file=tmp_path / "k.json")
        assert await store.list_collections() == []
    assert not (tmp_path / "k.json").exists()


async def test_a_sealed_backup_needs_its_key(tmp_path):
    sealer = SnapshotSealer.from_config(sealed_config(tmp_path, KEY_A))
    async with opened("memory", tmp_path / "source") as store:
        await seed(store, "docs", secret_records(), 8)
        await backup(store, tmp_path / "backup", sealer=sealer)
    assert b"marmalade" not in all_bytes(tmp_path / "backup")
    async with opened("memory", tmp_path / "target") as store:
        with pytest.raises(EncryptionKeyMismatch):
            await restore(store, tmp_path / "backup")
        with pytest.raises(EncryptionKeyMismatch):
            other = SnapshotSealer.from_config(sealed_config(tmp_path, KEY_B))
            await restore(store, tmp_path / "backup", sealer=other)
        assert await store.list_collections() == []
        await restore(store, tmp_path / "backup", sealer=sealer)
        assert_same(await everything(store, "docs"), {r.id: r for r in secret_records()})
