"""`QdrantStore`: the VPA store contract on Qdrant, embedded (qdrant-client's local mode, the
default; or Qdrant Edge, opted into with ``engine = "edge"``) or on a server.

How records and collections are laid out is `vpa_qdrant.codec`; filters are `vpa_qdrant.filters`
(one translation, to ``qdrant_client.models``, for every engine: `vpa_qdrant.edge` converts it
node for node into Edge's classes); which engine runs a call is `vpa_qdrant.backend`. Every
write waits for Qdrant to apply it (``wait=True``), so reads see it at once.

Contract 1.1: `_scroll` is Qdrant's own ``scroll``, keyset by point id (the position is the id of
the next point, a UUID string: it resumes in any process, and a deleted point still marks where
to resume); `_update` is one native ``set_payload`` merged into ``m`` per request, selected by a
filter (ids as a ``HasId`` condition), after a ``count`` of the same selector. Qdrant's merge is
shallow and removes a key set to ``null`` (the server's ``merge_map``, local mode's
``merge_payload``), so a set value replaces the old one whole and an unset key leaves nothing.

Lexical and hybrid search (issue 20) are Qdrant's own: each point of a collection made by 0.3.2 or
later holds a sparse vector of its text's BM25 term weights, searched with the IDF modifier
(`vpa_qdrant.lexical`, which says why it is not exact); ``lexical_query`` is one sparse
``query_points``, ``hybrid_query`` with RRF one ``query_points`` with a dense and a sparse
``prefetch`` (both filtered) fused by Qdrant's RRF at k = 61, which is VPA's ``1 / (60 + rank)``.
Linear fusion has no Qdrant equivalent (min-max normalisation), so VPA fuses the two native
halves (the base class's `_hybrid_query`). A collection made before 0.3.2 has no sparse vector
(Qdrant cannot add one): lexical and hybrid queries on it are `UnsupportedOperation`, saying to
recreate it — never a dense-only answer.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import attrs
from qdrant_client import models
from vpa.errors import CollectionNotFound, ConfigError, InvalidCursor, StoreError, UnsupportedOperation
from vpa.filters import Node
from vpa.models import CollectionInfo, Hit, Record, StoreCapabilities, contract_1_1
from vpa.stores.base import VectorStore
from vpa.validation import record_bytes_bound

from vpa_qdrant import codec, errors, lexical
from vpa_qdrant.backend import EdgeBackend, LocalBackend, RemoteBackend
from vpa_qdrant.filters import to_native, with_ids
from vpa_qdrant.lexical import LexicalLayout
from vpa_qdrant.settings import QdrantSettings

#: Ids per retrieve/delete request, and points per scroll page.
PAGE_SIZE = 1000

#: Server mode, HNSW search. Qdrant's server refuses requests over 32 MB by default
#: (``service.max_request_size_mb``): 256 points a request, and upserts split to 16 MiB of
#: estimated JSON (`QdrantStore.request_bytes`); 4 MiB of text plus metadata a record. The server
#: (Rust, indexed payloads) takes the default 1,024 filter terms and 32 levels (a level is two JSON
#: levels of a nested ``Filter``: 64 of serde's 128).
#: Contract 1.1: every operator and type; ``update`` is Qdrant's own ``set_payload``.
#: Lexical search on every engine, not exact (`vpa_qdrant.lexical`): recall@k of VPA's BM25 top-k
#: measured (README) at 0.98-1.0 over drawn collections and 0.83-0.99 in the worst single ones;
#: 0.7 declared. RRF is fused by Qdrant (``native_fusion``); linear fusion by VPA.
SERVER_CAPABILITIES = contract_1_1(
    exact=False,
    min_recall=0.9,
    max_batch_size=256,
    eventually_consistent=False,
    persistent=True,
    heterogeneous_fields=True,
    max_record_bytes=4 * 1024 * 1024,
    max_request_bytes=16 * 1024 * 1024,
    max_page_size=PAGE_SIZE,
    native_update=True,
    lexical_search=True,
    lexical_exact=False,
    lexical_min_recall=0.7,
    native_fusion=True,
)

#: Qdrant Edge (``engine = "edge"``, opt-in): Qdrant's Rust engine, with the server's filter
#: evaluation (so the server's filter bounds). VPA never builds an HNSW index on an Edge shard
#: (Edge optimises only when asked) and asks for exact search besides, so a search is an exact scan
#: of every segment. Not the default because qdrant-edge-py 0.9 stores some 17-significant-digit
#: floats one ulp off (the README's "Known defect"), so not every record comes back as written.
EDGE_CAPABILITIES = attrs.evolve(SERVER_CAPABILITIES, exact=True, min_recall=1.0)

#: qdrant-client's local mode (``engine = "client"``), the default embedded engine and so the
#: class's `capabilities`: brute force, so exact, and every value stored as written. It evaluates
#: a filter in Python, condition by condition on every point: about 25 ms a term per 1,000 points
#: measured (a 1,024-term ``$or`` took 12 s, the ``$not`` of an ``$and`` of 1,024 ordering
#: comparisons 27 s, over 1,000 points), holding the GIL. It survives any width, but a quarter
#: of the server's bound keeps one search from stalling the process for long.
LOCAL_CAPABILITIES = attrs.evolve(SERVER_CAPABILITIES, exact=True, min_recall=1.0, max_filter_terms=256)


class QdrantStore(VectorStore):
    """A VPA store on Qdrant. Built by `from_config`, or directly from `QdrantSettings`:

    ``QdrantStore(QdrantSettings(path=...))`` or ``QdrantStore(QdrantSettings(in_memory=True))``
    for qdrant-client's local mode (``engine="edge"`` for Qdrant Edge);
    ``QdrantStore(QdrantSettings(url="http://host:6333"), api_key=...)``
    or ``QdrantStore(host="host", port=6333)`` for a server. Nothing is opened or contacted
    before the first call.
    """

    #: The default mode's (qdrant-client's local mode, persisted); `declare` gives each mode's.
    capabilities = LOCAL_CAPABILITIES
    settings_class = QdrantSettings
    provider = "qdrant"
    translate_error = staticmethod(errors.translate_error)

    def __init__(
        self,
        settings: QdrantSettings | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        api_key: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        connection_pool_size: int = 0,
    ) -> None:
        settings = (settings or QdrantSettings()).resolve(host=host, port=port, data_dir=data_dir)
        super().__init__(capabilities=self.declare(settings))
        self.settings = settings
        self.mode = settings.mode
        self._backend: EdgeBackend | LocalBackend | RemoteBackend
        if settings.mode == "server":
            self._backend = RemoteBackend(
                settings, api_key=api_key, connection_pool_size=connection_pool_size
            )
            self.location = str(settings.url)
        elif settings.mode in ("edge", "local") and settings.path is None:
            raise ConfigError(
                "QdrantStore needs a url or host (server mode), a path or in_memory (embedded)"
            )
        elif settings.engine == "edge":
            self._backend = EdgeBackend(settings.path)
            self.location = settings.path or ":memory:"
        else:
            self._backend = LocalBackend(settings.path)
            self.location = settings.path or ":memory:"
        self._search_params: models.SearchParams | None = None
        self._read: dict[str, Any] = {}
        self._write: dict[str, Any] = {"wait": True}
        if settings.mode == "server":  # embedded search is exact (see EDGE_CAPABILITIES)
            if settings.exact:
                self._search_params = models.SearchParams(exact=True)
            elif settings.hnsw_ef:
                self._search_params = models.SearchParams(hnsw_ef=settings.hnsw_ef)
            if settings.read_consistency is not None:
                consistency = settings.read_consistency
                self._read["consistency"] = (
                    consistency if isinstance(consistency, int) else models.ReadConsistencyType(consistency)
                )
            if settings.write_ordering is not None:
                self._write["ordering"] = models.WriteOrdering(settings.write_ordering)
        self._counted_locks: dict[str, asyncio.Lock] = {}
        #: Each known collection's `LexicalLayout` (None: made before 0.3.2, no sparse vector).
        self._layouts: dict[str, LexicalLayout | None] = {}
        self._layout_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_config(cls, config: Any) -> QdrantStore:
        """Server mode when ``url`` or VPA_VECTOR_DB_HOST is set, else embedded (qdrant-client's
        local mode, or Qdrant Edge with ``engine = "edge"``)."""
        return cls(
            cls.settings_from(config),
            host=config.host,
            port=config.port,
            api_key=config.api_key,
            data_dir=config.data_dir,
            connection_pool_size=config.connection_pool_size,
        )

    @classmethod
    def declare(cls, settings: QdrantSettings) -> StoreCapabilities:
        if settings.mode == "server":
            recall = 1.0 if settings.exact else settings.min_recall
            return attrs.evolve(
                SERVER_CAPABILITIES,
                exact=settings.exact,
                min_recall=recall,
                max_batch_size=settings.max_batch_size,
            )
        embedded = EDGE_CAPABILITIES if settings.engine == "edge" else LOCAL_CAPABILITIES
        return attrs.evolve(
            embedded, persistent=settings.mode != "memory", max_batch_size=settings.max_batch_size
        )

    @classmethod
    def _resolve_settings(cls, settings: QdrantSettings, config: Any) -> QdrantSettings:
        # The mode depends on VPA_VECTOR_DB_HOST too, which ``[providers.qdrant]`` does not hold.
        return settings.resolve(host=config.host, port=config.port)

    def __repr__(self) -> str:  # never shows the API key
        return f"QdrantStore(mode={self.mode!r}, location={self.location!r})"

    def request_bytes(self, info: CollectionInfo, record: Record) -> int:
        """A point as JSON: up to 24 bytes a float, the id twice (point id and payload), the rest,
        and 32 bytes a key for the codec's tags (an empty list's ``{"_vpa_empty_list": true}`` is
        22 bytes more than the core's bound counts; a datetime's tag and a base64 key fit in it)."""
        tags = 32 * len(record.metadata)
        sparse = lexical.sparse_bytes(record.text)  # counted for every collection: an upper bound
        return record_bytes_bound(record) + 24 * info.dimension + 6 * len(record.id) + 200 + tags + sparse

    async def _client_call(self, method: str, collection: str | None = None, **kwargs: Any) -> Any:
        """``client.<method>(collection, **kwargs)`` as the backend runs it (embedded engines
        through `vpa.offload`, a server through the async client), in `vendor_errors`."""
        with self.vendor_errors(method, collection):
            return await self._backend.call(method, *(() if collection is None else (collection,)), **kwargs)

    def _counted_lock(self, name: str) -> asyncio.Lock:
        """Held by a delete or update from its look-up or count to its write (one collection)."""
        return self._counted_locks.setdefault(name, asyncio.Lock())

    # --- collections -----------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        if not await self._client_call("collection_exists", name):
            return None
        try:
            metadata = await self._collection_metadata(name)
        except CollectionNotFound:
            return None
        info = codec.read_definition(name, metadata)
        self._layouts[name] = LexicalLayout.from_metadata(metadata)
        return info

    async def _collection_metadata(self, name: str) -> dict[str, Any]:
        if self._backend.kind == "edge":  # kept beside the shard, as a server keeps it
            return await self._client_call("collection_metadata", name)  # type: ignore[no-any-return]
        return (await self._client_call("get_collection", name)).config.metadata or {}

    async def _create_collection(self, info: CollectionInfo) -> None:
        try:
            await self._client_call(
                "create_collection", info.name, **codec.collection_config(info, self.settings)
            )
            self._layouts[info.name] = LexicalLayout()
        except StoreError:
            # Another writer created it between our look-up and now: open theirs if compatible.
            existing = await self._describe_collection(info.name)
            if existing is None:
                raise
            self._check_compatible(existing, info.dimension, info.fingerprint)

    async def _list_collections(self) -> list[str]:
        response = await self._client_call("get_collections")
        return [c.name for c in response.collections]

    async def _drop_collection(self, name: str) -> bool:
        self._counted_locks.pop(name, None)
        self._layouts.pop(name, None)
        self._layout_locks.pop(name, None)
        if not await self._client_call("collection_exists", name):
            return False
        try:
            await self._client_call("delete_collection", name)
        except CollectionNotFound:
            return False
        return True

    # --- records ---------------------------------------------------------------------------------

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        layout = await self._layout(info)
        if layout is not None and layout.avg_len is None:
            layout = await self._fix_avg_len(info, records)
        await self._client_call("upsert", info.name, points=codec.to_points(records, layout), **self._write)

    # --- the lexical layout ----------------------------------------------------------------------

    async def _layout(self, info: CollectionInfo) -> LexicalLayout | None:
        """The collection's `LexicalLayout` (read with its definition, once per store)."""
        if info.name not in self._layouts and await self._describe_collection(info.name) is None:
            raise CollectionNotFound(info.name)
        return self._layouts.get(info.name)

    async def _fix_avg_len(self, info: CollectionInfo, records: list[Record]) -> LexicalLayout:
        """The average length the collection's points are normalised with, fixed by its first
        upsert holding a token (`vpa_qdrant.lexical`): read again (another store or process may
        have fixed it), else this batch's mean, recorded in the collection's metadata before any
        point is written with it. Until then points hold only the marker term."""
        async with self._layout_locks.setdefault(info.name, asyncio.Lock()):
            layout = LexicalLayout.from_metadata(await self._collection_metadata(info.name))
            if layout is None:  # its metadata lost the record since: write as it was opened
                layout = self._layouts.get(info.name) or LexicalLayout()
            if layout.avg_len is None:
                mean = lexical.mean_length([r.text for r in records])
                if mean is None:
                    return layout
                layout = attrs.evolve(layout, avg_len=mean)
                await self._client_call(
                    "update_collection", info.name, metadata={lexical.METADATA_KEY: layout.to_metadata()}
                )
            self._layouts[info.name] = layout
            return layout

    async def _lexical_layout(self, info: CollectionInfo) -> LexicalLayout:
        """The layout a lexical query needs; `UnsupportedOperation` naming the fix for a collection
        without a sparse vector (made before 0.3.2) or with another BM25 or term scheme."""
        layout = await self._layout(info)
        if layout is None:
            raise UnsupportedOperation(
                f"Qdrant collection {info.name!r} was created before vpa-qdrant 0.3.2 and has no sparse BM25 "
                "vector (Qdrant cannot add one to an existing collection), so it cannot answer lexical or "
                "hybrid queries; recreate it: vpa.portability.migrate it into a new collection, or drop it "
                "and ingest again"
            )
        if not layout.current:
            raise UnsupportedOperation(
                f"Qdrant collection {info.name!r} holds BM25 terms as {layout.spec} with {layout.terms} ids "
                f"in {layout.vector!r}; this vpa-qdrant queries {lexical.LexicalLayout().spec} with "
                f"{lexical.TERM_HASH} ids: recreate the collection (vpa.portability.migrate, or ingest again)"
            )
        return layout

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        kwargs = dict(self._read)
        if self._search_params is not None:
            kwargs["search_params"] = self._search_params
        response = await self._client_call(
            "query_points",
            info.name,
            query=codec.query_vector(vector),
            query_filter=to_native(node),
            limit=top_k,
            with_payload=True,
            with_vectors=False,
            **kwargs,
        )
        return [codec.to_hit(point) for point in response.points]

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        """One sparse ``query_points`` on the collection's BM25 vector, filtered by Qdrant."""
        layout = await self._lexical_layout(info)
        response = await self._client_call(
            "query_points",
            info.name,
            query=lexical.query_vector(terms),
            using=layout.vector,
            query_filter=to_native(node),
            limit=top_k,
            with_payload=True,
            with_vectors=False,
            **self._read,
        )
        return [codec.to_scored_hit(point) for point in response.points if point.score > 0]

    async def _hybrid_query(
        self,
        info: CollectionInfo,
        vector: Any,
        text: str,
        terms: list[str],
        top_k: int,
        node: Node | None,
        fusion: str,
        alpha: float,
    ) -> list[Hit]:
        """RRF: one ``query_points`` fusing a dense and a sparse ``prefetch`` (each filtered, each
        `vpa.lexical.candidates_for` deep) with Qdrant's RRF at k = 61, i.e. VPA's
        ``1 / (60 + rank)``. Linear fusion has no Qdrant form: the base class fuses the halves."""
        layout = await self._lexical_layout(info)
        if fusion != "rrf":
            return await super()._hybrid_query(info, vector, text, terms, top_k, node, fusion, alpha)
        from vpa.lexical import candidates_for

        depth = candidates_for(top_k, self.capabilities.max_top_k)
        native = to_native(node)
        response = await self._client_call(
            "query_points",
            info.name,
            prefetch=[
                models.Prefetch(
                    query=codec.query_vector(vector), filter=native, limit=depth, params=self._search_params
                ),
                models.Prefetch(
                    query=lexical.query_vector(terms), using=layout.vector, filter=native, limit=depth
                ),
            ],
            query=models.RrfQuery(rrf=models.Rrf(k=lexical.QDRANT_RRF_K)),
            limit=top_k,
            with_payload=True,
            with_vectors=False,
            **self._read,
        )
        return [codec.to_scored_hit(point) for point in response.points]

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        records: list[Record] = []
        for start in range(0, len(ids), PAGE_SIZE):
            points = await self._retrieve(
                info, [codec.point_id(i) for i in ids[start : start + PAGE_SIZE]], full=True
            )
            records.extend(codec.to_record(p) for p in points)
        return records

    async def _retrieve(self, info: CollectionInfo, point_ids: list[str], *, full: bool) -> list[Any]:
        return await self._client_call(  # type: ignore[no-any-return]
            "retrieve",
            info.name,
            ids=point_ids,
            with_payload=full,
            with_vectors=full,
            **self._read,
        )

    async def _matching_point_ids(
        self, info: CollectionInfo, ids: list[str] | None, native: Any
    ) -> list[str]:
        """Point ids of the records that have one of ``ids`` (if given) and match ``native``."""
        if ids is None:
            return [str(p.id) for p in await self._scroll_all(info, native)]
        found: list[str] = []
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = [codec.point_id(i) for i in ids[start : start + PAGE_SIZE]]
            if native is None:
                points = await self._retrieve(info, chunk, full=False)
            else:
                points = await self._scroll_all(info, with_ids(native, chunk))
            found.extend(str(p.id) for p in points)
        return found

    async def _scroll_all(self, info: CollectionInfo, native: models.Filter | None) -> list[Any]:
        points: list[Any] = []
        offset = None
        while True:
            page, offset = await self._client_call(
                "scroll",
                info.name,
                scroll_filter=native,
                limit=PAGE_SIZE,
                offset=offset,
                with_payload=False,
                with_vectors=False,
                **self._read,
            )
            points.extend(page)
            if offset is None or not page:
                return points

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        native = to_native(node)
        async with self._counted_lock(info.name):
            found = list(dict.fromkeys(await self._matching_point_ids(info, ids, native)))
            for start in range(0, len(found), PAGE_SIZE):
                chunk = found[start : start + PAGE_SIZE]
                # Delete by id *and* filter, so a record rewritten since the look-up to no longer
                # match is left alone.
                selector = (
                    models.PointIdsList(points=chunk)
                    if native is None
                    else models.FilterSelector(filter=with_ids(native, chunk))
                )
                await self._client_call("delete", info.name, points_selector=selector, **self._write)
            return len(found)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        return await self._count_native(info, to_native(node))

    async def _count_native(self, info: CollectionInfo, native: models.Filter | None) -> int:
        result = await self._client_call("count", info.name, count_filter=native, exact=True)
        return int(result.count)

    # --- contract 1.1 ----------------------------------------------------------------------------

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """Qdrant's scroll in point-id order from the point id ``after`` (inclusive: it is the
        first id of the page, as Qdrant's ``next_page_offset``). Points are ordered by id, so a
        point upserted or deleted elsewhere moves no other point: every point that exists for the
        whole scroll comes back once; a resumed position whose point was deleted resumes at the
        next id."""
        points, following = await self._client_call(
            "scroll",
            info.name,
            scroll_filter=to_native(node),
            limit=limit,
            offset=None if after is None else _point_position(after),
            with_payload=True,
            with_vectors=with_vectors,
            **self._read,
        )
        return [codec.to_record(p) for p in points], None if following is None else str(following)

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],
        unset: list[str],
    ) -> int:
        """One ``set_payload`` into ``m`` (set keys, and unset keys as ``null``, which Qdrant's
        payload merge removes) per selector: the records with one of ``ids`` (a ``HasId``
        condition, which unlike a list of ids tolerates ids that do not exist) that match the
        filter. Each point is changed whole by one request, its filter evaluated once, and its
        vector and text are not touched. The count is Qdrant's ``count`` of the same selector just
        before, under this store's per-collection lock."""
        native = to_native(node)
        payload = codec.metadata_changes(set, unset)
        selectors = (
            [native or models.Filter()]
            if ids is None
            else [
                with_ids(native, [codec.point_id(i) for i in ids[start : start + PAGE_SIZE]])
                for start in range(0, len(ids), PAGE_SIZE)
            ]
        )
        changed = 0
        async with self._counted_lock(info.name):
            for selector in selectors:
                matched = await self._count_native(info, selector)
                if matched:
                    await self._client_call(
                        "set_payload",
                        info.name,
                        payload=payload,
                        points=models.FilterSelector(filter=selector),
                        key=codec.METADATA_KEY,
                        **self._write,
                    )
                changed += matched
        return changed

    # --- lifecycle -------------------------------------------------------------------------------

    async def _health(self) -> str:
        return f"{self.mode} mode, {len(await self._list_collections())} collection(s)"

    async def _close(self) -> None:
        self._counted_locks.clear()
        self._layouts.clear()
        await self._backend.close()


def _point_position(after: str) -> str:
    """The point id a scroll position names; `InvalidCursor` if it is not a point id."""
    try:
        return str(uuid.UUID(after))
    except ValueError:
        raise InvalidCursor("cursor is not one that scroll handed out (no Qdrant point id)") from None
