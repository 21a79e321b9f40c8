"""Subprocess drivers for tests/test_memory_durability.py: real processes that write to a memory
store, print what was acknowledged, and get killed with SIGKILL.

    python driver.py fill FOLDER MOUNT|- tmpfs|inject   disk full mid-frame, then 30 acknowledged writes
    python driver.py writer FOLDER ROUND                acknowledged upserts and deletes until killed
    python driver.py hold DATA_DIR                       a RAG system holding DATA_DIR, like `vpa serve`
    python driver.py hold-store FOLDER                   a bare MemoryStore holding FOLDER open
    python driver.py perms FOLDER                        writes with umask 0, then closes

Every line a driver prints about a write is printed (and flushed) only after the call returned:
``ack <id>,<id>...`` for an upsert, ``del <id>...`` for a delete, ``failed <ids> <ErrorClass>
<message>`` for a write that raised. What the records hold is a pure function of their id
(`expected`), so the parent can check that each acknowledged record came back whole.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import sys
from pathlib import Path

import numpy as np
from vpa.models import Record

DIM = 16


def expected(id_: str, text_bytes: int = 200) -> Record:
    """The record an id stands for: vector, text and metadata derived from the id alone."""
    seed = int.from_bytes(id_.encode(), "little") % (2**32)
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=DIM).astype(np.float32) + np.float32(0.01)
    text = f"{id_} ✓ " + "x" * text_bytes
    return Record(id_, vector, text, {"id": id_, "n": seed % 1000, "tags": [id_[:1], "t"]})


def say(*parts: object) -> None:
    print(*parts, flush=True)


class InjectedFullDisk:
    """Makes os.pwrite / os.write fail like a full disk: the first ``budget`` bytes land (a torn
    frame), then OSError(ENOSPC). Only the store writes in the driver, so this is its disk."""

    def __init__(self) -> None:
        self.budget: int | None = None
        self._pwrite, self._write = os.pwrite, os.write
        os.pwrite, os.write = self.pwrite, self.write  # type: ignore[assignment]

    def _allow(self, size: int) -> int:
        if self.budget is None:
            return size
        if self.budget == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        allowed = min(size, self.budget)
        self.budget -= allowed
        return allowed

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        return self._pwrite(fd, memoryview(data)[: self._allow(len(data))], offset)

    def write(self, fd: int, data: bytes) -> int:
        if fd in (1, 2):
            return self._write(fd, data)
        return self._write(fd, memoryview(data)[: self._allow(len(data))])


def fill_disk(mount: Path) -> None:
    """Fill the tmpfs at ``mount`` but for 16 KiB (less than one failing frame)."""
    reserve = mount / "reserve"
    reserve.write_bytes(b"r" * 16384)
    chunk = b"f" * 65536
    with open(mount / "filler", "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for size in (4096, 512, 1):  # top up to the last byte
            while True:
                try:
                    fh.write(b"f" * size)
                except OSError:
                    break
    reserve.unlink()


async def fill(folder: Path, mount: str, fault: str) -> None:
    from vpa.stores.memory import MemoryStore

    injected = InjectedFullDisk() if fault == "inject" else None
    store = MemoryStore(folder)
    await store.create_collection("c", DIM)
    for i in range(10):
        await store.upsert("c", [expected(f"a{i}")])
        say("ack", f"a{i}")
    if injected is not None:
        injected.budget = 16384
    else:
        fill_disk(Path(mount))
    for attempt in range(3):  # each a ~200 KiB frame: it cannot fit
        batch = [expected(f"x{attempt}-{j}", 4000) for j in range(50)]
        ids = ",".join(r.id for r in batch)
        try:
            await store.upsert("c", batch)
        except Exception as exc:
            say("failed", ids, type(exc).__name__, str(exc).replace("\n", "\\n"))
        else:
            say("ack", ids)
    if injected is not None:
        injected.budget = None
    else:
        (Path(mount) / "filler").unlink()
    for i in range(30):
        await store.upsert("c", [expected(f"b{i}")])
        say("ack", f"b{i}")
    say("done")
    await asyncio.sleep(120)  # the test kills us


async def writer(folder: Path, round_: int) -> None:
    import vpa.stores.memory as memory

    memory.MIN_COMPACTION_BYTES = 96 * 1024  # snapshots every few batches: kills land in them too
    store = memory.MemoryStore(folder)
    await store.create_collection("c", DIM)
    rng = random.Random(round_)
    say("ready")
    n = 0
    acked: list[str] = []
    while True:
        if acked and rng.random() < 0.2:
            victims = rng.sample(acked, min(len(acked), rng.randint(1, 5)))
            say("try-del", ",".join(victims))
            await store.delete("c", ids=victims)
            acked = [i for i in acked if i not in set(victims)]
            say("del", ",".join(victims))
            continue
        batch = [expected(f"r{round_}-{n + j}", rng.randint(0, 3000)) for j in range(rng.randint(1, 40))]
        n += len(batch)
        await store.upsert("c", batch)
        acked += [r.id for r in batch]
        say("ack", ",".join(r.id for r in batch))


async def hold(data_dir: Path) -> None:
    """What `vpa serve` does with the data folder: open it, write, hold it until told to stop."""
    from vpa.models import Document
    from vpa.rag import create_enhanced_rag_system

    system = create_enhanced_rag_system({"data_dir": data_dir, "embedder": "hashing", "log_level": "WARNING"})
    await system.initialize()
    await system.add_documents([Document("held.txt", "A document the serving process wrote.")])
    say("holding", os.getpid())
    await asyncio.to_thread(sys.stdin.readline)
    await system.shutdown()
    say("closed")


async def hold_store(folder: Path) -> None:
    from vpa.stores.memory import MemoryStore

    store = MemoryStore(folder)
    await store.create_collection("c", DIM)
    await store.upsert("c", [expected("h0")])
    say("holding", os.getpid())
    await asyncio.to_thread(sys.stdin.readline)
    await store.close()
    say("closed")


async def perms(folder: Path) -> None:
    from vpa.stores.memory import MemoryStore

    os.umask(0)
    store = MemoryStore(folder)
    await store.create_collection("c", DIM)
    await store.upsert("c", [expected("p0")])
    say("written", *sorted(p.name for p in folder.iterdir()))
    await store.close()
    say("closed", *sorted(p.name for p in folder.iterdir()))


def main() -> None:
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    if scenario == "fill":
        asyncio.run(fill(folder, sys.argv[3], sys.argv[4]))
    elif scenario == "writer":
        asyncio.run(writer(folder, int(sys.argv[3])))
    elif scenario == "hold":
        asyncio.run(hold(folder))
    elif scenario == "hold-store":
        asyncio.run(hold_store(folder))
    elif scenario == "perms":
        asyncio.run(perms(folder))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main()
