"""The RAG system: chunk → embed → upsert on the way in; embed query → search on the way out.

Documents are stored as chunk records in one collection of the configured store. Each chunk
carries reserved metadata (keys starting with ``vpa_``): its document id, index, offsets, the
document's chunk count, title, content hash and tenant. That is all the state there is, so a
document can be rebuilt exactly from its chunks (the chunker's offsets cover the text) by any
process, on any provider.

- Re-adding an unchanged document is a no-op (its content hash is compared with the stored one);
  re-adding a changed one overwrites its chunks by id and then removes the chunks it no longer has,
  so a reader never sees the document missing.
- With a tenant, every id is prefixed by it and every read is filtered by it, whatever filter the
  caller adds.
- Query embeddings are cached per embedder fingerprint; results per collection, invalidated by
  every write through this system.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import structlog

from vpa.caches.base import Cache
from vpa.chunkers.base import Chunker
from vpa.config import VPAConfig, load_config
from vpa.embedders.base import Embedder
from vpa.errors import BatchTooLarge, DocumentNotFound, DocumentTooLarge, InvalidMetadata, ValidationError
from vpa.filters import And, Comparison, FilterLike, Node, canonical_json, parse_filter
from vpa.log import configure_logging, get_logger
from vpa.models import CollectionInfo, Document, FilterOp, Record, SearchResult
from vpa.plugins import Registry, get_registry
from vpa.stores.base import VectorStore
from vpa.validation import check_id, check_metadata, is_encodable

log = get_logger("vpa.rag")

RESERVED_PREFIX = "vpa_"
DOC_ID = "vpa_document_id"
CHUNK_INDEX = "vpa_chunk_index"
CHUNK_COUNT = "vpa_chunk_count"
START = "vpa_start"
END = "vpa_end"
TITLE = "vpa_title"
CONTENT_HASH = "vpa_content_hash"
TENANT = "vpa_tenant"
MAX_DOCUMENT_ID_LENGTH = 400
MAX_TOP_K = 1000
MAX_HISTORY_USERS = 10_000


@attrs.frozen
class IngestResult:
    """What adding one document did: how many chunks, and whether it was unchanged."""

    document_id: str
    chunks: int
    unchanged: bool = False


@attrs.frozen
class SearchHistoryEntry:
    query_hash: str
    top_k: int
    results: int
    latency_ms: float
    timestamp: float
    filtered: bool


@attrs.define
class _Prepared:
    document: Document
    tenant: str | None
    content_hash: str
    chunk_texts: list[str] = attrs.field(factory=list)
    records: list[Record] = attrs.field(factory=list)
    old_count: int = 0


def _user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh copy of the user's metadata (lists copied too), without VPA's own keys."""
    return {
        k: list(v) if isinstance(v, list) else v
        for k, v in metadata.items()
        if not k.startswith(RESERVED_PREFIX)
    }


