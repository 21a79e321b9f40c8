"""The `pinecone` store: VPA collections as namespaces of one Pinecone serverless index.

Layout
    One index (``[providers.pinecone] index``, default ``vpa``) with the cosine metric holds every
    collection; a collection is the namespace ``<namespace_prefix><name>``. The index is created
    on the first ``create_collection`` if it does not exist (serverless: ``cloud`` and
    ``region``; dimension ``dimension``). A collection of a smaller dimension than the index is
    stored zero-padded (cosine similarity is unchanged; reads cut the padding off).

Catalog
    Each collection's definition — dimension, metric and embedder fingerprint — is a record in
    the reserved namespace ``<namespace_prefix>__vpa_catalog__`` whose id is the collection name,
    so another process finds it (`_describe_collection`) and lists it (`_list_collections`).

Consistency
    Pinecone is eventually consistent. Every write remembers what it needs to be confirmed: the
    log sequence number (LSN) the upsert response reports (``x-pinecone-request-lsn``), the last
    records written (for a server that reports no LSN), and the ids deleted. ``settle()`` polls —
    a one-vector query comparing ``x-pinecone-max-indexed-lsn``, and queries filtered on the
    written or deleted ids — with a short exponential back-off until every acknowledged write of
    this store is visible, or ``settle_timeout`` passes (`StoreTimeout`). Collection creation and
    drops, and ``delete`` (which must see earlier writes to count what it removes), wait the same
    way before they return.

Contract 1.1
    ``scroll`` pages with Pinecone's own tokens: ``list`` + ``fetch`` without a filter,
    ``fetch_by_metadata`` with one (`_scroll`). ``update`` sets keys with Pinecone's merging
    ``update`` by metadata filter; removing keys is a read-modify-write (`_update`), because
    Pinecone's update cannot remove one. Updates are confirmed by ``settle()`` like any write.

Lexical search (0.3.1)
    A second, sparse index (`lexical.companion_name`) holds each lexical collection's BM25 term
    weights and a copy of its metadata in a namespace of the same name, written by ``_upsert``,
    ``_update`` and ``_delete`` and confirmed by ``settle()`` like the dense half; the IDF is
    applied at query time (`_lexical_query`). The catalog record says whether a collection has
    it (`lexical.LAYOUT_KEY`; collections made before 0.3.1 do not, and refuse lexical queries).

The SDK is synchronous (httpx): every call runs in a worker thread (`run_vendor`), its errors
translated by `vpa_pinecone.errors`. Validation, splitting upserts by count and by bytes
(``max_request_bytes``, each vector bounded by `codec.vector_bytes_bound`) and the collection
cache are the base class's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs
import orjson
from pinecone import Pinecone, RetryConfig
from pinecone.errors.exceptions import ApiError, ConflictError, NotFoundError
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    InvalidCollection,
    InvalidCursor,
    StoreError,
    StoreTimeout,
    UnsupportedOperation,
)
from vpa.filters import And, Comparison, Node, Not
from vpa.lexical import idf as bm25_idf
from vpa.models import CollectionInfo, FilterOp, Hit, Record, contract_1_1
from vpa.stores.base import UPDATE_BATCH, VectorStore, batched

from vpa_pinecone import codec, errors, lexical
from vpa_pinecone.filters import to_native
from vpa_pinecone.settings import MAX_INDEX_DIMENSION, PineconeSettings, control_plane_url

T = TypeVar("T")

CATALOG_NAMESPACE = "__vpa_catalog__"

#: Pinecone's limits (docs: "Limits"): vectors per upsert, bytes per request, ids per fetch/delete.
MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2_000_000  # Pinecone says 2 MB; stay under it whichever MB it means
MAX_IDS_PER_REQUEST = 1000
MAX_TOP_K = 10_000
MAX_TOP_K_WITH_METADATA = 1000
#: Document-frequency look-ups of one lexical query sent to the sparse index at once.
DF_LOOKUPS_IN_FLIGHT = 8
IDS_PER_FILTER = 100  # ids in one {"vpa-id": {"$in": [...]}} filter (ids may be 2 KB each)
#: What text + metadata (VPA's measure) may take so that the stored Pinecone metadata — which
#: adds the original id (up to 2 KB of UTF-8) and the type tags — fits in 40 KB. A record under
#: this bound can still be refused with `RecordTooLarge` (before any I/O) if it has very many
#: numeric fields; see `codec.check_size`.
MAX_RECORD_BYTES = 38_000
#: Metadata alone, within that (a record at this bound keeps about 5 kB for its text). Pinecone
#: documents no key count of its own; the store adds one shadow key per number field.
MAX_METADATA_BYTES = 32 * 1024
#: Contract 1.1: records in one scroll page (at most one fetch by id of 1,000), ids per
#: ``list`` request (Pinecone's maximum), ids in one in-place update's ``vpa-id`` filter.
MAX_PAGE_SIZE = 1000
MAX_LIST_LIMIT = 100
IDS_PER_UPDATE = 1000
#: Scroll positions: Pinecone's pagination token of ``list`` (unfiltered) or of
#: ``fetch_by_metadata`` (filtered), after this prefix.
LISTED, MATCHING = "l:", "m:"
#: Bytes of ids in the ``vpa-id`` filter of one in-place update (within 2 MB per request).
MAX_FILTER_ID_BYTES = 1_000_000
#: Lexical recall@k of the BM25 oracle's top-k the store declares: measured on the stand-in, 1.0 on the
#: conformance clause (one batch) and 0.915 with the average length drifting threefold
#: (tests/test_pinecone_lexical.py); declared with margin. See the README.
LEXICAL_MIN_RECALL = 0.8
#: The filter an update with the empty filter (every record) sends: every record has its id.
MATCH_ALL = {codec.ID_KEY: {"$exists": True}}


@attrs.define
class _Handle:
    """The data-plane client of the index and the index's dimension."""

    index: Any
    dimension: int
    host: str
    sparse: bool = False


