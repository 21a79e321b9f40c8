"""The `dictstore` store: only the translation to its (toy) vendor client.

The base class validates every input before any of these methods runs (dimension, NaN, ids,
declared metadata types and bounds, the filter and the declared operators), splits batches by
``max_batch_size`` and ``max_request_bytes``, and maps errors through `translate_error`; so
`_upsert` gets a valid batch of unique ids and `_query`/`_count`/`_delete` a parsed filter tree
that uses only operators declared here.
"""

from __future__ import annotations

from typing import Any

from vpa.filters import Node
from vpa.models import CollectionInfo, FilterOp, Hit, Record, StoreCapabilities
from vpa.stores.base import VectorStore

from vpa_dictstore import codec, errors
from vpa_dictstore.client import DictClient
from vpa_dictstore.filters import to_native
from vpa_dictstore.settings import DictStoreSettings


class DictStore(VectorStore):
    # What the backend does natively: no ordering operators ($gt ...). The base class raises
    # UnsupportedFilter for them, and the conformance suite checks that it does.
    capabilities = StoreCapabilities(
        filter_operators=[FilterOp.EQ, FilterOp.NE, FilterOp.IN, FilterOp.NIN, FilterOp.AND, FilterOp.OR,
                          FilterOp.NOT],
        exact=True,
        max_batch_size=500,
    )
    settings_class = DictStoreSettings
    provider = "dictstore"

    def __init__(self, settings: DictStoreSettings | None = None) -> None:
        self.settings = settings or DictStoreSettings()
        super().__init__(capabilities=self.declare(self.settings))
        self._client: DictClient | None = None  # no I/O in the constructor: connect on first use

    @classmethod
    def declare(cls, settings: DictStoreSettings) -> StoreCapabilities:
        import attrs

        return attrs.evolve(cls.capabilities, max_batch_size=settings.max_batch_size)

    @classmethod
    def from_config(cls, config: Any) -> DictStore:
        return cls(cls.settings_from(config))

    def translate_error(
        self, exc: BaseException, *, where: str, collection: str | None = None
    ) -> BaseException:
        return errors.translate_error(exc, where=where, collection=collection)

    @property
    def client(self) -> DictClient:
        if self._client is None:
            self._client = DictClient()
        return self._client

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        definition = await self.run_vendor(f"opening {name!r}", self.client.describe, name)
        return codec.info(name, definition) if definition is not None else None

    async def _create_collection(self, info: CollectionInfo) -> None:
        definition = codec.dump_definition(info)
        await self.run_vendor(f"creating {info.name!r}", self.client.create, info.name, definition)

    async def _list_collections(self) -> list[str]:
        return await self.run_vendor("listing collections", self.client.names)

    async def _drop_collection(self, name: str) -> bool:
        return await self.run_vendor(f"dropping {name!r}", self.client.drop, name)

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        rows = [codec.row(r) for r in records]
        name = info.name
        await self.run_vendor(f"writing {name!r}", self.client.put, name, rows, collection=name)

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        where = to_native(node)
        name = info.name
        found = await self.run_vendor(
            f"searching {name!r}", self.client.search, name, vector, top_k, where, collection=name
        )
        return [codec.hit(score, row) for score, row in found]

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        rows = await self.run_vendor(f"reading {info.name!r}", self.client.fetch, info.name, ids,
                                     collection=info.name)
        return [codec.record(row) for row in rows]

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        where = to_native(node)

        def remove() -> int:
            rows = self.client.select(info.name, where) if ids is None else self.client.fetch(info.name, ids)
            matching = [r["id"] for r in rows if where is None or where(r["metadata"])]
            return self.client.remove(info.name, matching)

        return await self.run_vendor(f"deleting from {info.name!r}", remove, collection=info.name)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        where = to_native(node)
        rows = await self.run_vendor(f"counting {info.name!r}", self.client.select, info.name, where,
                                     collection=info.name)
        return len(rows)

    async def _close(self) -> None:
        self._client = None