class RAGSystem:
    """The async RAG API. Build with `create_enhanced_rag_system`, then ``await initialize()``."""

    def __init__(
        self,
        config: VPAConfig | None = None,
        *,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
        chunker: Chunker | None = None,
        cache: Cache | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.config = config or load_config()
        registry = registry or get_registry()
        self.store = store or registry.create("store", self.config.provider, self.config)
        if self.config.encrypt_at_rest and not getattr(self.store, "encrypts_at_rest", False):
            # A store that does not encrypt on its own (a remote one) gets each chunk's text sealed
            # with AES-256-GCM before upsert and opened after query/get; vectors and metadata stay
            # searchable, the text is no longer searchable by the store itself.
            from vpa.crypto import EncryptedTextStore

            self.store = EncryptedTextStore.from_config(self.store, self.config)
        self.embedder = embedder or registry.create("embedder", self.config.embedder, self.config)
        self.chunker = chunker or registry.create("chunker", self.config.chunker, self.config)
        self.cache = cache or registry.create("cache", self.config.cache, self.config)
        self.collection = self.config.collection
        self._info: CollectionInfo | None = None
        # Least recently searching users are forgotten first, so random user ids cannot grow memory.
        self._history: collections.OrderedDict[str, collections.deque[SearchHistoryEntry]] = collections.OrderedDict()
        self._latencies: collections.deque[float] = collections.deque(maxlen=10_000)
        self._searches = 0

    # --- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> CollectionInfo:
        """Open or create the collection; fails with `EmbedderMismatch` if another embedder filled it."""
        if self._info is None:
            fingerprint = self.embedder.fingerprint
            self._info = await self.store.create_collection(
                self.collection, fingerprint.dimension, fingerprint=fingerprint
            )
            log.info("rag.initialized", collection=self.collection, provider=self.config.provider,
                     embedder=fingerprint.describe())
        return self._info

    async def shutdown(self) -> None:
        await self.store.close()
        self._info = None

    async def __aenter__(self) -> RAGSystem:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # --- ids and hashing -----------------------------------------------------------------------

    @staticmethod
    def _chunk_id(document_id: str, index: int, tenant: str | None) -> str:
        return f"{tenant}/{document_id}#{index}" if tenant else f"{document_id}#{index}"

    def _content_hash(self, document: Document, tenant: str | None) -> str:
        payload = json.dumps(
            [document.title, document.content, document.metadata, tenant, self.chunker.name,
             self.chunker.chunk_size, self.chunker.chunk_overlap],
            sort_keys=True, ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _check_document(self, document: Document) -> None:
        check_id(document.id)
        if len(document.id) > MAX_DOCUMENT_ID_LENGTH:
            raise ValidationError(f"document id is longer than {MAX_DOCUMENT_ID_LENGTH} characters")
        if not isinstance(document.content, str) or not document.content.strip():
            raise ValidationError(f"document {document.id!r} has no content")
        if not isinstance(document.title, str):
            raise ValidationError(f"title of document {document.id!r} must be a string")
        if not (is_encodable(document.content) and is_encodable(document.title)):
            raise ValidationError(f"document {document.id!r} is not valid Unicode text (a lone surrogate)")
        size = len(document.content.encode("utf-8"))
        if size > self.config.max_document_bytes:
            raise DocumentTooLarge(
                f"document {document.id!r} is {size} bytes; the limit is {self.config.max_document_bytes}"
            )
        check_metadata(document.metadata)
        reserved = [k for k in document.metadata if k.startswith(RESERVED_PREFIX)]
        if reserved:
            raise InvalidMetadata(f"metadata keys starting with {RESERVED_PREFIX!r} are reserved: {reserved}")

    @staticmethod
    def _check_tenant(tenant: str | None) -> None:
        if tenant is not None and (not isinstance(tenant, str) or not tenant or "/" in tenant):
            raise ValidationError(f"tenant must be a non-empty string without '/', got {tenant!r}")

    # --- writes --------------------------------------------------------------------------------

    async def add_document(
        self,
        document_id: str,
        title: str,
        content: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> IngestResult:
        """Add or replace one document; unchanged content is detected and not re-embedded."""
        results = await self.add_documents(
            [Document(id=document_id, title=title, content=content, metadata=dict(metadata or {}))],
            tenant=tenant,
        )
        return results[0]

    async def add_documents(
        self, documents: Iterable[Document | Mapping[str, Any]], *, tenant: str | None = None
    ) -> list[IngestResult]:
        """Add or replace many documents. All are validated before anything is written; embedding
        of one batch overlaps with the upsert of the previous one."""
        info = await self.initialize()
        self._check_tenant(tenant)
        docs = [d if isinstance(d, Document) else self._document_from_mapping(d) for d in documents]
        if len(docs) > self.config.max_batch_size:
            raise BatchTooLarge(f"{len(docs)} documents in one call; the limit is {self.config.max_batch_size}")
        latest: dict[str, Document] = {}
        for doc in docs:
            self._check_document(doc)
            latest[doc.id] = doc
        started = time.perf_counter()
        prepared = [_Prepared(doc, tenant, self._content_hash(doc, tenant)) for doc in latest.values()]
        first_ids = [self._chunk_id(p.document.id, 0, tenant) for p in prepared]
        existing = {r.id: r for r in await self.store.get(info.name, first_ids)} if first_ids else {}
        todo: list[_Prepared] = []
        for p, first_id in zip(prepared, first_ids, strict=True):
            old = existing.get(first_id)
            if old is not None:
                p.old_count = int(old.metadata.get(CHUNK_COUNT, 0))
                if old.metadata.get(CONTENT_HASH) == p.content_hash:
                    continue
            todo.append(p)
        total_chunks = await self._write(info, todo)
        await self._remove_stale_chunks(info, todo)
        if todo:
            self.cache.invalidate(self._results_namespace())
        unchanged = {p.document.id for p in prepared} - {p.document.id for p in todo}
        chunk_counts = {p.document.id: len(p.records) for p in todo}
        log.info("rag.documents_added", documents=len(prepared), changed=len(todo), chunks=total_chunks,
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return [
            IngestResult(p.document.id, chunk_counts.get(p.document.id, p.old_count), p.document.id in unchanged)
            for p in prepared
        ]

    @staticmethod
    def _document_from_mapping(data: Mapping[str, Any]) -> Document:
        doc_id = data.get("document_id", data.get("id"))
        return Document(id=doc_id, title=data.get("title", ""), content=data.get("content", ""),
                        metadata=dict(data.get("metadata") or {}))

    def _chunk_records(self, p: _Prepared) -> list[tuple[str, str, dict[str, Any]]]:
        """(record id, text to embed, metadata) for each chunk of a prepared document."""
        doc = p.document
        chunks = self.chunker.split(doc.content)
        out = []
        for chunk in chunks:
            metadata = dict(doc.metadata)
            metadata.update({
                DOC_ID: doc.id, CHUNK_INDEX: chunk.index, CHUNK_COUNT: len(chunks), START: chunk.start,
                END: chunk.end, TITLE: doc.title, CONTENT_HASH: p.content_hash,
            })
            if p.tenant:
                metadata[TENANT] = p.tenant
            out.append((self._chunk_id(doc.id, chunk.index, p.tenant), chunk.text, metadata))
        return out

    async def _write(self, info: CollectionInfo, todo: list[_Prepared]) -> int:
        pending: list[tuple[_Prepared, str, str, dict[str, Any]]] = []
        for p in todo:
            for record_id, text, metadata in self._chunk_records(p):
                pending.append((p, record_id, text, metadata))
        batch_size = max(self.config.embedding_batch_size * 4, 1)
        upsert_task: asyncio.Task[int] | None = None
        try:
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]
                inputs = [f"{p.document.title}\n{text}" if p.document.title else text for p, _, text, _ in batch]
                vectors = await self.embedder.aembed(inputs)  # overlaps with the previous upsert
                records = [Record(rid, vec, text, meta) for (_, rid, text, meta), vec in zip(batch, vectors, strict=True)]
                for (p, *_), record in zip(batch, records, strict=True):
                    p.records.append(record)
                if upsert_task is not None:
                    await upsert_task
                upsert_task = asyncio.create_task(self.store.upsert(info.name, records))
            if upsert_task is not None:
                await upsert_task
        except BaseException:
            if upsert_task is not None and not upsert_task.done():
                upsert_task.cancel()
            raise
        return len(pending)

    async def _remove_stale_chunks(self, info: CollectionInfo, todo: list[_Prepared]) -> None:
        stale = [
            self._chunk_id(p.document.id, i, p.tenant)
            for p in todo
            for i in range(len(p.records), p.old_count)
        ]
        if stale:
            await self.store.delete(info.name, ids=stale)

    async def update_document(
        self,
        document_id: str,
        *,
        title: str | None = None,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tenant: str | None = None,
    ) -> IngestResult:
        """Change an existing document; fields left as None keep their current value."""
        current = await self.get_document(document_id, tenant=tenant)
        if current is None:
            raise DocumentNotFound(document_id)
        return await self.add_document(
            document_id,
            current.title if title is None else title,
            current.content if content is None else content,
            current.metadata if metadata is None else metadata,
            tenant=tenant,
        )

    async def delete_document(self, document_id: str, *, tenant: str | None = None) -> bool:
        """Remove a document and all its chunks; False if it did not exist."""
        info = await self.initialize()
        self._check_tenant(tenant)
        check_id(document_id)
        removed = await self.store.delete(info.name, filter=self._scope({DOC_ID: document_id}, tenant))
        if removed:
            self.cache.invalidate(self._results_namespace())
        log.info("rag.document_deleted", document_id=document_id, chunks=removed)
        return removed > 0

    # --- reads ---------------------------------------------------------------------------------

    async def get_document(self, document_id: str, *, tenant: str | None = None) -> Document | None:
        """The document as it was added (rebuilt exactly from its chunks), or None."""
        info = await self.initialize()
        self._check_tenant(tenant)
        check_id(document_id)
        first = await self.store.get(info.name, [self._chunk_id(document_id, 0, tenant)])
        if not first:
            return None
        count = int(first[0].metadata.get(CHUNK_COUNT, 1))
        rest = await self.store.get(info.name, [self._chunk_id(document_id, i, tenant) for i in range(1, count)])
        chunks = sorted([first[0], *rest], key=lambda r: r.metadata[CHUNK_INDEX])
        content, position = [], 0
        for record in chunks:
            start, end = int(record.metadata[START]), int(record.metadata[END])
            if end > position:
                content.append(record.text[max(position - start, 0):])
                position = end
        meta = first[0].metadata
        return Document(id=document_id, title=str(meta.get(TITLE, "")), content="".join(content),
                        metadata=_user_metadata(meta))

    def _scope(self, spec: FilterLike, tenant: str | None) -> Node | None:
        node = parse_filter(spec)
        if tenant is None:
            return node
        tenant_node = Comparison(TENANT, FilterOp.EQ, tenant)
        return tenant_node if node is None else And((tenant_node, node))

    def _results_namespace(self) -> str:
        return f"results:{self.config.provider}:{self.collection}"

    async def _embed_query(self, query: str) -> np.ndarray:
        namespace = f"embedding:{self.embedder.fingerprint.describe()}"
        cached = self.cache.get(namespace, query)
        if cached is not None:
            return cached
        vector = (await self.embedder.aembed([query]))[0]
        self.cache.set(namespace, query, vector)
        return vector

    async def search_knowledge(
        self,
        user_id: str,
        query: str,
        top_k: int = 5,
        filters: FilterLike = None,
        *,
        tenant: str | None = None,
    ) -> list[SearchResult]:
        """The chunks most relevant to ``query`` that match ``filters`` (and the tenant), best first."""
        info = await self.initialize()
        self._check_tenant(tenant)
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must be a non-empty string")
        if not is_encodable(query):
            raise ValidationError("query is not valid Unicode text (a lone surrogate)")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ValidationError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
        started = time.perf_counter()
        node = self._scope(filters, tenant)
        key = f"{top_k}|{canonical_json(node)}|{query}"
        # An eventually consistent store may still answer with pre-write data right after a write:
        # caching that would pin stale results for a whole TTL, so only exact-now stores are cached.
        cache_results = not self.store.capabilities.eventually_consistent
        results = self.cache.get(self._results_namespace(), key) if cache_results else None
        if results is None:
            vector = await self._embed_query(query)
            hits = await self.store.query(info.name, vector, top_k, node)
            results = [
                SearchResult(
                    document_id=str(hit.metadata.get(DOC_ID, hit.id)), chunk_id=hit.id, similarity=hit.score,
                    content=hit.text, metadata=_user_metadata(hit.metadata), title=str(hit.metadata.get(TITLE, "")),
                )
                for hit in hits
            ]
            if cache_results:
                self.cache.set(self._results_namespace(), key, results)
        latency = (time.perf_counter() - started) * 1000
        self._record_search(user_id, query, top_k, len(results), latency, filters is not None)
        return list(results)

    def _record_search(self, user_id: str, query: str, top_k: int, n: int, latency: float, filtered: bool) -> None:
        self._searches += 1
        self._latencies.append(latency)
        history = self._history.pop(user_id, None) or collections.deque(maxlen=self.config.search_history_size)
        self._history[user_id] = history
        if len(self._history) > MAX_HISTORY_USERS:
            self._history.popitem(last=False)
        query_hash = hashlib.sha256(query.encode("utf-8")).hexdigest()[:16]
        history.append(SearchHistoryEntry(query_hash, top_k, n, round(latency, 3), time.time(), filtered))
        log.debug("rag.search", user_id=user_id, top_k=top_k, results=n, ms=round(latency, 2))

    def get_search_history(self, user_id: str, limit: int | None = None) -> list[SearchHistoryEntry]:
        """A user's most recent searches, newest first. Queries are kept as hashes, not text."""
        entries = list(reversed(self._history.get(user_id, ())))
        return entries[:limit] if limit is not None else entries

    async def get_system_stats(self, *, tenant: str | None = None) -> dict[str, Any]:
        info = await self.initialize()
        scope = self._scope(None, tenant)
        chunks = await self.store.count(info.name, scope)
        documents = await self.store.count(info.name, self._scope({CHUNK_INDEX: 0}, tenant))
        latencies = np.array(self._latencies) if self._latencies else np.zeros(0)
        cache = self.cache.stats()
        return {
            "provider": self.config.provider,
            "collection": info.name,
            "embedder": self.embedder.fingerprint.describe(),
            "documents": documents,
            "chunks": chunks,
            "total_searches": self._searches,
            "avg_latency_ms": round(float(latencies.mean()), 3) if latencies.size else 0.0,
            "p95_latency_ms": round(float(np.percentile(latencies, 95)), 3) if latencies.size else 0.0,
            "cache_hit_rate": round(cache.hit_rate, 4),
        }


def create_enhanced_rag_system(config: VPAConfig | Mapping[str, Any] | None = None, **components: Any) -> RAGSystem:
    """A RAG system for ``config`` (a `VPAConfig`, a mapping of overrides, or None for the
    environment). Components (store, embedder, chunker, cache) may be passed in ready-made."""
    if config is None or isinstance(config, Mapping):
        config = load_config(config)
    if not structlog.is_configured():
        configure_logging(config.log_level, config.log_format)
    return RAGSystem(config, **components)


def flatten(results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    """Search results as JSON-ready dicts (document_id, chunk_id, similarity, content, metadata, title)."""
    return [attrs.asdict(r) for r in results]
