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

The SDK is synchronous (httpx): every call runs in a worker thread via ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
import orjson
from pinecone import Pinecone, RetryConfig
from pinecone.errors.exceptions import ConflictError, NotFoundError
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    InvalidCollection,
    StoreError,
    StoreTimeout,
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

from vpa_pinecone import codec
from vpa_pinecone.capabilities import (
    CAPABILITIES,
    FETCH_URL_BUDGET,
    IDS_PER_FILTER,
    MAX_IDS_PER_REQUEST,
    MAX_INDEX_DIMENSION,
    MAX_REQUEST_BYTES,
    MAX_TOP_K_WITH_METADATA,
    MAX_UPSERT_VECTORS,
)
from vpa_pinecone.errors import map_error
from vpa_pinecone.filters import to_pinecone

T = TypeVar("T")

CATALOG_NAMESPACE = "__vpa_catalog__"
CATALOG_FORMAT = 1


INDEX_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")
OPTIONS = frozenset(
    {
        "index",
        "dimension",
        "cloud",
        "region",
        "host",
        "namespace_prefix",
        "timeout",
        "max_retries",
        "settle_timeout",
        "create_index",
        "deletion_protection",
    }
)


@attrs.define
class _Handle:
    """The data-plane client of the index and the index's dimension."""

    index: Any
    dimension: int
    host: str


@attrs.define
class _Pending:
    """What this store wrote to one namespace and has not yet seen visible."""

    lsn: int = 0
    written: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    deleted: dict[str, str] = attrs.field(factory=dict)
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

    def snapshot(self) -> _Pending:
        with self.lock:
            return _Pending(self.lsn, dict(self.written), dict(self.deleted), self.generation)


def control_plane_url(host: str | None, port: int | None) -> str | None:
    """``VPA_VECTOR_DB_HOST``/``PORT`` as a control-plane URL (https unless a scheme is given)."""
    if not host:
        return None
    url = host if "://" in host else f"https://{host}"
    if port and not re.search(r":\d+$", url.split("://", 1)[1].split("/", 1)[0]):
        scheme, rest = url.split("://", 1)
        netloc, _, path = rest.partition("/")
        url = f"{scheme}://{netloc}:{port}" + (f"/{path}" if path else "")
    return url


