"""The `weaviate` store: VPA collections as Weaviate collections (classes), via the v4 client.

Layout of one VPA collection ``docs`` in Weaviate (see `vpa_weaviate.naming`):

- the class ``Vpadocs`` with one self-provided named vector ``default`` (HNSW, cosine distance;
  ``index = "flat"`` for exact search), so ``score = 1 - distance``;
- the class description holds VPA's definition as JSON — dimension, metric, embedder
  fingerprint, tenant mode — which is what `_describe_collection` reads back in a new process;
- reserved properties ``vpa_id`` (the VPA id; the object UUID is ``uuid5`` of it), ``vpa_text``,
  ``vpa_norm`` (the vector's norm, to restore a vector a server returned normalised) and
  ``vpa_keys`` (the record's metadata keys);
- one typed property ``m_<encoded key>`` per metadata key, declared by the store on first use with the
  type of the value (text, int, number, boolean, text[]): a key keeps that type for the life of
  the collection, and a write that conflicts raises `UnsupportedMetadata` before anything is
  written. Reads decode by the schema's type, so an int stays an int and a float a float.

With ``tenant`` set, collections are multi-tenant Weaviate collections and this store reads and
writes only its tenant's shard (created on `create_collection`, removed on `drop_collection`).

The v4 client is synchronous here and every call runs in a worker thread (`asyncio.to_thread`);
it connects on first use, never in the constructor.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs
import numpy as np
import pydantic
import weaviate
from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    InvalidCollection,
    StoreError,
    UnsupportedFilter,
    UnsupportedMetadata,
    VPAError,
)
from vpa.filters import Node, fields_used, operators_used
from vpa.models import (
    CollectionInfo,
    EmbedderFingerprint,
    FilterOp,
    HealthStatus,
    Hit,
    MetadataType,
    Metric,
    Record,
)
from vpa.stores.base import VectorStore
from vpa.validation import metadata_type
from weaviate.classes.config import (
    Configure,
    ConsistencyLevel,
    DataType,
    Property,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateInvalidInputError

from vpa_weaviate import filters as wf
from vpa_weaviate.capabilities import CAPABILITIES, QUERY_MAXIMUM_RESULTS
from vpa_weaviate.errors import describe, translate
from vpa_weaviate.naming import (
    DEFAULT_PREFIX,
    ID_PROP,
    KEYS_PROP,
    NORM_PROP,
    TEXT_PROP,
    VECTOR_NAME,
    check_prefix,
    decode_collection,
    encode_collection,
    frame,
    key_of,
    object_uuid,
    prop_name,
    unframe,
)

T = TypeVar("T")

#: Ids per fetch/delete-by-id request.
ID_CHUNK = 1_000
#: The first Weaviate version with the ``Not`` filter operator, which VPA's negations need.
NOT_OPERATOR_SINCE = (1, 33, 0)
NEGATIONS = frozenset({FilterOp.NE, FilterOp.NIN, FilterOp.NOT})
FORMAT = 1


_DATA_TYPES: dict[MetadataType, str] = {
    MetadataType.STR: wf.TEXT,
    MetadataType.INT: wf.INT,
    MetadataType.FLOAT: wf.NUMBER,
    MetadataType.BOOL: wf.BOOL,
    MetadataType.STR_LIST: wf.TEXT_ARRAY,
    MetadataType.EMPTY_LIST: wf.TEXT_ARRAY,
}
_WEAVIATE_TYPES: dict[str, DataType] = {
    wf.TEXT: DataType.TEXT,
    wf.INT: DataType.INT,
    wf.NUMBER: DataType.NUMBER,
    wf.BOOL: DataType.BOOL,
    wf.TEXT_ARRAY: DataType.TEXT_ARRAY,
}
_VPA_NAMES = {wf.TEXT: "str", wf.INT: "int", wf.NUMBER: "float", wf.BOOL: "bool", wf.TEXT_ARRAY: "list[str]"}


def _default_grpc(host: str, secure: bool) -> tuple[str, int]:
    """Weaviate Cloud serves gRPC on ``grpc-<host>:443``; a self-hosted server on port 50051."""
    if secure and host.endswith(".weaviate.network"):  # as weaviate.connect_to_weaviate_cloud does
        ident, domain = host.split(".", 1)
        return f"{ident}.grpc.{domain}", 443
    if secure and host.endswith((".weaviate.cloud", ".semi.technology")):
        return f"grpc-{host}", 443
    return host, 50051


#: Options of the ``[providers.weaviate]`` TOML table.
_TOML_OPTIONS = (
    "url", "grpc_url", "host", "port", "secure", "grpc_host", "grpc_port", "grpc_secure", "tenant",
    "class_prefix", "index", "timeout", "init_timeout", "batch_bytes", "max_results", "replication_factor",
    "shards", "consistency_level",
)  # fmt: skip
_PASSTHROUGH = (
    "tenant", "class_prefix", "index", "timeout", "init_timeout", "batch_bytes", "grpc_secure", "max_results",
    "replication_factor", "shards", "consistency_level",
)  # fmt: skip
_CONSISTENCY = {"one": ConsistencyLevel.ONE, "quorum": ConsistencyLevel.QUORUM, "all": ConsistencyLevel.ALL}


@attrs.frozen
class WeaviateSettings:
    """How to reach Weaviate. `from_config` reads VPA's settings and ``[providers.weaviate]``."""

    http_host: str = "localhost"
    http_port: int = 8080
    http_secure: bool = False
    grpc_host: str | None = None
    grpc_port: int | None = None
    grpc_secure: bool | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    tenant: str | None = None
    class_prefix: str = DEFAULT_PREFIX
    index: str = "hnsw"
    timeout: float = 60.0
    init_timeout: float = 10.0
    batch_bytes: int | None = None
    max_results: int = QUERY_MAXIMUM_RESULTS
    replication_factor: int | None = None
    shards: int | None = None
    consistency_level: str | None = None

    def __attrs_post_init__(self) -> None:
        try:
            check_prefix(self.class_prefix)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.consistency_level is not None and self.consistency_level not in _CONSISTENCY:
            raise ConfigError(
                "[providers.weaviate] consistency_level must be one, quorum or all, "
                f"not {self.consistency_level!r}"
            )
        for name in ("replication_factor", "shards"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"[providers.weaviate] {name} must be a positive integer, not {value!r}")
        if self.index not in ("hnsw", "flat"):
            raise ConfigError(f"[providers.weaviate] index must be 'hnsw' or 'flat', not {self.index!r}")
        if self.tenant is not None and not _tenant_ok(self.tenant):
            raise ConfigError(
                f"[providers.weaviate] tenant {self.tenant!r} is not a Weaviate tenant name: "
                "1-64 letters, digits, '-' or '_'"
            )

    @property
    def resolved_grpc(self) -> tuple[str, int, bool]:
        secure = self.http_secure if self.grpc_secure is None else self.grpc_secure
        host, port = _default_grpc(self.http_host, self.http_secure)
        return (self.grpc_host or host, self.grpc_port or port, secure)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> WeaviateSettings:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"Weaviate url {url!r} must look like http(s)://host[:port]")
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 8080)
        return cls(http_host=parts.hostname, http_port=port, http_secure=secure, **options)

    @classmethod
    def from_config(cls, config: Any) -> WeaviateSettings:
        options = config.provider_options("weaviate", known=_TOML_OPTIONS)
        kwargs: dict[str, Any] = {k: options[k] for k in _PASSTHROUGH if k in options}
        kwargs["api_key"] = config.api_key
        if "grpc_url" in options:
            g = urlsplit(str(options["grpc_url"]))
            if not g.hostname:
                raise ConfigError(f"[providers.weaviate] grpc_url {options['grpc_url']!r} has no host")
            kwargs.setdefault("grpc_secure", g.scheme in ("https", "grpcs"))
            kwargs["grpc_host"] = g.hostname
            kwargs["grpc_port"] = g.port or (443 if kwargs["grpc_secure"] else 50051)
        else:
            if "grpc_host" in options:
                kwargs["grpc_host"] = str(options["grpc_host"])
            if "grpc_port" in options:
                kwargs["grpc_port"] = int(options["grpc_port"])
        if "url" in options:
            return cls.from_url(str(options["url"]), **kwargs)
        host = options.get("host") or config.host or "localhost"
        port = options.get("port") or config.port or 8080
        return cls(
            http_host=str(host), http_port=int(port), http_secure=bool(options.get("secure", False)), **kwargs
        )


