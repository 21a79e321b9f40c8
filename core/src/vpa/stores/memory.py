"""The built-in `memory` store: exact cosine search in numpy, optionally persisted to a folder.

It is the reference the conformance suite compares other stores against, and the default for
demos and small apps. With a folder, every write is journaled and fsynced before it returns, and
snapshots are replaced atomically (see `vpa.stores.memory_files` for the exact rules): a crash
never leaves a torn file, and an acknowledged write is never lost — not under kill -9, and not after
a full disk. Heavy work (search, writes, file I/O) runs in a worker thread under one lock, so the
event loop is never blocked and concurrent callers are safe.

Durability, call by call:

- A write is appended to the journal first and applied to the in-memory table only once the
  append is durable. A write that fails (`StorageFull` on a full disk, `StoreError` otherwise)
  changes nothing: not the files (the append is rolled back), not what reads see, not a later
  snapshot. Folding the journal into a snapshot after a write is housekeeping: if that fails the
  write still stands (it is in the journal), the failure is logged and retried later.
- One process owns a data folder at a time. Constructing a store does no I/O; its first use takes
  the folder (creating it 0700) with an OS lock and ``close()`` releases it. Another process, or a
  second store in this process, gets `DataFolderLocked` naming the owner's PID until then. A dead
  owner's lock is released by the kernel, so a store opens after its process was killed.
- ``close()`` folds each journal into its snapshot so the next open is a single read; if the disk
  is full it logs that and leaves the journal, which loses nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import threading
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vpa.errors import CollectionNotFound, StoreError
from vpa.filters import Node, evaluate
from vpa.hookspecs import hookimpl
from vpa.lexical import Bm25Index
from vpa.log import get_logger
from vpa.models import CollectionInfo, Hit, Record, contract_1_1, from_json_dict, to_json_dict
from vpa.offload import Offloader
from vpa.settings import setting
from vpa.stores.base import VectorStore
from vpa.stores.memory_files import SNAPSHOT_SUFFIX, Cipher, CollectionFiles, FolderLock, sweep_leftovers
from vpa.stores.memory_filter import ColumnIndex

log = get_logger("vpa.stores.memory")

#: Fold the journal into a new snapshot once it is larger than this and than the snapshot.
MIN_COMPACTION_BYTES = 8 * 1024 * 1024


class _Table:
    """One collection: parallel arrays and lists, row-indexed, with swap-remove deletes."""

    def __init__(self, info: CollectionInfo, capacity: int = 64) -> None:
        self.info = info
        self.ids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.vectors = np.zeros((capacity, info.dimension), dtype=np.float32)
        self.inv_norms = np.zeros(capacity, dtype=np.float32)
        self.texts: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self._index: ColumnIndex | None = None  # filter columns, dropped on every write
        self._order: tuple[list[str], np.ndarray] | None = None  # ids sorted, and their rows (scroll)
        self._lexical: Bm25Index | None = None  # BM25 of the texts by id: built on first use, then kept

    @property
    def size(self) -> int:
        return len(self.ids)

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows (before a write is journaled, so applying it cannot fail)."""
        self._grow(self.size + extra)

    def _grow(self, needed: int) -> None:
        capacity = self.vectors.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2)
        vectors = np.zeros((new_capacity, self.info.dimension), dtype=np.float32)
        vectors[: self.size] = self.vectors[: self.size]
        inv_norms = np.zeros(new_capacity, dtype=np.float32)
        inv_norms[: self.size] = self.inv_norms[: self.size]
        self.vectors, self.inv_norms = vectors, inv_norms

    def upsert(self, ids: list[str], matrix: np.ndarray, texts: list[str], metadata: list[dict[str, Any]]) -> None:
        self._index = None
        self._order = None
        rows = np.empty(len(ids), dtype=np.int64)
        self._grow(self.size + len(ids))
        if self._lexical is not None:
            for id_, text in zip(ids, texts, strict=True):
                self._lexical.set(id_, text)
        for i, (id_, text, meta) in enumerate(zip(ids, texts, metadata, strict=True)):
            row = self.row_of.get(id_)
            if row is None:
                row = len(self.ids)
                self.row_of[id_] = row
                self.ids.append(id_)
                self.texts.append(text)
                self.metadata.append(meta)
            else:
                self.texts[row] = text
                self.metadata[row] = meta
            rows[i] = row
        self.vectors[rows] = matrix
        self.inv_norms[rows] = 1.0 / np.linalg.norm(matrix, axis=1)

    def delete_ids(self, ids: list[str]) -> list[str]:
        """Remove the rows of those ids that exist; returns the ids removed."""
        removed = [i for i in dict.fromkeys(ids) if i in self.row_of]
        if removed:
            self._index = None
            self._order = None
            if self._lexical is not None:
                for id_ in removed:
                    self._lexical.remove(id_)
        for row in sorted((self.row_of[i] for i in removed), reverse=True):
            last = self.size - 1
            del self.row_of[self.ids[row]]
            if row != last:
                self.ids[row] = self.ids[last]
                self.texts[row] = self.texts[last]
                self.metadata[row] = self.metadata[last]
                self.vectors[row] = self.vectors[last]
                self.inv_norms[row] = self.inv_norms[last]
                self.row_of[self.ids[row]] = row
            self.ids.pop()
            self.texts.pop()
            self.metadata.pop()
        return removed

    def set_metadata(self, ids: list[str], metadata: list[dict[str, Any]]) -> None:
        """Replace the metadata of existing rows (an update: vectors and texts untouched)."""
        self._index = None
        for id_, meta in zip(ids, metadata, strict=True):
            row = self.row_of.get(id_)
            if row is not None:
                self.metadata[row] = meta

    def scroll(self, node: Node | None, limit: int, after: str | None) -> tuple[list[int], str | None]:
        """Up to ``limit`` matching rows in id order after the id ``after``, and the id to resume
        after (None at the end): a key, so records that stay are seen once whatever else changes."""
        if self._order is None:
            ordered = sorted(self.ids)
            self._order = (ordered, np.array([self.row_of[i] for i in ordered], dtype=np.int64))
        ordered, rows = self._order
        start = 0 if after is None else bisect.bisect_right(ordered, after)
        candidates = rows[start:]
        mask = self.mask(node)
        if mask is not None:
            candidates = candidates[mask[candidates]]
        taken = candidates[:limit].tolist()
        following = self.ids[taken[-1]] if len(candidates) > limit else None
        return taken, following

    def mask(self, node: Node | None) -> np.ndarray | None:
        if node is None:
            return None
        if self._index is None:
            self._index = ColumnIndex(self.metadata)
        return self._index.mask(node)

    def lexical(self) -> Bm25Index:
        """The BM25 index of the texts: built on the first lexical query, then kept current by
        every upsert and delete (a collection never searched by words pays nothing for it)."""
        if self._lexical is None:
            index = Bm25Index()
            for id_, text in zip(self.ids, self.texts, strict=True):
                index.set(id_, text)
            self._lexical = index
        return self._lexical

    def record(self, row: int) -> Record:
        return Record(self.ids[row], self.vectors[row], self.texts[row], self.metadata[row])

    def document(self) -> dict[str, Any]:
        return {"info": to_json_dict(self.info), "dimension": self.info.dimension, "ids": self.ids,
                "texts": self.texts, "metadata": self.metadata}

    @classmethod
    def load(cls, files: CollectionFiles) -> _Table:
        document, vectors = files.read_snapshot()
        table = cls(from_json_dict(document["info"], CollectionInfo), capacity=max(64, len(document["ids"])))
        if document["ids"]:
            table.upsert(document["ids"], vectors, document["texts"], document["metadata"])
        for entry, entry_vectors in files.replay(table.info.dimension):
            if entry["op"] == "upsert":
                table.upsert(entry["ids"], entry_vectors, entry["texts"], entry["metadata"])
            elif entry["op"] == "update":
                table.set_metadata(entry["ids"], entry["metadata"])
            else:
                table.delete_ids(entry["ids"])
        return table