class PineconeStore(VectorStore):
    """VPA's store contract on Pinecone serverless, through the official ``pinecone`` SDK."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        *,
        api_key: str | None,
        index: str = "vpa",
        host: str | None = None,
        cloud: str = "aws",
        region: str = "us-east-1",
        dimension: int = 1536,
        namespace_prefix: str = "",
        timeout: float = 30.0,
        max_retries: int = 3,
        settle_timeout: float = 60.0,
        create_index: bool = True,
        deletion_protection: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(index, str) or not INDEX_NAME_RE.fullmatch(index):
            raise ConfigError(
                f"[providers.pinecone] index {index!r} is not a Pinecone index name: 1-45 lowercase "
                "letters, digits or '-', starting and ending with a letter or digit"
            )
        if (
            isinstance(dimension, bool)
            or not isinstance(dimension, int)
            or not 1 <= dimension <= MAX_INDEX_DIMENSION
        ):
            raise ConfigError(
                f"[providers.pinecone] dimension must be an integer in 1..{MAX_INDEX_DIMENSION}"
            )
        if (
            not isinstance(namespace_prefix, str)
            or not namespace_prefix.isascii()
            or "\x00" in namespace_prefix
        ):
            raise ConfigError("[providers.pinecone] namespace_prefix must be ASCII without NUL")
        for name, value in (("timeout", timeout), ("settle_timeout", settle_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"[providers.pinecone] {name} must be a positive number of seconds")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError("[providers.pinecone] max_retries must be a non-negative integer")
        self._api_key = api_key
        self._index_name = index
        self._host = host
        self._cloud = cloud
        self._region = region
        self._dimension = dimension
        self._prefix = namespace_prefix
        self._timeout = float(timeout)
        self._max_retries = max_retries
        self._settle_timeout = float(settle_timeout)
        self._create_index = bool(create_index)
        self._deletion_protection = bool(deletion_protection)
        self._pc: Pinecone | None = None
        self._handle: _Handle | None = None
        self._handle_lock: asyncio.Lock | None = None
        self._pending: dict[str, _Pending] = {}
        self._closed = False

    @classmethod
    def from_config(cls, config: Any) -> PineconeStore:
        options = config.provider_options("pinecone", known=OPTIONS)
        host = options.pop("host", None) or control_plane_url(config.host, config.port)
        return cls(api_key=config.api_key, host=host, **options)

    def __repr__(self) -> str:  # never shows the key
        return f"PineconeStore(index={self._index_name!r}, host={self._host or 'api.pinecone.io'!r})"

    # --- plumbing ------------------------------------------------------------------------------

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
                    host=self._host,
                    timeout=self._timeout,
                    retry_config=RetryConfig(max_retries=self._max_retries),
                    source_tag="vpa",
                )
            except Exception as exc:
                raise ConfigError(f"cannot configure the Pinecone client: {exc}") from exc
        return self._pc

    async def _call(
        self, fn: Callable[..., T], *args: Any, collection: str | None = None, **kwargs: Any
    ) -> T:
        """Run a blocking SDK call in a worker thread; map its exceptions to VPA errors."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except VPAError:
            raise
        except Exception as exc:
            error = map_error(exc, collection=collection)
            if isinstance(error, CollectionNotFound):
                self._collections.pop(error.name, None)
                if isinstance(exc, NotFoundError) and self._handle is not None:
                    # the index itself may be gone: describe it again next time
                    stale, self._handle = self._handle, None
                    with contextlib.suppress(Exception):
                        stale.index.close()
            raise error from exc

    async def _open_index(self, *, create: bool) -> _Handle | None:
        """The index's data-plane client (describing, and if asked creating, the index)."""
        if self._handle is not None:
            return self._handle
        if self._handle_lock is None:
            self._handle_lock = asyncio.Lock()
        async with self._handle_lock:
            if self._handle is None:
                self._handle = await self._call(self._connect, create)
        return self._handle

    def _connect(self, create: bool) -> _Handle | None:
        pc = self._client()
        try:
            model = pc.indexes.describe(self._index_name)
        except NotFoundError:
            if not create:
                return None
            if not self._create_index:
                raise StoreError(
                    f"Pinecone index {self._index_name!r} does not exist and create_index is false"
                ) from None
            model = self._create(pc)
        deadline = time.monotonic() + max(self._settle_timeout, 300.0)
        delay = 0.05
        while not (model.status.ready and model.host):
            if time.monotonic() > deadline:
                raise StoreTimeout(f"Pinecone index {self._index_name!r} did not become ready")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            model = pc.indexes.describe(self._index_name)
        field = model.schema.fields.get("_values")
        dimension = getattr(field, "dimension", None)
        metric = getattr(field, "metric", None)
        if dimension is None or metric != "cosine":
            raise StoreError(
                f"Pinecone index {self._index_name!r} is not a dense vector index with the cosine metric "
                f"(metric {metric!r}); VPA needs cosine: use another [providers.pinecone] index"
            )
        return _Handle(pc.index(host=model.host), int(dimension), str(model.host))

    def _create(self, pc: Pinecone) -> Any:
        try:
            return pc.indexes.create(
                name=self._index_name,
                schema={
                    "fields": {
                        "_values": {"type": "dense_vector", "dimension": self._dimension, "metric": "cosine"}
                    }
                },
                deployment={"deployment_type": "managed", "cloud": self._cloud, "region": self._region},
                deletion_protection="enabled" if self._deletion_protection else "disabled",
                tags={"created-by": "vpa"},
                timeout=-1,  # we poll ourselves, with back-off rather than the SDK's fixed 5 s
            )
        except ConflictError:  # created concurrently by another process
            return pc.indexes.describe(self._index_name)

    async def _require_index(self, collection: str) -> _Handle:
        handle = await self._open_index(create=False)
        if handle is None:
            self._collections.pop(collection, None)
            raise CollectionNotFound(collection)
        return handle

    async def _poll(self, check: Callable[[], bool], what: str, collection: str | None = None) -> None:
        """Repeat a (blocking) visibility check with exponential back-off until it holds."""
        deadline = time.monotonic() + self._settle_timeout
        delay = 0.005
        while not await self._call(check, collection=collection):
            if time.monotonic() >= deadline:
                raise StoreTimeout(f"Pinecone did not make {what} visible within {self._settle_timeout:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _probe(self, handle: _Handle) -> list[float]:
        return [1.0] + [0.0] * (handle.dimension - 1)

    # --- collections ---------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        handle = await self._open_index(create=False)
        if handle is None:
            return None
        try:
            found = await self._call(self._fetch, handle, self._catalog, [name], collection=name)
        except CollectionNotFound:  # the index was deleted under us
            return None
        vector = found.get(name)
        return None if vector is None else _info_from_catalog(name, vector.metadata or {})

    async def _create_collection(self, info: CollectionInfo) -> None:
        handle = await self._open_index(create=True)
        assert handle is not None
        if info.dimension > handle.dimension:
            raise InvalidCollection(
                f"collection {info.name!r} has dimension {info.dimension}, but Pinecone index "
                f"{self._index_name!r} holds vectors of at most {handle.dimension} dimensions; use an index "
                "with a larger dimension ([providers.pinecone] index and dimension)"
            )
        namespace = self._namespace(info.name)
        await self._clear_namespace(handle, namespace)  # leftovers of an interrupted drop
        metadata = _catalog_metadata(info)
        response = await self._call(
            handle.index.upsert,
            vectors=[{"id": info.name, "values": self._probe(handle), "metadata": metadata}],
            namespace=self._catalog,
        )
        pending = _Pending()
        pending.wrote(_lsn_committed(response), [{"id": info.name, "metadata": metadata}])
        await self._poll(lambda: self._visible(handle, self._catalog, pending), f"collection {info.name!r}")

    async def _list_collections(self) -> list[str]:
        handle = await self._open_index(create=False)
        if handle is None:
            return []

        def list_all() -> list[str]:
            names: list[str] = []
            token = None
            while True:
                page = self._tolerant(
                    lambda token=token: handle.index.list_paginated(
                        namespace=self._catalog, limit=100, pagination_token=token
                    ),
                    None,
                )
                if page is None:  # no catalog yet
                    return names
                names.extend(item.id for item in page.vectors if item.id)
                token = page.pagination.next if page.pagination else None
                if not token:
                    return names

        try:
            return await self._call(list_all, collection=self._catalog)
        except CollectionNotFound:  # the index was deleted under us
            return []

    async def _drop_collection(self, name: str) -> bool:
        handle = await self._open_index(create=False)
        if handle is None:
            return False
        try:
            existed = name in await self._call(self._fetch, handle, self._catalog, [name], collection=name)
        except CollectionNotFound:  # the index was deleted under us
            return False
        namespace = self._namespace(name)
        self._pending.pop(namespace, None)
        await self._clear_namespace(handle, namespace)
        if existed:
            await self._call(self._delete_ids, handle, self._catalog, [name])
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
            found = self._search(handle, namespace, vector=self._probe(handle), top_k=1)
            return not (found and found.matches) and not has_records()

        if await self._call(has_records):
            await self._call(delete_all)
            await self._poll(empty, f"the emptying of namespace {namespace!r}")

    # --- records -------------------------------------------------------------------------------

    async def upsert(self, collection: str, records: Sequence[Record]) -> int:
        """As the base class, plus Pinecone's exact 40 KB metadata check of the whole call before
        any I/O; the validation of a large batch runs in a worker thread, off the event loop."""
        info = await self.open_collection(collection)
        caps = self.capabilities

        def validate() -> list[Record]:
            batch = self.check_records(records, info.dimension)  # every declared bound
            for record in batch:
                codec.check_size(record)
            return batch

        batch = await asyncio.to_thread(validate)
        size = caps.max_batch_size or max(len(batch), 1)
        for start in range(0, len(batch), size):
            await self._upsert(info, batch[start : start + size])
        return len(batch)

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        pending = self._pending.setdefault(namespace, _Pending())

        def write() -> None:
            vectors = [codec.encode_vector(record, handle.dimension) for record in records]
            for chunk in _split_by_size(vectors):
                response = handle.index.upsert(vectors=chunk, namespace=namespace)
                pending.wrote(_lsn_committed(response), chunk)

        await self._call(write, collection=info.name)

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        query = codec.pad(vector, handle.dimension)
        native = to_pinecone(node)

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

        return await self._call(search, collection=info.name)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)

        def read() -> list[Record]:
            stored = self._fetch(handle, namespace, [codec.pinecone_id(i) for i in ids])
            return [
                codec.decode_record(pid, list(v.values), v.metadata, info.dimension)
                for pid, v in stored.items()
            ]

        return await self._call(read, collection=info.name)

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        await self.settle(info.name)  # what we wrote before must be visible to be counted
        native = to_pinecone(node)

        def remove() -> dict[str, str]:
            found: dict[str, str] = {}
            if ids is not None and native is None:
                for pid, vector in self._fetch(
                    handle, namespace, [codec.pinecone_id(i) for i in ids]
                ).items():
                    found[pid] = (vector.metadata or {}).get(codec.ID_KEY, pid)
            elif ids is not None:
                for chunk in _chunks(ids, IDS_PER_FILTER):
                    found.update(
                        self._select(handle, namespace, {"$and": [{codec.ID_KEY: {"$in": chunk}}, native]})
                    )
            else:
                found.update(self._select(handle, namespace, native))
            self._delete_ids(handle, namespace, list(found))
            return found

        found = await self._call(remove, collection=info.name)
        if found:
            self._pending.setdefault(namespace, _Pending()).removed(found)
        return len(found)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        handle = await self._require_index(info.name)
        namespace = self._namespace(info.name)
        native = to_pinecone(node)

        def count() -> int:
            if native is None:
                summary = handle.index.describe_index_stats().namespaces.get(namespace)
                return summary.vector_count if summary else 0
            # Serverless indexes have no filtered count: list the matching ids.
            return len(self._select(handle, namespace, native))

        return await self._call(count, collection=info.name)

    # --- blocking helpers (run in worker threads) ----------------------------------------------

    def _index_exists(self) -> bool:
        try:
            self._client().indexes.describe(self._index_name)
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
        for chunk in _fetch_chunks(list(dict.fromkeys(pids))):
            out.update(
                self._tolerant(
                    lambda chunk=chunk: handle.index.fetch(ids=chunk, namespace=namespace).vectors, {}
                )
            )
        return out

    def _delete_ids(self, handle: _Handle, namespace: str, pids: list[str]) -> None:
        for chunk in _chunks(pids, MAX_IDS_PER_REQUEST):
            self._tolerant(lambda chunk=chunk: handle.index.delete(ids=chunk, namespace=namespace), None)

    def _select(self, handle: _Handle, namespace: str, native: dict[str, Any]) -> dict[str, str]:
        """Every vector matching a native filter, as ``{pinecone id: VPA id}`` (fetch by metadata)."""
        limit = max(10, min(1000, 4_000_000 // (handle.dimension * 20 + 2000)))
        found: dict[str, str] = {}
        token = None
        while True:
            page = self._tolerant(
                lambda token=token: handle.index.fetch_by_metadata(
                    filter=native, namespace=namespace, limit=limit, pagination_token=token
                ),
                None,
            )
            if page is None:  # the namespace holds nothing
                return found
            for pid, vector in page.vectors.items():
                found[pid] = (vector.metadata or {}).get(codec.ID_KEY, pid)
            token = page.pagination.next if page.pagination else None
            if not token or not page.vectors:
                return found

    def _visible(self, handle: _Handle, namespace: str, pending: _Pending) -> bool:
        """Whether every write recorded in ``pending`` is visible to queries."""
        lsn_confirmed = False
        if pending.lsn:
            response = self._search(handle, namespace, vector=self._probe(handle), top_k=1)
            if response is None:  # the namespace does not exist yet: our writes are not visible
                return False
            reconciled = _lsn_reconciled(response)
            if reconciled is not None:
                if reconciled < pending.lsn:
                    return False
                lsn_confirmed = True
        if pending.written and not lsn_confirmed:
            expected = dict(pending.written)
            for chunk in _chunks(list(expected), IDS_PER_FILTER):
                record_ids = [expected[pid][codec.ID_KEY] for pid in chunk]
                response = self._search(
                    handle,
                    namespace,
                    vector=self._probe(handle),
                    top_k=len(chunk),
                    filter={codec.ID_KEY: {"$in": record_ids}},
                    include_metadata=True,
                )
                seen = {m.id: m.metadata or {} for m in (response.matches if response else [])}
                if any(seen.get(pid) != expected[pid] for pid in chunk):
                    return False
        for chunk in _chunks(list(pending.deleted.values()), IDS_PER_FILTER):
            response = self._search(
                handle,
                namespace,
                vector=self._probe(handle),
                top_k=1,
                filter={codec.ID_KEY: {"$in": chunk}},
            )
            if response is not None and response.matches:
                return False
        return True

    # --- consistency and lifecycle -------------------------------------------------------------

    async def settle(self, collection: str) -> None:
        """Wait until every write this store acknowledged to ``collection`` is visible to reads."""
        namespace = self._namespace(collection)
        pending = self._pending.get(namespace)
        handle = self._handle
        if pending is None or handle is None:
            return
        snapshot = pending.snapshot()
        await self._poll(
            lambda: self._visible(handle, namespace, snapshot), f"the writes to {collection!r}", collection
        )
        with pending.lock:
            if self._pending.get(namespace) is pending and pending.generation == snapshot.generation:
                del self._pending[namespace]

    async def health(self) -> HealthStatus:
        started = time.monotonic()
        try:
            handle = await self._open_index(create=False)
            if handle is not None:
                await self._call(handle.index.describe_index_stats)
            detail = "ok" if handle is not None else f"ok (index {self._index_name!r} not created yet)"
        except Exception as exc:
            return HealthStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")
        return HealthStatus(ok=True, detail=detail, latency_ms=(time.monotonic() - started) * 1000)

    async def close(self) -> None:
        handle, pc = self._handle, self._pc
        self._closed = True
        self._handle = None
        self._pc = None
        self._handle_lock = None
        self._collections.clear()
        self._pending.clear()
        if handle is not None:
            await asyncio.to_thread(handle.index.close)
        if pc is not None:
            await asyncio.to_thread(pc.close)


# --- helpers -------------------------------------------------------------------------------------


def _lsn_committed(response: Any) -> int | None:
    info = getattr(response, "response_info", None)
    return info.lsn_committed if info is not None else None


def _lsn_reconciled(response: Any) -> int | None:
    info = getattr(response, "response_info", None)
    return info.lsn_reconciled if info is not None else None


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fetch_chunks(pids: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    length = 0
    for pid in pids:
        cost = len(quote(pid, safe="")) + 5
        if chunk and (len(chunk) >= MAX_IDS_PER_REQUEST or length + cost > FETCH_URL_BUDGET):
            yield chunk
            chunk, length = [], 0
        chunk.append(pid)
        length += cost
    if chunk:
        yield chunk


def _split_by_size(vectors: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Split one upsert into requests of at most 1,000 vectors and 2 MB of JSON."""
    chunk: list[dict[str, Any]] = []
    size = 64  # {"vectors":[...],"namespace":"..."}
    for vector in vectors:
        cost = len(orjson.dumps(vector)) + 1
        if chunk and (len(chunk) >= MAX_UPSERT_VECTORS or size + cost > MAX_REQUEST_BYTES):
            yield chunk
            chunk, size = [], 64
        chunk.append(vector)
        size += cost
    if chunk:
        yield chunk


def _catalog_metadata(info: CollectionInfo) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        codec.ID_KEY: info.name,
        "vpa-kind": "collection",
        "format": CATALOG_FORMAT,
        "dimension": info.dimension,
        "metric": info.metric.value,
    }
    if info.fingerprint is not None:
        metadata.update(
            fingerprint_name=info.fingerprint.name,
            fingerprint_model=info.fingerprint.model,
            fingerprint_dimension=info.fingerprint.dimension,
        )
    return metadata


def _info_from_catalog(name: str, metadata: dict[str, Any]) -> CollectionInfo:
    try:
        fingerprint = None
        if "fingerprint_name" in metadata:
            fingerprint = EmbedderFingerprint(
                str(metadata["fingerprint_name"]),
                str(metadata["fingerprint_model"]),
                _as_int(metadata["fingerprint_dimension"]),
            )
        return CollectionInfo(
            name=name,
            dimension=_as_int(metadata["dimension"]),
            metric=Metric(metadata.get("metric", "cosine")),
            fingerprint=fingerprint,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"the catalog record of collection {name!r} is damaged: {exc}") from exc


def _as_int(value: Any) -> int:
    number = float(value)
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{value!r} is not an integer")
    return int(number)
