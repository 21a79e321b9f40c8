"""Durability of the memory store with real processes: a full disk, kill -9, a second owner,
file modes. Each scenario runs tests/durability/driver.py in a subprocess that prints every write
only after it was acknowledged, kills it with SIGKILL where it applies, then reopens the folder and
checks that every acknowledged record is there, whole, and that no failed write is.

The disk-full scenario uses a real 6 MiB tmpfs when this process may mount one (root), and
otherwise — and always, in its own case — an injected ENOSPC after a byte budget in the driver,
so it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "durability"))
from driver import expected
from vpa.errors import DataFolderLocked, StorageFull
from vpa.stores.memory import MemoryStore

DRIVER = Path(__file__).parent / "durability" / "driver.py"
VPA = str(Path(sys.executable).parent / "vpa")
TIMEOUT = 20.0


class Driver:
    """A driver subprocess whose stdout lines arrive on a queue (so reads have a deadline)."""

    def __init__(self, *args: str, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_line(self, deadline: float) -> str | None:
        try:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"driver silent for too long; so far: {self.lines[-5:]}") from None
        if line is not None:
            self.lines.append(line)
        return line

    def until(self, word: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if line is None:
                raise AssertionError(f"driver exited before {word!r}: {self.stderr()}")
            if line.split(" ", 1)[0] == word:
                return line

    def kill(self) -> None:
        """SIGKILL by PID, reap it, and collect every line it printed before dying."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read() if self.proc.stderr else ""

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()


def acked_ids(lines: list[str]) -> list[str]:
    return [i for line in lines if line.startswith("ack ") for i in line.split(" ", 1)[1].split(",")]


async def _load(folder: Path, ids: list[str]) -> dict[str, object]:
    store = MemoryStore(folder)
    try:
        await store.open_collection("c")
        return {r.id: r for r in await store.get("c", ids)}
    finally:
        await store.close()


def load(folder: Path, ids: list[str]) -> dict[str, object]:
    return asyncio.run(_load(folder, ids))


def abandon(store: MemoryStore) -> None:
    """Let go of a store as a killed process would: its descriptors (and so its folder lock) are
    closed, nothing is flushed or snapshotted."""
    for files in store._files.values():
        files.close()
    if store._owner is not None:
        store._owner.release()


def assert_whole(found: dict[str, object], ids: list[str], text_bytes: dict[str, int] | None = None) -> None:
    for id_ in ids:
        want, got = expected(id_), found[id_]
        assert got.text.startswith(f"{id_} ✓ ") and set(got.text[len(id_) + 3 :]) <= {"x"}, id_
        if text_bytes is None:
            assert got.text == want.text, id_
        assert got.metadata == want.metadata, id_
        np.testing.assert_array_equal(np.asarray(got.vector, np.float32), want.vector)


# --- 1. a full disk, then kill -9 ---------------------------------------------------------------


