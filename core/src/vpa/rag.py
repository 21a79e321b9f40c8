"""The RAG system: chunk → embed → upsert on the way in; embed query → search on the way out.

Documents are stored as chunk records in one collection of the configured store, laid out as
`vpa.layout` describes: reserved metadata on every chunk (document id, index, offsets, chunk
count, title, content hash, tenant) is all the state there is, so a document can be rebuilt
exactly from its chunks by any process, on any provider.

- A document is visible whole or not at all: body chunks are written before the head that
  completes them, readers trust a chunk only under a head of the same version, and a crash
  between chunk writes leaves the previous version. Re-adding repairs an interrupted document.
- Re-adding an unchanged document is a no-op (the head's content hash is compared); a changed one
  is written as a new version beside the old, which is removed once the new head is in place.
- With a tenant, every id is prefixed by it and every read is filtered by its tenant field,
  whatever filter the caller adds; search history and figures are kept per tenant.
- Query embeddings are cached per embedder fingerprint; results per collection, invalidated by
  every write through this system.
- On a store of contract 1.1, documents are listed a page at a time (`RAGSystem.list_documents`:
  the heads, by the store's scroll, with a resumable cursor) and their metadata is changed in
  place on every chunk (`RAGSystem.update_document_metadata`), without re-embedding. A 1.0 store
  refuses both with `UnsupportedOperation`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import attrs
import cachetools
import numpy as np
import structlog

from vpa import tracing
from vpa.caches.base import Cache
from vpa.chunkers.base import Chunker
from vpa.config import VPAConfig, load_config
from vpa.embedders.base import Embedder
from vpa.errors import (
    CollectionNotFound,
    DimensionMismatch,
    DocumentNotFound,
    DocumentTooLarge,
    EmbedderMismatch,
    IncompleteDocument,
    InvalidCursor,
    InvalidMetadata,
    LimitExceeded,
    UnsupportedOperation,
    ValidationError,
    VPAError,
)
from vpa.filters import And, Comparison, FilterLike, Node, canonical_json, parse_filter
from vpa.layout import (
    CHUNK_COUNT,
    CHUNK_INDEX,
    CONTENT_HASH,
    DOC_ID,
    END,
    LAYOUT_VERSION,
    RESERVED_KEYS,
    RESERVED_PREFIX,
    START,
    TENANT,
    TITLE,
    assemble,
    belongs,
    body_ids,
    check_tenant,
    chunk_metadata,
    head_id,
    is_head,
    public_chunk_id,
    record_id,
    user_metadata,
)
from vpa.log import configure_logging, get_logger
from vpa.models import CollectionInfo, Document, FilterOp, Hit, Record, SearchResult
from vpa.plugins import Registry, get_registry
from vpa.stores.base import VectorStore
from vpa.telemetry import ALL, SearchHistoryEntry, SearchTelemetry
from vpa.typedjson import encode_metadata, has_datetimes
from vpa.validation import check_id, check_metadata, is_encodable, metadata_bytes

log = get_logger("vpa.rag")

MAX_DOCUMENT_ID_LENGTH = 400
MAX_TOP_K = 1000
#: Heads whose content hash this process knows (see `vpa.layout`): search validates body hits
#: against them without a read per search.
HEAD_CACHE_SIZE = 100_000
#: Documents written per round of an ingest (bounds the memory one call holds at a time).
INGEST_GROUP = 256
#: Rounds of a search that re-asks for more hits when chunks of unfinished versions were dropped.
REFILL_ROUNDS = 3
#: The most documents one `RAGSystem.list_documents` page may ask for (``page_size``), and its default.
MAX_LIST_PAGE_SIZE = 1000
DEFAULT_LIST_PAGE_SIZE = 100
#: Store pages one `RAGSystem.list_documents` call reads at most to fill its page (a store's page
#: may hold fewer records than asked for before the end).
LIST_ROUNDS = 16


@attrs.frozen
class IngestResult:
    """What adding one document did: how many chunks, and whether it was unchanged."""

    document_id: str
    chunks: int
    unchanged: bool = False


@attrs.frozen
class DocumentSummary:
    """One document of a `DocumentPage`: its id, title, metadata (without VPA's own ``vpa_*``
    keys) and how many chunks it is stored as."""

    document_id: str
    title: str
    metadata: dict[str, Any] = attrs.field(factory=dict, hash=False)
    chunks: int = 1


@attrs.frozen
class DocumentPage:
    """A page of `RAGSystem.list_documents`: its documents and the cursor of the next page
    (None after the last). The cursor is opaque, valid in another process, and only for the same
    filter and tenant."""

    documents: list[DocumentSummary]
    cursor: str | None = None


@attrs.frozen
class MetadataUpdate:
    """What `RAGSystem.update_document_metadata` changed: how many documents, and their chunks."""

    documents: int
    chunks: int


def _summary(head: Record) -> DocumentSummary:
    meta = head.metadata
    return DocumentSummary(
        document_id=str(meta[DOC_ID]), title=str(meta.get(TITLE, "")), metadata=user_metadata(meta),
        chunks=_chunk_count(head),
    )


#: What a search returns a result for: a document (its best chunk), or each chunk.
GROUP_BY = ("document", "chunk")
#: Chunks asked for per document wanted, before asking again (long documents rank several).
DOCUMENT_FETCH_FACTOR = 3
#: How a search ranks: by meaning (the query's vector, cosine), by words (BM25 of the chunk's
#: text, `vpa.lexical`), or both fused. ``dense`` is the default.
MODES = ("dense", "lexical", "hybrid")
#: A hybrid search's fusion and linear weight when none is given (`vpa.lexical.fuse`).
DEFAULT_FUSION = "rrf"
DEFAULT_ALPHA = 0.5


def check_mode(mode: Any, fusion: Any = None, alpha: Any = None) -> tuple[str, str, float]:
    """A search's ``mode``, ``fusion`` and ``alpha`` checked (`ValidationError`), with the defaults
    filled in. ``fusion`` only means something to a hybrid search and ``alpha`` only to the linear
    fusion (RRF has no weight), so either given where it would not be used is refused rather than
    ignored."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValidationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if fusion is not None and mode != "hybrid":
        raise ValidationError(f"fusion applies to mode='hybrid' only, not mode={mode!r}")
    if alpha is not None and (mode != "hybrid" or fusion != "linear"):
        raise ValidationError(
            "alpha weighs the linear fusion only: give mode='hybrid' and fusion='linear' with it"
        )
    from vpa.lexical import check_fusion

    fusion, alpha = check_fusion(DEFAULT_FUSION if fusion is None else fusion, DEFAULT_ALPHA if alpha is None else alpha)
    return mode, fusion, alpha