@attrs.define
class _Pending:
    """What this store wrote to one namespace and has not yet seen visible."""

    lsn: int = 0
    written: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    deleted: dict[str, str] = attrs.field(factory=dict)
    #: In-place updates the server gave no LSN for: filters that match nothing once they landed.
    updates: list[dict[str, Any]] = attrs.field(factory=list)
    generation: int = 0
    lock: threading.Lock = attrs.field(factory=threading.Lock, eq=False, repr=False)

    WRITTEN_KEPT = 1000  # the log is applied in order: the latest writes stand for the earlier ones

    def wrote(self, lsn: int | None, vectors: Sequence[dict[str, Any]]) -> None:
        with self.lock:
            self.generation += 1
            if lsn is not None:
                self.lsn = max(self.lsn, lsn)
            for vector in vectors:
                self.deleted.pop(vector["id"], None)
                self.written.pop(vector["id"], None)
                self.written[vector["id"]] = vector["metadata"]
            while len(self.written) > self.WRITTEN_KEPT:
                self.written.pop(next(iter(self.written)))

    def removed(self, found: dict[str, str]) -> None:
        with self.lock:
            self.generation += 1
            for pid, record_id in found.items():
                self.written.pop(pid, None)
                self.deleted[pid] = record_id

    def updated(self, lsn: int | None, pending_check: dict[str, Any]) -> None:
        with self.lock:
            self.generation += 1
            if lsn is not None:
                self.lsn = max(self.lsn, lsn)
            else:
                self.updates.append(pending_check)

    def snapshot(self) -> _Pending:
        with self.lock:
            return _Pending(
                self.lsn, dict(self.written), dict(self.deleted), list(self.updates), self.generation
            )