def _tenant_ok(name: str) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    )


def _parse_version(text: str) -> tuple[int, int, int]:
    numbers: list[int] = []
    for part in text.split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        numbers.append(int(digits) if digits else 0)
    while len(numbers) < 3:
        numbers.append(0)
    return numbers[0], numbers[1], numbers[2]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _encode_value(data_type: str, value: Any) -> Any:
    if data_type == wf.TEXT:
        return frame(value)
    if data_type == wf.TEXT_ARRAY:
        return [frame(v) for v in value]
    if data_type == wf.NUMBER:
        number = float(value)
        return 0.0 if number == 0 else number  # -0.0 would sort below 0.0 in Weaviate's index
    if data_type == wf.INT:
        return int(value)
    return bool(value)


def _decode_value(data_type: str, value: Any) -> Any:
    if data_type == wf.TEXT:
        return unframe(str(value))
    if data_type == wf.TEXT_ARRAY:
        return [unframe(str(v)) for v in (value or [])]
    if data_type == wf.NUMBER:
        return float(value)
    if data_type == wf.INT:
        return int(value)
    return bool(value)


def _record_bytes(record: Record) -> int:
    """A generous estimate of one object's size on the wire."""
    meta = json.dumps(record.metadata, ensure_ascii=False)
    return (
        4 * record.vector.shape[0]
        + len(record.id.encode())
        + len(record.text.encode())
        + 3 * len(meta.encode())
        + 256
    )