@contextlib.contextmanager
def small_disk(tmp_path: Path, fault: str) -> Iterator[tuple[Path, str, str]]:
    """(folder, mount, fault): a 6 MiB tmpfs for fault "tmpfs" if mount is permitted, else injection."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    mounted = False
    if fault == "tmpfs":
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        mounted = result.returncode == 0
        if not mounted:
            fault = "inject"  # no privilege to mount here: the injected ENOSPC stands in
    try:
        yield mount / "memory", str(mount), fault
    finally:
        if mounted:
            for _attempt in range(50):
                if (
                    subprocess.run(
                        ["umount", str(mount)], capture_output=True, timeout=TIMEOUT, check=False
                    ).returncode
                    == 0
                ):
                    break
                time.sleep(0.1)
            else:
                subprocess.run(
                    ["umount", "-l", str(mount)], capture_output=True, timeout=TIMEOUT, check=False
                )


@pytest.mark.parametrize("fault", ["tmpfs", "inject"])
def test_disk_full_then_kill_loses_no_acknowledged_write(tmp_path, fault):
    """An append that fails mid-frame (ENOSPC) is rolled back: the 30 writes acknowledged after
    space came back survive kill -9, and nothing of the failed writes is stored."""
    with (
        small_disk(tmp_path, fault) as (folder, mount, fault),
        Driver("fill", str(folder), mount, fault) as driver,
    ):
        driver.until("done")
        driver.kill()
        failed = [line.split(" ") for line in driver.lines if line.startswith("failed ")]
        assert len(failed) == 3, driver.lines
        failed_ids = [i for line in failed for i in line[1].split(",")]
        acked = acked_ids(driver.lines)
        assert len(acked) == 40
        found = load(folder, acked + failed_ids)
        lost = [i for i in acked if i not in found]
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost: {lost[:3]}..."
        assert_whole(found, acked)
        assert not [i for i in failed_ids if i in found], "a failed write was stored"
        for _, _, error, *message in failed:
            assert error == "StorageFull", (error, message)
            assert "\\n" not in " ".join(message)


# --- 5. kill -9 at a random point of a stream of writes ------------------------------------------


def test_kill_9_during_writes_loses_no_acknowledged_write(tmp_path):
    """Three writer processes in turn on one folder (upserts, deletes, and a snapshot whenever the
    journal outgrows 96 KiB and the snapshot), each SIGKILLed after a seeded-random number of
    acknowledged writes plus a random delay. After each kill every acknowledged upsert is present
    and whole, every acknowledged delete absent."""
    folder = tmp_path / "memory"
    rng = random.Random(13)
    present: set[str] = set()
    deleted: set[str] = set()
    for round_ in range(3):
        with Driver("writer", str(folder), str(round_)) as driver:
            driver.until("ready")
            for _ in range(rng.randint(5, 60)):
                driver.until("ack")
            time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next write (or snapshot)
            driver.kill()
        uncertain: set[str] = set()
        for line in driver.lines:
            word, _, rest = line.partition(" ")
            ids = set(rest.split(",")) if rest else set()
            if word == "ack":
                present |= ids
            elif word == "try-del":
                uncertain |= ids  # killed mid-delete: either outcome is allowed
                present -= ids
            elif word == "del":
                uncertain -= ids
                deleted |= ids
        found = load(folder, sorted(present | deleted))
        lost = sorted(present - set(found))
        assert not lost, f"round {round_}: {len(lost)} of {len(present)} acknowledged records lost"
        assert not (deleted - uncertain) & set(found), f"round {round_}: deleted records came back"
        assert_whole(found, sorted(present), text_bytes={})
    assert len(present) > 50


# --- 2. one owner per data folder ----------------------------------------------------------------


def test_a_second_process_cannot_take_a_held_data_folder(tmp_path):
    """`vpa ingest` while another process (a RAG system, as `vpa serve` runs it) holds the data
    folder exits 2 with one line naming the owner's PID; after the owner closed, ingest works and
    both processes' documents are there."""
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ingested.txt").write_text("A document the ingest command wrote.")
    env = {**os.environ, "VPA_DATA_DIR": str(data), "VPA_EMBEDDER": "hashing", "VPA_LOG_LEVEL": "WARNING"}

    def vpa(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([VPA, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)

    with Driver("hold", str(data), stdin=True) as holder:
        pid = int(holder.until("holding").split()[1])
        refused = vpa("ingest", str(docs))
        assert refused.returncode == 2, (refused.stdout, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert str(data / "memory") in lines[0] and f"PID {pid}" in lines[0], lines[0]
        assert holder.proc.stdin is not None
        holder.proc.stdin.write("close\n")
        holder.proc.stdin.flush()
        holder.until("closed")
        assert holder.proc.wait(timeout=TIMEOUT) == 0
    accepted = vpa("ingest", str(docs))
    assert accepted.returncode == 0, accepted.stderr
    stats = vpa("stats", "--json")
    assert stats.returncode == 0 and json.loads(stats.stdout)["documents"] == 2, (stats.stdout, stats.stderr)


def test_one_owner_per_folder_across_processes_and_instances(tmp_path):
    folder = tmp_path / "memory"
    with Driver("hold-store", str(folder), stdin=True) as holder:
        pid = int(holder.until("holding").split()[1])
        store = MemoryStore(folder)  # constructing does no I/O; the first use takes the folder
        with pytest.raises(DataFolderLocked, match=rf"PID {pid}\b") as info:
            asyncio.run(store.open_collection("c"))
        assert "\n" not in str(info.value) and str(folder) in str(info.value)
        holder.kill()  # the kernel releases a dead owner's lock
    assert sorted(load(folder, ["h0"])) == ["h0"]

    async def same_process() -> None:
        first, second = MemoryStore(folder), MemoryStore(folder)
        await first.open_collection("c")
        with pytest.raises(DataFolderLocked, match=rf"PID {os.getpid()}\b"):
            await second.open_collection("c")
        await first.close()
        assert await second.count("c") == 1  # a closed owner released it
        await second.upsert("c", [expected("h1")])
        await second.close()
        third = MemoryStore(folder)
        assert await third.count("c") == 2
        await third.close()

    asyncio.run(same_process())


# --- 3. file modes -------------------------------------------------------------------------------


def test_data_folder_and_files_are_private_whatever_the_umask(tmp_path):
    folder = tmp_path / "memory"
    with Driver("perms", str(folder)) as driver:
        written = driver.until("written").split()[1:]
        closed = driver.until("closed").split()[1:]
        assert driver.proc.wait(timeout=TIMEOUT) == 0
    assert {n for n in written if n.endswith(".log")} and {n for n in closed if n.endswith(".npz")}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert set(modes) >= set(written) | set(closed)
    assert modes == dict.fromkeys(modes, 0o600), modes

    # A folder left world-readable by an older version is tightened when it is opened.
    os.chmod(folder, 0o755)
    for path in folder.iterdir():
        os.chmod(path, 0o644)

    async def reopen() -> None:
        store = MemoryStore(folder)
        await store.upsert("c", [expected("p1")])
        await store.close()

    asyncio.run(reopen())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == dict.fromkeys(modes, 0o600), modes


def test_a_full_disk_is_storage_full_and_a_failed_write_changes_nothing(tmp_path, monkeypatch):
    """ENOSPC injected in-process. A snapshot (create_collection) removes its temporary file and
    raises StorageFull; an upsert or delete that cannot be journaled changes neither the files nor
    what reads see; a snapshot that fails *after* a journaled write (compaction) is logged and the
    write stands."""
    import vpa.stores.memory as memory

    full = {"pwrite": False, "write": False}
    real_pwrite, real_write = os.pwrite, os.write

    def check(kind: str) -> None:
        if full[kind]:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(
        os, "pwrite", lambda fd, data, offset: check("pwrite") or real_pwrite(fd, data, offset)
    )
    monkeypatch.setattr(os, "write", lambda fd, data: check("write") or real_write(fd, data))
    monkeypatch.setattr(memory, "MIN_COMPACTION_BYTES", 4096)

    async def scenario() -> None:
        store = MemoryStore(tmp_path)
        await store.create_collection("c", 16)
        await store.upsert("c", [expected("s0")])
        full["write"] = full["pwrite"] = True
        with pytest.raises(StorageFull) as info:
            await store.create_collection("d", 16)
        assert "\n" not in str(info.value) and "d.vpa.npz" in str(info.value)
        with pytest.raises(StorageFull, match="rolled back"):
            await store.upsert("c", [expected("s1")])
        with pytest.raises(StorageFull):
            await store.delete("c", ids=["s0"])
        assert await store.count("c") == 1 and await store.list_collections() == ["c"]
        assert [r.id for r in await store.get("c", ["s0", "s1"])] == ["s0"]
        full["pwrite"] = False  # the journal can grow, a snapshot cannot be written
        for k in range(2, 8):  # past MIN_COMPACTION_BYTES: each compaction attempt fails
            await store.upsert("c", [expected(f"s{k}", 1000)])
        assert await store.count("c") == 7
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        full["write"] = False
        abandon(store)  # as by kill -9: no close(), no snapshot; the journal is what survives

    asyncio.run(scenario())
    assert sorted(load(tmp_path, [f"s{k}" for k in range(8)])) == ["s0"] + [f"s{k}" for k in range(2, 8)]


def _frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each frame in a journal's bytes."""
    out, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "little")
        out.append((offset, 8 + length))
        offset += 8 + length
    return out


def _damage(data: bytes, how: str) -> bytes:
    frames = _frames(data)
    (mid, mid_size), (last, last_size) = frames[2], frames[-1]
    if how == "torn tail":  # half the last frame written, then zeros a crash may leave
        return data[: last + last_size // 2] + b"\x00" * 300
    if how == "flipped tail":
        return (
            data[: last + last_size // 2]
            + bytes([data[last + last_size // 2] ^ 0xFF])
            + data[last + last_size // 2 + 1 :]
        )
    if how == "flipped middle":  # bit rot in frame 2 of 5
        return (
            data[: mid + mid_size // 2]
            + bytes([data[mid + mid_size // 2] ^ 0xFF])
            + data[mid + mid_size // 2 + 1 :]
        )
    assert how == "torn middle"  # what a failed append left before the rollback: half a frame, then more
    return data[: mid + mid_size // 2] + data[mid + mid_size :]


@pytest.mark.parametrize("how", ["torn tail", "flipped tail", "flipped middle", "torn middle"])
def test_replay_drops_only_a_damaged_tail(tmp_path, how):
    """Replay cuts off a damaged *last* frame (the write a crash interrupted, never acknowledged).
    A damaged frame with valid frames after it cannot come from a crash: DataCorrupted, naming
    the journal and the offset, with the journal left exactly as it was."""
    from vpa.errors import DataCorrupted

    ids = [f"k{i}" for i in range(5)]

    async def write() -> None:
        store = MemoryStore(tmp_path)
        await store.create_collection("c", 16)
        for id_ in ids:
            await store.upsert("c", [expected(id_)])
        abandon(store)  # as by kill -9: no close(), no snapshot; the journal is what survives

    asyncio.run(write())
    journal = next(tmp_path.glob("*.vpa.log"))
    damaged = _damage(journal.read_bytes(), how)
    journal.write_bytes(damaged)
    if how.endswith("tail"):
        assert sorted(load(tmp_path, ids)) == ids[:-1]
        return
    offset = _frames(damaged)[2][0]
    with pytest.raises(DataCorrupted, match=rf"journal {journal} is damaged at byte {offset}\b") as info:
        load(tmp_path, ids)
    assert "\n" not in str(info.value)
    assert journal.read_bytes() == damaged  # nothing dropped, nothing truncated


def test_a_rollback_that_fails_refuses_writes_until_repaired(tmp_path, monkeypatch):
    """If truncating a torn frame away fails too, the journal is broken: every later write is
    refused with StorageFull (and changes nothing) until the rollback succeeds on a retry."""
    fault = {"write": True, "truncate": True}
    real_pwrite, real_ftruncate = os.pwrite, os.ftruncate

    def pwrite(fd, data, offset):
        if fault["write"]:
            real_pwrite(fd, memoryview(data)[:100], offset)  # a torn frame
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data, offset)

    def ftruncate(fd, length):
        if fault["truncate"]:
            raise OSError(5, "Input/output error")
        return real_ftruncate(fd, length)

    async def scenario() -> None:
        store = MemoryStore(tmp_path)
        await store.create_collection("c", 16)
        await store.upsert("c", [expected("g0")])
        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(os, "ftruncate", ftruncate)
        with pytest.raises(StorageFull, match="could not be rolled back"):
            await store.upsert("c", [expected("bad0")])
        fault["write"] = False  # space is back, but the torn frame is still there
        with pytest.raises(StorageFull, match="refused until it is repaired"):
            await store.upsert("c", [expected("bad1")])
        with pytest.raises(StorageFull, match="refused"):
            await store.delete("c", ids=["g0"])
        assert await store.count("c") == 1 and [
            r.id for r in await store.get("c", ["g0", "bad0", "bad1"])
        ] == ["g0"]
        fault["truncate"] = False  # the next write repairs the journal first
        await store.upsert("c", [expected("g1")])
        abandon(store)  # as by kill -9: no close(), no snapshot; the journal is what survives

    asyncio.run(scenario())
    monkeypatch.undo()
    assert sorted(load(tmp_path, ["g0", "g1", "bad0", "bad1"])) == ["g0", "g1"]
