"""The `weaviate` store: VPA collections as Weaviate collections (classes), via the v4 client.

One VPA collection ``docs`` is the class ``Vpadocs`` (`vpa_weaviate.naming`) with one
self-provided named vector ``default`` (HNSW, cosine distance; ``index = "flat"`` for exact
search), so ``score = 1 - distance``; its description holds VPA's definition, its objects the
records (`vpa_weaviate.codec`). A metadata key is a typed property, declared by the store the first
time the key is written (`_prepare_upsert`): it keeps that type for the life of the collection, and
a batch that conflicts — with the schema or within itself — raises `UnsupportedMetadata` before
anything is written.

With ``tenant`` set, collections are multi-tenant Weaviate collections and this store reads and
writes only its tenant's shard (created on `create_collection`, removed on `drop_collection`).

Lexical search is Weaviate's own ``bm25`` query on ``vpa_terms`` (the record's VPA tokens, see
`vpa_weaviate.codec`), the filter Weaviate's; a hybrid query with ``fusion="linear"`` is Weaviate's
``hybrid`` with ``relativeScoreFusion`` (the same min-max normalised ``alpha`` weighting as
`vpa.lexical.fuse`), and with ``fusion="rrf"`` the two native halves fused by VPA — Weaviate's
``rankedFusion`` is not VPA's RRF (see `_hybrid_query`).

The v4 client is synchronous here and every call runs in a worker thread (`run_vendor`); it
connects on first use, never in the constructor. Connecting is also where the store learns the
server's version and gRPC message limit, and refines its capabilities once (`refine_capabilities`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pydantic
import weaviate
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    InvalidCollection,
    InvalidCursor,
    StoreError,
    StoreUnavailable,
    UnsupportedOperation,
)
from vpa.filters import Node, fields_used
from vpa.log import get_logger
from vpa.models import CollectionInfo, FilterOp, Hit, Record, StoreCapabilities, contract_1_1
from vpa.stores.base import VectorStore
from weaviate.classes.config import ConsistencyLevel
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.config import ConnectionConfig
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateInvalidInputError

from vpa_weaviate import codec
from vpa_weaviate import filters as wf
from vpa_weaviate.errors import describe, translate_error
from vpa_weaviate.naming import (
    ID_PROP,
    TERMS_PROP,
    VECTOR_NAME,
    decode_collection,
    encode_collection,
    object_uuid,
)
from vpa_weaviate.settings import QUERY_MAXIMUM_RESULTS, WeaviateSettings

log = get_logger("vpa_weaviate")

#: Ids per fetch/delete-by-id request, and objects per cursor request.
ID_CHUNK = 1_000
#: Where a scroll starts: the cursor API after the nil UUID (no uuid5 is nil), so the first page
#: too is a cursor request, in UUID order whatever the sharding.
SCROLL_START = str(uuid.UUID(int=0))
#: Cursor requests one page of a filtered scroll makes at most before it returns what it found
#: (a page may then hold fewer records than asked, even none, with a cursor to go on).
SCAN_ROUNDS = 8
#: Object requests (PATCH, PUT) an update keeps in flight at once (the HTTP pool keeps 20).
UPDATE_WORKERS = 8
#: The first Weaviate version with the ``Not`` filter operator, which VPA's negations need.
NOT_OPERATOR_SINCE = (1, 33, 0)
NEGATIONS = frozenset({FilterOp.NE, FilterOp.NIN, FilterOp.NOT})
#: Weaviate's default GRPC_MAX_MESSAGE_SIZE; a write request stays within 80% of the server's.
GRPC_MAX_MESSAGE = 104_858_000
#: The recall of VPA's BM25 top-k the store declares (1.0 measured against the stand-in).
LEXICAL_MIN_RECALL = 0.9
_CONSISTENCY = {"one": ConsistencyLevel.ONE, "quorum": ConsistencyLevel.QUORUM, "all": ConsistencyLevel.ALL}


@attrs.frozen
class ServerInfo:
    """What the store learns from the server when it connects (``/v1/meta``)."""

    version: tuple[int, int, int] = NOT_OPERATOR_SINCE
    grpc_max_message: int = GRPC_MAX_MESSAGE

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> ServerInfo:
        parts = [*str(meta.get("version", "0")).split("-")[0].split(".")[:3], "0", "0"][:3]
        major, minor, patch = (int("".join(c for c in p if c.isdigit()) or 0) for p in parts)
        return cls((major, minor, patch), int(meta.get("grpcMaxMessageSize") or GRPC_MAX_MESSAGE))

    @property
    def has_not(self) -> bool:
        return self.version >= NOT_OPERATOR_SINCE

    def __str__(self) -> str:
        return ".".join(map(str, self.version))


class WeaviateStore(VectorStore):
    """A VPA store on a Weaviate server (self-hosted, Kubernetes or Weaviate Cloud).

    ``api_key`` is sent as ``Authorization: Bearer`` on REST and gRPC; ``connection_pool_size``
    (``VPA_CONNECTION_POOL_SIZE``; 0 keeps the client's default) sizes its HTTP connection pool.
    """

    #: A server's default mode (Weaviate >= 1.33, default gRPC message limit); `declare` refines it.
    #: Contract 1.1: scroll by Weaviate's cursor API, update by its merge (see `_scroll`, `_update`).
    capabilities = contract_1_1(
        exact=False,  # HNSW; with index = "flat" search is exact, the declaration stays the weaker one
        min_recall=0.9,
        # Weaviate has no count limit of its own; 1,000 is the client's recommended upper batch size
        max_batch_size=1_000,
        max_top_k=QUERY_MAXIMUM_RESULTS,
        max_request_bytes=int(GRPC_MAX_MESSAGE * 0.8),
        eventually_consistent=False,
        persistent=True,
        heterogeneous_fields=False,
        # a page is one cursor request of at most ID_CHUNK objects (and QUERY_MAXIMUM_RESULTS)
        max_page_size=ID_CHUNK,
        scroll_filters=True,
        # a set-only update is Weaviate's own merge (PATCH); an unset rewrites the object with the
        # vector it has (Weaviate documents no other way to delete a property): the weaker claim
        native_update=False,
        # Weaviate's BM25 on the record's VPA tokens: exact on the stand-in (recall 1.0 measured);
        # declared with a margin for what a real server may do differently (see the README)
        lexical_search=True,
        lexical_exact=False,
        lexical_min_recall=LEXICAL_MIN_RECALL,
        # linear fusion is Weaviate's relativeScoreFusion, but RRF is fused by VPA (rankedFusion
        # is 1 / (60 + rank - 1) weighted by alpha): the engine does not fuse every hybrid query
        native_fusion=False,
    )
    settings_class = WeaviateSettings
    provider = "weaviate"

    def __init__(
        self,
        settings: WeaviateSettings | None = None,
        *,
        api_key: str | None = None,
        connection_pool_size: int = 0,
    ) -> None:
        self.settings = settings or WeaviateSettings()
        super().__init__(capabilities=self.declare(self.settings))
        self._api_key = api_key
        self._pool_size = connection_pool_size
        self._lock = threading.RLock()
        self._client_obj: weaviate.WeaviateClient | None = None
        self._server: ServerInfo | None = None
        self._schemas: dict[str, codec.Schema] = {}  # class name -> what the store knows of it
        self._closed = False

    @classmethod
    def from_config(cls, config: Any) -> WeaviateStore:
        settings = cls.settings_from(config)
        return cls(settings, api_key=config.api_key, connection_pool_size=config.connection_pool_size)

    @classmethod
    def _resolve_settings(cls, settings: WeaviateSettings, config: Any) -> WeaviateSettings:
        """``VPA_VECTOR_DB_HOST``/``PORT``, where the table names no address of its own."""
        if settings.url is not None:
            return settings
        return attrs.evolve(settings, host=settings.host or config.host, port=settings.port or config.port)

    @classmethod
    def declare(cls, settings: WeaviateSettings, server: ServerInfo | None = None) -> StoreCapabilities:
        """What a store with ``settings`` can do on ``server`` (before connecting: a server's
        default mode); `_by_server` is the one definition of what depends on them."""
        return attrs.evolve(cls.capabilities, **cls._by_server(settings, server or ServerInfo()))

    @classmethod
    def _by_server(cls, settings: WeaviateSettings, server: ServerInfo) -> dict[str, Any]:
        """No negations before Weaviate 1.33 (no ``Not``); a write request within 80% of the gRPC
        message limit the server reports, unless ``batch_bytes`` says otherwise."""
        changes: dict[str, Any] = {
            "max_request_bytes": settings.batch_bytes or int(server.grpc_max_message * 0.8),
            "max_page_size": max(1, min(ID_CHUNK, settings.max_results)),
        }
        if not server.has_not:
            changes["filter_operators"] = cls.capabilities.filter_operators - NEGATIONS
        return changes

    def __repr__(self) -> str:
        e, scheme = self.settings.endpoints, "https" if self.settings.endpoints.http_secure else "http"
        return f"WeaviateStore({scheme}://{e.http_host}:{e.http_port}, tenant={self.settings.tenant!r})"

    @property
    def server_version(self) -> tuple[int, int, int] | None:
        """The server's version, known once connected."""
        return self._server.version if self._server is not None else None

    # --- the client --------------------------------------------------------------------------------

    def _client(self) -> weaviate.WeaviateClient:
        with self._lock:
            if self._closed:
                raise StoreError("this Weaviate store is closed")
            if self._client_obj is None:
                self._client_obj = self._connect()
            return self._client_obj

    def _client_config(self) -> AdditionalConfig:
        s = self.settings
        timeout = Timeout(init=s.init_timeout, query=s.timeout, insert=s.timeout)
        if self._pool_size <= 0:
            return AdditionalConfig(timeout=timeout)
        # the HTTP pool; gRPC multiplexes every call over one HTTP/2 channel and has no pool to size
        pool = ConnectionConfig(
            session_pool_connections=self._pool_size, session_pool_maxsize=self._pool_size
        )
        return AdditionalConfig(timeout=timeout, connection=pool)

    def _connect(self) -> weaviate.WeaviateClient:
        e = self.settings.endpoints
        try:
            client = weaviate.connect_to_custom(
                http_host=e.http_host,
                http_port=e.http_port,
                http_secure=e.http_secure,
                grpc_host=e.grpc_host,
                grpc_port=e.grpc_port,
                grpc_secure=e.grpc_secure,
                auth_credentials=Auth.api_key(self._api_key) if self._api_key else None,
                additional_config=self._client_config(),
                # The client's own start-up checks also ask pypi.org whether the client is
                # outdated; VPA does not phone home, so it runs the other check (gRPC) itself.
                skip_init_checks=True,
            )
        except (pydantic.ValidationError, WeaviateInvalidInputError) as exc:
            raise ConfigError(f"invalid Weaviate connection settings: {describe(exc)}") from exc
        try:
            server = ServerInfo.from_meta(client.get_meta())
            ping = getattr(client._connection, "_ping_grpc", None)
            if callable(ping):
                ping("sync")  # raises WeaviateGRPCUnavailableError on a wrong gRPC address
        except BaseException:
            client.close()
            raise
        self._server = server
        self.refine_capabilities(**self._by_server(self.settings, server))
        if not server.has_not:
            log.warning(
                "weaviate.no_not_operator",
                version=str(server),
                detail="$ne, $nin and $not need Weaviate >= 1.33: they are UnsupportedFilter",
            )
        return client

    def translate_error(
        self, exc: BaseException, *, where: str, collection: str | None = None
    ) -> BaseException:
        return translate_error(exc, where=where, collection=collection)

    def forget_collection(self, name: str) -> None:
        """Forget the collection's definition and its schema."""
        super().forget_collection(name)
        with self._lock:
            self._schemas.pop(self._class(name), None)

    def _class(self, name: str) -> str:
        return encode_collection(name, self.settings.class_prefix)

    def _handle(self, name: str) -> Any:
        handle = self._client().collections.use(self._class(name))
        if self.settings.tenant is not None:
            handle = handle.with_tenant(self.settings.tenant)
        if self.settings.consistency_level is not None:
            handle = handle.with_consistency_level(_CONSISTENCY[self.settings.consistency_level])
        return handle

    @property
    def _id_chunk(self) -> int:
        return max(1, min(ID_CHUNK, self.settings.max_results))

    # --- schema ------------------------------------------------------------------------------------

    def _read_config(self, class_name: str) -> Any | None:
        """The class's config (the full one: the schema needs its inverted index settings), or
        None when Weaviate has no such class."""
        try:
            return self._client().collections.use(class_name).config.get()
        except UnexpectedStatusCodeError as exc:
            if exc.status_code == 404:
                return None
            raise

    def _remember(self, class_name: str, schema: codec.Schema) -> codec.Schema:
        with self._lock:
            self._schemas[class_name] = schema
        return schema

    def _schema(self, name: str, refresh: bool = False) -> codec.Schema:
        class_name = self._class(name)
        with self._lock:
            cached = self._schemas.get(class_name)
        if cached is not None and not refresh:
            return cached
        config = self._read_config(class_name)
        if config is None:
            raise CollectionNotFound(name)
        return self._remember(class_name, codec.read_schema(config))

    def _schema_with(self, name: str, keys: set[str] | list[str] | frozenset[str]) -> codec.Schema:
        """The schema, re-read once if a key is unknown (another writer may have added it)."""
        schema = self._schema(name)
        if any(k not in schema.types for k in keys):
            schema = self._schema(name, refresh=True)
        return schema

    def _schema_for(self, name: str, objects: list[Any]) -> codec.Schema:
        """The schema that decodes ``objects``, re-read once if one holds a key it does not know."""
        schema = self._schema(name)
        if not all(schema.knows(o.properties) for o in objects):
            schema = self._schema(name, refresh=True)
        return schema

    def _tenant_exists(self, class_name: str) -> bool:
        tenant = self.settings.tenant
        assert tenant is not None
        return bool(self._client().collections.use(class_name).tenants.exists(tenant))

    def _ensure_properties(self, name: str, metadatas: list[Mapping[str, Any]]) -> codec.Schema:
        """Weaviate's one type per key: each key of the batch needs one type, the one its property
        has; a property is declared for each new key (accepting one another writer just declared
        with the same type)."""
        needed = codec.batch_types(metadatas)
        schema = self._schema(name)
        codec.check_types(name, needed, schema.types)
        missing = [key for key in needed if key not in schema.types]
        if not missing:
            return schema
        config = self._client().collections.use(self._class(name)).config
        for key in missing:
            try:
                config.add_property(codec.metadata_property(key, needed[key]))
            except (UnexpectedStatusCodeError, WeaviateInvalidInputError):
                schema = self._schema(name, refresh=True)  # added concurrently?
                if key not in schema.types:
                    raise
                codec.check_types(name, {key: needed[key]}, schema.types)
                continue
            with self._lock:
                class_name = self._class(name)
                schema = self._schemas.get(class_name, schema).with_key(key, needed[key])
                self._schemas[class_name] = schema
        return schema

    def _native_filter(self, name: str, node: Node | None) -> wf.Translated:
        if node is None:
            return wf.TRUE
        schema = self._schema_with(name, set(fields_used(node)))
        return wf.to_native(node, schema.types, null_state=schema.null_state)

    # --- collections -------------------------------------------------------------------------------

    def _describe_sync(self, name: str) -> CollectionInfo | None:
        class_name = self._class(name)
        config = self._read_config(class_name)
        if config is None:
            return None
        definition = codec.load_description(name, config.description)
        if definition is None:
            return None  # a class that VPA did not create
        tenant = self.settings.tenant
        if tenant is None and definition.multi_tenant:
            raise InvalidCollection(
                f"collection {name!r} is multi-tenant in Weaviate; set [providers.weaviate] tenant to use it"
            )
        if tenant is not None:
            if not definition.multi_tenant:
                raise InvalidCollection(
                    f"collection {name!r} was created without tenants; "
                    f"it cannot be opened with tenant {tenant!r}"
                )
            if not self._tenant_exists(class_name):
                return None
        self._remember(class_name, codec.read_schema(config))
        return definition.info

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        return await self.run_vendor("describe collection", self._describe_sync, name)

    def _create_sync(self, info: CollectionInfo) -> None:
        class_name = self._class(info.name)
        tenant = self.settings.tenant
        client = self._client()
        config = None
        # describe found nothing usable: create, and read what exists if Weaviate refuses
        try:
            client.collections.create(name=class_name, **codec.class_config(info, self.settings))
        except UnexpectedStatusCodeError as exc:
            if exc.status_code != 422:
                raise
            # it exists: created concurrently, by another tenant's store, or not by VPA
            config = self._read_config(class_name)
            if config is None:
                raise
        if config is not None:
            existing = codec.load_description(info.name, config.description)
            if existing is None:
                raise InvalidCollection(
                    f"Weaviate already has a class {class_name!r} that VPA did not create; "
                    "choose another collection name or class_prefix"
                )
            if existing.multi_tenant != (tenant is not None):
                raise InvalidCollection(
                    f"collection {info.name!r} exists with multi-tenancy "
                    f"{'on' if existing.multi_tenant else 'off'}; this store has tenant={tenant!r}"
                )
            if existing.info.dimension != info.dimension:
                raise DimensionMismatch(
                    existing.info.dimension, info.dimension, where=f"collection {info.name!r} request"
                )
            self._remember(class_name, codec.read_schema(config))
        else:
            self._remember(class_name, codec.Schema())  # a 0.3 class: no keys yet, null state indexed
        if tenant is not None and not self._tenant_exists(class_name):
            try:
                client.collections.use(class_name).tenants.create([Tenant(name=tenant)])
            except UnexpectedStatusCodeError:
                if not self._tenant_exists(class_name):
                    raise

    async def _create_collection(self, info: CollectionInfo) -> None:
        await self.run_vendor("create collection", self._create_sync, info)

    def _list_sync(self) -> list[str]:
        names: list[str] = []
        for class_name, config in self._client().collections.list_all(simple=True).items():
            name = decode_collection(class_name, self.settings.class_prefix)
            try:
                definition = codec.load_description(name, config.description) if name else None
            except InvalidCollection:
                continue  # unreadable (or a newer VPA's): opening it says so
            if name is None or definition is None:
                continue
            if self.settings.tenant is None:
                if not definition.multi_tenant:
                    names.append(name)
            elif definition.multi_tenant and self._tenant_exists(class_name):
                names.append(name)
        return names

    async def _list_collections(self) -> list[str]:
        return await self.run_vendor("list collections", self._list_sync)

    def _drop_sync(self, name: str) -> bool:
        class_name = self._class(name)
        config = self._read_config(class_name)
        definition = None if config is None else codec.load_description(name, config.description)
        if definition is None:
            return False  # never drop a class VPA did not create
        client = self._client()
        tenant = self.settings.tenant
        if tenant is None:
            if definition.multi_tenant:
                raise InvalidCollection(
                    f"collection {name!r} is multi-tenant; drop it through a store with its tenant set"
                )
            client.collections.delete(class_name)
        else:
            if not definition.multi_tenant or not self._tenant_exists(class_name):
                return False
            handle = client.collections.use(class_name)
            handle.tenants.remove([tenant])
            if not handle.tenants.get():
                client.collections.delete(class_name)
        with self._lock:
            self._schemas.pop(class_name, None)
        return True

    async def _drop_collection(self, name: str) -> bool:
        return await self.run_vendor("drop collection", self._drop_sync, name)

    # --- records -----------------------------------------------------------------------------------

    def request_bytes(self, info: CollectionInfo, record: Record) -> int:
        """The default bound, plus what a Weaviate object carries besides: the id again (and its
        UUID), class and tenant names, each key again (in ``vpa_keys`` and as a property name)
        and the frame of each text value; and the text again as VPA's tokens (``vpa_terms``, which
        NFKC may make longer than the text, so it is measured)."""
        extra = 4 * len(record.id) + 256 + len(codec.terms_text(record.text).encode())
        for key, value in record.metadata.items():
            extra += 6 * len(key) + 24 + (4 * len(value) if isinstance(value, list) else 2)
        return super().request_bytes(info, record) + extra

    async def _prepare_upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        """The schema before a batch is written: type conflicts refused, new keys declared (in a
        worker thread, as it looks at every value)."""
        await self.run_vendor(
            "schema update",
            self._ensure_properties,
            info.name,
            [r.metadata for r in records],
            collection=info.name,
        )

    def _upsert_sync(self, info: CollectionInfo, records: list[Record]) -> None:
        schema = self._schema_with(info.name, {k for r in records for k in r.metadata})
        objects = [
            codec.data_object(r, schema.types, legacy=schema.legacy, lexical=schema.lexical) for r in records
        ]
        result = self._handle(info.name).data.insert_many(objects)
        if result.errors:
            first = next(iter(result.errors.values()))
            raise StoreError(
                f"Weaviate refused {len(result.errors)} of {len(objects)} objects "
                f"(the others were written): {first.message}"
            )

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        await self.run_vendor("batch write", self._upsert_sync, info, records, collection=info.name)

    def _query_sync(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return []
        response = self._handle(info.name).query.near_vector(
            near_vector=vector.tolist(),
            target_vector=VECTOR_NAME,
            limit=top_k,
            filters=None if where is wf.TRUE else where,
            return_metadata=MetadataQuery(distance=True),
            include_vector=False,
        )
        objects = response.objects
        schema = self._schema_for(info.name, objects)
        return [hit for hit in (codec.to_hit(o, schema) for o in objects) if hit is not None]

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        return await self.run_vendor(
            "search", self._query_sync, info, vector, top_k, node, collection=info.name
        )

    # --- lexical and hybrid search -----------------------------------------------------------------

    def _lexical_schema(self, name: str) -> codec.Schema:
        """The schema of a class that can answer a lexical query (`UnsupportedOperation` naming the
        fix otherwise — never a dense answer instead)."""
        schema = self._schema(name)
        if not schema.lexical:
            schema = self._schema(name, refresh=True)
        if schema.lexical_problem is not None:
            raise UnsupportedOperation(
                f"collection {name!r} cannot be searched by words: {schema.lexical_problem}; copy it "
                f"into a new collection (`vpa migrate weaviate:{name} weaviate:<new name>`), which "
                "vpa-weaviate >= 0.3.1 creates with the lexical index"
            )
        return schema

    def _lexical_sync(
        self, info: CollectionInfo, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        self._lexical_schema(info.name)
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return []
        response = self._handle(info.name).query.bm25(
            query=" ".join(terms),
            query_properties=[TERMS_PROP],
            limit=top_k,
            filters=None if where is wf.TRUE else where,
            return_metadata=MetadataQuery(score=True),
            include_vector=False,
        )
        return self._scored_hits(info.name, response.objects)

    def _scored_hits(self, name: str, objects: list[Any]) -> list[Hit]:
        """Search results scored by Weaviate's ``score`` (BM25, or the fused score), as hits."""
        schema = self._schema_for(name, objects)
        hits = []
        for obj in objects:
            if ID_PROP not in obj.properties:
                continue  # an object some other client put into the class
            record_id, text, metadata = codec.decode(obj.properties, schema)
            hits.append(Hit(record_id, float(obj.metadata.score or 0.0), text, metadata))
        return hits

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        """Weaviate's ``bm25`` on ``vpa_terms`` with VPA's tokens as the query (distinct, joined by
        spaces: the ``whitespace`` tokenizer splits them back), the filter Weaviate's; the score
        is Weaviate's BM25 (statistics over the collection's shard, whatever the filter)."""
        return await self.run_vendor(
            "lexical search", self._lexical_sync, info, terms, top_k, node, collection=info.name
        )

    def _hybrid_sync(
        self, info: CollectionInfo, vector: Any, terms: list[str], top_k: int, node: Node | None, alpha: float
    ) -> list[Hit]:
        self._lexical_schema(info.name)
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return []
        response = self._handle(info.name).query.hybrid(
            query=" ".join(terms),
            vector=vector.tolist(),
            target_vector=VECTOR_NAME,
            alpha=alpha,
            query_properties=[TERMS_PROP],
            fusion_type=HybridFusion.RELATIVE_SCORE,
            limit=top_k,
            filters=None if where is wf.TRUE else where,
            return_metadata=MetadataQuery(score=True),
            include_vector=False,
        )
        return self._scored_hits(info.name, response.objects)

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
        """``linear``: Weaviate's ``hybrid`` with ``relativeScoreFusion`` — each half's scores
        min-max normalised (all equal: 1), ``alpha`` on the vector half and ``1 - alpha`` on the
        keyword half (Weaviate's alpha 1 is pure vector, as VPA's), summed: `vpa.lexical.fuse`'s
        linear fusion, over the candidates Weaviate fetches (at least 100 per half). ``rrf``: the
        two native halves fused by VPA (the base class), because Weaviate's ``rankedFusion`` gives
        ``alpha / (60 + i)`` with ``i`` counted from 0 — not ``1 / (60 + rank)``, and weighted."""
        if fusion != "linear":
            return await super()._hybrid_query(info, vector, text, terms, top_k, node, fusion, alpha)
        return await self.run_vendor(
            "hybrid search", self._hybrid_sync, info, vector, terms, top_k, node, alpha, collection=info.name
        )

    def _get_sync(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        wanted = set(ids)
        handle = self._handle(info.name)
        out: list[Record] = []
        for start in range(0, len(ids), self._id_chunk):
            chunk = ids[start : start + self._id_chunk]
            response = handle.query.fetch_objects(
                filters=Filter.by_id().contains_any([object_uuid(i) for i in chunk]),
                limit=len(chunk),
                include_vector=True,
            )
            objects = response.objects
            schema = self._schema_for(info.name, objects)
            out.extend(
                codec.to_record(o, schema) for o in objects if str(o.properties.get(ID_PROP, "")) in wanted
            )
        return out

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        return await self.run_vendor("fetch", self._get_sync, info, ids, collection=info.name)

    @staticmethod
    def _delete_where(handle: Any, where: Any) -> int:
        removed = 0
        while True:
            result = handle.data.delete_many(where=where)
            if result.failed:
                raise StoreError(
                    f"Weaviate failed to delete {result.failed} of {result.matches} matching objects"
                )
            removed += result.successful
            # one call deletes at most the server's QUERY_MAXIMUM_RESULTS (which an operator may
            # have lowered): go on until nothing matches any more
            if result.matches == 0:
                return removed
            if result.successful == 0:
                raise StoreError("Weaviate matched objects to delete but deleted none")

    def _delete_sync(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return 0
        handle = self._handle(info.name)
        if ids is None:
            everything = Filter.by_id().not_equal(object_uuid("\x00"))  # "\x00" is never a VPA id
            return self._delete_where(handle, everything if where is wf.TRUE else where)
        removed = 0
        for start in range(0, len(ids), self._id_chunk):
            by_id = Filter.by_id().contains_any([object_uuid(i) for i in ids[start : start + self._id_chunk]])
            removed += self._delete_where(
                handle, by_id if where is wf.TRUE else Filter.all_of([by_id, where])
            )
        return removed

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        return await self.run_vendor("delete", self._delete_sync, info, ids, node, collection=info.name)

    def _count_sync(self, info: CollectionInfo, node: Node | None) -> int:
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return 0
        result = self._handle(info.name).aggregate.over_all(
            total_count=True, filters=None if where is wf.TRUE else where
        )
        return int(result.total_count or 0)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        return await self.run_vendor("count", self._count_sync, info, node, collection=info.name)

    # --- contract 1.1: scroll and update -------------------------------------------------------------

    def _scan(
        self,
        handle: Any,
        where: wf.Translated,
        position: str,
        limit: int,
        *,
        with_vectors: bool,
        properties: list[str] | None = None,
    ) -> tuple[list[Any], int, str | None]:
        """One round of the cursor API: the objects among the next ``limit`` after ``position`` (in
        UUID order) that match ``where`` — a cursor request, then, for a filter, one filtered
        fetch of those ids, the filter evaluated by Weaviate (the cursor API takes no filter).
        Returns the matches in UUID order, how many objects were scanned and the last one's UUID."""
        if where is wf.TRUE:
            objects = handle.query.fetch_objects(
                after=position, limit=limit, include_vector=with_vectors, return_properties=properties
            ).objects
            last = str(objects[-1].uuid) if objects else None
            return list(objects), len(objects), last
        scanned = handle.query.fetch_objects(
            after=position, limit=limit, include_vector=False, return_properties=[]
        ).objects
        if not scanned:
            return [], 0, None
        matched = handle.query.fetch_objects(
            filters=Filter.all_of([Filter.by_id().contains_any([o.uuid for o in scanned]), where]),  # type: ignore[list-item]
            limit=len(scanned),
            include_vector=with_vectors,
            return_properties=properties,
        ).objects
        return sorted(matched, key=lambda o: str(o.uuid)), len(scanned), str(scanned[-1].uuid)

    def _scroll_sync(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        position = SCROLL_START if after is None else _scroll_position(after)
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return [], None
        handle = self._handle(info.name)
        found: list[Any] = []
        following: str | None = position
        for _ in range(SCAN_ROUNDS):
            matched, scanned, last = self._scan(handle, where, position, limit, with_vectors=with_vectors)
            room = limit - len(found)
            if len(matched) > room:  # resume after the last one returned, the rest again next page
                found.extend(matched[:room])
                following = str(matched[room - 1].uuid)
                break
            found.extend(matched)
            if scanned < limit or last is None:
                following = None  # the cursor reached the end
                break
            position = following = last
            if len(found) == limit:
                break
        schema = self._schema_for(info.name, found)
        records = [
            codec.to_record(o, schema, with_vector=with_vectors) for o in found if ID_PROP in o.properties
        ]
        return records, following

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """A page from Weaviate's cursor API (``after`` a UUID, UUID order): records that exist for
        the whole scroll come back once whatever is written meanwhile, and the position (the last
        UUID) resumes anywhere. A filter is Weaviate's, on each scanned chunk (`_scan`)."""
        return await self.run_vendor(
            "scroll", self._scroll_sync, info, node, limit, after, with_vectors, collection=info.name
        )

    def _matching(
        self, info: CollectionInfo, ids: list[str] | None, where: wf.Translated, *, whole: bool
    ) -> Iterator[list[Any]]:
        """The objects an update changes, in chunks: those with ``ids`` (if given) matching
        ``where``, each with its properties and vector when ``whole`` (to be rewritten), else only
        its id."""
        handle = self._handle(info.name)
        properties = None if whole else [ID_PROP]
        if ids is not None:
            for start in range(0, len(ids), self._id_chunk):
                chunk = ids[start : start + self._id_chunk]
                by_id = Filter.by_id().contains_any([object_uuid(i) for i in chunk])
                objects = handle.query.fetch_objects(
                    filters=by_id if where is wf.TRUE else Filter.all_of([by_id, where]),  # type: ignore[list-item]
                    limit=len(chunk),
                    include_vector=whole,
                    return_properties=properties,
                ).objects
                wanted = set(chunk)
                yield [o for o in objects if str(o.properties.get(ID_PROP, "")) in wanted]
            return
        position = SCROLL_START
        while True:
            matched, scanned, last = self._scan(
                handle, where, position, self._id_chunk, with_vectors=whole, properties=properties
            )
            yield [o for o in matched if ID_PROP in o.properties]
            if scanned < self._id_chunk or last is None:
                return
            position = last

    def _update_sync(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        changes: dict[str, Any],
        removed: list[str],
    ) -> int:
        schema = self._ensure_properties(info.name, [changes]) if changes else self._schema(info.name)
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return 0
        handle = self._handle(info.name)
        patch = codec.patch_properties(changes, schema.types)
        updated = 0
        with ThreadPoolExecutor(max_workers=UPDATE_WORKERS, thread_name_prefix="vpa-weaviate-update") as pool:
            for objects in self._matching(info, ids, where, whole=bool(removed)):
                if removed:
                    schema = self._schema_for(info.name, objects)
                    jobs = [(o.uuid, codec.rewritten(o, schema, changes, removed)) for o in objects]
                    done = pool.map(lambda job: _replace(handle, *job), jobs)
                else:
                    done = pool.map(lambda o: _merge(handle, o.uuid, patch), objects)
                updated += sum(done)
        return updated

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],
        unset: list[str],
    ) -> int:
        """Weaviate's own object updates, one request per matching object (Weaviate has no update
        by filter): a ``set`` alone is a merge (``PATCH``: the server keeps vector, text and every
        other key); an ``unset`` replaces the object (``PUT``) with the vector and properties it
        was read with, minus the removed keys — Weaviate's documented way to delete a property,
        so a concurrent upsert of that record may be overwritten. A record deleted meanwhile is not
        counted (and not brought back). Classes created before 0.3 (``vpa_keys``) keep the core's
        read-modify-write."""
        schema = await self.run_vendor("schema", self._schema, info.name, collection=info.name)
        if schema.legacy:
            return await super()._update(info, ids, node, set, unset)
        return await self.run_vendor(
            "update", self._update_sync, info, ids, node, set, unset, collection=info.name
        )

    # --- lifecycle ---------------------------------------------------------------------------------

    def _health_sync(self) -> str:
        ready = self._client().is_ready()
        server = self._server
        version = str(server) if server is not None else "?"
        if not ready:
            raise StoreUnavailable(f"weaviate {version} is not ready")
        if server is not None and not server.has_not:
            return f"weaviate {version} ready (no $ne, $nin or $not: they need Weaviate >= 1.33)"
        return f"weaviate {version} ready"

    async def _health(self) -> str:
        return await self.run_vendor("health check", self._health_sync)

    def _close_sync(self) -> None:
        with self._lock:
            client, self._client_obj = self._client_obj, None
            self._closed = True
            self._schemas.clear()
        if client is not None:
            client.close()

    async def _close(self) -> None:
        await self.run_vendor("close", self._close_sync)


def _scroll_position(position: str) -> str:
    """A scroll position handed back: the UUID a page ended on (`InvalidCursor` if it is not one)."""
    try:
        return str(uuid.UUID(position))
    except (ValueError, TypeError, AttributeError):
        raise InvalidCursor("cursor is not one that this Weaviate store handed out") from None


def _merge(handle: Any, object_id: Any, properties: dict[str, Any]) -> bool:
    """``PATCH`` one object; False if it no longer exists."""
    try:
        handle.data.update(object_id, properties=properties)
    except UnexpectedStatusCodeError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


def _replace(handle: Any, object_id: Any, obj: Any) -> bool:
    """``PUT`` one object whole (properties and vector); False if it no longer exists."""
    try:
        handle.data.replace(object_id, properties=obj.properties, vector=obj.vector)
    except UnexpectedStatusCodeError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True