class WeaviateStore(VectorStore):
    """A VPA store on a Weaviate server (self-hosted, Kubernetes or Weaviate Cloud)."""

    capabilities = CAPABILITIES

    def __init__(self, settings: WeaviateSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or WeaviateSettings()
        self._lock = threading.RLock()
        self._client_obj: weaviate.WeaviateClient | None = None
        self._version: tuple[int, int, int] | None = None
        self._max_message: int | None = None
        self._types: dict[str, dict[str, str]] = {}
        self._closed = False

    @classmethod
    def from_config(cls, config: Any) -> WeaviateStore:
        return cls(WeaviateSettings.from_config(config))

    def __repr__(self) -> str:
        s = self.settings
        scheme = "https" if s.http_secure else "http"
        return f"WeaviateStore({scheme}://{s.http_host}:{s.http_port}, tenant={s.tenant!r})"

    # --- plumbing ------------------------------------------------------------------------------

    def _client(self) -> weaviate.WeaviateClient:
        with self._lock:
            if self._closed:
                raise StoreError("this Weaviate store is closed")
            if self._client_obj is None:
                self._client_obj = self._connect()
            return self._client_obj

    def _connect(self) -> weaviate.WeaviateClient:
        s = self.settings
        grpc_host, grpc_port, grpc_secure = s.resolved_grpc
        try:
            client = weaviate.connect_to_custom(
                http_host=s.http_host,
                http_port=s.http_port,
                http_secure=s.http_secure,
                grpc_host=grpc_host,
                grpc_port=grpc_port,
                grpc_secure=grpc_secure,
                auth_credentials=Auth.api_key(s.api_key) if s.api_key else None,
                additional_config=AdditionalConfig(
                    timeout=Timeout(init=s.init_timeout, query=s.timeout, insert=s.timeout)
                ),
                # The client's own start-up checks also ask pypi.org whether the client is
                # outdated; VPA does not phone home, so it runs the other check (gRPC) itself.
                skip_init_checks=True,
            )
        except (pydantic.ValidationError, WeaviateInvalidInputError) as exc:
            raise ConfigError(f"invalid Weaviate connection settings: {describe(exc)}") from exc
        try:
            meta = client.get_meta()
            self._version = _parse_version(str(meta.get("version", "0")))
            if meta.get("grpcMaxMessageSize"):
                self._max_message = int(meta["grpcMaxMessageSize"])
            ping = getattr(client._connection, "_ping_grpc", None)
            if callable(ping):
                ping("sync")  # raises WeaviateGRPCUnavailableError on a wrong gRPC address
        except BaseException:
            client.close()
            raise
        return client

    async def _run(
        self, fn: Callable[..., T], *args: Any, collection: str | None = None, what: str = "request"
    ) -> T:
        def call() -> T:
            try:
                return fn(*args)
            except VPAError as exc:
                if isinstance(exc, CollectionNotFound) and collection is not None:
                    self._forget(collection)
                raise
            except Exception as exc:
                error = translate(exc, collection=collection, what=what)
                if isinstance(error, CollectionNotFound) and collection is not None:
                    self._forget(collection)
                raise error from exc

        return await asyncio.to_thread(call)

    @property
    def _id_chunk(self) -> int:
        return max(1, min(ID_CHUNK, self.settings.max_results))

    def _forget(self, name: str) -> None:
        self._collections.pop(name, None)
        self._types.pop(self._class(name), None)

    def _class(self, name: str) -> str:
        return encode_collection(name, self.settings.class_prefix)

    def _handle(self, name: str) -> Any:
        handle = self._client().collections.use(self._class(name))
        if self.settings.tenant is not None:
            handle = handle.with_tenant(self.settings.tenant)
        if self.settings.consistency_level is not None:
            handle = handle.with_consistency_level(_CONSISTENCY[self.settings.consistency_level])
        return handle

    # --- schema --------------------------------------------------------------------------------

    def _read_config(self, class_name: str) -> Any | None:
        """The class's simple config, or None when Weaviate has no such class."""
        try:
            return self._client().collections.use(class_name).config.get(simple=True)
        except UnexpectedStatusCodeError as exc:
            if exc.status_code == 404:
                return None
            raise

    def _remember_types(self, class_name: str, config: Any) -> dict[str, str]:
        types: dict[str, str] = {}
        for prop in config.properties:
            key = key_of(prop.name)
            if key is not None:
                types[key] = prop.data_type.value
        with self._lock:
            self._types[class_name] = types
        return types

    def _schema_types(self, name: str, refresh: bool = False) -> dict[str, str]:
        class_name = self._class(name)
        with self._lock:
            cached = self._types.get(class_name)
        if cached is not None and not refresh:
            return cached
        config = self._read_config(class_name)
        if config is None:
            raise CollectionNotFound(name)
        return self._remember_types(class_name, config)

    def _types_for(self, name: str, keys: frozenset[str] | set[str]) -> dict[str, str]:
        """The schema types, re-read once if a key is unknown (another writer may have added it)."""
        types = self._schema_types(name)
        if any(k not in types for k in keys):
            types = self._schema_types(name, refresh=True)
        return types

    @staticmethod
    def _definition(config: Any) -> dict[str, Any] | None:
        try:
            document = json.loads(config.description or "")
        except (TypeError, ValueError):
            return None
        if not isinstance(document, dict) or not isinstance(document.get("vpa"), dict):
            return None
        return document["vpa"]  # type: ignore[no-any-return]

    @staticmethod
    def _info(definition: Mapping[str, Any]) -> CollectionInfo:
        fp = definition.get("fingerprint")
        return CollectionInfo(
            name=definition["name"],
            dimension=int(definition["dimension"]),
            metric=Metric(definition.get("metric", "cosine")),
            fingerprint=EmbedderFingerprint(fp["name"], fp["model"], int(fp["dimension"])) if fp else None,
        )

    def _tenant_exists(self, class_name: str) -> bool:
        tenant = self.settings.tenant
        assert tenant is not None
        return bool(self._client().collections.use(class_name).tenants.exists(tenant))

    def _describe_sync(self, name: str) -> CollectionInfo | None:
        class_name = self._class(name)
        config = self._read_config(class_name)
        if config is None:
            return None
        definition = self._definition(config)
        if definition is None or definition.get("name") != name:
            return None  # a class that VPA did not create
        multi_tenant = bool(definition.get("multi_tenant", False))
        if self.settings.tenant is None and multi_tenant:
            raise InvalidCollection(
                f"collection {name!r} is multi-tenant in Weaviate; set [providers.weaviate] tenant to use it"
            )
        if self.settings.tenant is not None:
            if not multi_tenant:
                raise InvalidCollection(
                    f"collection {name!r} was created without tenants; it cannot be opened with "
                    f"tenant {self.settings.tenant!r}"
                )
            if not self._tenant_exists(class_name):
                return None
        self._remember_types(class_name, config)
        return self._info(definition)

    def _create_sync(self, info: CollectionInfo) -> None:
        class_name = self._class(info.name)
        tenant = self.settings.tenant
        definition = {
            "format": FORMAT,
            "name": info.name,
            "dimension": info.dimension,
            "metric": str(info.metric),
            "fingerprint": attrs.asdict(info.fingerprint) if info.fingerprint else None,
            "multi_tenant": tenant is not None,
        }
        client = self._client()
        config = None
        # describe found nothing usable: create, and read what exists if Weaviate refuses
        index_config = (
            Configure.VectorIndex.flat(distance_metric=VectorDistances.COSINE)
            if self.settings.index == "flat"
            else Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
        )
        try:
            client.collections.create(
                name=class_name,
                description=json.dumps({"vpa": definition}, separators=(",", ":")),
                vector_config=Configure.Vectors.self_provided(
                    name=VECTOR_NAME, vector_index_config=index_config
                ),
                properties=self._reserved_properties(),
                multi_tenancy_config=(
                    Configure.multi_tenancy(
                        enabled=True, auto_tenant_creation=False, auto_tenant_activation=True
                    )
                    if tenant is not None
                    else None
                ),
                replication_config=(
                    Configure.replication(factor=self.settings.replication_factor)
                    if self.settings.replication_factor
                    else None
                ),
                # a multi-tenant collection has one shard per tenant instead
                sharding_config=(
                    Configure.sharding(desired_count=self.settings.shards)
                    if self.settings.shards and tenant is None
                    else None
                ),
            )
        except UnexpectedStatusCodeError as exc:
            if exc.status_code != 422:
                raise
            # it exists: created concurrently, by another tenant's store, or not by VPA
            config = self._read_config(class_name)
            if config is None:
                raise
        if config is not None:
            existing = self._definition(config)
            if existing is None or existing.get("name") != info.name:
                raise InvalidCollection(
                    f"Weaviate already has a class {class_name!r} that VPA did not create; "
                    "choose another collection name or class_prefix"
                )
            if bool(existing.get("multi_tenant")) != (tenant is not None):
                raise InvalidCollection(
                    f"collection {info.name!r} exists with multi-tenancy "
                    f"{'on' if existing.get('multi_tenant') else 'off'}; this store has tenant={tenant!r}"
                )
            if int(existing["dimension"]) != info.dimension:
                raise DimensionMismatch(
                    int(existing["dimension"]), info.dimension, where=f"collection {info.name!r} request"
                )
            self._remember_types(class_name, config)
        else:
            with self._lock:
                self._types[class_name] = {}
        if tenant is not None and not self._tenant_exists(class_name):
            try:
                client.collections.use(class_name).tenants.create([Tenant(name=tenant)])
            except UnexpectedStatusCodeError:
                if not self._tenant_exists(class_name):
                    raise

    @staticmethod
    def _reserved_properties() -> list[Property]:
        def unindexed(name: str, data_type: DataType) -> Property:
            return Property(
                name=name,
                data_type=data_type,
                index_filterable=False,
                index_searchable=False,
                index_range_filters=False,
                tokenization=Tokenization.FIELD
                if data_type in (DataType.TEXT, DataType.TEXT_ARRAY)
                else None,
            )

        return [
            unindexed(ID_PROP, DataType.TEXT),
            unindexed(TEXT_PROP, DataType.TEXT),
            unindexed(NORM_PROP, DataType.NUMBER),
            unindexed(KEYS_PROP, DataType.TEXT_ARRAY),
        ]

    @staticmethod
    def _metadata_property(key: str, data_type: str) -> Property:
        textual = data_type in (wf.TEXT, wf.TEXT_ARRAY)
        return Property(
            name=prop_name(key),
            data_type=_WEAVIATE_TYPES[data_type],
            index_filterable=True,
            index_searchable=False,
            index_range_filters=False,
            tokenization=Tokenization.FIELD if textual else None,
        )

    @staticmethod
    def _needed_types(records: Sequence[Record]) -> dict[str, str]:
        needed: dict[str, str] = {}
        for record in records:
            for key, value in record.metadata.items():
                kind = metadata_type(value)
                assert kind is not None  # check_records ran first
                data_type = _DATA_TYPES[kind]
                seen = needed.setdefault(key, data_type)
                if seen != data_type:
                    raise UnsupportedMetadata(
                        f"metadata {key!r} is {_VPA_NAMES[seen]} in one record and "
                        f"{_VPA_NAMES[data_type]} in "
                        "another: a Weaviate property keeps one type"
                    )
        return needed

    @staticmethod
    def _check_types(name: str, needed: Mapping[str, str], types: Mapping[str, str]) -> None:
        for key, data_type in needed.items():
            have = types.get(key)
            if have is not None and have != data_type:
                raise UnsupportedMetadata(
                    f"metadata {key!r} holds {_VPA_NAMES.get(have, have)} values in collection {name!r}; "
                    f"a {_VPA_NAMES[data_type]} value cannot be stored in it "
                    "(a Weaviate property keeps one type)"
                )

    def _ensure_properties(self, name: str, needed: Mapping[str, str]) -> None:
        types = self._schema_types(name)
        self._check_types(name, needed, types)
        if all(k in types for k in needed):
            return
        config = self._client().collections.use(self._class(name)).config
        for key, data_type in needed.items():
            if key in types:
                continue
            try:
                config.add_property(self._metadata_property(key, data_type))
            except (UnexpectedStatusCodeError, WeaviateInvalidInputError):
                # added concurrently by another writer: accept it if its type is the same
                types = self._schema_types(name, refresh=True)
                if key not in types:
                    raise
                self._check_types(name, {key: data_type}, types)
                continue
            with self._lock:
                self._types.setdefault(self._class(name), {})[key] = data_type

    # --- filters -------------------------------------------------------------------------------

    def _native_filter(self, name: str, node: Node | None) -> wf.Translated:
        if node is None:
            return wf.TRUE
        self._client()  # the server's version is known once connected
        if operators_used(node) & NEGATIONS and (self._version or (0, 0, 0)) < NOT_OPERATOR_SINCE:
            version = ".".join(map(str, self._version or (0, 0, 0)))
            raise UnsupportedFilter(
                "$ne, $nin and $not need Weaviate's Not operator (Weaviate >= 1.33); "
                f"this server is {version}"
            )
        types = self._types_for(name, set(fields_used(node)))
        return wf.translate(node, types)

    # --- records: encode / decode --------------------------------------------------------------

    @staticmethod
    def _properties(record: Record, types: Mapping[str, str]) -> dict[str, Any]:
        props: dict[str, Any] = {
            ID_PROP: record.id,
            TEXT_PROP: record.text,
            NORM_PROP: float(np.linalg.norm(record.vector.astype(np.float64))),
            KEYS_PROP: list(record.metadata),
        }
        for key, value in record.metadata.items():
            props[prop_name(key)] = _encode_value(types[key], value)
        return props

    def _decode(self, name: str, props: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        keys = [str(k) for k in (props.get(KEYS_PROP) or [])]
        types = self._types_for(name, set(keys))
        metadata: dict[str, Any] = {}
        for key in keys:
            data_type = types.get(key)
            value = props.get(prop_name(key))
            if data_type is None:
                continue
            if value is None:
                if data_type == wf.TEXT_ARRAY:
                    metadata[key] = []  # a server that does not return empty arrays
                continue
            metadata[key] = _decode_value(data_type, value)
        return str(props.get(ID_PROP, "")), str(props.get(TEXT_PROP) or ""), metadata

    @staticmethod
    def _restore_vector(vector: Sequence[float], norm: Any) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32)
        if norm is None:
            return array
        stored = float(norm)
        got = float(np.linalg.norm(array.astype(np.float64)))
        if got > 0 and stored > 0 and abs(got - stored) > 1e-5 * stored:
            array = (array.astype(np.float64) * (stored / got)).astype(np.float32)  # a normalising server
        return array

    def _batches(self, records: list[Record]) -> Iterator[list[Record]]:
        budget = self.settings.batch_bytes or int((self._max_message or 104_858_000) * 0.8)
        current: list[Record] = []
        size = 0
        for record in records:
            cost = _record_bytes(record)
            if current and size + cost > budget:
                yield current
                current, size = [], 0
            current.append(record)
            size += cost
        if current:
            yield current

    # --- collections ---------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        return await self._run(self._describe_sync, name, what="describe collection")

    async def _create_collection(self, info: CollectionInfo) -> None:
        await self._run(self._create_sync, info, what="create collection")

    def _list_sync(self) -> list[str]:
        names: list[str] = []
        configs = self._client().collections.list_all(simple=True)
        for class_name, config in configs.items():
            name = decode_collection(class_name, self.settings.class_prefix)
            definition = self._definition(config)
            if name is None or definition is None or definition.get("name") != name:
                continue
            multi_tenant = bool(definition.get("multi_tenant"))
            if self.settings.tenant is None:
                if not multi_tenant:
                    names.append(name)
            elif multi_tenant and self._tenant_exists(class_name):
                names.append(name)
        return names

    async def _list_collections(self) -> list[str]:
        return await self._run(self._list_sync, what="list collections")

    def _drop_sync(self, name: str) -> bool:
        class_name = self._class(name)
        config = self._read_config(class_name)
        if config is None:
            return False
        definition = self._definition(config)
        if definition is None or definition.get("name") != name:
            return False  # never drop a class VPA did not create
        client = self._client()
        tenant = self.settings.tenant
        if tenant is None:
            if definition.get("multi_tenant"):
                raise InvalidCollection(
                    f"collection {name!r} is multi-tenant; drop it through a store with its tenant set"
                )
            client.collections.delete(class_name)
        else:
            if not definition.get("multi_tenant") or not self._tenant_exists(class_name):
                return False
            handle = client.collections.use(class_name)
            handle.tenants.remove([tenant])
            if not handle.tenants.get():
                client.collections.delete(class_name)
        with self._lock:
            self._types.pop(class_name, None)
        return True

    async def _drop_collection(self, name: str) -> bool:
        return await self._run(self._drop_sync, name, what="drop collection")

    # --- records -------------------------------------------------------------------------------

    async def upsert(self, collection: str, records: Sequence[Record]) -> int:
        """Declare the properties the batch needs (refusing type conflicts), then write it."""
        info = await self.open_collection(collection)
        batch = self.check_records(records, info.dimension)  # every declared bound, before the schema
        needed = self._needed_types(batch)
        if needed:
            await self._run(
                self._ensure_properties, collection, needed, collection=collection, what="schema update"
            )
        return await super().upsert(collection, batch)

    def _upsert_sync(self, info: CollectionInfo, records: list[Record]) -> None:
        types = self._types_for(info.name, {k for r in records for k in r.metadata})
        handle = self._handle(info.name)
        for batch in self._batches(records):
            objects = [
                DataObject(
                    properties=self._properties(r, types),
                    uuid=object_uuid(r.id),
                    vector={VECTOR_NAME: r.vector.tolist()},
                )
                for r in batch
            ]
            result = handle.data.insert_many(objects)
            if result.errors:
                first = next(iter(result.errors.values()))
                raise StoreError(
                    f"Weaviate refused {len(result.errors)} of {len(objects)} objects "
                    f"(the others were written): {first.message}"
                )

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        await self._run(self._upsert_sync, info, records, collection=info.name, what="batch write")

    def _query_sync(
        self, info: CollectionInfo, vector: np.ndarray, top_k: int, node: Node | None
    ) -> list[Hit]:
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
        hits = []
        for obj in response.objects:
            if ID_PROP not in obj.properties:
                continue  # an object some other client put into the class: not a VPA record
            record_id, text, metadata = self._decode(info.name, obj.properties)
            distance = obj.metadata.distance if obj.metadata.distance is not None else 1.0
            score = min(1.0, max(-1.0, 1.0 - float(distance)))
            hits.append(Hit(record_id, score, text, metadata))
        return hits

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        return await self._run(
            self._query_sync, info, vector, top_k, node, collection=info.name, what="search"
        )

    def _get_sync(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        wanted = set(ids)
        handle = self._handle(info.name)
        out: list[Record] = []
        for chunk in _chunks(ids, self._id_chunk):
            response = handle.query.fetch_objects(
                filters=Filter.by_id().contains_any([object_uuid(i) for i in chunk]),
                limit=len(chunk),
                include_vector=True,
            )
            for obj in response.objects:
                record_id, text, metadata = self._decode(info.name, obj.properties)
                if record_id not in wanted:
                    continue
                vector = obj.vector.get(VECTOR_NAME) if isinstance(obj.vector, Mapping) else obj.vector
                if vector is None:
                    raise StoreError(f"Weaviate returned object {record_id!r} without its vector")
                out.append(
                    Record(
                        record_id, self._restore_vector(vector, obj.properties.get(NORM_PROP)), text, metadata
                    )
                )
        return out

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        return await self._run(self._get_sync, info, ids, collection=info.name, what="fetch")

    def _delete_where(self, handle: Any, where: Any) -> int:
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
        for chunk in _chunks(ids, self._id_chunk):
            by_id = Filter.by_id().contains_any([object_uuid(i) for i in chunk])
            removed += self._delete_where(
                handle, by_id if where is wf.TRUE else Filter.all_of([by_id, where])
            )
        return removed

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        return await self._run(self._delete_sync, info, ids, node, collection=info.name, what="delete")

    def _count_sync(self, info: CollectionInfo, node: Node | None) -> int:
        where = self._native_filter(info.name, node)
        if where is wf.FALSE:
            return 0
        result = self._handle(info.name).aggregate.over_all(
            total_count=True, filters=None if where is wf.TRUE else where
        )
        return int(result.total_count or 0)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        return await self._run(self._count_sync, info, node, collection=info.name, what="count")

    # --- lifecycle -----------------------------------------------------------------------------

    def _health_sync(self) -> HealthStatus:
        started = time.monotonic()
        client = self._client()
        ready = client.is_ready()
        latency = (time.monotonic() - started) * 1000
        version = ".".join(map(str, self._version or (0, 0, 0)))
        if not ready:
            return HealthStatus(ok=False, detail=f"weaviate {version} is not ready", latency_ms=latency)
        return HealthStatus(ok=True, detail=f"weaviate {version} ready", latency_ms=latency)

    async def health(self) -> HealthStatus:
        try:
            return await self._run(self._health_sync, what="health check")
        except Exception as exc:  # health reports, it does not raise
            return HealthStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")

    @property
    def server_version(self) -> tuple[int, int, int] | None:
        """The server's version, known once connected."""
        return self._version

    def _close_sync(self) -> None:
        with self._lock:
            client, self._client_obj = self._client_obj, None
            self._closed = True
        if client is not None:
            client.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._close_sync)
        self._collections.clear()
        self._types.clear()