class PineconeStore(VectorStore):
    """VPA's store contract on Pinecone serverless, through the official ``pinecone`` SDK."""

    capabilities = contract_1_1(
        exact=False,  # serverless search is approximate (the stand-in is exact)
        min_recall=0.9,
        max_batch_size=MAX_UPSERT_VECTORS,
        max_request_bytes=MAX_REQUEST_BYTES,
        max_top_k=MAX_TOP_K,
        eventually_consistent=True,
        persistent=True,
        heterogeneous_fields=True,
        max_record_bytes=MAX_RECORD_BYTES,
        max_metadata_bytes=MAX_METADATA_BYTES,
        # Filters: Pinecone caps an $in/$nin at 10,000 values; VPA's default 1,024 terms and 32
        # levels stay well under it (a negated number comparison becomes three conditions).
        # Contract 1.1: a scroll page is at most 1,000 records (one fetch by id); a filtered scroll
        # is Pinecone's fetch by metadata. `update` sets keys with Pinecone's own update (merged
        # in place), but removing a key (`unset`, an empty list) is a read-modify-write: Pinecone's
        # update cannot remove metadata keys, so the whole update is declared read-modify-write.
        max_page_size=MAX_PAGE_SIZE,
        scroll_filters=True,
        native_update=False,
        # Lexical search: a sparse index beside the dense one (`vpa_pinecone.lexical`), IDF applied
        # at query time; approximate (fixed avg_len, capped n(t), hashed term ids). VPA fuses the
        # two halves of a hybrid query: they are two indexes.
        lexical_search=True,
        lexical_exact=False,
        lexical_min_recall=LEXICAL_MIN_RECALL,
        native_fusion=False,
    )
    settings_class = PineconeSettings
    provider = "pinecone"

    def __init__(
        self,
        settings: PineconeSettings | None = None,
        *,
        api_key: str | None,
        connection_pool_size: int = 0,
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else PineconeSettings()
        self._api_key = api_key
        self._pool_size = connection_pool_size
        self._prefix = self.settings.namespace_prefix
        self._pc: Pinecone | None = None
        self._handle: _Handle | None = None
        self._handle_lock: asyncio.Lock | None = None
        self._pending: dict[str, _Pending] = {}
        self._sparse: _Handle | None = None
        self._sparse_pending: dict[str, _Pending] = {}
        #: Per collection: its catalog record's lexical layout (None: made before 0.3.1) and avg_len.
        self._layouts: dict[str, tuple[str | None, float | None]] = {}
        self._closed = False

    @classmethod
    def from_config(cls, config: Any) -> PineconeStore:
        settings = cls.settings_from(config)
        if not settings.host:
            settings = attrs.evolve(settings, host=control_plane_url(config.host, config.port))
        return cls(settings, api_key=config.api_key, connection_pool_size=config.connection_pool_size)

    def __repr__(self) -> str:  # never shows the key
        return (
            f"PineconeStore(index={self.settings.index!r}, host={self.settings.host or 'api.pinecone.io'!r})"
        )

    # --- plumbing ------------------------------------------------------------------------------

    def translate_error(
        self, exc: BaseException, *, where: str, collection: str | None = None
    ) -> BaseException:
        error = errors.translate_error(exc, where=where, collection=collection)
        if isinstance(error, CollectionNotFound) and isinstance(exc, NotFoundError):
            self._forget_index()  # the index itself may be gone: describe it again next time
        return error

    def _forget_index(self) -> None:
        stale, self._handle = self._handle, None
        if stale is not None:
            with contextlib.suppress(Exception):
                stale.index.close()

    def _namespace(self, collection: str) -> str:
        return self._prefix + collection

    @property
    def _catalog(self) -> str:
        return self._prefix + CATALOG_NAMESPACE

    def _client(self) -> Pinecone:
        if self._closed:
            raise StoreError("this Pinecone store was closed; open a new one")
        if self._pc is None:
            if not self._api_key:
                raise ConfigError("the pinecone store needs an API key: set VPA_VECTOR_DB_API_KEY")
            try:
                self._pc = Pinecone(
                    api_key=self._api_key,
                    host=self.settings.host,
                    timeout=float(self.settings.timeout),
                    retry_config=RetryConfig(max_retries=self.settings.max_retries),
                    connection_pool_maxsize=self._pool_size,  # 0: the SDK's default
                    source_tag="vpa",
                )
            except Exception as exc:
                raise ConfigError(f"cannot configure the Pinecone client: {exc}") from exc
        return self._pc

    async def _open_index(self, *, create: bool) -> _Handle | None:
        """The index's data-plane client (describing, and if asked creating, the index)."""
        if self._handle is not None:
            return self._handle
        if self._handle_lock is None:
            self._handle_lock = asyncio.Lock()
        async with self._handle_lock:
            if self._handle is None:
                self._handle = await self.run_vendor("open the Pinecone index", self._connect, create)
        return self._handle

    def _connect(self, create: bool) -> _Handle | None:
        pc = self._client()
        name = self.settings.index
        try:
            model = pc.indexes.describe(name)
        except NotFoundError:
            if not create:
                return None
            if not self.settings.create_index:
                raise StoreError(
                    f"Pinecone index {name!r} does not exist and create_index is false"
                ) from None
            model = self._create(pc)
        deadline = time.monotonic() + max(self.settings.settle_timeout, 300.0)
        delay = 0.05
        while not (model.status.ready and model.host):
            if time.monotonic() > deadline:
                raise StoreTimeout(f"Pinecone index {name!r} did not become ready")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            model = pc.indexes.describe(name)
        field = model.schema.fields.get("_values")
        dimension = getattr(field, "dimension", None)
        metric = getattr(field, "metric", None)
        if dimension is None or metric != "cosine":
            raise StoreError(
                f"Pinecone index {name!r} is not a dense vector index with the cosine metric "
                f"(metric {metric!r}); VPA needs cosine: use another [providers.pinecone] index"
            )
        return _Handle(pc.index(host=model.host), int(dimension), str(model.host))

    async def _open_sparse(self, *, create: bool) -> _Handle | None:
        """The sparse companion index's data-plane client (`lexical.companion_name`)."""
        if self._sparse is not None:
            return self._sparse
        if self._handle_lock is None:
            self._handle_lock = asyncio.Lock()
        async with self._handle_lock:
            if self._sparse is None:
                self._sparse = await self.run_vendor(
                    "open the sparse Pinecone index", self._connect_sparse, create
                )
        return self._sparse

    def _connect_sparse(self, create: bool) -> _Handle | None:
        pc = self._client()
        settings = self.settings
        name = lexical.companion_name(settings.index)
        try:
            model = pc.indexes.describe(name)
        except NotFoundError:
            if not create:
                return None
            if not settings.create_index:
                raise StoreError(
                    f"Pinecone sparse index {name!r} (for lexical search) does not exist and "
                    "create_index is false"
                ) from None
            try:
                model = pc.indexes.create(
                    name=name,
                    schema={"fields": {"_sparse_values": {"type": "sparse_vector"}}},
                    deployment={
                        "deployment_type": "managed",
                        "cloud": settings.cloud,
                        "region": settings.region,
                    },
                    deletion_protection="enabled" if settings.deletion_protection else "disabled",
                    tags={"created-by": "vpa"},
                    timeout=-1,
                )
            except ConflictError:
                model = pc.indexes.describe(name)
        deadline = time.monotonic() + max(settings.settle_timeout, 300.0)
        delay = 0.05
        while not (model.status.ready and model.host):
            if time.monotonic() > deadline:
                raise StoreTimeout(f"Pinecone index {name!r} did not become ready")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            model = pc.indexes.describe(name)
        if "_sparse_values" not in model.schema.fields:
            raise StoreError(
                f"Pinecone index {name!r} is not a sparse index; VPA keeps lexical search there: "
                "delete it or use another [providers.pinecone] index"
            )
        return _Handle(pc.index(host=model.host), 0, str(model.host), sparse=True)

    def _create(self, pc: Pinecone) -> Any:
        settings = self.settings
        try:
            return pc.indexes.create(
                name=settings.index,
                schema={
                    "fields": {
                        "_values": {
                            "type": "dense_vector",
                            "dimension": settings.dimension,
                            "metric": "cosine",
                        }
                    }
                },
                deployment={"deployment_type": "managed", "cloud": settings.cloud, "region": settings.region},
                deletion_protection="enabled" if settings.deletion_protection else "disabled",
                tags={"created-by": "vpa"},
                timeout=-1,  # we poll ourselves, with back-off rather than the SDK's fixed 5 s
            )
        except ConflictError:  # created concurrently by another process
            return pc.indexes.describe(settings.index)

    async def _require_index(self, collection: str) -> _Handle:
        handle = await self._open_index(create=False)
        if handle is None:
            self.forget_collection(collection)
            raise CollectionNotFound(collection)
        return handle

    async def _poll(self, check: Callable[[], bool], what: str, collection: str | None = None) -> None:
        """Repeat a (blocking) visibility check with exponential back-off until it holds."""
        timeout = self.settings.settle_timeout
        deadline = time.monotonic() + timeout
        delay = 0.005
        while not await self.run_vendor(f"wait for {what}", check, collection=collection):
            if time.monotonic() >= deadline:
                raise StoreTimeout(f"Pinecone did not make {what} visible within {timeout:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _probe(self, handle: _Handle) -> list[float]:
        return [1.0] + [0.0] * (handle.dimension - 1)

    def _probe_args(self, handle: _Handle) -> dict[str, Any]:
        """A query that finds any record: the dense probe, or the sparse index's `lexical.MARKER`."""
        if handle.sparse:
            return {"sparse_vector": {"indices": [lexical.MARKER], "values": [1.0]}}
        return {"vector": self._probe(handle)}

    # --- collections ---------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        handle = await self._open_index(create=False)
        if handle is None:
            return None
        try:
            found = await self.run_vendor(
                f"open collection {name!r}", self._fetch, handle, self._catalog, [name], collection=name
            )
        except CollectionNotFound:  # the index was deleted under us
            return None
        vector = found.get(name)
        if vector is None:
            return None
        metadata = vector.metadata or {}
        kind, avg_len = _layout_of(metadata)
        known = self._layouts.get(name)
        if avg_len is None and known is not None and known[0] == kind:
            avg_len = known[1]  # fixed by this store; its catalog update may not be visible yet
        self._layouts[name] = (kind, avg_len)
        return codec.decode_definition(name, metadata)

    async def _create_collection(self, info: CollectionInfo) -> None:
        handle = await self._open_index(create=True)
        assert handle is not None
        if info.dimension > handle.dimension:
            raise InvalidCollection(
                f"collection {info.name!r} has dimension {info.dimension}, but Pinecone index "
                f"{self.settings.index!r} holds vectors of at most {handle.dimension} dimensions; use an "
                "index with a larger dimension ([providers.pinecone] index and dimension)"
            )
        namespace = self._namespace(info.name)
        sparse = await self._open_sparse(create=True)
        assert sparse is not None
        await self._clear_namespace(handle, namespace)  # leftovers of an interrupted drop
        await self._clear_namespace(sparse, namespace)
        metadata = {**codec.encode_definition(info), lexical.LAYOUT_KEY: lexical.LAYOUT}
        entry = {"id": info.name, "values": self._probe(handle), "metadata": metadata}
        self._layouts[info.name] = (lexical.LAYOUT, None)
        response = await self.run_vendor(
            f"create collection {info.name!r}",
            lambda: handle.index.upsert(vectors=[entry], namespace=self._catalog),
        )
        pending = _Pending()
        pending.wrote(_lsn_committed(response), [entry])
        await self._poll(lambda: self._visible(handle, self._catalog, pending), f"collection {info.name!r}")

    async def _list_collections(self) -> list[str]:
        handle = await self._open_index(create=False)
        if handle is None:
            return []

        def list_all() -> list[str]:
            pages = self._pages(
                lambda token: handle.index.list_paginated(
                    namespace=self._catalog, limit=100, pagination_token=token
                )
            )  # none: no catalog yet
            return [item.id for page in pages for item in page.vectors if item.id]

        try:
            return await self.run_vendor("list collections", list_all, collection=self._catalog)
        except CollectionNotFound:  # the index was deleted under us
            return []

    async def _drop_collection(self, name: str) -> bool:
        handle = await self._open_index(create=False)
        if handle is None:
            return False
        where = f"drop collection {name!r}"
        try:
            existed = name in await self.run_vendor(
                where, self._fetch, handle, self._catalog, [name], collection=name
            )
        except CollectionNotFound:  # the index was deleted under us
            return False
        namespace = self._namespace(name)
        self._pending.pop(namespace, None)
        self._sparse_pending.pop(namespace, None)
        self._layouts.pop(name, None)
        await self._clear_namespace(handle, namespace)
        sparse = await self._open_sparse(create=False)
        if sparse is not None:
            await self._clear_namespace(sparse, namespace)
        if existed:
            await self.run_vendor(where, self._delete_ids, handle, self._catalog, [name])
            gone = _Pending()
            gone.removed({name: name})
            await self._poll(lambda: self._visible(handle, self._catalog, gone), f"the drop of {name!r}")
        return existed

    async def _clear_namespace(self, handle: _Handle, namespace: str) -> None:
        """Delete everything in a namespace and wait until it reads as empty."""

        def has_records() -> bool:
            stats = handle.index.describe_index_stats()
            summary = stats.namespaces.get(namespace)
            return bool(summary and summary.vector_count)

        def delete_all() -> None:
            with contextlib.suppress(NotFoundError):  # the namespace never held anything
                handle.index.delete(delete_all=True, namespace=namespace)

        def empty() -> bool:
            found = self._search(handle, namespace, **self._probe_args(handle), top_k=1)
            return not (found and found.matches) and not has_records()

        where = f"empty namespace {namespace!r}"
        if await self.run_vendor(where, has_records):
            await self.run_vendor(where, delete_all)
            await self._poll(empty, f"the emptying of namespace {namespace!r}")

    # --- records -------------------------------------------------------------------------------

    def check_record(self, info: CollectionInfo, record: Record) -> Record:
        """Pinecone's exact 40 KB of metadata per vector (the original id and the type tags
        count too), for the whole call before any I/O."""
        return codec.check_size(record)

    async def _prepare_upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        await self._require_index(info.name)  # its dimension bounds the requests (`request_bytes`)

    def request_bytes(self, info: CollectionInfo, record: Record) -> int:
        """An upper bound of the JSON ``record`` adds to an upsert: every float as its longest
        JSON, the zero padding to the index dimension, the encoded id and metadata."""
        index_dimension = self._handle.dimension if self._handle is not None else MAX_INDEX_DIMENSION
        return codec.vector_bytes_bound(record, index_dimension)

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        pending = self._pending.setdefault(namespace, _Pending())

        def write() -> None:
            vectors = [codec.encode_vector(record, handle.dimension) for record in records]
            response = handle.index.upsert(vectors=vectors, namespace=namespace)
            pending.wrote(_lsn_committed(response), vectors)

        await self.run_vendor(f"upsert into {info.name!r}", write, collection=info.name)
        await self._upsert_terms(info, records)

    async def _lexical_layout(self, info: CollectionInfo) -> tuple[str | None, float | None]:
        """The collection's lexical layout and avg_len (read from its catalog record if not known)."""
        layout = self._layouts.get(info.name)
        if layout is None or (layout[0] is not None and layout[1] is None):
            await self._describe_collection(info.name)
            layout = self._layouts.get(info.name, (None, None))
        return layout

    async def _upsert_terms(self, info: CollectionInfo, records: list[Record]) -> None:
        """The records' BM25 term weights and metadata into the sparse index (lexical collections)."""
        kind, avg_len = await self._lexical_layout(info)
        if kind != lexical.LAYOUT:
            return  # made before vpa-pinecone 0.3.1: no sparse namespace (lexical queries refuse)
        if avg_len is None:
            avg_len = lexical.mean_length([record.text for record in records])
            if avg_len is not None:  # fixed once, in the catalog record, for every later write
                self._layouts[info.name] = (kind, avg_len)
                handle = await self._require_index(info.name)
                await self.run_vendor(
                    f"record {info.name!r}'s average length",
                    lambda: handle.index.update(
                        id=info.name, set_metadata={lexical.AVG_LEN_KEY: avg_len}, namespace=self._catalog
                    ),
                )
        sparse = await self._require_sparse(info)
        namespace = self._namespace(info.name)
        pending = self._sparse_pending.setdefault(namespace, _Pending())
        vectors = [
            {
                "id": codec.pinecone_id(record.id),
                "sparse_values": lexical.document_vector(record.text, avg_len),
                "metadata": codec.encode_metadata(record),
            }
            for record in records
        ]

        def write() -> None:
            size = lambda v: lexical.sparse_bytes(v["sparse_values"]) + len(orjson.dumps(v["metadata"])) + 600  # noqa: E731
            for part in batched(vectors, MAX_UPSERT_VECTORS, MAX_REQUEST_BYTES - 1000, size):
                response = sparse.index.upsert(vectors=part, namespace=namespace)
                pending.wrote(_lsn_committed(response), part)

        await self.run_vendor(f"upsert terms into {info.name!r}", write, collection=info.name)

    async def _require_sparse(self, info: CollectionInfo) -> _Handle:
        sparse = await self._open_sparse(create=False)
        if sparse is None:
            raise StoreError(
                f"the sparse index {lexical.companion_name(self.settings.index)!r} of collection "
                f"{info.name!r} "
                "is gone; recreate the collection (vpa migrate) to search it lexically"
            )
        return sparse

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        """One sparse query: each term's value its IDF (N and n(t) asked of the sparse index),
        so the dot product with the stored weights is VPA's BM25 (see `vpa_pinecone.lexical`)."""
        kind, _ = await self._lexical_layout(info)
        if kind != lexical.LAYOUT:
            raise UnsupportedOperation(
                f"collection {info.name!r} was created before vpa-pinecone 0.3.1 and has no sparse index "
                "for lexical search; copy it into a new collection with `vpa migrate` to search it lexically"
            )
        await self._require_index(info.name)
        sparse = await self._require_sparse(info)
        namespace = self._namespace(info.name)
        native = to_native(node)
        ids = lexical.query_ids(terms)

        def search() -> list[Hit]:
            summary = sparse.index.describe_index_stats().namespaces.get(namespace)
            n = summary.vector_count if summary else 0
            if not n:
                return []

            def weight(term: int) -> float:
                found = self._search(
                    sparse,
                    namespace,
                    sparse_vector={"indices": [term], "values": [1.0]},
                    top_k=lexical.MAX_DF_COUNT,
                )
                df = len(found.matches) if found is not None else 0
                return bm25_idf(n, df) if df else 0.0

            # One count per distinct term (up to vpa.lexical.MAX_QUERY_TERMS): at most
            # DF_LOOKUPS_IN_FLIGHT at a time, so a long query costs its terms / 8 round trips.
            with ThreadPoolExecutor(max_workers=min(DF_LOOKUPS_IN_FLIGHT, len(ids))) as pool:
                values = list(pool.map(weight, ids))
            wanted = [(term, value) for term, value in zip(ids, values, strict=True) if value > 0]
            if not wanted:
                return []
            with_metadata = top_k <= MAX_TOP_K_WITH_METADATA
            response = self._search(
                sparse,
                namespace,
                sparse_vector={"indices": [t for t, _ in wanted], "values": [v for _, v in wanted]},
                top_k=top_k,
                filter=native,
                include_metadata=with_metadata,
            )
            if response is None:
                return []
            if with_metadata:
                stored = {m.id: m.metadata for m in response.matches}
            else:
                stored = {
                    pid: v.metadata
                    for pid, v in self._fetch(sparse, namespace, [m.id for m in response.matches]).items()
                }
            hits = []
            for m in response.matches:
                if m.id in stored and m.score > 0:
                    record_id, body, metadata = codec.decode_metadata(stored[m.id])
                    hits.append(
                        Hit(record_id if record_id is not None else m.id, float(m.score), body, metadata)
                    )
            return hits

        return await self.run_vendor(f"lexical query {info.name!r}", search, collection=info.name)

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        query = codec.pad(vector, handle.dimension)
        native = to_native(node)

        def search() -> list[Hit]:
            with_metadata = top_k <= MAX_TOP_K_WITH_METADATA
            response = self._search(
                handle, namespace, vector=query, top_k=top_k, filter=native, include_metadata=with_metadata
            )
            if response is None:  # the namespace holds nothing yet
                return []
            if with_metadata:
                return [codec.decode_hit(m.id, m.score, m.metadata) for m in response.matches]
            # Pinecone returns metadata for at most 1,000 matches: fetch the rest by id.
            stored = self._fetch(handle, namespace, [m.id for m in response.matches])
            return [
                codec.decode_hit(m.id, m.score, stored[m.id].metadata)
                for m in response.matches
                if m.id in stored
            ]

        return await self.run_vendor(f"query {info.name!r}", search, collection=info.name)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)

        def read() -> list[Record]:
            stored = self._fetch(handle, namespace, [codec.pinecone_id(i) for i in ids])
            return [
                codec.decode_record(pid, list(v.values), v.metadata, info.dimension)
                for pid, v in stored.items()
            ]

        return await self.run_vendor(f"get from {info.name!r}", read, collection=info.name)

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        await self._settle(info)  # what we wrote before must be visible to be counted
        native = to_native(node)

        def remove() -> dict[str, str]:
            found: dict[str, str] = {}
            if ids is not None and native is None:
                for pid, vector in self._fetch(
                    handle, namespace, [codec.pinecone_id(i) for i in ids]
                ).items():
                    found[pid] = (vector.metadata or {}).get(codec.ID_KEY, pid)
            elif ids is not None:
                for batch in codec.id_batches(ids, IDS_PER_FILTER):
                    found.update(
                        self._select(handle, namespace, {"$and": [{codec.ID_KEY: {"$in": batch}}, native]})
                    )
            else:
                found.update(self._select(handle, namespace, native))
            self._delete_ids(handle, namespace, list(found))
            if sparse is not None and found:
                self._delete_ids(sparse, namespace, list(found))
            return found

        sparse = await self._open_sparse(create=False)
        found = await self.run_vendor(f"delete from {info.name!r}", remove, collection=info.name)
        if found:
            self._pending.setdefault(namespace, _Pending()).removed(found)
            if sparse is not None:
                self._sparse_pending.setdefault(namespace, _Pending()).removed(found)
        return len(found)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        native = to_native(node)

        def count() -> int:
            if native is None:
                summary = handle.index.describe_index_stats().namespaces.get(namespace)
                return summary.vector_count if summary else 0
            # Serverless indexes have no filtered count: list the matching ids.
            return len(self._select(handle, namespace, native))

        return await self.run_vendor(f"count {info.name!r}", count, collection=info.name)

    # --- contract 1.1: scroll and update -------------------------------------------------------

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """One page in Pinecone's own order: without a filter, ``list`` (record ids in sorted
        order, paginated by a token that skips past the last id) and a fetch of those ids; with
        one, ``fetch_by_metadata`` with the native filter and its pagination token. The position
        is Pinecone's token (``l:``/``m:`` + token), which any process can resume from."""
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        native = to_native(node)
        kind = LISTED if native is None else MATCHING
        token: str | None = None
        if after is not None:
            if not after.startswith(kind) or len(after) == len(kind):
                raise InvalidCursor("cursor is not a position of this scroll")
            token = after[len(kind) :]
        dimension = info.dimension if with_vectors else 0

        def page() -> tuple[list[Record], str | None]:
            try:
                if native is None:
                    return self._listed_page(handle, namespace, limit, token, dimension)
                return self._matching_page(handle, namespace, native, limit, token, dimension)
            except ApiError as exc:
                if token is not None and getattr(exc, "status_code", None) == 400:
                    raise InvalidCursor(
                        f"Pinecone refused the cursor's pagination token: {getattr(exc, 'message', exc)}"
                    ) from exc
                raise

        records, following = await self.run_vendor(f"scroll {info.name!r}", page, collection=info.name)
        return records, None if following is None else kind + following

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],
        unset: list[str],
    ) -> int:
        """Setting keys is Pinecone's own ``update`` by metadata filter (``vpa-id`` in the ids,
        and the filter), which merges ``setMetadata`` into every matching record and counts
        them. Removing keys — ``unset``, or setting an empty list (stored as an absent key) — is
        a read-modify-write: Pinecone's update cannot remove a metadata key, so the matching
        records are selected natively, fetched, merged and upserted whole."""
        handle = await self._require_index(info.name)
        await self._settle(info)  # what we wrote before must be visible to be matched and counted
        native = to_native(node)
        if unset or any(value == [] for value in set.values()):
            return await self._rewrite(info, handle, ids, native, set, unset)
        targets = self._update_targets(ids, native)
        namespace = self._namespace(info.name)
        changes = codec.encode_set(set)
        pending = self._pending.setdefault(namespace, _Pending())
        arrived = to_native(Not(And(tuple(_holds(key, value) for key, value in set.items()))))
        kind, _ = await self._lexical_layout(info)
        sparse = await self._open_sparse(create=False) if kind == lexical.LAYOUT else None
        sparse_pending = self._sparse_pending.setdefault(namespace, _Pending())

        def apply() -> int:
            matched = 0
            for target in targets:
                if sparse is not None:  # the copy of the metadata the lexical half filters on
                    copied = self._tolerant(
                        lambda target=target: sparse.index.update(
                            filter=target, set_metadata=changes, namespace=namespace
                        ),
                        None,
                    )
                    if copied is not None:
                        sparse_pending.updated(_lsn_committed(copied), {"$and": [target, arrived]})
                response = self._tolerant(
                    lambda target=target: handle.index.update(
                        filter=target, set_metadata=changes, namespace=namespace
                    ),
                    None,
                )
                if response is None:  # the namespace holds nothing
                    continue
                matched += response.matched_records or 0
                pending.updated(_lsn_committed(response), {"$and": [target, arrived]})
            return matched

        return await self.run_vendor(f"update {info.name!r}", apply, collection=info.name)

    def _update_targets(self, ids: list[str] | None, native: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The native filters that select what an update changes, one request each."""
        if ids is None:
            return [native if native is not None else MATCH_ALL]
        parts = batched(ids, IDS_PER_UPDATE, MAX_FILTER_ID_BYTES, lambda i: len(orjson.dumps(i)) + 1)
        chosen = [{codec.ID_KEY: {"$in": part}} for part in parts]
        return chosen if native is None else [{"$and": [one, native]} for one in chosen]

    async def _rewrite(
        self,
        info: CollectionInfo,
        handle: _Handle,
        ids: list[str] | None,
        native: dict[str, Any] | None,
        set: dict[str, Any],
        unset: list[str],
    ) -> int:
        """The read-modify-write update: the matching ids (selected by Pinecone), then their
        records fetched, merged and upserted whole, ``UPDATE_BATCH`` at a time. A concurrent
        write of the same record between the fetch and the upsert is overwritten."""
        namespace = self._namespace(info.name)

        def select() -> list[str]:
            if ids is not None and native is None:  # fetched below anyway: nothing to select
                return [codec.pinecone_id(i) for i in ids]
            found: dict[str, str] = {}
            for target in self._update_targets(ids, native):
                found.update(self._select(handle, namespace, target))
            return list(found)

        where = f"update {info.name!r}"
        pids = await self.run_vendor(where, select, collection=info.name)
        changed = 0
        for part in batched(pids, UPDATE_BATCH):
            stored = await self.run_vendor(where, self._fetch, handle, namespace, part, collection=info.name)
            merged = []
            for pid, vector in stored.items():
                record = codec.decode_record(pid, list(vector.values), vector.metadata, info.dimension)
                metadata = {k: v for k, v in record.metadata.items() if k not in unset}
                metadata.update(set)
                merged.append(Record(record.id, record.vector, record.text, metadata))
            if not merged:
                continue
            batch = self._validate(info, merged)
            for piece in self.split_batch(info, batch):
                await self._upsert(info, piece)
            changed += len(batch)
        return changed

    def _listed_page(
        self, handle: _Handle, namespace: str, limit: int, token: str | None, dimension: int
    ) -> tuple[list[Record], str | None]:
        pids: list[str] = []
        while len(pids) < limit:
            listed = self._tolerant(
                lambda token=token: handle.index.list_paginated(
                    namespace=namespace,
                    limit=min(MAX_LIST_LIMIT, limit - len(pids)),
                    pagination_token=token,
                ),
                None,
            )
            if listed is None:  # the namespace holds nothing
                token = None
                break
            pids.extend(item.id for item in listed.vectors if item.id)
            token = listed.pagination.next if listed.pagination else None
            if not token or not listed.vectors:
                break
        stored = self._fetch(handle, namespace, pids) if pids else {}
        return [_record(pid, stored[pid], dimension) for pid in pids if pid in stored], token or None

    def _matching_page(
        self,
        handle: _Handle,
        namespace: str,
        native: dict[str, Any],
        limit: int,
        token: str | None,
        dimension: int,
    ) -> tuple[list[Record], str | None]:
        records: list[Record] = []
        while len(records) < limit:
            found = self._tolerant(
                lambda token=token: handle.index.fetch_by_metadata(
                    filter=native,
                    namespace=namespace,
                    limit=min(self._metadata_page(handle), limit - len(records)),
                    pagination_token=token,
                ),
                None,
            )
            if found is None:
                token = None
                break
            records.extend(_record(pid, vector, dimension) for pid, vector in found.vectors.items())
            token = found.pagination.next if found.pagination else None
            if not token or not found.vectors:
                break
        return records, token or None

    # --- blocking helpers (run in worker threads) ----------------------------------------------

    def _index_exists(self) -> bool:
        try:
            self._client().indexes.describe(self.settings.index)
        except NotFoundError:
            return False
        return True

    def _tolerant(self, call: Callable[[], T], default: T) -> T:
        """Run a data-plane call. Pinecone answers 404 for a namespace that holds nothing (it
        exists only while it has records): that means ``default`` — unless the index is gone."""
        try:
            return call()
        except NotFoundError:
            if self._index_exists():
                return default
            raise

    def _search(self, handle: _Handle, namespace: str, **kwargs: Any) -> Any | None:
        """``Index.query`` in a namespace; None when the namespace does not exist."""
        return self._tolerant(lambda: handle.index.query(namespace=namespace, **kwargs), None)

    def _fetch(self, handle: _Handle, namespace: str, pids: list[str]) -> dict[str, Any]:
        """Fetch vectors by id in requests that respect the id count and URL length limits."""
        out: dict[str, Any] = {}
        for batch in codec.id_batches(list(dict.fromkeys(pids)), MAX_IDS_PER_REQUEST, codec.FETCH_URL_BUDGET):
            out.update(
                self._tolerant(
                    lambda batch=batch: handle.index.fetch(ids=batch, namespace=namespace).vectors, {}
                )
            )
        return out

    def _delete_ids(self, handle: _Handle, namespace: str, pids: list[str]) -> None:
        for batch in codec.id_batches(pids, MAX_IDS_PER_REQUEST):
            self._tolerant(lambda batch=batch: handle.index.delete(ids=batch, namespace=namespace), None)

    @staticmethod
    def _metadata_page(handle: _Handle) -> int:
        """Vectors per ``fetch_by_metadata`` response: their values and metadata within ~4 MB."""
        return max(10, min(1000, 4_000_000 // (handle.dimension * 20 + 2000)))

    def _select(self, handle: _Handle, namespace: str, native: dict[str, Any]) -> dict[str, str]:
        """Every vector matching a native filter, as ``{pinecone id: VPA id}`` (fetch by metadata)."""
        limit = self._metadata_page(handle)
        pages = self._pages(
            lambda token: handle.index.fetch_by_metadata(
                filter=native, namespace=namespace, limit=limit, pagination_token=token
            )
        )  # none: the namespace holds nothing
        return {
            pid: (vector.metadata or {}).get(codec.ID_KEY, pid)
            for page in pages
            for pid, vector in page.vectors.items()
        }

    def _pages(self, call: Callable[[str | None], Any]) -> Iterator[Any]:
        """Every page of a paginated data-plane call, ``call(pagination_token)``; none for a
        namespace that holds nothing."""
        token = None
        while True:
            page = self._tolerant(lambda token=token: call(token), None)
            if page is None:
                return
            yield page
            token = page.pagination.next if page.pagination else None
            if not token or not page.vectors:
                return

    def _visible(self, handle: _Handle, namespace: str, pending: _Pending) -> bool:
        """Whether every write recorded in ``pending`` is visible to queries."""
        lsn_confirmed = False
        if pending.lsn:
            response = self._search(handle, namespace, **self._probe_args(handle), top_k=1)
            if response is None:  # the namespace does not exist yet: our writes are not visible
                return False
            reconciled = _lsn_reconciled(response)
            if reconciled is not None:
                if reconciled < pending.lsn:
                    return False
                lsn_confirmed = True
        if pending.written and not lsn_confirmed:
            expected = dict(pending.written)
            for batch in codec.id_batches(list(expected), IDS_PER_FILTER):
                record_ids = [expected[pid][codec.ID_KEY] for pid in batch]
                response = self._search(
                    handle,
                    namespace,
                    **self._probe_args(handle),
                    top_k=len(batch),
                    filter={codec.ID_KEY: {"$in": record_ids}},
                    include_metadata=True,
                )
                seen = {m.id: m.metadata or {} for m in (response.matches if response else [])}
                if any(seen.get(pid) != expected[pid] for pid in batch):
                    return False
        for check in pending.updates:  # in-place updates confirmed by their effect, not an LSN
            response = self._search(handle, namespace, **self._probe_args(handle), top_k=1, filter=check)
            if response is not None and response.matches:
                return False
        for batch in codec.id_batches(list(pending.deleted.values()), IDS_PER_FILTER):
            response = self._search(
                handle,
                namespace,
                **self._probe_args(handle),
                top_k=1,
                filter={codec.ID_KEY: {"$in": batch}},
            )
            if response is not None and response.matches:
                return False
        return True

    # --- consistency and lifecycle -------------------------------------------------------------

    async def _settle(self, info: CollectionInfo) -> None:
        """Wait until every write this store acknowledged to the collection is visible to reads."""
        namespace = self._namespace(info.name)
        for handle, log in ((self._handle, self._pending), (self._sparse, self._sparse_pending)):
            pending = log.get(namespace)
            if pending is None or handle is None:
                continue
            snapshot = pending.snapshot()
            await self._poll(
                lambda handle=handle, snapshot=snapshot: self._visible(handle, namespace, snapshot),
                f"the writes to {info.name!r}",
                info.name,
            )
            with pending.lock:
                if log.get(namespace) is pending and pending.generation == snapshot.generation:
                    del log[namespace]

    async def _health(self) -> str:
        handle = await self._open_index(create=False)
        if handle is None:
            return f"ok (index {self.settings.index!r} not created yet)"
        await self.run_vendor("health", handle.index.describe_index_stats)
        return "ok"

    async def _close(self) -> None:
        handle, pc, sparse = self._handle, self._pc, self._sparse
        self._closed = True
        self._handle = None
        self._sparse = None
        self._pc = None
        self._handle_lock = None
        self._pending.clear()
        self._sparse_pending.clear()
        if sparse is not None:
            await self.run_vendor("close the sparse index client", sparse.index.close)
        if handle is not None:
            await self.run_vendor("close the index client", handle.index.close)
        if pc is not None:
            await self.run_vendor("close the Pinecone client", pc.close)


def _record(pid: str, vector: Any, dimension: int) -> Record:
    """A fetched vector as a VPA record (``dimension`` 0: without its vector)."""
    values = list(vector.values)[:dimension] if dimension else []
    return codec.decode_record(pid, values, vector.metadata, dimension)


def _layout_of(metadata: dict[str, Any]) -> tuple[str | None, float | None]:
    """A catalog record's lexical layout (None before 0.3.1) and fixed average length."""
    kind = metadata.get(lexical.LAYOUT_KEY)
    avg_len = metadata.get(lexical.AVG_LEN_KEY)
    if isinstance(avg_len, bool) or not isinstance(avg_len, int | float) or not avg_len > 0:
        avg_len = None
    return (kind if isinstance(kind, str) else None), (None if avg_len is None else float(avg_len))


def _holds(key: str, value: Any) -> Node:
    """A filter true once ``key`` holds ``value`` (a list: contains every item)."""
    if isinstance(value, list):
        return And(tuple(Comparison(key, FilterOp.EQ, item) for item in value))
    return Comparison(key, FilterOp.EQ, value)


def _lsn_committed(response: Any) -> int | None:
    info = getattr(response, "response_info", None)
    return info.lsn_committed if info is not None else None


def _lsn_reconciled(response: Any) -> int | None:
    info = getattr(response, "response_info", None)
    return info.lsn_reconciled if info is not None else None
