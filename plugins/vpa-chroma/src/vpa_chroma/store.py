"""The `chroma` store: VPA's store contract on the official ``chromadb`` client.

Two modes, chosen by the configuration (`vpa_chroma.settings.ChromaSettings`):

- **embedded** (no host set): ``chromadb.PersistentClient`` on a folder, by default
  ``<VPA_DATA_DIR>/chroma``;
- **client/server** (``VPA_VECTOR_DB_HOST`` set): ``chromadb.HttpClient`` to a Chroma server.

The client is synchronous, so every call runs in a worker thread (`run_vendor`); the client is
created on first use, never in the constructor. Collections are created with the cosine space and
carry VPA's definition in their metadata (`vpa_chroma.codec`), so a new process can describe
them. Scores are ``1 - cosine distance``.

Lexical search (embedded mode): Chroma scores no words, so the store keeps VPA's BM25 postings of
each collection beside the folder (`vpa_chroma.lexical`), followed on every upsert, delete and drop
through a journal; a lexical query ranks there and asks Chroma, with the filter, for the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import chromadb
from chromadb import errors as chroma_errors
from chromadb.config import Settings
from vpa.config import not_applicable
from vpa.errors import CollectionNotFound, ConfigError, InvalidCollection, LimitExceeded
from vpa.filters import Node
from vpa.models import CollectionInfo, Hit, Record, StoreCapabilities, contract_1_1
from vpa.stores.base import VectorStore
from vpa.validation import metadata_bytes

from vpa_chroma import codec
from vpa_chroma.errors import translate_error
from vpa_chroma.filters import scroll_where, to_native
from vpa_chroma.lexical import LexicalIndex, documents_of, index_file
from vpa_chroma.settings import ChromaSettings

T = TypeVar("T")

#: Chroma's own per-call limit (``client.get_max_batch_size()`` on chromadb 1.5); a deployment
#: that reports less lowers this store's ``max_batch_size`` once it is connected.
CHROMA_MAX_BATCH = 5461

#: Embedded writes are paced (see ``write_call_seconds``) in calls of at least this many records,
#: starting at `FIRST_WRITE_CALL`.
MIN_WRITE_CALL = 32
FIRST_WRITE_CALL = 64

#: Chroma's ef_search default (100) gives recall@10 of about 0.9 on 10k unstructured 64-d
#: vectors; 200 gives about 0.98 (clustered, realistic data: 1.0 either way). Set at creation.
HNSW_DEFAULTS = {"ef_search": 200}

#: Reads by id are cut into calls of this many records in embedded mode: chromadb builds each
#: result holding the GIL (5,000 records' metadata: 0.5-1.2 s), which would stall the event loop.
READ_CALL = 500

#: Exact ranking (see `_query`) over at most this many matching records: when the HNSW search
#: returns fewer hits than records match, or when top_k (at least `EXACT_TOP_K`) is a tenth or
#: more of the matching records, where HNSW's recall drops (0.86 at top_k 1000 of 2,000).
EXACT_FALLBACK_MAX = 20_000
EXACT_TOP_K = 100
EXACT_SHARE = 10

#: Scroll keys (`codec.SEQ_KEY`) are microseconds since this instant (2024-01-01 UTC) times 1024,
#: plus a random 0-1023: increasing in write order, 2**63 reached in the year 2309.
SEQ_EPOCH_MICROS = 1_704_067_200_000_000
SEQ_SPREAD = 1024

#: A lexical query asks Chroma for its BM25 candidates (with the filter) in chunks: the first of
#: this many times top_k (top_k alone without a filter), each next one twice the last.
LEXICAL_CHUNK_FACTOR = 4
#: Records a page while the lexical index of an existing collection is built from a scroll.
LEXICAL_BUILD_PAGE = 1000


class ChromaStore(VectorStore):
    """VPA's store contract on Chroma, embedded (``path``) or client/server (``host``)."""

    #: Both modes alike (one Rust executor over SQLite), measured through this plugin.
    capabilities = contract_1_1(
        exact=False,  # HNSW is approximate; see the README for the recall measured
        min_recall=0.9,
        max_batch_size=CHROMA_MAX_BATCH,
        persistent=True,
        # A filter compiles to one SQL expression; past SQLite's expression depth of 1000 the
        # query fails ("Expression tree is too large"), and far past it the process dies
        # (SIGSEGV: ``$or`` of ~2,900 number ``$eq`` on a server, ~5,000 embedded). The worst
        # translation is ``$not`` of an ``$and`` of ordering comparisons (3 operands a term):
        # fails at 330 terms; a wide ``$or`` of ``$eq`` at 495, an ``$in`` of strings at 900-1,000.
        max_filter_terms=200,
        # Chroma's ``where`` nests at most 63 levels; a VPA level is one (negations are pushed down).
        max_filter_depth=32,
        # A record's scalar metadata, and separately its list items, are written in one SQL
        # statement each: past 5,461 of either (32,766 variables / 6) compaction fails and leaves
        # the collection broken for every later write, read and drop. The codec adds one scalar
        # per key (its type tag) and two per record (the scroll key, the document), so 256 keys
        # and 12 KiB of metadata (at most 3,326 list items and 514 scalars with the bookkeeping)
        # stay under 2/3 of it; an update is refused past the same bounds (see `_update`).
        max_metadata_keys=256,
        max_metadata_bytes=12 * 1024,
        # scroll pages with one ``get`` of up to max_page_size + 1 records (see `_scroll`)
        max_page_size=1000,
        # update is Chroma's own metadata merge (``collection.update``), see `_update`
        native_update=True,
        # VPA's BM25 in a side index (`vpa_chroma.lexical`), embedded mode only (see `declare`);
        # hybrid queries are fused by VPA (the base class), Chroma has nothing to fuse
        lexical_search=True,
        lexical_exact=True,
        native_fusion=False,
    )
    settings_class = ChromaSettings
    provider = "chroma"

    def __init__(
        self,
        settings: ChromaSettings | None = None,
        *,
        api_key: str | None = None,
        connection_pool_size: int = 0,
        **options: Any,
    ) -> None:
        """``ChromaStore(path=...)`` or ``ChromaStore(host=..., port=..., api_key=...)``: any
        `ChromaSettings` field as a keyword, over ``settings``. No I/O."""
        try:
            settings = attrs.evolve(settings or ChromaSettings(), **options)
        except ValueError as exc:
            raise ConfigError(f"[providers.chroma]: {exc}") from None
        if (settings.path is None) == (settings.host is None):
            raise ConfigError("ChromaStore needs either a path (embedded) or a host (client/server)")
        if not isinstance(connection_pool_size, int) or connection_pool_size < 0:
            raise ConfigError(f"connection_pool_size must be 0 or more, not {connection_pool_size!r}")
        if settings.lexical and settings.host is not None:
            raise ConfigError(
                "[providers.chroma].lexical: the lexical index is kept beside an embedded folder only; a "
                "Chroma server is written by other clients too, so a side index could not follow it (README)"
            )
        super().__init__(self.declare(settings))
        self.settings = settings
        self.path = settings.path
        self._api_key = api_key
        self._pool_size = connection_pool_size
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._handles: dict[str, Any] = {}
        self._write_locks: dict[str, threading.Lock] = {}
        self._pace = FIRST_WRITE_CALL
        self._seq = 0
        self._upgraded: set[str] = set()
        #: VPA's BM25 beside the folder (None: not declared); the collections (Chroma ids) whose
        #: index this instance has checked (journal recovered, built)
        self._lexical = LexicalIndex(index_file(settings.path)) if self.capabilities.lexical_search else None
        self._lexical_ready: set[str] = set()

    @classmethod
    def declare(cls, settings: ChromaSettings) -> StoreCapabilities:
        """Lexical search only in embedded mode (and unless ``lexical = false``): the side index
        follows the writes of this folder's store; a server's other clients it cannot see."""
        if settings.host is not None or settings.path is None or settings.lexical is False:
            return attrs.evolve(cls.capabilities, lexical_search=False)
        return cls.capabilities

    @classmethod
    def _resolve_settings(cls, settings: ChromaSettings, config: Any) -> ChromaSettings:
        """Server mode when a host is set (``VPA_VECTOR_DB_HOST`` wins), else embedded on
        ``path`` or ``<VPA_DATA_DIR>/chroma``: what `declared` and ``from_config`` both see."""
        host = config.host or settings.host
        if host:
            return attrs.evolve(settings, host=host, port=config.port or settings.port, path=None)
        return attrs.evolve(settings, path=settings.path or Path(config.data_dir) / "chroma")

    def __repr__(self) -> str:  # never shows the API key
        s = self.settings
        where = f"path={str(s.path)!r}" if s.path is not None else f"host={s.host!r}, port={s.port}"
        return f"ChromaStore({where})"

    @property
    def mode(self) -> str:
        return "embedded" if self.path is not None else "server"

    @property
    def index_options(self) -> dict[str, Any]:
        """The index configuration new collections get (beside the cosine space)."""
        s = self.settings
        chosen = {k: getattr(s, k) for k in ("ef_search", "ef_construction", "max_neighbors")}
        return {
            **(HNSW_DEFAULTS if s.index == "hnsw" else {}),
            **{k: v for k, v in chosen.items() if v is not None},
        }

    @classmethod
    def from_config(cls, config: Any) -> ChromaStore:
        """The store for a `vpa.config.VPAConfig`: server mode when a host is set, else embedded."""
        settings = cls.settings_from(config)  # resolved: see `_resolve_settings`
        if settings.host is None:
            not_applicable(config, "connection_pool_size", "embedded Chroma has no connection pool")
        return cls(settings, api_key=config.api_key, connection_pool_size=config.connection_pool_size)

    def translate_error(
        self, exc: BaseException, *, where: str, collection: str | None = None
    ) -> BaseException:
        return translate_error(exc, where=where, collection=collection)

    # --- the client (every method below runs in a worker thread) -------------------------------

    def _connect(self) -> Any:
        """The chromadb client, created on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = self._embedded_client() if self.path is not None else self._http_client()
                self._learn_batch_limit(self._client)
            return self._client

    def _embedded_client(self) -> Any:
        s = self.settings
        assert s.path is not None
        s.path.mkdir(parents=True, exist_ok=True)
        try:
            return chromadb.PersistentClient(
                path=str(s.path),
                settings=Settings(anonymized_telemetry=False),
                tenant=s.tenant,
                database=s.database,
            )
        except ValueError as exc:
            if "different settings" not in str(exc):
                raise
            # This process already opened the folder with chromadb's defaults (an app using
            # chromadb directly): chromadb shares one instance per folder and requires the same
            # settings, so join it with those.
            return chromadb.PersistentClient(path=str(s.path), tenant=s.tenant, database=s.database)

    def _http_client(self) -> Any:
        s = self.settings
        headers = dict(s.headers)
        if self._api_key:
            bearer = s.api_key_header.lower() == "authorization"
            headers[s.api_key_header] = f"Bearer {self._api_key}" if bearer else self._api_key
        pool: dict[str, Any] = {}
        if self._pool_size:  # VPA_CONNECTION_POOL_SIZE: the httpx pool of chromadb's client
            pool = {
                "chroma_http_max_connections": self._pool_size,
                "chroma_http_max_keepalive_connections": self._pool_size,
            }
        return chromadb.HttpClient(
            host=s.host or "localhost",
            port=s.port,
            ssl=s.ssl,
            headers=headers,
            settings=Settings(anonymized_telemetry=False, **pool),
            tenant=s.tenant,
            database=s.database,
        )

    def _learn_batch_limit(self, client: Any) -> None:
        """A deployment may accept fewer records a call than Chroma's default: refine this
        instance's ``max_batch_size`` (the base class then splits batches to it)."""
        try:
            reported = max(1, int(client.get_max_batch_size()))
        except Exception:  # an older or unusual server: keep the declared limit
            return
        declared = self.declare(self.settings)
        self.capabilities = (  # type: ignore[misc]  # this instance's refinement
            attrs.evolve(declared, max_batch_size=reported) if reported < CHROMA_MAX_BATCH else declared
        )

    async def _vendor(self, where: str, fn: Callable[[], T], collection: str | None = None) -> T:
        """`run_vendor`, bounded by ``timeout`` in client/server mode (chromadb's HTTP client
        waits for ever)."""
        deadline = self.settings.timeout if self.path is None else None
        if deadline is None:
            return await self.run_vendor(where, fn, collection=collection)
        with self.vendor_errors(where, collection):
            return await asyncio.wait_for(asyncio.to_thread(fn), deadline)

    def _handle(self, name: str) -> Any:
        """The chromadb Collection object for a VPA collection (cached; raises CollectionNotFound)."""
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = self._connect().get_collection(codec.chroma_name(name), embedding_function=None)
            except chroma_errors.NotFoundError as exc:
                raise CollectionNotFound(name) from exc
            self._handles[name] = handle
        return handle

    def _on_collection(self, name: str, op: Callable[[Any], T]) -> T:
        """``op(collection)``; if the cached handle went stale (dropped and re-created
        elsewhere), fetch it again once."""
        try:
            return op(self._handle(name))
        except chroma_errors.NotFoundError:
            self._handles.pop(name, None)
            return op(self._handle(name))

    def _batch(self) -> int:
        return self.capabilities.max_batch_size or CHROMA_MAX_BATCH

    def _paced(self, items: Sequence[T], call: Callable[[Sequence[T]], None]) -> None:
        """Write ``items`` in calls Chroma accepts: up to its batch limit on a server; in embedded
        mode also in calls of about ``write_call_seconds``, so the GIL is released between them."""
        limit = self._batch()
        start = 0
        while start < len(items):
            size = limit if self.path is None else min(self._pace, limit)
            chunk = items[start : start + size]
            began = time.perf_counter()
            call(chunk)
            start += len(chunk)
            if self.path is None:
                continue
            elapsed = time.perf_counter() - began
            # Hand the GIL over between calls: without this the next call can start before the
            # waiting event loop gets it (CPython only forces a switch every 5 ms), and the loop
            # then stalls for several calls in a row.
            time.sleep(0)
            target = self.settings.write_call_seconds
            if elapsed > target:
                self._pace = max(MIN_WRITE_CALL, int(size * target / elapsed))
            elif len(chunk) == size and elapsed < 0.6 * target:
                # grow towards 80% of the target: a call's cost per record rises with the collection
                self._pace = min(limit, int(size * min(1.5, 0.8 * target / max(elapsed, 1e-6))))

    def _read_ids(self, collection: Any, ids: Sequence[str], **options: Any) -> dict[str, list[Any]]:
        """``collection.get(ids=ids, **options)`` in calls Chroma and the event loop take (see
        `READ_CALL`), the results joined."""
        size = self._batch() if self.path is None else min(READ_CALL, self._batch())
        out: dict[str, list[Any]] = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
        for start in range(0, len(ids), size):
            result = collection.get(ids=list(ids[start : start + size]), **options)
            for column, values in out.items():
                part = result.get(column)
                values.extend([] if part is None else list(part))
            if self.path is not None:
                time.sleep(0)  # hand the GIL to the event loop between calls
        return out

    def _write_lock(self, name: str) -> threading.Lock:
        with self._client_lock:
            return self._write_locks.setdefault(name, threading.Lock())

    def _new_seqs(self, count: int) -> range:
        """``count`` new scroll keys, each larger than every key this instance gave before and
        about the time of writing (so in the engine's own order, records' first writes)."""
        now = (time.time_ns() // 1000 - SEQ_EPOCH_MICROS) * SEQ_SPREAD + random.randrange(SEQ_SPREAD)
        with self._client_lock:
            first = max(self._seq + 1, now)
            self._seq = first + count - 1
        return range(first, first + count)

    def _rewrite_legacy(self, collection: Any, found: dict[str, Any]) -> int:
        """Rewrite the 0.2 (format 2) records among ``found`` (id → stored metadata) in format 3,
        in place (Chroma's update: vector and text untouched). Returns how many."""
        legacy = [(i, m) for i, m in found.items() if codec.seq_of(m) is None]
        if not legacy:
            return 0
        seqs = self._new_seqs(len(legacy))
        metadatas = [
            codec.encode_metadata(codec.decode_legacy_metadata(m), seq, m)
            for (_, m), seq in zip(legacy, seqs, strict=True)
        ]
        rows = list(zip([i for i, _ in legacy], metadatas, strict=True))
        self._paced(
            rows, lambda chunk: collection.update(ids=[i for i, _ in chunk], metadatas=[m for _, m in chunk])
        )
        return len(rows)

    def _upgrade(self, name: str, handle: Any) -> None:
        """A collection written by vpa-chroma 0.2 gets every record in format 3 (a scroll key, type
        tags), then the format mark; a pass repeats until it finds nothing left to rewrite."""
        if name in self._upgraded or (handle.metadata or {}).get(codec.FORMAT_KEY) == codec.FORMAT:
            self._upgraded.add(name)
            return
        with self._write_lock(name):
            while True:
                rewritten = offset = 0
                while True:
                    page = handle.get(limit=self._batch(), offset=offset, include=["metadatas"])
                    if not page["ids"]:
                        break
                    rewritten += self._rewrite_legacy(handle, codec.stored_metadata(page))
                    offset += len(page["ids"])
                if not rewritten:
                    break
            handle.modify(metadata={**(handle.metadata or {}), codec.FORMAT_KEY: codec.FORMAT})
        self._upgraded.add(name)

    # --- collections ---------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        def describe() -> CollectionInfo | None:
            self._handles.pop(name, None)  # always ask the server: the collection may have changed
            try:
                handle = self._handle(name)
            except CollectionNotFound:
                return None
            info = codec.definition_from(name, handle.metadata)
            self._upgrade(name, handle)
            return info

        return await self._vendor("describe collection", describe)

    async def _create_collection(self, info: CollectionInfo) -> None:
        configuration = {self.settings.index: {"space": "cosine", **self.index_options}}

        def create() -> None:
            try:
                handle = self._connect().create_collection(
                    codec.chroma_name(info.name),
                    configuration=configuration,
                    metadata=codec.collection_metadata(info),
                    embedding_function=None,
                )
            except chroma_errors.ChromaError as exc:
                if "already exists" not in str(exc):
                    raise
                # Another client created it between our check and our create: open it instead.
                self._handles.pop(info.name, None)
                existing = codec.definition_from(info.name, self._handle(info.name).metadata)
                self._check_compatible(existing, info.dimension, info.fingerprint)
                return
            self._handles[info.name] = handle
            self._upgraded.add(info.name)
            if self._lexical is not None:  # a new collection's index: built, empty
                self._lexical.forget(info.name)
                self._lexical.created(str(handle.id), info.name)

        await self._vendor("create collection", create)

    async def _list_collections(self) -> list[str]:
        def names() -> list[str]:
            return [
                codec.vpa_name(c.name)
                for c in self._connect().list_collections()
                if codec.is_vpa_collection(c.metadata)
            ]

        return await self._vendor("list collections", names)

    async def _drop_collection(self, name: str) -> bool:
        # Chroma <= 1.5 leaves list-valued metadata behind when a collection is deleted, and new
        # records elsewhere inherit it (chroma-core/chroma#7594); deleting the records first,
        # which cleans up properly, leaves nothing behind. Each step is one bounded call.
        def clear_some() -> bool:
            try:
                collection = self._handle(name)
                ids = collection.get(limit=self._batch(), include=[])["ids"]
                if ids:
                    self._paced(list(ids), lambda chunk: collection.delete(ids=list(chunk)))
                return bool(ids)
            except (CollectionNotFound, chroma_errors.NotFoundError, InvalidCollection):
                return False

        lexical = self._lexical
        if lexical is not None:
            # the index goes first: a drop cut short leaves a collection without one, which is
            # rebuilt from Chroma when next used, never an index of records that are gone
            await self._vendor("drop collection", lambda: lexical.forget(name))
        while await self._vendor("drop collection", clear_some):
            pass

        def drop() -> bool:
            self._handles.pop(name, None)
            try:
                self._connect().delete_collection(codec.chroma_name(name))
            except chroma_errors.NotFoundError:
                return False
            finally:
                if lexical is not None:  # and whatever a lexical query built meanwhile
                    lexical.forget(name)
            return True

        return await self._vendor("drop collection", drop)

    # --- records -------------------------------------------------------------------------------

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        """One batch of at most ``max_batch_size`` records (the base class splits)."""

        def write(collection: Any) -> None:
            # Chroma's upsert merges metadata into an existing record: read the keys it has now
            # and delete those the new metadata lacks, so the write replaces; a record keeps its
            # scroll key, a new one gets the next.
            ids = [r.id for r in records]
            previous = codec.stored_metadata(self._read_ids(collection, ids, include=["metadatas"]))
            fresh = iter(self._new_seqs(sum(codec.seq_of(previous.get(i)) is None for i in ids)))
            rows = []
            for r in records:
                stored = previous.get(r.id, {})
                seq = codec.seq_of(stored)
                seq = next(fresh) if seq is None else seq
                rows.append((r, codec.encode_metadata(r.metadata, seq, stored)))
            with self._lexical_writing(collection, info.name, ids):
                self._paced(rows, lambda chunk: collection.upsert(**codec.upsert_columns(chunk)))
            new = {r.id: m for r, m in rows if r.id not in previous}
            if new:  # chroma#7594: shed list metadata a new record inherited from a dropped collection
                stored = self._read_ids(collection, list(new), include=["metadatas"])
                fixed, fixes = codec.orphan_fixes(new, stored)
                if fixed:
                    collection.update(ids=fixed, metadatas=fixes)

        def locked() -> None:
            with self._write_lock(info.name):  # read-then-write: one writer per collection here
                self._on_collection(info.name, write)

        await self._vendor("upsert", locked, info.name)

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        where = to_native(node)

        def search(collection: Any) -> list[Hit]:
            def matching() -> int:
                if where is None:
                    return int(collection.count())
                return len(collection.get(where=where, include=[])["ids"])

            def exact() -> list[Hit]:
                result = collection.get(where=where, include=["embeddings", "documents", "metadatas"])
                return codec.exact_hits(result, vector, top_k)

            # HNSW's recall falls at a large top_k (0.86 at 1,000 of 2,000 records with many
            # copies of a few vectors, whatever ef_search): rank exactly when top_k is a large
            # share of the matching records and they are few enough to read.
            count = matching() if top_k >= EXACT_TOP_K else None
            if count is not None and count <= EXACT_FALLBACK_MAX and top_k * EXACT_SHARE >= count:
                return exact()
            hits = codec.hits_from(
                collection.query(
                    query_embeddings=[vector.tolist()],
                    n_results=top_k,
                    where=where,
                    include=["documents", "metadatas", "distances"],
                )
            )
            if len(hits) < top_k:
                # HNSW may reach only part of its graph: on many identical vectors, Chroma 1.5
                # answered a top 1000 with 83-760 hits out of 5000 records, whatever ef_search.
                # If fewer hits came back than records match, rank the matching records exactly.
                count = matching() if count is None else count
                if len(hits) < min(top_k, count) and count <= EXACT_FALLBACK_MAX:
                    return exact()
            return hits

        return await self._vendor("query", lambda: self._on_collection(info.name, search), info.name)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        def read(collection: Any) -> list[Record]:
            include = ["embeddings", "documents", "metadatas"]
            return codec.records_from(self._read_ids(collection, ids, include=include))

        return await self._vendor("get", lambda: self._on_collection(info.name, read), info.name)

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        where = to_native(node)

        def remove(collection: Any) -> int:
            if ids is None:
                found = list(collection.get(where=where, include=[])["ids"])
            else:
                size = self._batch()
                found = []
                for start in range(0, len(ids), size):
                    found.extend(
                        collection.get(ids=ids[start : start + size], where=where, include=[])["ids"]
                    )
            # ``where`` again: a record changed since the read is only removed if it still matches.
            with self._lexical_writing(collection, info.name, found):
                self._paced(found, lambda chunk: collection.delete(ids=list(chunk), where=where))
            return len(found)

        return await self._vendor("delete", lambda: self._on_collection(info.name, remove), info.name)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        where = to_native(node)

        def count(collection: Any) -> int:
            if where is None:
                return int(collection.count())
            return len(collection.get(where=where, include=[])["ids"])

        return await self._vendor("count", lambda: self._on_collection(info.name, count), info.name)

    # --- lexical search (embedded: VPA's BM25 beside the folder, `vpa_chroma.lexical`) ----------

    def _documents(self, collection: Any) -> Callable[[Sequence[str]], dict[str, str]]:
        """Reads ``{id: text}`` of the ids that exist now (what the index follows)."""
        return lambda ids: documents_of(self._read_ids(collection, ids, include=["documents"]))

    def _lexical_writing(self, collection: Any, name: str, ids: Sequence[str]) -> Any:
        """Around a Chroma write of ``ids``: the index's journal, then the index follows."""
        if self._lexical is None:
            return contextlib.nullcontext()
        return self._lexical.writing(str(collection.id), name, ids, self._documents(collection))

    def _lexical_key(self, name: str, collection: Any) -> str:
        """The collection's index key (its Chroma id), the index made ready first: once an
        instance, the journal of writers that are gone replayed; an index that is missing,
        unbuilt, or holds another number of records than Chroma (a folder restored beside a
        newer index) built from a scroll of the collection."""
        lexical = self._lexical
        assert lexical is not None
        key = str(collection.id)
        state = lexical.state(key)
        if key in self._lexical_ready and state is not None and state[0]:
            return key
        with self._write_lock(name):  # one build at a time here; writers meanwhile only journal and follow
            state = lexical.state(key)
            read = self._documents(collection)
            if state is not None and state[0]:
                lexical.recover(key, name, read)
                state = lexical.state(key)
                if state is not None and state[1] != int(collection.count()):
                    state = None
            if state is None or not state[0]:

                def page(after: str | None) -> tuple[list[tuple[str, str]], str | None]:
                    records, following = self._scroll_page(collection, None, LEXICAL_BUILD_PAGE, after, False)
                    return [(r.id, r.text) for r in records], following

                lexical.build(key, name, page)
            self._lexical_ready.add(key)
        return key

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        """BM25 from the side index, over every record holding a query term; then the best
        candidates, in chunks (`LEXICAL_CHUNK_FACTOR`), through Chroma's own ``get`` with the
        filter, until ``top_k`` match or the candidates run out. The filter is Chroma's."""
        lexical = self._lexical
        if lexical is None:  # not declared: the base class refused already
            return await super()._lexical_query(info, text, terms, top_k, node)
        where = to_native(node)

        def search(collection: Any) -> list[Hit]:
            ranked = lexical.scores(self._lexical_key(info.name, collection), terms)
            hits: list[Hit] = []
            start, size = 0, top_k if where is None else LEXICAL_CHUNK_FACTOR * top_k
            while start < len(ranked) and len(hits) < top_k:
                chunk = ranked[start : start + size]
                result = self._read_ids(
                    collection, [i for i, _ in chunk], where=where, include=["documents", "metadatas"]
                )
                found = dict(
                    zip(
                        result["ids"], zip(result["documents"], result["metadatas"], strict=True), strict=True
                    )
                )
                for record_id, score in chunk:
                    if record_id in found:
                        doc, meta = found[record_id]
                        hits.append(Hit(record_id, score, doc or "", codec.decode_metadata(meta)))
                        if len(hits) == top_k:
                            break
                start += len(chunk)
                size *= 2
            return hits

        return await self._vendor("lexical query", lambda: self._on_collection(info.name, search), info.name)

    # --- contract 1.1 --------------------------------------------------------------------------

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """One page by scroll key (`codec.SEQ_KEY`): the ``limit`` matching records with the
        smallest keys past the position, read with the filter and a key range in the ``where``.

        Chroma's ``get`` returns a ``where``'s records in its own order (first-insertion order) and
        cuts it at ``limit``; scroll keys follow that order nearly always (they are given at first
        write), but nothing relies on it: a page is only handed out once a second read of its
        key range finds exactly its records, so every record that exists for the whole scroll
        comes back exactly once whatever is written or deleted meanwhile. Usually two reads a
        page (the second of ids only); a range that turns out fuller is narrowed and read again.
        """
        where = to_native(node)
        codec.load_position(after)  # a bad position is refused before any I/O

        def page(collection: Any) -> tuple[list[Record], str | None]:
            return self._scroll_page(collection, where, limit, after, with_vectors)

        return await self._vendor("scroll", lambda: self._on_collection(info.name, page), info.name)

    def _scroll_page(
        self, collection: Any, where: Any, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """`_scroll`'s page, on a collection handle and a native ``where`` (blocking)."""
        lower, tie = codec.load_position(after)
        include = ["documents", "metadatas", *(["embeddings"] if with_vectors else [])]

        def read(clause: Any, count: int | None = None) -> list[tuple[int, str, Record]]:
            result = collection.get(where=clause, limit=count, include=include)
            return codec.scroll_rows(result, with_vectors)

        done: list[tuple[int, str, Record]] = []
        if tie is not None:  # the rest of a group of records sharing one key (see below)
            group = [row for row in read(scroll_where(where, at=lower)) if row[1] > tie]
            if len(group) >= limit:
                return [r for *_, r in group[:limit]], codec.dump_position(lower, group[limit - 1][1])
            done = group
        need = limit - len(done)
        upto: int | None = None  # the range is (lower, upto]; None: no upper end
        rows = read(scroll_where(where, above=lower), need + 1)
        while True:
            if len(rows) <= need:  # the whole range
                following = None if upto is None else codec.dump_position(upto)
                return [r for *_, r in done + rows], following
            last = rows[need - 1][0]
            if rows[need][0] > last:
                # (lower, last] holds these `need` records, and maybe others Chroma has not
                # returned: a read of that range's ids says which
                clause = scroll_where(where, above=lower, upto=last)
                ids = collection.get(where=clause, limit=need + 1, include=[])["ids"]
                if sorted(ids) == sorted(row[1] for row in rows[:need]):
                    return [r for *_, r in done + rows[:need]], codec.dump_position(last)
                upto = last
                rows = read(scroll_where(where, above=lower, upto=upto), need + 1)
                continue
            # Records sharing the key `last` straddle the page's end (keys given by two
            # processes at the same microsecond): the range below it, then the group by id.
            below = []
            if last - 1 > lower:
                below = read(scroll_where(where, above=lower, upto=last - 1), need + 1)
            if len(below) > need:
                upto, rows = last - 1, below
                continue
            group = read(scroll_where(where, at=last))
            chosen = group[: need - len(below)]
            records = [r for *_, r in done + below + chosen]
            if len(chosen) == len(group):
                return records, codec.dump_position(last)
            if chosen:
                return records, codec.dump_position(last, chosen[-1][1])
            return records, codec.dump_position(last - 1)

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],
        unset: list[str],
    ) -> int:
        """Chroma's own ``collection.update``: the engine merges one metadata delta (`codec.update_delta`:
        the new values and tags, None for removed keys) into each record, leaving vector, text
        and every other key as they are. The records are the ``get`` of the ids and the filter
        (the engine evaluates it); their metadata is read only to refuse, before anything is
        written, an update that would take a record past the declared bounds."""
        where = to_native(node)
        delta = codec.update_delta(set, unset)
        caps = self.capabilities

        def change(collection: Any) -> int:
            with self._write_lock(info.name):
                found: dict[str, Any] = {}
                if ids is None:
                    found.update(codec.stored_metadata(collection.get(where=where, include=["metadatas"])))
                else:
                    result = self._read_ids(collection, ids, where=where, include=["metadatas"])
                    found.update(codec.stored_metadata(result))
                for record_id, stored in found.items():
                    merged = {k: v for k, v in codec.decode_metadata(stored).items() if k not in unset}
                    merged.update(set)
                    what = f"metadata of record {record_id!r} after update"
                    keys, most = len(merged), caps.max_metadata_keys
                    if keys > most:
                        raise LimitExceeded("max_metadata_keys", keys, most, what=what)
                    if (size := metadata_bytes(merged)) > caps.max_metadata_bytes:
                        raise LimitExceeded("max_metadata_bytes", size, caps.max_metadata_bytes, what=what)
                self._rewrite_legacy(collection, found)  # a 0.2 record first gets its scroll key
                targets = list(found)
                self._paced(
                    targets, lambda chunk: collection.update(ids=list(chunk), metadatas=[delta] * len(chunk))
                )
                return len(targets)

        return await self._vendor("update", lambda: self._on_collection(info.name, change), info.name)

    # --- lifecycle -----------------------------------------------------------------------------

    async def _health(self) -> str:
        await self._vendor("heartbeat", lambda: self._connect().heartbeat())
        return f"chroma {self.mode} ok"

    async def _close(self) -> None:
        client, self._client = self._client, None
        self._handles.clear()
        if client is not None:
            await asyncio.to_thread(client.close)