def embedding_input(title: str, text: str) -> str:
    """What a chunk's vector embeds: its document's title, a newline, then the chunk's text (the
    text alone without a title). `vpa.reindex` re-embeds stored chunks by the same rule."""
    return f"{title}\n{text}" if title else text


def _document_key(hit: Hit) -> tuple[str, str]:
    return (str(hit.metadata.get(TENANT, "")), str(hit.metadata[DOC_ID]))


def _result(hit: Hit, mode: str = "dense") -> SearchResult:
    """A hit as a result: its score is the mode's (a cosine only in dense mode, see `SearchResult`)."""
    return SearchResult(
        document_id=str(hit.metadata[DOC_ID]), chunk_id=public_chunk_id(hit.metadata),
        similarity=hit.score if mode == "dense" else None, score=hit.score, mode=mode, content=hit.text,
        metadata=user_metadata(hit.metadata), title=str(hit.metadata.get(TITLE, "")),
    )


def _group(hits: list[Hit], top_k: int, passages: bool, mode: str = "dense") -> list[SearchResult]:
    """One result per document, best first, from hits ordered best first."""
    groups: dict[tuple[str, str], list[Hit]] = {}
    for hit in hits:
        key = _document_key(hit)
        if key in groups:
            groups[key].append(hit)
        elif len(groups) < top_k:
            groups[key] = [hit]
    out = []
    for best, *others in groups.values():
        result = _result(best, mode)
        if passages and others:
            result = attrs.evolve(result, passages=tuple(_result(h, mode) for h in others))
        out.append(result)
    return out


