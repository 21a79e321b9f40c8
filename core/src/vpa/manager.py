"""The original interface's multi-provider manager, as a thin façade over the store registry.

Code written for the original VPA design keeps working::

    from vpa.manager import VectorDatabaseConfig, VectorDatabaseProvider, create_vector_database_manager

    manager = create_vector_database_manager(VectorDatabaseConfig(
        provider=VectorDatabaseProvider.PINECONE, api_key=..., index_name="docs", dimension=384))
    await manager.connect()
    await manager.upsert_vectors([{"id": "a", "values": [...], "metadata": {"k": "v"}}])
    hits = await manager.query([...], top_k=5, filter={"k": "v"})
    await manager.disconnect()

A store of contract 1.1 adds, through the same façade, ``scroll`` / ``scroll_page`` (every vector
once, page by page, with a resumable cursor) and ``update_metadata`` (in place, by ids or filter);
a 1.0 store refuses them with `UnsupportedOperation`.

Nothing here is a second implementation: the provider is whatever store plugin is installed under
that name (`VectorDatabaseProvider` lists the original ones; any installed name is accepted),
``index_name`` is the VPA collection, and every call is the store's own public method, with its
validation, limits and typed errors.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import attrs

from vpa.config import PROVIDER_ALIASES, VPAConfig, load_config
from vpa.errors import ValidationError
from vpa.filters import FilterLike
from vpa.models import CollectionInfo, Hit, Metric, Page, Record
from vpa.plugins import Registry, get_registry
from vpa.stores.base import DEFAULT_PAGE_SIZE, VectorStore


class VectorDatabaseProvider(str, enum.Enum):
    """The providers the original design named; `VectorDatabaseConfig` accepts any installed name."""

    MEMORY = "memory"
    CHROMADB = "chromadb"
    PINECONE = "pinecone"
    WEAVIATE = "weaviate"
    QDRANT = "qdrant"
    MILVUS = "milvus"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class VectorDatabaseConfig:
    """Where and what: the provider, how to reach it, and the index (VPA collection) to use.

    ``options`` are the provider plugin's own settings (its ``[providers.<name>]`` table)."""

    provider: VectorDatabaseProvider | str = VectorDatabaseProvider.MEMORY
    api_key: str | None = attrs.field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    index_name: str = "vpa"
    dimension: int = 384
    metric: str = "cosine"
    options: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def provider_name(self) -> str:
        name = str(self.provider.value if isinstance(self.provider, VectorDatabaseProvider) else self.provider)
        return PROVIDER_ALIASES.get(name, name)

    def to_vpa_config(self, base: VPAConfig | None = None) -> VPAConfig:
        base = base or load_config()
        providers = dict(base.providers)
        if self.options:
            providers[self.provider_name] = {**providers.get(self.provider_name, {}), **self.options}
        return base.replace(
            provider=self.provider_name, host=self.host if self.host is not None else base.host,
            port=self.port if self.port is not None else base.port,
            api_key=self.api_key if self.api_key is not None else base.api_key,
            collection=self.index_name, providers=providers,
        )


def _record(item: Record | Mapping[str, Any]) -> Record:
    """A `Record`, or the original interface's ``{"id", "values"|"vector", "metadata", "text"}``."""
    if isinstance(item, Record):
        return item
    if not isinstance(item, Mapping):
        raise ValidationError(f"a vector must be a Record or a mapping with id and values, not {type(item).__name__}")
    vector = item.get("values", item.get("vector"))
    if vector is None:
        raise ValidationError(f"vector {item.get('id')!r} has no 'values'")
    return Record(item.get("id"), vector, item.get("text", ""), dict(item.get("metadata") or {}))


