"""The built-in `memory` store: exact cosine search in numpy, optionally persisted to a folder.

It is the reference the conformance suite compares other stores against, and the default for
demos and small apps. Each collection lives in one file, ``<data_dir>/<name>.vpa.npz``, written
whole to a temporary file, fsynced and renamed over the old one, so a crash leaves either the old
or the new state, never a torn file. Writers that arrive while a snapshot is being written are
folded into the next one (group commit), so many small concurrent writes cost few snapshots.

One process owns a data folder at a time; other processes may open it after the owner closed.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vpa.filters import Node, evaluate
from vpa.hookspecs import hookimpl
from vpa.models import CollectionInfo, Hit, Record, StoreCapabilities, from_json_dict, to_json_dict
from vpa.stores.base import VectorStore

SUFFIX = ".vpa.npz"
FORMAT_VERSION = 1


class _Table:
    """One collection: parallel arrays and lists, row-indexed, with swap-remove deletes."""

    def __init__(self, info: CollectionInfo, capacity: int = 64) -> None:
        self.info = info
        self.ids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.vectors = np.zeros((capacity, info.dimension), dtype=np.float32)
        self.norms = np.zeros(capacity, dtype=np.float32)
        self.texts: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.version = 0
        self.saved_version = 0
        self.save_lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return len(self.ids)

    def _grow(self, needed: int) -> None:
        capacity = self.vectors.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2)
        vectors = np.zeros((new_capacity, self.info.dimension), dtype=np.float32)
        vectors[: self.size] = self.vectors[: self.size]
        norms = np.zeros(new_capacity, dtype=np.float32)
        norms[: self.size] = self.norms[: self.size]
        self.vectors, self.norms = vectors, norms

    def upsert(self, records: list[Record]) -> None:
        matrix = np.stack([r.vector for r in records])
        rows = np.empty(len(records), dtype=np.int64)
        self._grow(self.size + len(records))
        for i, record in enumerate(records):
            row = self.row_of.get(record.id)
            if row is None:
                row = len(self.ids)
                self.row_of[record.id] = row
                self.ids.append(record.id)
                self.texts.append(record.text)
                self.metadata.append(dict(record.metadata))
            else:
                self.texts[row] = record.text
                self.metadata[row] = dict(record.metadata)
            rows[i] = row
        self.vectors[rows] = matrix
        self.norms[rows] = np.linalg.norm(matrix, axis=1)
        self.version += 1

    def delete_rows(self, rows: list[int]) -> int:
        for row in sorted(set(rows), reverse=True):
            last = self.size - 1
            del self.row_of[self.ids[row]]
            if row != last:
                self.ids[row] = self.ids[last]
                self.texts[row] = self.texts[last]
                self.metadata[row] = self.metadata[last]
                self.vectors[row] = self.vectors[last]
                self.norms[row] = self.norms[last]
                self.row_of[self.ids[row]] = row
            self.ids.pop()
            self.texts.pop()
            self.metadata.pop()
        if rows:
            self.version += 1
        return len(set(rows))

    def mask(self, node: Node | None) -> np.ndarray | None:
        if node is None:
            return None
        return np.fromiter((evaluate(node, m) for m in self.metadata), dtype=bool, count=self.size)

    def record(self, row: int) -> Record:
        return Record(self.ids[row], self.vectors[row], self.texts[row], self.metadata[row])

    # --- persistence ---------------------------------------------------------------------------

    def snapshot(self) -> tuple[int, np.ndarray, bytes]:
        document = {
            "format": FORMAT_VERSION,
            "info": to_json_dict(self.info),
            "ids": self.ids,
            "texts": self.texts,
            "metadata": self.metadata,
        }
        payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self.version, self.vectors[: self.size].copy(), payload

    @classmethod
    def load(cls, path: Path) -> _Table:
        with np.load(path, allow_pickle=False) as data:
            document = json.loads(bytes(data["document"]).decode("utf-8"))
            vectors = data["vectors"]
        info = from_json_dict(document["info"], CollectionInfo)
        table = cls(info, capacity=max(64, len(document["ids"])))
        table.ids = list(document["ids"])
        table.row_of = {id_: row for row, id_ in enumerate(table.ids)}
        table.texts = list(document["texts"])
        table.metadata = list(document["metadata"])
        table.vectors[: table.size] = vectors
        table.norms[: table.size] = np.linalg.norm(vectors, axis=1)
        return table


def _write_atomically(path: Path, vectors: np.ndarray, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, vectors=vectors, document=np.frombuffer(payload, dtype=np.uint8))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class MemoryStore(VectorStore):
    """Exact search over numpy arrays; ``path=None`` keeps everything in this process only."""

    capabilities = StoreCapabilities(exact=True, persistent=True)

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            for leftover in self.path.glob(f".*{SUFFIX}.*.tmp"):  # from a writer killed mid-snapshot
                leftover.unlink(missing_ok=True)
        self._tables: dict[str, _Table] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, config: Any) -> MemoryStore:
        options = config.provider_options("memory")
        persist = options.get("persist", True)
        return cls(Path(options.get("path", Path(config.data_dir) / "memory")) if persist else None)

    def _file(self, name: str) -> Path:
        assert self.path is not None
        return self.path / f"{name}{SUFFIX}"

    def _table(self, name: str) -> _Table | None:
        with self._lock:
            table = self._tables.get(name)
            if table is None and self.path is not None and self._file(name).is_file():
                table = self._tables[name] = _Table.load(self._file(name))
            return table

    def _require(self, info: CollectionInfo) -> _Table:
        from vpa.errors import CollectionNotFound

        table = self._table(info.name)
        if table is None:
            self._collections.pop(info.name, None)
            raise CollectionNotFound(info.name)
        return table

    async def _persist(self, table: _Table) -> None:
        if self.path is None:
            return
        target = table.version
        async with table.save_lock:
            if table.saved_version >= target:
                return  # a snapshot taken after our write already covers it
            with self._lock:
                version, vectors, payload = table.snapshot()
            await asyncio.to_thread(_write_atomically, self._file(table.info.name), vectors, payload)
            table.saved_version = version

    # --- collections ---------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        table = await asyncio.to_thread(self._table, name)
        return table.info if table is not None else None

    async def _create_collection(self, info: CollectionInfo) -> None:
        with self._lock:
            table = self._tables[info.name] = _Table(info)
            table.version = 1
        await self._persist(table)

    async def _list_collections(self) -> list[str]:
        with self._lock:
            names = set(self._tables)
        if self.path is not None:
            names.update(p.name[: -len(SUFFIX)] for p in self.path.glob(f"*{SUFFIX}"))
        return list(names)

    async def _drop_collection(self, name: str) -> bool:
        with self._lock:
            existed = self._tables.pop(name, None) is not None
            if self.path is not None and self._file(name).exists():
                self._file(name).unlink()
                existed = True
        return existed

    # --- records -------------------------------------------------------------------------------

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        table = self._require(info)

        def write() -> None:
            with self._lock:
                table.upsert(records)

        await asyncio.to_thread(write)
        await self._persist(table)

    async def _query(self, info: CollectionInfo, vector: np.ndarray, top_k: int, node: Node | None) -> list[Hit]:
        table = self._require(info)

        def search() -> list[Hit]:
            with self._lock:
                n = table.size
                if n == 0:
                    return []
                scores = table.vectors[:n] @ vector
                scores /= table.norms[:n] * np.float32(np.linalg.norm(vector))
                mask = table.mask(node)
                candidates = np.flatnonzero(mask) if mask is not None else None
                pool = scores if candidates is None else scores[candidates]
                k = min(top_k, pool.shape[0])
                if k == 0:
                    return []
                top = np.argpartition(-pool, k - 1)[:k]
                top = top[np.argsort(-pool[top], kind="stable")]
                rows = top if candidates is None else candidates[top]
                return [
                    Hit(table.ids[r], float(np.clip(scores[r], -1.0, 1.0)), table.texts[r], table.metadata[r])
                    for r in rows.tolist()
                ]

        return await asyncio.to_thread(search)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        table = self._require(info)
        with self._lock:
            return [table.record(table.row_of[i]) for i in ids if i in table.row_of]

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        table = self._require(info)

        def remove() -> int:
            with self._lock:
                if ids is not None:
                    rows = [table.row_of[i] for i in ids if i in table.row_of]
                    if node is not None:
                        rows = [r for r in rows if evaluate(node, table.metadata[r])]
                else:
                    mask = table.mask(node)
                    rows = np.flatnonzero(mask).tolist() if mask is not None else []
                return table.delete_rows(rows)

        removed = await asyncio.to_thread(remove)
        if removed:
            await self._persist(table)
        return removed

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        table = self._require(info)
        if node is None:
            return table.size

        def count() -> int:
            with self._lock:
                mask = table.mask(node)
                return int(mask.sum()) if mask is not None else table.size

        return await asyncio.to_thread(count)

    async def close(self) -> None:
        for table in list(self._tables.values()):
            await self._persist(table)
        with self._lock:
            self._tables.clear()
        self._collections.clear()


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "memory",
        MemoryStore.from_config,
        capabilities=MemoryStore.capabilities,
        description="exact numpy search, persisted to VPA_DATA_DIR/memory",
    )