def _hashable(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """Metadata as the content hash reads it: datetimes as typed JSON (anything else as it is,
    so that documents without datetimes keep the hash they were stored with)."""
    return encode_metadata(metadata) if has_datetimes(metadata) else metadata


def _drifted(p: _Prepared) -> bool:
    """Whether an unchanged document's stored metadata differs from the one given: the content
    hash covers the metadata it was written with, which an in-place update changes since."""
    return p.old_head is not None and user_metadata(p.old_head.metadata) != p.document.metadata


def _chunk_count(head: Record | None) -> int:
    return int(head.metadata.get(CHUNK_COUNT, 1)) if head is not None else 0


@attrs.define
class _Prepared:
    document: Document
    tenant: str | None
    content_hash: str
    records: list[Record] = attrs.field(factory=list)
    old_head: Record | None = None


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
        # Encryption at rest: a store that does not encrypt on its own (a remote one) seals each
        # chunk's text and title, and checks each collection's key when it is opened; with it off,
        # encrypted collections and ciphertext are refused, never served (see `vpa.crypto`).
        from vpa.crypto import protect_store

        self.store = protect_store(self.store, self.config)
        self.embedder = embedder or registry.create("embedder", self.config.embedder, self.config)
        # Concurrent searches encode their queries in shared batches (VPA_QUERY_BATCH_SIZE).
        from vpa.embedders.batching import QueryBatcher

        self.query_batcher = QueryBatcher.from_config(self.embedder, self.config)
        self.chunker = chunker or registry.create("chunker", self.config.chunker, self.config)
        self.cache = cache or registry.create("cache", self.config.cache, self.config)
        self.collection = self.config.collection
        #: The collection ``collection`` means (`vpa.aliases`), resolved when it is opened.
        self._physical: str | None = None
        self._info: CollectionInfo | None = None
        self.telemetry = SearchTelemetry(self.config.search_history_size)
        tracing.configure(self.config)
        self._hash_key: bytes | None = None
        if self.config.encrypt_at_rest and self.config.encryption_key:
            from vpa.crypto import parse_key

            key = parse_key(self.config.encryption_key)
            self._hash_key = hmac.new(key, b"vpa content hash v1", hashlib.sha256).digest()
        #: head record id -> content hash of the version it completes (see `vpa.layout`).
        self._heads: cachetools.LRUCache[str, str] = cachetools.LRUCache(HEAD_CACHE_SIZE)

    # --- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> CollectionInfo:
        """Open or create the collection; fails with `EmbedderMismatch` if another embedder filled it.

        ``config.collection`` may be an alias (`vpa.aliases`, as `vpa reindex` sets one): it is
        resolved here, once per opening, to the collection it means, which must exist
        (`DanglingAlias` otherwise; only a plain name is created)."""
        if self._info is None:
            from vpa.aliases import DanglingAlias, resolve

            fingerprint = self.embedder.fingerprint
            physical = await resolve(self.store, self.collection)
            if physical != self.collection:
                try:
                    await self.store.open_collection(physical)
                except CollectionNotFound:
                    raise DanglingAlias(self.collection, physical) from None
            try:
                self._info = await self.store.create_collection(
                    physical, fingerprint.dimension, fingerprint=fingerprint
                )
            except (EmbedderMismatch, DimensionMismatch) as exc:
                error = await self._mismatch(physical, exc)
                if error is exc:
                    raise
                raise error from exc
            self._physical = physical
            log.info("rag.initialized", collection=self.collection, physical=physical,
                     provider=self.config.provider, embedder=fingerprint.describe())
        return self._info

    async def _mismatch(self, physical: str, exc: Exception) -> Exception:
        """The error for a collection another embedder filled, naming the way out (`vpa reindex`),
        by the collection's configured name; a dimension clash is one too when both have a fingerprint."""
        try:
            stored = (await self.store.open_collection(physical)).fingerprint
        except VPAError:
            return exc
        if stored is None or stored == self.embedder.fingerprint:
            return exc
        command = f"vpa reindex {self.collection} --embedder {self.embedder.name or self.config.embedder}"
        if self.config.embedding_model:
            command += f" --model {self.config.embedding_model}"
        return EmbedderMismatch.between(
            self.collection, stored.describe(), self.embedder.fingerprint.describe(), command
        )

    async def shutdown(self) -> None:
        await self.store.close()
        self._info = None
        self._physical = None

    async def __aenter__(self) -> RAGSystem:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # --- ids and hashing -----------------------------------------------------------------------

    def _content_hash(self, document: Document, tenant: str | None) -> str:
        """The version of a document: a digest of everything that shapes its chunks. Under
        encryption at rest it is keyed (HMAC), so the stored digest cannot confirm a guessed text."""
        payload = json.dumps(
            [LAYOUT_VERSION, document.title, document.content, _hashable(document.metadata), tenant,
             self.chunker.name, self.chunker.chunk_size, self.chunker.chunk_overlap],
            sort_keys=True, ensure_ascii=False,
        ).encode("utf-8")
        if self._hash_key is not None:
            return hmac.new(self._hash_key, payload, hashlib.sha256).hexdigest()
        return hashlib.sha256(payload).hexdigest()

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
        caps = self.store.capabilities
        # the store's own rules, before anything is chunked or embedded: a 1.0 store's keys and types
        check_metadata(document.metadata, caps.metadata_types, legacy_keys=not caps.contract_1_1)
        reserved = [k for k in document.metadata if k.startswith(RESERVED_PREFIX)]
        if reserved:
            raise InvalidMetadata(f"metadata keys starting with {RESERVED_PREFIX!r} are reserved: {reserved}")
        self._check_metadata_bounds(document)

    def _check_metadata_bounds(self, document: Document) -> None:
        """The store's metadata bounds, less what every chunk adds (`vpa.layout.RESERVED_KEYS`),
        checked before anything is chunked or embedded; the error names the document."""
        caps = self.store.capabilities
        what = f"metadata of document {document.id!r}"
        keys = len(document.metadata)
        if keys + len(RESERVED_KEYS) > caps.max_metadata_keys:
            raise LimitExceeded("max_metadata_keys", keys, caps.max_metadata_keys - len(RESERVED_KEYS),
                                what=f"{what} (VPA adds {len(RESERVED_KEYS)} keys of its own)")
        # the reserved values at their largest: the title, a 64-hex hash, the tenant, five numbers
        widest = {**document.metadata, TITLE: document.title, CONTENT_HASH: "0" * 64, TENANT: "t" * 64,
                  DOC_ID: document.id, **dict.fromkeys((CHUNK_INDEX, CHUNK_COUNT, START, END), 10**15)}
        size = metadata_bytes(widest)
        if size > caps.max_metadata_bytes:
            raise LimitExceeded("max_metadata_bytes", size, caps.max_metadata_bytes,
                                what=f"{what} (with the title and VPA's own keys)")

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
        """Add or replace any number of documents. All are validated before anything is written;
        they are then written in groups of ``INGEST_GROUP``, and embedding of one batch overlaps
        with the upsert of the previous one. (The REST route bounds a request by
        ``VPA_MAX_BATCH_SIZE``; a library call does not.)

        Each document becomes visible whole or not at all: its body chunks are written first, its
        head (the completion marker) last, and the previous version's chunks are removed only
        after the new head is in place (see `vpa.layout`). An interrupted ingest leaves the
        previous version, whole; running it again repairs the document."""
        with tracing.span("vpa.ingest", provider=self.config.provider, collection=self.collection):
            info = await self.initialize()
            check_tenant(tenant)
            docs = [d if isinstance(d, Document) else self._document_from_mapping(d) for d in documents]
            latest: dict[str, Document] = {}
            for doc in docs:
                self._check_document(doc)
                latest[doc.id] = doc
            started = time.perf_counter()
            prepared = [_Prepared(doc, tenant, self._content_hash(doc, tenant)) for doc in latest.values()]
            results: list[IngestResult] = []
            changed = chunks = 0
            for start in range(0, len(prepared), INGEST_GROUP):  # any number, in bounded groups
                group = prepared[start : start + INGEST_GROUP]
                todo = await self._changed(info, group, tenant)
                rewritten = {id(p) for p in todo}
                drifted = [p for p in group if self._in_place and id(p) not in rewritten and _drifted(p)]
                try:
                    chunks += await self._write(info, todo)
                    await self._restore_metadata(info, drifted)
                finally:
                    if todo or drifted:  # also after a failure: some versions may have been completed
                        self.cache.invalidate(self._results_namespace())
                await self._remove_stale_chunks(info, todo)
                changed += len(todo) + len(drifted)
                restored = {id(p) for p in drifted}
                for p in group:
                    done = id(p) in rewritten
                    results.append(IngestResult(p.document.id, len(p.records) if done else _chunk_count(p.old_head),
                                                not done and id(p) not in restored))
            log.info("rag.documents_added", documents=len(prepared), changed=changed, chunks=chunks,
                     ms=round((time.perf_counter() - started) * 1000, 1))
            return results

    async def _changed(
        self, info: CollectionInfo, group: list[_Prepared], tenant: str | None
    ) -> list[_Prepared]:
        """The documents of ``group`` whose stored version differs (or is missing or unfinished)."""
        heads = [head_id(p.document.id, tenant) for p in group]
        existing = {r.id: r for r in await self.store.get(info.name, heads)} if heads else {}
        todo: list[_Prepared] = []
        for p, hid in zip(group, heads, strict=True):
            old = existing.get(hid)
            if belongs(old, tenant):
                p.old_head = old
                if old.metadata.get(CONTENT_HASH) == p.content_hash:
                    self._heads[hid] = p.content_hash
                    continue
            todo.append(p)
        return todo

    @staticmethod
    def _document_from_mapping(data: Mapping[str, Any]) -> Document:
        doc_id = data.get("document_id", data.get("id"))
        return Document(id=doc_id, title=data.get("title", ""), content=data.get("content", ""),
                        metadata=dict(data.get("metadata") or {}))

    def _chunk_records(self, p: _Prepared) -> list[tuple[str, str, dict[str, Any]]]:
        """(record id, text to embed, metadata) for each chunk of a prepared document."""
        doc = p.document
        with tracing.span("vpa.chunk", characters=len(doc.content)) as current:
            chunks = self.chunker.split(doc.content)
            if current is not None:
                current.set_attribute("chunks", len(chunks))
        return [
            (record_id(doc.id, chunk.index, p.tenant, p.content_hash), chunk.text,
             chunk_metadata(doc, chunk, len(chunks), p.content_hash, p.tenant))
            for chunk in chunks
        ]

    async def _write(self, info: CollectionInfo, todo: list[_Prepared]) -> int:
        """Embed and upsert every chunk of ``todo``: all body chunks first, then the heads, never
        in the same store call, so a head is stored only once its version's bodies are."""
        bodies: list[tuple[_Prepared, str, str, dict[str, Any]]] = []
        heads: list[tuple[_Prepared, str, str, dict[str, Any]]] = []
        for p in todo:
            for rid, text, metadata in self._chunk_records(p):
                (heads if metadata[CHUNK_INDEX] == 0 else bodies).append((p, rid, text, metadata))
        batch_size = max(self.config.embedding_batch_size * 4, 1)
        batches = [bodies[i : i + batch_size] for i in range(0, len(bodies), batch_size)]
        batches += [heads[i : i + batch_size] for i in range(0, len(heads), batch_size)]
        upsert_task: asyncio.Task[int] | None = None
        try:
            for batch in batches:
                inputs = [embedding_input(p.document.title, t) for p, _, t, _ in batch]
                with tracing.span("vpa.embed", texts=len(inputs), embedder=self.embedder.fingerprint.describe()):
                    vectors = await self.embedder.aembed(inputs)  # overlaps with the previous upsert
                records = [Record(rid, v, t, m) for (_, rid, t, m), v in zip(batch, vectors, strict=True)]
                for (p, *_), record in zip(batch, records, strict=True):
                    p.records.append(record)
                if upsert_task is not None:
                    await upsert_task
                upsert_task = asyncio.create_task(self._traced_upsert(info, records))
            if upsert_task is not None:
                await upsert_task
        except BaseException:
            if upsert_task is not None and not upsert_task.done():
                upsert_task.cancel()
            for p in todo:  # what this process believed about these heads may be stale now
                self._heads.pop(head_id(p.document.id, p.tenant), None)
            raise
        for p in todo:
            self._heads[head_id(p.document.id, p.tenant)] = p.content_hash
        return len(bodies) + len(heads)

    async def _restore_metadata(self, info: CollectionInfo, drifted: list[_Prepared]) -> None:
        """Documents whose stored version is the one given but whose metadata was changed since
        (`update_document_metadata`): their chunks get the given metadata back, in place."""
        for p in drifted:
            assert p.old_head is not None
            given = p.document.metadata
            gone = [k for k in user_metadata(p.old_head.metadata) if k not in given]
            await self._update_chunks(info, [p.document.id], p.tenant, given, gone)

    async def _traced_upsert(self, info: CollectionInfo, records: list[Record]) -> int:
        with tracing.span("vpa.store.upsert", provider=self.config.provider, collection=info.name,
                          records=len(records)):
            return await self.store.upsert(info.name, records)

    async def _remove_stale_chunks(self, info: CollectionInfo, todo: list[_Prepared]) -> None:
        """The previous versions' body chunks, once the new heads are in place."""
        stale = [rid for p in todo if p.old_head is not None for rid in body_ids(p.old_head)]
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
        """Remove a document and all its chunks; False if it did not exist. The head goes first,
        so readers never see a document with chunks missing."""
        info = await self.initialize()
        check_tenant(tenant)
        check_id(document_id)
        hid = head_id(document_id, tenant)
        self._heads.pop(hid, None)
        owner = Comparison(TENANT, FilterOp.EQ, tenant or "")
        existed = await self.store.delete(info.name, ids=[hid], filter=owner) > 0
        rest = And((owner, Comparison(DOC_ID, FilterOp.EQ, document_id)))
        removed = await self.store.delete(info.name, filter=rest)
        if existed or removed:
            self.cache.invalidate(self._results_namespace())
        log.info("rag.document_deleted", document_id=document_id, chunks=removed + existed)
        return existed

    # --- reads ---------------------------------------------------------------------------------

    async def get_document(self, document_id: str, *, tenant: str | None = None) -> Document | None:
        """The document as it was added (rebuilt exactly from its chunks), or None.

        Never a partial text: if chunks of the head's version are missing (a concurrent update
        swapped versions), it reads again; a document that stays incomplete raises
        `IncompleteDocument`."""
        info = await self.initialize()
        check_tenant(tenant)
        check_id(document_id)
        hid = head_id(document_id, tenant)
        for attempt in range(3):
            found = await self.store.get(info.name, [hid])
            head = found[0] if found else None
            if not belongs(head, tenant):
                self._heads.pop(hid, None)
                return None
            assert head is not None
            try:
                document = assemble(head, await self.store.get(info.name, body_ids(head)))
            except IncompleteDocument:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
                continue
            self._heads[hid] = str(head.metadata[CONTENT_HASH])
            return document
        raise AssertionError("unreachable")

    def _scope(
        self, spec: FilterLike, tenant: str | None, *, owner: bool = False, extra: Sequence[Node] = ()
    ) -> Node | None:
        """The caller's filter within the tenant (and ``extra`` terms). With a tenant — or with
        ``owner``, which selects the untenanted documents for tenant None, as get and delete do —
        the store gets one more term, and (unless the filter is a conjunction already) one more
        level, so the caller's filter is held to the store's bounds less those: a refusal names
        the caller's own filter."""
        caps = self.store.capabilities
        scoped = tenant is not None or owner
        terms: list[Node] = [Comparison(TENANT, FilterOp.EQ, tenant or "")] if scoped else []
        terms.extend(extra)
        added = len(terms)
        node = parse_filter(spec, max_terms=caps.max_filter_terms - added,
                            max_depth=caps.max_filter_depth - (added > 0), what="filters")
        if not terms:
            return node
        if node is None:
            return terms[0] if added == 1 else And(tuple(terms))
        return And((*terms, *(node.children if isinstance(node, And) else (node,))))

    @property
    def _in_place(self) -> bool:
        """Whether the store meets contract 1.1 (scroll and in-place update)."""
        return self.store.capabilities.contract_1_1

    def _require_1_1(self, what: str) -> None:
        caps = self.store.capabilities
        if not caps.contract_1_1:
            raise UnsupportedOperation(
                f"{what} needs a store that declares contract 1.1; the {self.config.provider!r} store "
                f"declares {caps.contract_version}"
            )

    # --- listing and metadata updates (contract 1.1) -------------------------------------------

    async def _collection(self, collection: str | None) -> CollectionInfo:
        """This system's collection (opened or created by `initialize`), or another one of the
        store, which must exist (`CollectionNotFound`): listing and metadata updates embed
        nothing, so any collection the RAG layer filled can be read with any embedder."""
        if collection is None or collection == self.collection:
            return await self.initialize()
        from vpa.aliases import resolve

        return await self.store.open_collection(await resolve(self.store, collection))

    def _check_page_size(self, page_size: Any) -> int:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValidationError(f"page_size must be a positive integer, got {page_size!r}")
        if page_size > MAX_LIST_PAGE_SIZE:
            raise LimitExceeded("max_list_page_size", page_size, MAX_LIST_PAGE_SIZE, what="list page_size")
        return page_size

    async def _head_pages(
        self, info: CollectionInfo, node: Node | None, page_size: int, cursor: str | None
    ) -> tuple[list[Record], str | None]:
        """Up to ``page_size`` document heads matching ``node`` (which selects chunk 0 already),
        from ``cursor`` on: the store's scroll without vectors, several of its pages if one holds
        fewer (at most `LIST_ROUNDS`); and the cursor after them (None at the end)."""
        batch = min(page_size, self.store.capabilities.max_page_size)
        heads: list[Record] = []
        position = cursor
        for _ in range(LIST_ROUNDS):
            with tracing.span("vpa.store.scroll", provider=self.config.provider, collection=info.name,
                              batch_size=batch):
                page = await self.store.scroll_page(
                    info.name, node, batch_size=min(batch, page_size - len(heads)), cursor=position,
                    with_vectors=False,
                )
            heads.extend(r for r in page.records if is_head(r.id, r.metadata))
            position = page.cursor
            if position is None or len(heads) >= page_size:
                break
        return heads, position

    def _heads_scope(self, spec: FilterLike, tenant: str | None) -> Node | None:
        """The heads of the tenant's documents (the untenanted ones for None) matching ``spec``."""
        return self._scope(spec, tenant, owner=True, extra=(Comparison(CHUNK_INDEX, FilterOp.EQ, 0),))

    async def list_documents(
        self,
        collection: str | None = None,
        filter: FilterLike = None,  # the name every filter takes in VPA
        *,
        page_size: int = DEFAULT_LIST_PAGE_SIZE,
        cursor: str | None = None,
        tenant: str | None = None,
    ) -> DocumentPage:
        """One page of the documents of ``collection`` (default: this system's) that belong to
        ``tenant`` (the untenanted ones for None, as `get_document` reads them) and match
        ``filter``: at most ``page_size`` (up to `MAX_LIST_PAGE_SIZE`) `DocumentSummary` — id,
        title, metadata and chunk count, never text or vectors — and the cursor of the next page
        (None after the last; pass it back as ``cursor``).

        Only complete documents are listed, each once: the store's scroll reads the document heads
        (the completion markers, see `vpa.layout`), filtered by the store itself (the filter, the
        tenant and the head marker), without vectors. Following the cursors from the first page
        lists every document that exists for the whole listing exactly once, in another process
        too. A page may hold fewer than ``page_size`` documents before the last.

        Needs a store of contract 1.1 (else `UnsupportedOperation`); a cursor handed out for
        another collection, filter or tenant is `InvalidCursor`."""
        check_tenant(tenant)
        page_size = self._check_page_size(page_size)
        if cursor is not None and (not isinstance(cursor, str) or not cursor):
            raise InvalidCursor(f"cursor must be a non-empty string, got {type(cursor).__name__}")
        self._require_1_1("listing documents")
        node = self._heads_scope(filter, tenant)
        info = await self._collection(collection)
        heads, following = await self._head_pages(info, node, page_size, cursor)
        return DocumentPage([_summary(h) for h in heads], following)

    async def iter_documents(
        self,
        collection: str | None = None,
        filter: FilterLike = None,
        *,
        page_size: int = DEFAULT_LIST_PAGE_SIZE,
        tenant: str | None = None,
    ) -> AsyncIterator[DocumentSummary]:
        """Every document `list_documents` lists, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_documents(
                collection, filter, page_size=page_size, cursor=cursor, tenant=tenant
            )
            for summary in page.documents:
                yield summary
            if page.cursor is None:
                return
            cursor = page.cursor

    async def list_collections(self) -> list[str]:
        """The names of the store's collections (the RAG layer fills this system's,
        ``config.collection``; `list_documents` reads any of them). The reserved collection of
        aliases (`vpa.aliases.ALIASES`) is not listed."""
        from vpa.aliases import ALIASES

        return [name for name in await self.store.list_collections() if name != ALIASES]

    def _check_changes(
        self, set: Mapping[str, Any] | None, unset: Sequence[str] | None
    ) -> tuple[dict[str, Any], list[str]]:
        """An update's ``set`` and ``unset`` by the store's rules (`VectorStore.check_update`),
        without VPA's own keys."""
        changes, removed = self.store.check_update(set, unset)
        reserved = sorted(k for k in (*changes, *removed) if k.startswith(RESERVED_PREFIX))
        if reserved:
            raise InvalidMetadata(f"metadata keys starting with {RESERVED_PREFIX!r} are reserved: {reserved}")
        return changes, removed

    def _check_merged(self, head: Record, changes: dict[str, Any], removed: list[str]) -> None:
        """The document's metadata once changed, held to the store's bounds less VPA's keys."""
        merged = {k: v for k, v in user_metadata(head.metadata).items() if k not in removed}
        merged.update(changes)
        self._check_metadata_bounds(
            Document(id=str(head.metadata[DOC_ID]), content="-", title=str(head.metadata.get(TITLE, "")),
                     metadata=merged)
        )

    async def update_document_metadata(
        self,
        document_id: str | None = None,
        *,
        filter: FilterLike = None,  # the name every filter takes in VPA
        set: Mapping[str, Any] | None = None,  # the store contract's name
        unset: Sequence[str] | None = None,
        tenant: str | None = None,
        collection: str | None = None,
    ) -> MetadataUpdate:
        """Change the metadata of one document (``document_id``) or of every document that
        matches ``filter`` (``{}``: all of the tenant's), in place on every chunk, without
        re-embedding anything: ``set`` adds or replaces keys (a ``None`` value removes one),
        ``unset`` removes keys. Returns how many documents and chunks were changed; the search
        cache is invalidated. Only the tenant's documents are reached (the untenanted ones for
        None), as `list_documents` lists them.

        Refused before anything is written: keys starting with ``vpa_`` (`InvalidMetadata`),
        metadata the store cannot hold, and a result over its bounds (with VPA's own keys) — for
        a filter, every matching document is checked first when ``set`` is given. An unknown
        document (or another tenant's) is `DocumentNotFound`; a filter matching nothing changes
        nothing. Needs a store of contract 1.1 (else `UnsupportedOperation`).

        A document's chunks are changed by one store call (a filter on its id and tenant; by
        filter, up to a page of documents a call). On a store without a native update
        (``native_update`` False) that is the store's read-modify-write, so a concurrent write of
        the same document may be overwritten. The content hash is not changed: adding the
        document again with the metadata it was added with restores that metadata in place."""
        check_tenant(tenant)
        if (document_id is None) == (filter is None):
            raise ValidationError("update_document_metadata needs a document id or a filter (not both)")
        if document_id is not None:
            check_id(document_id)
        self._require_1_1("updating metadata")
        changes, removed = self._check_changes(set, unset)
        node = self._heads_scope(filter, tenant) if document_id is None else None
        info = await self._collection(collection)
        namespace = self._results_namespace(info.name)
        if document_id is not None:
            found = await self.store.get(info.name, [head_id(document_id, tenant)])
            head = found[0] if found else None
            if not belongs(head, tenant):
                raise DocumentNotFound(document_id)
            assert head is not None
            self._check_merged(head, changes, removed)
            try:
                chunks = await self._update_chunks(info, [document_id], tenant, changes, removed)
            finally:  # also after a failure: some chunks may have been changed
                self.cache.invalidate(namespace)
            if not chunks:  # deleted meanwhile
                raise DocumentNotFound(document_id)
            log.info("rag.metadata_updated", documents=1, chunks=chunks)
            return MetadataUpdate(1, chunks)
        if changes:  # every result within the bounds, before anything is written
            cursor: str | None = None
            while True:
                heads, cursor = await self._head_pages(info, node, MAX_LIST_PAGE_SIZE, cursor)
                for head in heads:
                    self._check_merged(head, changes, removed)
                if cursor is None:
                    break
        documents = chunks = 0
        cursor = None
        try:
            while True:
                heads, cursor = await self._head_pages(info, node, MAX_LIST_PAGE_SIZE, cursor)
                ids = [str(h.metadata[DOC_ID]) for h in heads]
                if ids:
                    chunks += await self._update_chunks(info, ids, tenant, changes, removed)
                    documents += len(ids)
                if cursor is None:
                    break
        finally:
            if documents:
                self.cache.invalidate(namespace)
        log.info("rag.metadata_updated", documents=documents, chunks=chunks)
        return MetadataUpdate(documents, chunks)

    async def _update_chunks(
        self, info: CollectionInfo, document_ids: list[str], tenant: str | None, changes: dict[str, Any],
        removed: list[str],
    ) -> int:
        """Every chunk of the tenant's documents ``document_ids``, by filter (on the tenant and the
        document id: all versions' chunks, so a version being replaced stays consistent), as
        many ids a store call as its filter bounds take. Returns the chunks changed."""
        owner = Comparison(TENANT, FilterOp.EQ, tenant or "")
        per_call = max(1, self.store.capabilities.max_filter_terms - 1)
        chunks = 0
        for start in range(0, len(document_ids), per_call):
            part = document_ids[start : start + per_call]
            which = (Comparison(DOC_ID, FilterOp.EQ, part[0]) if len(part) == 1
                     else Comparison(DOC_ID, FilterOp.IN, tuple(part)))
            with tracing.span("vpa.store.update", provider=self.config.provider, collection=info.name,
                              documents=len(part)):
                chunks += await self.store.update(
                    info.name, filter=And((owner, which)), set=changes or None, unset=removed or None
                )
        return chunks

    def _results_namespace(self, collection: str | None = None) -> str:
        """Cached results are kept per physical collection (what an alias means, once opened)."""
        return f"results:{self.config.provider}:{collection or self._physical or self.collection}"

    async def _embed_query(self, query: str) -> np.ndarray:
        namespace = f"embedding:{self.embedder.fingerprint.describe()}"
        cached = self.cache.get(namespace, query)
        if cached is not None:
            return cached
        with tracing.span("vpa.embed", texts=1, embedder=self.embedder.fingerprint.describe()):
            vector = await self.query_batcher.embed_query(query)
        self.cache.set(namespace, query, vector)
        return vector

    async def _complete_hits(self, info: CollectionInfo, hits: list[Hit]) -> list[Hit]:
        """The hits that belong to a completed version of their document (see `vpa.layout`):
        a body chunk is served only if its document's head carries the same content hash."""
        unknown: set[str] = set()
        for hit in hits:
            meta = hit.metadata
            if CONTENT_HASH not in meta or is_head(hit.id, meta):
                continue
            hid = head_id(str(meta[DOC_ID]), meta.get(TENANT) or None)
            if self._heads.get(hid) != meta[CONTENT_HASH]:
                unknown.add(hid)
        if unknown:
            found = {r.id: r for r in await self.store.get(info.name, sorted(unknown))}
            for hid in unknown:
                head = found.get(hid)
                if head is None:
                    self._heads.pop(hid, None)
                else:
                    self._heads[hid] = str(head.metadata.get(CONTENT_HASH))
        return [
            hit for hit in hits
            if CONTENT_HASH in hit.metadata and (
                is_head(hit.id, hit.metadata)
                or self._heads.get(head_id(str(hit.metadata[DOC_ID]), hit.metadata.get(TENANT) or None))
                == hit.metadata[CONTENT_HASH]
            )
        ]

    async def _query_complete(
        self,
        info: CollectionInfo,
        vector: np.ndarray | None,
        top_k: int,
        node: Node | None,
        *,
        distinct: bool = False,
        text: str | None = None,
        mode: str = "dense",
        fusion: str = DEFAULT_FUSION,
        alpha: float = DEFAULT_ALPHA,
    ) -> list[Hit]:
        """Hits of completed versions, best first: ``top_k`` of them, or with ``distinct`` enough to
        hold ``top_k`` documents. Asks the store for more while hits were dropped or documents
        repeated (bounded by the store's ``max_top_k`` and `REFILL_ROUNDS`). The same in every
        ``mode``: the store ranks (by ``vector``, by the words of ``text``, or both fused), the
        filter ``node`` is the store's in each, and a lexical store call that returns fewer hits
        than asked has no more to give."""
        limit = min(filter(None, (self.store.capabilities.max_top_k, MAX_TOP_K * 4)))
        asked = min(limit, top_k * DOCUMENT_FETCH_FACTOR) if distinct else top_k
        kept: list[Hit] = []
        for _ in range(REFILL_ROUNDS):
            with tracing.span("vpa.store.query", provider=self.config.provider, collection=info.name, top_k=asked,
                              filtered=node is not None, mode=mode):
                hits = await self._store_hits(info, vector, text, asked, node, mode, fusion, alpha)
            kept = await self._complete_hits(info, hits)
            found = len({_document_key(h) for h in kept}) if distinct else len(kept)
            if found >= top_k or len(hits) < asked or asked >= limit:
                break
            asked = min(limit, asked * 2 + (top_k - found))
        return kept if distinct else kept[:top_k]

    async def _store_hits(
        self, info: CollectionInfo, vector: np.ndarray | None, text: str | None, top_k: int,
        node: Node | None, mode: str, fusion: str, alpha: float,
    ) -> list[Hit]:
        """One store call of a search in ``mode``: dense, lexical or hybrid (fused by the store)."""
        if mode == "lexical":
            assert text is not None
            return await self.store.lexical_query(info.name, text, top_k, node)
        assert vector is not None
        if mode == "hybrid":
            assert text is not None
            return await self.store.hybrid_query(
                info.name, vector, text, top_k, node, fusion=fusion, alpha=alpha
            )
        return await self.store.query(info.name, vector, top_k, node)

    def _require_lexical(self, mode: str) -> None:
        """Refuses, before any I/O, a lexical or hybrid search the store cannot answer: never a
        silent dense answer instead. Under encryption at rest the reason is the sealed text."""
        if self.store.capabilities.lexical_search:
            return
        from vpa.crypto import EncryptedTextStore

        if isinstance(self.store, EncryptedTextStore):
            raise UnsupportedOperation(
                f"mode={mode!r} searches the words of the stored text, but encryption at rest seals the "
                f"text the {self.config.provider!r} store holds: encrypted text cannot be searched by words; "
                "use mode='dense' (or the memory store, which encrypts on its own)"
            )
        raise UnsupportedOperation(
            f"mode={mode!r} needs a store that declares lexical search; the {self.config.provider!r} store "
            "does not: use mode='dense' or a store that does (see `vpa plugins`)"
        )

    async def search_knowledge(
        self,
        user_id: str,
        query: str,
        top_k: int = 5,
        filters: FilterLike = None,
        *,
        tenant: str | None = None,
        group_by: str = "document",
        passages: bool = False,
        mode: str = "dense",
        fusion: str | None = None,
        alpha: float | None = None,
    ) -> list[SearchResult]:
        """The documents most relevant to ``query`` that match ``filters`` (and the tenant), best
        first: each as its best-matching chunk, one result a document (``passages=True`` adds its
        other matching chunks). ``group_by="chunk"`` returns chunks instead, several of one
        document if they rank so.

        ``mode`` is how chunks are ranked, and what each result's ``score`` is:

        - ``"dense"`` (the default): by the cosine similarity of the query's embedding to the
          chunk's; ``score`` and ``similarity`` are that cosine, in [-1, 1].
        - ``"lexical"``: by BM25 of the query's words in the chunk's text (`vpa.lexical`: Unicode
          words case-folded, no stemming, statistics over the whole collection); ``score`` is the
          BM25 score (positive, unbounded: comparable within one query's results only) and
          ``similarity`` is None. Chunks holding none of the words are not returned, so fewer
          than ``top_k`` results may come back. The query is not embedded.
        - ``"hybrid"``: both rankings fused (by the engine where it fuses, else by VPA):
          ``fusion="rrf"`` (the default; ``score`` is ``sum 1 / (60 + rank)`` over the two
          rankings, at most 2/61) or ``fusion="linear"`` (``score`` is ``alpha * dense + (1 - alpha)
          * lexical`` over min-max normalised scores, in [0, 1]; ``alpha`` defaults to 0.5);
          ``similarity`` is None.

        ``fusion`` is for hybrid only and ``alpha`` for the linear fusion only: given elsewhere
        they are refused (`ValidationError`), not ignored. Filters and the tenant are applied by
        the store to both halves. A store that does not declare lexical search (or one whose text
        is sealed by encryption at rest) raises `UnsupportedOperation` for lexical and hybrid —
        never a dense answer instead. Every argument is checked before any store call."""
        traced_mode = mode if isinstance(mode, str) and mode in MODES else None
        with tracing.span("vpa.search", provider=self.config.provider, collection=self.collection, top_k=top_k,
                          filtered=filters is not None, group_by=group_by, mode=traced_mode):
            check_tenant(tenant)
            if group_by not in GROUP_BY:
                raise ValidationError(f"group_by must be one of {', '.join(GROUP_BY)}, got {group_by!r}")
            mode, fusion, alpha = check_mode(mode, fusion, alpha)
            if not isinstance(query, str) or not query.strip():
                raise ValidationError("query must be a non-empty string")
            if not is_encodable(query):
                raise ValidationError("query is not valid Unicode text (a lone surrogate)")
            if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
                raise ValidationError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
            if mode != "dense":
                from vpa.lexical import query_terms

                query_terms(query)  # its words within the lexical bounds, before any I/O
                self._require_lexical(mode)
            node = self._scope(filters, tenant)
            info = await self.initialize()
            started = time.perf_counter()
            key = f"{mode}|{fusion}|{alpha!r}|{top_k}|{group_by}|{passages}|{canonical_json(node)}|{query}"
            # An eventually consistent store may still answer with pre-write data right after a write:
            # caching that would pin stale results for a whole TTL, so only exact-now stores are cached.
            cache_results = not self.store.capabilities.eventually_consistent
            with tracing.span("vpa.cache.get", namespace="results") as current:
                results = self.cache.get(self._results_namespace(), key) if cache_results else None
                if current is not None:
                    current.set_attribute("hit", results is not None)
            if results is None:
                vector = await self._embed_query(query) if mode != "lexical" else None
                distinct = group_by == "document"
                hits = await self._query_complete(info, vector, top_k, node, distinct=distinct, text=query,
                                                  mode=mode, fusion=fusion, alpha=alpha)
                results = (_group(hits, top_k, passages, mode) if distinct
                           else [_result(hit, mode) for hit in hits])
                if cache_results:
                    self.cache.set(self._results_namespace(), key, results)
            latency = (time.perf_counter() - started) * 1000
            self.telemetry.record(tenant, user_id, query, top_k, len(results), latency, filters is not None)
            log.debug("rag.search", top_k=top_k, mode=mode, results=len(results), ms=round(latency, 2))
            return list(results)

    async def count_matching(
        self, filters: FilterLike = None, *, tenant: str | None = None, documents: bool = False
    ) -> int:
        """How many chunks (or ``documents``) a search with ``filters`` ranks: every one of the
        tenant that matches. A document's chunks carry the same metadata, so its head stands for it."""
        info = await self.initialize()
        check_tenant(tenant)
        head = (Comparison(CHUNK_INDEX, FilterOp.EQ, 0),) if documents else ()
        return await self.store.count(info.name, self._scope(filters, tenant, extra=head))

    def get_search_history(
        self, user_id: str, limit: int | None = None, *, tenant: str | None = None
    ) -> list[SearchHistoryEntry]:
        """A user's most recent searches within a tenant, newest first. Queries are kept as
        hashes, not text; the history is per process."""
        return self.telemetry.history(user_id, tenant=tenant, limit=limit)

    async def get_system_stats(self, *, tenant: str | None = None) -> dict[str, Any]:
        """Documents and chunks of the tenant (all with None), with this process's search figures
        for that tenant (every tenant's with None).

        Flat keys, and the original interface's nested sections as well:
        ``stats["search_statistics"]["total_searches"]``, ``["avg_response_time"]`` (seconds), ...
        Search figures are those of this process (``search_statistics["scope"] == "process"``):
        a CLI run starts from zero."""
        info = await self.initialize()
        scope = self._scope(None, tenant)
        chunks = await self.store.count(info.name, scope)
        documents = await self.store.count(info.name, self._scope({CHUNK_INDEX: 0}, tenant))
        cache = self.cache.stats()
        figures = self.telemetry.figures(ALL if tenant is None else tenant)
        fingerprint = self.embedder.fingerprint
        # The cache is shared by every tenant: its figures are the operator's (tenant None) only.
        hit_rate = round(cache.hit_rate, 4) if tenant is None else None
        return {
            "provider": self.config.provider,
            "collection": info.name,
            "embedder": fingerprint.describe(),
            "documents": documents,
            "chunks": chunks,
            **figures,
            "cache_hit_rate": hit_rate,
            "search_statistics": {
                "total_searches": figures["total_searches"],
                "avg_response_time": round(figures["avg_latency_ms"] / 1000, 6),
                "p95_response_time": round(figures["p95_latency_ms"] / 1000, 6),
                "cache_hit_rate": hit_rate,
                "scope": "process",
            },
            "vector_database": {
                "provider": self.config.provider,
                "collection": info.name,
                "total_documents": documents,
                "total_chunks": chunks,
            },
            "embedding_model": {"name": fingerprint.model, "dimension": fingerprint.dimension},
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
    """Search results as JSON-ready dicts (document_id, chunk_id, similarity, content, metadata, title,
    passages, score, mode)."""
    return [attrs.asdict(r) for r in results]