def _hit_dict(hit: Hit) -> dict[str, Any]:
    return {"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata}


class VPAVectorDatabaseManager:
    """One provider's index behind the original manager API."""

    def __init__(
        self, config: VectorDatabaseConfig | None = None, *, registry: Registry | None = None,
        vpa_config: VPAConfig | None = None,
    ) -> None:
        self.config = config or VectorDatabaseConfig()
        self._registry = registry or get_registry()
        self._vpa_config = self.config.to_vpa_config(vpa_config)
        self._registry.get("store", self.config.provider_name)  # an unknown provider fails here
        self._store: VectorStore | None = None
        self._info: CollectionInfo | None = None

    @property
    def provider(self) -> str:
        return self.config.provider_name

    @property
    def store(self) -> VectorStore:
        """The underlying VPA store (after `connect`)."""
        if self._store is None:
            raise RuntimeError("call `await manager.connect()` first")
        return self._store

    @property
    def is_connected(self) -> bool:
        return self._info is not None

    async def connect(self) -> CollectionInfo:
        """Build the store and open (or create) the index with the configured dimension."""
        if self._info is None:
            if self._store is None:
                self._store = self._registry.create("store", self.provider, self._vpa_config)
            self._info = await self._store.create_collection(
                self.config.index_name, self.config.dimension, metric=Metric(self.config.metric)
            )
        return self._info

    async def disconnect(self) -> None:
        if self._store is not None:
            await self._store.close()
        self._store = None
        self._info = None

    close = disconnect

    async def __aenter__(self) -> VPAVectorDatabaseManager:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def health_check(self) -> dict[str, Any]:
        status = await self.store.health()
        return {"provider": self.provider, "healthy": status.ok, "latency_ms": status.latency_ms}

    async def upsert_vectors(self, vectors: Iterable[Record | Mapping[str, Any]]) -> int:
        info = await self.connect()
        return await self.store.upsert(info.name, [_record(v) for v in vectors])

    upsert = upsert_vectors

    async def query(
        self, vector: Sequence[float], top_k: int = 10, filter: FilterLike = None
    ) -> list[dict[str, Any]]:
        info = await self.connect()
        return [_hit_dict(h) for h in await self.store.query(info.name, vector, top_k, filter)]

    search = query

    async def fetch(self, ids: Sequence[str]) -> list[Record]:
        info = await self.connect()
        return await self.store.get(info.name, ids)

    async def delete(self, ids: Sequence[str] | None = None, filter: FilterLike = None) -> int:
        info = await self.connect()
        return await self.store.delete(info.name, ids=ids, filter=filter)

    async def count(self, filter: FilterLike = None) -> int:
        info = await self.connect()
        return await self.store.count(info.name, filter)

    async def scroll(
        self, filter: FilterLike = None, *, batch_size: int = DEFAULT_PAGE_SIZE, cursor: str | None = None,
        with_vectors: bool = True,
    ) -> AsyncIterator[Page]:
        """Every vector of the index that matches ``filter``, once, in pages (`Page`: ``records``
        and ``cursor``); ``cursor`` resumes after the page that handed it out (contract 1.1)."""
        info = await self.connect()
        async for page in self.store.scroll(
            info.name, filter, batch_size=batch_size, cursor=cursor, with_vectors=with_vectors
        ):
            yield page

    async def scroll_page(
        self, filter: FilterLike = None, *, batch_size: int = DEFAULT_PAGE_SIZE, cursor: str | None = None,
        with_vectors: bool = True,
    ) -> Page:
        """One page of `scroll` and the cursor of the next (None after the last)."""
        info = await self.connect()
        return await self.store.scroll_page(
            info.name, filter, batch_size=batch_size, cursor=cursor, with_vectors=with_vectors
        )

    async def update_metadata(
        self,
        ids: Sequence[str] | None = None,
        filter: FilterLike = None,  # the store contract's name
        *,
        set: Mapping[str, Any] | None = None,
        unset: Sequence[str] | None = None,
    ) -> int:
        """Change metadata in place by ids, filter or both (contract 1.1): ``set`` adds or
        replaces keys (``None`` removes one), ``unset`` removes keys; vectors and text stay as
        they are. Returns how many vectors matched."""
        info = await self.connect()
        return await self.store.update(info.name, ids, filter, set=set, unset=unset)

    async def list_indexes(self) -> list[str]:
        """The names of the provider's indexes (VPA collections)."""
        await self.connect()
        return await self.store.list_collections()

    async def get_stats(self) -> dict[str, Any]:
        info = await self.connect()
        return {"provider": self.provider, "index_name": info.name, "dimension": info.dimension,
                "metric": str(info.metric), "total_vectors": await self.store.count(info.name)}


def create_vector_database_manager(
    config: VectorDatabaseConfig | Mapping[str, Any] | None = None, **kwargs: Any
) -> VPAVectorDatabaseManager:
    """A manager for ``config`` (a `VectorDatabaseConfig`, or its fields as a mapping / keywords)."""
    if config is None or isinstance(config, Mapping):
        config = VectorDatabaseConfig(**{**dict(config or {}), **kwargs})
    elif kwargs:
        config = attrs.evolve(config, **kwargs)
    return VPAVectorDatabaseManager(config)
