"""The `chroma` store: VPA's store contract on the official ``chromadb`` client.

Two modes, chosen by the configuration:

- **embedded** (no host set): ``chromadb.PersistentClient`` on a folder, by default
  ``<VPA_DATA_DIR>/chroma``;
- **client/server** (``VPA_VECTOR_DB_HOST`` set): ``chromadb.HttpClient`` to a Chroma server.

The client is synchronous, so every call runs in a worker thread (`asyncio.to_thread`); the
client is created on first use, never in the constructor. Collections are created with the
cosine space and carry VPA's definition (dimension, embedder fingerprint) in their metadata, so
a new process can describe them. Scores are ``1 - cosine distance``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import chromadb
import httpx
import numpy as np
from chromadb import errors as chroma_errors
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    InvalidCollection,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VPAError,
)
from vpa.filters import Node
from vpa.models import (
    CollectionInfo,
    EmbedderFingerprint,
    HealthStatus,
    Hit,
    Metric,
    Record,
)
from vpa.stores.base import VectorStore

from vpa_chroma.capabilities import CAPABILITIES, CHROMA_MAX_BATCH
from vpa_chroma.filters import decode_metadata, encode_metadata, to_where

T = TypeVar("T")

#: Chroma's own default batch limit (``client.get_max_batch_size()`` on a local or single-node
#: server). Batches are also split to the limit the connected deployment reports, if smaller.

#: Embedded Chroma holds the GIL for the whole of a write call (upsert, update, delete), which
#: stalls the event loop however the call is dispatched; writes are therefore cut into calls of
#: about this many seconds (option ``write_call_seconds``). A call also has a fixed cost (about
#: 50 ms measured at 5k records, growing with the collection), so longer calls write faster:
#: 5,000 records took 10.0 s in 0.12 s calls, 8.6 s in 0.25 s calls and 8.1 s in 0.4 s calls
#: (384-d, ~1.4 kB texts, 10 metadata keys).
#: Calls never shrink below `MIN_WRITE_CALL` records.
WRITE_CALL_SECONDS = 0.2
MIN_WRITE_CALL = 32
FIRST_WRITE_CALL = 128

#: Chroma's ef_search default (100) gives recall@10 of about 0.9 on 10k unstructured 64-d
#: vectors; 200 gives about 0.98 (clustered, realistic data: 1.0 either way). Set at creation.
HNSW_DEFAULTS = {"ef_search": 200}

#: Collection-metadata keys holding VPA's definition of the collection.
META_FORMAT = "vpa:format"
META_DIMENSION = "vpa:dimension"
META_METRIC = "vpa:metric"
META_EMBEDDER_NAME = "vpa:embedder_name"
META_EMBEDDER_MODEL = "vpa:embedder_model"
META_EMBEDDER_DIMENSION = "vpa:embedder_dimension"
FORMAT_VERSION = 1

#: Chroma names need 3+ characters ending in a letter or digit; VPA names may be shorter or end
#: in '_' or '-'. Those get this suffix: VPA names never contain '.', so the mapping is one-to-one.
NAME_SUFFIX = ".vpa"

OPTIONS = frozenset(
    {
        "path",
        "host",
        "port",
        "ssl",
        "headers",
        "api_key_header",
        "tenant",
        "database",
        "timeout",
        "index",
        "ef_search",
        "ef_construction",
        "max_neighbors",
        "write_call_seconds",
    }
)


def chroma_name(name: str) -> str:
    """The Chroma collection name for a (validated) VPA collection name."""
    return name if len(name) >= 3 and name[-1].isalnum() else name + NAME_SUFFIX


def vpa_name(name: str) -> str:
    return name[: -len(NAME_SUFFIX)] if name.endswith(NAME_SUFFIX) else name


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def map_error(exc: BaseException, collection: str | None = None) -> VPAError:
    """The VPA error for a Chroma or transport exception (the caller keeps it as ``__cause__``)."""
    if isinstance(exc, VPAError):
        return exc
    if isinstance(exc, chroma_errors.NotFoundError) and collection is not None:
        return CollectionNotFound(collection)
    if isinstance(exc, chroma_errors.ChromaAuthError | chroma_errors.AuthorizationError):
        return StoreAuthError(f"Chroma rejected the credentials ({type(exc).__name__})")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return StoreTimeout(f"Chroma did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return StoreUnavailable(f"cannot reach the Chroma server ({type(exc).__name__})")
    if isinstance(exc, chroma_errors.RateLimitError | chroma_errors.QuotaError):
        return StoreUnavailable(f"Chroma refused the request: {_brief(exc)}")
    if isinstance(exc, ValueError) and "Could not connect" in str(exc):
        return StoreUnavailable("cannot reach the Chroma server: connection refused")
    return StoreError(f"Chroma failed: {type(exc).__name__}: {_brief(exc)}")


def _brief(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _clear_orphans(collection: Any, written: Mapping[str, Mapping[str, Any] | None]) -> None:
    """Remove list metadata a new record inherited from a dropped collection (chroma#7594).

    A record gets an internal row id that a deleted collection's record may have had; Chroma
    forgets to delete that record's list values, which then show up on the new record. Any key
    we did not write is removed again.
    """
    result = collection.get(ids=list(written), include=["metadatas"])
    fixes_ids, fixes = [], []
    for i, stored in zip(result["ids"], result["metadatas"] or [], strict=False):
        sent = {k for k, v in (written.get(i) or {}).items() if v is not None}
        extra = set(stored or ()) - sent
        if extra:
            fixes_ids.append(i)
            fixes.append(dict.fromkeys(sorted(extra)))
    if fixes_ids:
        collection.update(ids=fixes_ids, metadatas=fixes)


class ChromaStore(VectorStore):
    """VPA's store contract on Chroma, embedded (``path``) or client/server (``host``)."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        host: str | None = None,
        port: int | None = None,
        api_key: str | None = None,
        ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        api_key_header: str = "Authorization",
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
        timeout: float | None = 60.0,
        index: str = "hnsw",
        index_options: Mapping[str, Any] | None = None,
        write_call_seconds: float = WRITE_CALL_SECONDS,
    ) -> None:
        super().__init__()
        if (path is None) == (host is None):
            raise ConfigError("ChromaStore needs either a path (embedded) or a host (client/server)")
        if index not in ("hnsw", "spann"):
            raise ConfigError(f"providers.chroma.index must be 'hnsw' or 'spann', not {index!r}")
        if timeout is not None and timeout <= 0:
            raise ConfigError("providers.chroma.timeout must be positive")
        if isinstance(write_call_seconds, bool) or not isinstance(write_call_seconds, int | float) or not (
            write_call_seconds > 0
        ):
            raise ConfigError("providers.chroma.write_call_seconds must be a positive number of seconds")
        self.write_call_seconds = float(write_call_seconds)
        self.path = Path(path) if path is not None else None
        self.host = host
        self.port = int(port) if port is not None else 8000
        self._api_key = api_key
        self.ssl = bool(ssl)
        self._headers = dict(headers or {})
        self.api_key_header = api_key_header
        self.tenant = tenant
        self.database = database
        self.timeout = timeout
        self.index = index
        defaults = HNSW_DEFAULTS if index == "hnsw" else {}
        self.index_options = {**defaults, **(index_options or {})}
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._handles: dict[str, Any] = {}
        self._write_locks: dict[str, threading.Lock] = {}
        self._runtime_batch: int | None = None
        self._pace = FIRST_WRITE_CALL

    def __repr__(self) -> str:  # never shows the API key
        where = (
            f"path={str(self.path)!r}" if self.path is not None else f"host={self.host!r}, port={self.port}"
        )
        return f"ChromaStore({where})"

    @property
    def mode(self) -> str:
        return "embedded" if self.path is not None else "server"

    @classmethod
    def from_config(cls, config: Any) -> ChromaStore:
        """The store for a `vpa.config.VPAConfig`: server mode when a host is set, else embedded."""
        options = config.provider_options("chroma", known=OPTIONS)
        index_options = {
            k: options[k] for k in ("ef_search", "ef_construction", "max_neighbors") if k in options
        }
        common: dict[str, Any] = {
            "index": options.get("index", "hnsw"),
            "index_options": index_options,
            "tenant": options.get("tenant", DEFAULT_TENANT),
            "database": options.get("database", DEFAULT_DATABASE),
            "write_call_seconds": options.get("write_call_seconds", WRITE_CALL_SECONDS),
        }
        host = config.host or options.get("host")
        if host:
            return cls(
                host=host,
                port=config.port or options.get("port") or 8000,
                api_key=config.api_key,
                ssl=options.get("ssl", False),
                headers=options.get("headers"),
                api_key_header=options.get("api_key_header", "Authorization"),
                timeout=options.get("timeout", 60.0),
                **common,
            )
        return cls(path=options.get("path", Path(config.data_dir) / "chroma"), **common)

    # --- plumbing ------------------------------------------------------------------------------

    def _connect(self) -> Any:
        """The chromadb client, created on first use (in a worker thread)."""
        with self._client_lock:
            if self._client is None:
                settings = Settings(anonymized_telemetry=False)
                if self.path is not None:
                    self.path.mkdir(parents=True, exist_ok=True)
                    try:
                        self._client = chromadb.PersistentClient(
                            path=str(self.path), settings=settings, tenant=self.tenant, database=self.database
                        )
                    except ValueError as exc:
                        if "different settings" not in str(exc):
                            raise
                        # This process already opened the folder with chromadb's defaults (an app
                        # using chromadb directly): chromadb shares one instance per folder and
                        # requires the same settings, so join it with those.
                        self._client = chromadb.PersistentClient(
                            path=str(self.path), tenant=self.tenant, database=self.database
                        )
                else:
                    headers = dict(self._headers)
                    if self._api_key:
                        bearer = self.api_key_header.lower() == "authorization"
                        headers[self.api_key_header] = f"Bearer {self._api_key}" if bearer else self._api_key
                    self._client = chromadb.HttpClient(
                        host=self.host or "localhost",
                        port=self.port,
                        ssl=self.ssl,
                        headers=headers,
                        settings=settings,
                        tenant=self.tenant,
                        database=self.database,
                    )
            return self._client

    async def _run(self, fn: Callable[[], T], collection: str | None = None) -> T:
        """Run a blocking client call in a thread; map vendor errors to VPA's."""
        try:
            call = asyncio.to_thread(fn)
            if self.path is None and self.timeout is not None:
                return await asyncio.wait_for(call, self.timeout)
            return await call
        except VPAError as exc:
            if isinstance(exc, CollectionNotFound):
                self._forget(exc.name)
            raise
        except TimeoutError as exc:
            raise StoreTimeout(f"Chroma did not answer within {self.timeout} s") from exc
        except Exception as exc:
            error = map_error(exc, collection)
            if isinstance(error, CollectionNotFound):
                self._forget(error.name)
            raise error from exc

    def _forget(self, name: str) -> None:
        self._handles.pop(name, None)
        self._collections.pop(name, None)

    def _handle(self, name: str) -> Any:
        """The chromadb Collection object for a VPA collection (cached; raises CollectionNotFound)."""
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = self._connect().get_collection(chroma_name(name), embedding_function=None)
            except chroma_errors.NotFoundError as exc:
                raise CollectionNotFound(name) from exc
            self._handles[name] = handle
        return handle

    def _on_collection(self, name: str, op: Callable[[Any], T]) -> T:
        """Run ``op(collection)``; if the cached handle went stale (dropped and re-created
        elsewhere), fetch it again once."""
        try:
            return op(self._handle(name))
        except chroma_errors.NotFoundError:
            self._handles.pop(name, None)
            return op(self._handle(name))

    def _max_batch(self) -> int:
        if self._runtime_batch is None:
            try:
                reported = int(self._connect().get_max_batch_size())
            except Exception:
                reported = CHROMA_MAX_BATCH
            self._runtime_batch = max(1, min(reported, CHROMA_MAX_BATCH))
        return self._runtime_batch

    def _paced(self, items: Sequence[T], call: Callable[[Sequence[T]], None]) -> None:
        """Write ``items`` in calls Chroma accepts: up to its batch limit on a server; in embedded
        mode also in calls of about ``write_call_seconds``, so the GIL is released between them."""
        limit = self._max_batch()
        if self.path is None:
            for chunk in _chunks(items, limit):
                call(chunk)
            return
        start = 0
        while start < len(items):
            size = min(self._pace, limit)
            chunk = items[start : start + size]
            began = time.perf_counter()
            call(chunk)
            elapsed = time.perf_counter() - began
            # Hand the GIL over between calls: without this the next call can start before the
            # waiting event loop gets it (CPython only forces a switch every 5 ms), and the loop
            # then stalls for several calls in a row.
            time.sleep(0)
            start += len(chunk)
            target = self.write_call_seconds
            if elapsed > target:
                self._pace = max(MIN_WRITE_CALL, int(size * target / elapsed))
            elif len(chunk) == size and elapsed < 0.6 * target:
                # grow towards 80% of the target: a call's cost per record rises with the collection
                self._pace = min(limit, int(size * min(1.5, 0.8 * target / max(elapsed, 1e-6))))

    def _write_lock(self, name: str) -> threading.Lock:
        with self._client_lock:
            return self._write_locks.setdefault(name, threading.Lock())

    # --- collections ---------------------------------------------------------------------------

    def _info_from(self, name: str, handle: Any) -> CollectionInfo:
        meta = handle.metadata or {}
        dimension = meta.get(META_DIMENSION)
        if isinstance(dimension, bool) or not isinstance(dimension, int):
            raise InvalidCollection(
                f"the Chroma collection {chroma_name(name)!r} was not created by VPA "
                f"(its metadata has no {META_DIMENSION!r})"
            )
        fingerprint = None
        if META_EMBEDDER_NAME in meta:
            fingerprint = EmbedderFingerprint(
                name=str(meta[META_EMBEDDER_NAME]),
                model=str(meta.get(META_EMBEDDER_MODEL, "")),
                dimension=int(meta.get(META_EMBEDDER_DIMENSION, dimension)),
            )
        return CollectionInfo(
            name=name,
            dimension=dimension,
            metric=Metric(meta.get(META_METRIC, "cosine")),
            fingerprint=fingerprint,
        )

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        def describe() -> CollectionInfo | None:
            self._handles.pop(name, None)  # always ask the server: the collection may have changed
            try:
                handle = self._handle(name)
            except CollectionNotFound:
                return None
            return self._info_from(name, handle)

        return await self._run(describe)

    def _collection_metadata(self, info: CollectionInfo) -> dict[str, Any]:
        meta: dict[str, Any] = {
            META_FORMAT: FORMAT_VERSION,
            META_DIMENSION: info.dimension,
            META_METRIC: str(info.metric),
        }
        if info.fingerprint is not None:
            meta[META_EMBEDDER_NAME] = info.fingerprint.name
            meta[META_EMBEDDER_MODEL] = info.fingerprint.model
            meta[META_EMBEDDER_DIMENSION] = info.fingerprint.dimension
        return meta

    async def _create_collection(self, info: CollectionInfo) -> None:
        configuration = {self.index: {"space": "cosine", **self.index_options}}

        def create() -> None:
            client = self._connect()
            try:
                handle = client.create_collection(
                    chroma_name(info.name),
                    configuration=configuration,
                    metadata=self._collection_metadata(info),
                    embedding_function=None,
                )
            except chroma_errors.ChromaError as exc:
                if "already exists" not in str(exc):
                    raise
                # Another client created it between our check and our create: open it instead.
                self._handles.pop(info.name, None)
                existing = self._info_from(info.name, self._handle(info.name))
                self._check_compatible(existing, info.dimension, info.fingerprint)
                return
            self._handles[info.name] = handle

        await self._run(create)

    async def _list_collections(self) -> list[str]:
        def names() -> list[str]:
            return [
                vpa_name(c.name)
                for c in self._connect().list_collections()
                if isinstance((c.metadata or {}).get(META_DIMENSION), int)
            ]

        return await self._run(names)

    async def _drop_collection(self, name: str) -> bool:
        # Chroma <= 1.5 leaves list-valued metadata behind when a collection is deleted, and new
        # records elsewhere inherit it (chroma-core/chroma#7594); deleting the records first,
        # which cleans up properly, leaves nothing behind. Each step is one bounded call.
        def clear_some() -> bool:
            try:
                collection = self._handle(name)
                ids = collection.get(limit=self._max_batch(), include=[])["ids"]
                if ids:
                    self._paced(list(ids), lambda chunk: collection.delete(ids=list(chunk)))
                return bool(ids)
            except (CollectionNotFound, chroma_errors.NotFoundError, InvalidCollection):
                return False

        while await self._run(clear_some):
            pass

        def drop() -> bool:
            self._handles.pop(name, None)
            try:
                self._connect().delete_collection(chroma_name(name))
            except chroma_errors.NotFoundError:
                return False
            return True

        return await self._run(drop)

    # --- records -------------------------------------------------------------------------------

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        def write(collection: Any) -> None:
            for batch in _chunks(records, self._max_batch()):
                ids = [r.id for r in batch]
                # Chroma's upsert merges metadata into an existing record: read the keys it has
                # now and delete those the new metadata lacks, so the write replaces.
                current = collection.get(ids=ids, include=["metadatas"])
                previous = {
                    i: frozenset(m or ())
                    for i, m in zip(current["ids"], current["metadatas"] or [], strict=False)
                }
                metadatas = [encode_metadata(r.metadata, previous.get(r.id, frozenset())) for r in batch]
                rows = list(zip(batch, metadatas, strict=True))

                def send(chunk: Sequence[tuple[Record, dict[str, Any] | None]]) -> None:
                    collection.upsert(
                        ids=[r.id for r, _ in chunk],
                        embeddings=np.stack([r.vector for r, _ in chunk]),
                        documents=[r.text for r, _ in chunk],
                        metadatas=[m for _, m in chunk],
                    )

                self._paced(rows, send)
                new = {r.id: m for r, m in rows if r.id not in previous}
                if new:
                    _clear_orphans(collection, new)

        def locked() -> None:
            with self._write_lock(info.name):  # read-then-write: one writer per collection here
                self._on_collection(info.name, write)

        await self._run(locked, info.name)

    async def _query(
        self, info: CollectionInfo, vector: np.ndarray, top_k: int, node: Node | None
    ) -> list[Hit]:
        where = to_where(node)

        def search(collection: Any) -> list[Hit]:
            result = collection.query(
                query_embeddings=[vector.tolist()],
                n_results=top_k,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
            ids = result["ids"][0]
            documents = (result.get("documents") or [[None] * len(ids)])[0]
            metadatas = (result.get("metadatas") or [[None] * len(ids)])[0]
            distances = (result.get("distances") or [[None] * len(ids)])[0]
            return [
                Hit(
                    id=i,
                    score=float(min(1.0, max(-1.0, 1.0 - float(d)))),
                    text=doc or "",
                    metadata=decode_metadata(meta),
                )
                for i, doc, meta, d in zip(ids, documents, metadatas, distances, strict=True)
            ]

        return await self._run(lambda: self._on_collection(info.name, search), info.name)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        def read(collection: Any) -> list[Record]:
            out: list[Record] = []
            for batch in _chunks(ids, self._max_batch()):
                result = collection.get(ids=list(batch), include=["embeddings", "documents", "metadatas"])
                for i, vec, doc, meta in zip(
                    result["ids"], result["embeddings"], result["documents"], result["metadatas"], strict=True
                ):
                    out.append(Record(id=i, vector=vec, text=doc or "", metadata=decode_metadata(meta)))
            return out

        return await self._run(lambda: self._on_collection(info.name, read), info.name)

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        where = to_where(node)

        def remove(collection: Any) -> int:
            size = self._max_batch()
            if ids is None:
                found = list(collection.get(where=where, include=[])["ids"])
            else:
                found = []
                for batch in _chunks(ids, size):
                    found.extend(collection.get(ids=list(batch), where=where, include=[])["ids"])
            # ``where`` again: a record changed since the read is only removed if it still matches.
            self._paced(found, lambda chunk: collection.delete(ids=list(chunk), where=where))
            return len(found)

        return await self._run(lambda: self._on_collection(info.name, remove), info.name)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        where = to_where(node)

        def count(collection: Any) -> int:
            if where is None:
                return int(collection.count())
            return len(collection.get(where=where, include=[])["ids"])

        return await self._run(lambda: self._on_collection(info.name, count), info.name)

    # --- lifecycle -----------------------------------------------------------------------------

    async def health(self) -> HealthStatus:
        start = time.perf_counter()
        try:
            await self._run(lambda: self._connect().heartbeat())
        except Exception as exc:  # health reports, it does not raise
            return HealthStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - start) * 1000
        return HealthStatus(ok=True, detail=f"chroma {self.mode} ok", latency_ms=latency)

    async def close(self) -> None:
        client, self._client = self._client, None
        self._handles.clear()
        self._collections.clear()
        self._runtime_batch = None
        if client is not None:
            await asyncio.to_thread(client.close)