@attrs.frozen
class MemorySettings:
    """``[providers.memory]``."""

    persist: bool = setting(True, "keep collections in files (journal + snapshots); false: this process only")
    path: str | None = setting(None, "the folder (default: VPA_DATA_DIR/memory)")


class MemoryStore(VectorStore):
    """Exact search over numpy arrays; ``path=None`` keeps everything in this process only."""

    capabilities = contract_1_1(exact=True, persistent=True, native_update=True, lexical_search=True)
    settings_class = MemorySettings
    provider = "memory"

    def __init__(self, path: str | os.PathLike[str] | None = None, *, cipher: Cipher | None = None) -> None:
        super().__init__()
        self.path = Path(path) if path is not None else None
        self._cipher = cipher
        #: True when this store encrypts what it writes to disk (the RAG layer then leaves text clear).
        self.encrypts_at_rest = cipher is not None
        # No I/O here: the first call that touches the folder takes it (see _open_folder).
        self._owner = FolderLock(self.path) if self.path is not None else None
        self._tables: dict[str, _Table] = {}
        self._files: dict[str, CollectionFiles] = {}
        self._lock = threading.RLock()
        self._offload = Offloader()

    @classmethod
    def from_config(cls, config: Any) -> MemoryStore:
        from vpa.config import not_applicable

        settings = cls.settings_from(config)
        not_applicable(config, "connection_pool_size", "the memory store has no connections to pool")
        cipher = None
        if config.encrypt_at_rest:  # AES-256-GCM over every snapshot and journal frame
            from vpa.crypto import cipher_from_config

            cipher = cipher_from_config(config)
        path = Path(settings.path or Path(config.data_dir) / "memory") if settings.persist else None
        return cls(path, cipher=cipher)

    # --- files (always called under self._lock, in a worker thread) ---------------------------

    def _open_folder(self) -> None:
        """Own the folder before reading or writing anything in it: create it 0700, lock it
        (`DataFolderLocked` if another store holds it), then sweep what a killed writer left."""
        if self._owner is not None and not self._owner.held:
            assert self.path is not None
            self._owner.acquire()
            try:
                sweep_leftovers(self.path)
            except BaseException:
                self._owner.release()
                raise

    def _files_for(self, name: str) -> CollectionFiles | None:
        if self.path is None:
            return None
        self._open_folder()
        files = self._files.get(name)
        if files is None:
            files = self._files[name] = CollectionFiles(self.path, name, self._cipher)
        return files

    def _table(self, name: str) -> _Table | None:
        with self._lock:
            table = self._tables.get(name)
            files = self._files_for(name)
            if table is None and files is not None and files.exists():
                table = self._tables[name] = _Table.load(files)
            return table

    def _require(self, info: CollectionInfo) -> _Table:
        table = self._table(info.name)
        if table is None:
            self.forget_collection(info.name)
            raise CollectionNotFound(info.name)
        return table

    def _journal(
        self, table: _Table, entry: dict[str, Any], vectors: np.ndarray | None = None
    ) -> CollectionFiles | None:
        """Make one write durable before it is applied; raises (changing nothing) if it cannot be."""
        files = self._files_for(table.info.name)
        if files is not None:
            files.append(entry, vectors)
        return files

    def _compact(self, table: _Table, files: CollectionFiles | None) -> None:
        """After a write was applied: fold a large journal into a snapshot. The write already
        stands, so a failure (a full disk) is logged and retried once the journal grew further."""
        if files is None:
            return
        threshold = max(MIN_COMPACTION_BYTES, files.snapshot_bytes, files.retry_compaction_at)
        if files.journal_bytes <= threshold:
            return
        try:
            files.write_snapshot(table.document(), table.vectors[: table.size])
        except StoreError as exc:
            files.retry_compaction_at = files.journal_bytes + MIN_COMPACTION_BYTES
            log.warning("memory.compaction_failed", collection=table.info.name, error=type(exc).__name__,
                        detail=str(exc))

    # --- collections ---------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        table = await asyncio.to_thread(self._table, name)
        return table.info if table is not None else None

    async def _create_collection(self, info: CollectionInfo) -> None:
        def create() -> None:
            with self._lock:
                table = _Table(info)
                files = self._files_for(info.name)
                if files is not None:
                    files.write_snapshot(table.document(), table.vectors[:0])
                self._tables[info.name] = table  # only once it is on disk

        await asyncio.to_thread(create)

    async def _list_collections(self) -> list[str]:
        with self._lock:
            if self.path is not None:
                self._open_folder()
            names = set(self._tables)
        if self.path is not None:
            names.update(p.name[: -len(SNAPSHOT_SUFFIX)] for p in self.path.glob(f"*{SNAPSHOT_SUFFIX}"))
        return list(names)

    async def _drop_collection(self, name: str) -> bool:
        with self._lock:
            if self.path is not None:
                self._open_folder()
            existed = self._tables.pop(name, None) is not None
            files = self._files.pop(name, None) or (CollectionFiles(self.path, name) if self.path else None)
            if files is not None:
                existed = existed or files.exists()
                files.remove()
        return existed

    # --- records -------------------------------------------------------------------------------

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        table = self._require(info)
        ids = [r.id for r in records]
        texts = [r.text for r in records]
        metadata = [dict(r.metadata) for r in records]

        def write() -> None:
            matrix = np.stack([r.vector for r in records])
            with self._lock:
                table.reserve(len(ids))
                entry = {"op": "upsert", "ids": ids, "texts": texts, "metadata": metadata}
                files = self._journal(table, entry, matrix)
                table.upsert(ids, matrix, texts, metadata)
                self._compact(table, files)

        await asyncio.to_thread(write)

    async def _query(self, info: CollectionInfo, vector: np.ndarray, top_k: int, node: Node | None) -> list[Hit]:
        table = self._require(info)

        def search() -> list[Hit]:  # runs holding self._lock
            n = table.size
            if n == 0:
                return []
            scores = table.vectors[:n] @ (vector / np.float32(np.linalg.norm(vector)))
            scores *= table.inv_norms[:n]
            mask = table.mask(node)
            candidates = np.flatnonzero(mask) if mask is not None else None
            pool = scores if candidates is None else scores[candidates]
            k = min(top_k, pool.shape[0])
            if k == 0:
                return []
            top = np.argpartition(-pool, k - 1)[:k] if k < pool.shape[0] else np.arange(pool.shape[0])
            top = top[np.argsort(-pool[top], kind="stable")]
            rows = top if candidates is None else candidates[top]
            return [
                Hit(table.ids[r], min(1.0, max(-1.0, float(scores[r]))), table.texts[r], table.metadata[r])
                for r in rows.tolist()
            ]

        # Small collections answer in well under a millisecond: inline then (see vpa.offload).
        return await self._offload.run((info.name, "query"), search, self._lock)

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        """Exact BM25 (`vpa.lexical.Bm25Index`, the definition), statistics over the collection."""
        table = self._require(info)

        def search() -> list[Hit]:  # runs holding self._lock
            n = table.size
            if n == 0:
                return []
            found = table.lexical().scores(terms)
            scores = np.zeros(n, dtype=np.float64)
            if found:
                rows = np.fromiter((table.row_of[i] for i in found), dtype=np.int64, count=len(found))
                scores[rows] = np.fromiter(found.values(), dtype=np.float64, count=len(found))
            mask = table.mask(node)
            keep = scores > 0 if mask is None else (scores > 0) & mask
            candidates = np.flatnonzero(keep)
            k = min(top_k, candidates.shape[0])
            if k == 0:
                return []
            pool = scores[candidates]
            top = np.argpartition(-pool, k - 1)[:k] if k < pool.shape[0] else np.arange(pool.shape[0])
            rows = candidates[top[np.argsort(-pool[top], kind="stable")]]
            return [
                Hit(table.ids[r], float(scores[r]), table.texts[r], table.metadata[r]) for r in rows.tolist()
            ]

        return await self._offload.run((info.name, "lexical"), search, self._lock)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        table = self._require(info)
        with self._lock:
            return [table.record(table.row_of[i]) for i in ids if i in table.row_of]

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        table = self._require(info)

        def remove() -> int:
            with self._lock:
                if ids is not None:
                    wanted = [i for i in ids if i in table.row_of]
                    if node is not None:
                        wanted = [i for i in wanted if evaluate(node, table.metadata[table.row_of[i]])]
                else:
                    mask = table.mask(node)
                    wanted = [table.ids[r] for r in np.flatnonzero(mask).tolist()] if mask is not None else []
                removed = list(dict.fromkeys(wanted))  # all present: journal them, then remove
                if removed:
                    files = self._journal(table, {"op": "delete", "ids": removed})
                    table.delete_ids(removed)
                    self._compact(table, files)
                return len(removed)

        return await asyncio.to_thread(remove)

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        table = self._require(info)

        def page() -> tuple[list[Record], str | None]:  # runs holding self._lock
            rows, following = table.scroll(node, limit, after)
            if with_vectors:
                return [table.record(r) for r in rows], following
            return [Record(table.ids[r], (), table.texts[r], table.metadata[r]) for r in rows], following

        return await self._offload.run((info.name, "scroll"), page, self._lock)

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],  # noqa: A002
        unset: list[str],
    ) -> int:
        """In place, journaled like every write: the new metadata of each matching record."""
        table = self._require(info)

        def change() -> int:
            with self._lock:
                if ids is not None:
                    rows = [table.row_of[i] for i in ids if i in table.row_of]
                    if node is not None:
                        rows = [r for r in rows if evaluate(node, table.metadata[r])]
                else:
                    mask = table.mask(node)
                    rows = list(range(table.size)) if mask is None else np.flatnonzero(mask).tolist()
                if not rows:
                    return 0
                changed_ids = [table.ids[r] for r in rows]
                merged = []
                for r in rows:
                    meta = {k: v for k, v in table.metadata[r].items() if k not in unset}
                    meta.update(set)
                    merged.append(meta)
                batch = self.check_records(
                    [Record(table.ids[r], table.vectors[r], table.texts[r], m) for r, m in zip(rows, merged, strict=True)],
                    info.dimension,
                )  # the merged records within every bound, before anything is written
                del batch
                files = self._journal(table, {"op": "update", "ids": changed_ids, "metadata": merged})
                table.set_metadata(changed_ids, merged)
                self._compact(table, files)
                return len(rows)

        return await asyncio.to_thread(change)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        table = self._require(info)
        if node is None:
            return table.size

        def count() -> int:  # runs holding self._lock
            mask = table.mask(node)
            return int(mask.sum()) if mask is not None else table.size

        return await self._offload.run((info.name, "count"), count, self._lock)

    async def _close(self) -> None:
        """Fold each journal into its snapshot, so the next open is a single read, and release
        the folder. A snapshot that cannot be written (a full disk) is logged: the journal keeps
        every acknowledged write, so nothing is lost."""

        def flush() -> None:
            with self._lock:
                try:
                    for name, files in self._files.items():
                        table = self._tables.get(name)
                        try:
                            if table is not None and (files.journal_bytes or files.broken is not None):
                                files.write_snapshot(table.document(), table.vectors[: table.size])
                        except StoreError as exc:
                            log.warning("memory.close_snapshot_failed", collection=name,
                                        error=type(exc).__name__, detail=str(exc))
                        finally:
                            files.close()
                finally:
                    self._files.clear()
                    self._tables.clear()
                    if self._owner is not None:
                        self._owner.release()

        await asyncio.to_thread(flush)


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register("memory", MemoryStore, description="exact numpy search, persisted to VPA_DATA_DIR/memory")
