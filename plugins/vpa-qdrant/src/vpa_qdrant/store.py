"""`QdrantStore`: the VPA store contract on Qdrant, embedded (local mode) or on a server.

Layout of a VPA collection in Qdrant:

- one unnamed dense vector per point, ``Distance.COSINE``. Vectors are sent already scaled to
  unit length (computed in float64, see `unit_vectors`), as Qdrant would store them anyway; the
  original Euclidean norm is kept in the payload and ``get`` multiplies it back, so the vector
  comes back as written, within float32 rounding;
- point ids are ``uuid5(VPA_NAMESPACE, record id)`` (Qdrant ids must be UUIDs or integers); the
  VPA id itself is kept in the payload;
- payload ``{"_vpa_id": id, "_vpa_text": text, "_vpa_norm": norm, "m": {user metadata}}``: user
  keys live under ``m`` so they never collide with ours, and filters address ``m.<field>``;
- the collection's `CollectionInfo` (dimension, metric, embedder fingerprint) is stored in the
  collection's own metadata (``metadata["vpa"]``, Qdrant ≥ 1.16), so a new process can describe
  the collection without any side table.

Every write waits for Qdrant to apply it (``wait=True``), so reads see it at once.
"""

from __future__ import annotations

import asyncio
import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from qdrant_client import models
from vpa.errors import CollectionNotFound, ConfigError, InvalidCollection, StoreError
from vpa.filters import Node
from vpa.models import (
    CollectionInfo,
    Hit,
    Record,
    from_json_dict,
    to_json_dict,
)
from vpa.stores.base import VectorStore
from vpa.validation import record_bytes_bound

from vpa_qdrant.backend import LocalBackend, RemoteBackend, translate_errors
from vpa_qdrant.capabilities import (
    BASE_CAPABILITIES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_SERVER_MIN_RECALL,
    LOCAL_CAPABILITIES,
    PAGE_SIZE,
    REQUEST_BYTES_BUDGET,
)
from vpa_qdrant.filters import METADATA_KEY, to_qdrant_filter

#: Namespace of the deterministic point ids: ``uuid5(VPA_NAMESPACE, record_id)``.
VPA_NAMESPACE = uuid.UUID("6f3c2a1e-9b8d-5c4e-a7f0-3d2b1c0e9f8a")
ID_KEY = "_vpa_id"
TEXT_KEY = "_vpa_text"
NORM_KEY = "_vpa_norm"
COLLECTION_METADATA_KEY = "vpa"
FORMAT_VERSION = 1


OPTIONS = {
    "path": "local mode: the data folder (default VPA_DATA_DIR/qdrant)",
    "in_memory": "local mode without persistence (default false)",
    "url": "server mode: the server's URL, instead of VPA_VECTOR_DB_HOST/PORT",
    "https": "server mode: use TLS when the URL is built from host and port",
    "grpc_port": "server mode: the gRPC port (default 6334)",
    "prefer_grpc": "server mode: talk gRPC (default true when grpc_port is set)",
    "prefix": "server mode: a path prefix of the REST API",
    "timeout": "server mode: request timeout in seconds (default 30)",
    "check_compatibility": "server mode: warn when client and server versions differ (default true)",
    "exact": "server mode: exact (full-scan) search instead of HNSW (default false)",
    "hnsw_ef": "server mode: HNSW beam size at query time",
    "min_recall": "server mode: the recall@k declared for HNSW search (default 0.9)",
    "read_consistency": "server mode: 'all', 'majority', 'quorum' or a number of replicas",
    "write_ordering": "server mode: 'weak', 'medium' or 'strong'",
    "shard_number": "new collections: number of shards",
    "replication_factor": "new collections: copies of each shard",
    "write_consistency_factor": "new collections: replicas that must confirm a write",
    "on_disk": "new collections: keep vectors on disk (memmap)",
    "on_disk_payload": "new collections: keep payloads on disk",
    "hnsw_m": "new collections: HNSW graph degree",
    "hnsw_ef_construct": "new collections: HNSW build beam size",
    "max_batch_size": f"points per upsert request (default {DEFAULT_MAX_BATCH_SIZE})",
}


def point_id(record_id: str) -> str:
    """The Qdrant point id of a VPA record id: a deterministic UUID."""
    return str(uuid.uuid5(VPA_NAMESPACE, record_id))


def unit_vectors(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit length (float32) and their norms, computed in float64.

    Qdrant normalises cosine vectors itself, but in float32 and only when the norm exceeds
    float32's epsilon: a vector of norm 1e-8 would be stored as is (and score wrongly), one of
    norm 1e20 would overflow. Sending unit vectors sidesteps both; the norm goes to the payload.
    """
    wide = matrix.astype(np.float64)
    norms = np.linalg.norm(wide, axis=1)
    return (wide / norms[:, np.newaxis]).astype(np.float32), norms


def _payload(record: Record, norm: float) -> dict[str, Any]:
    return {ID_KEY: record.id, TEXT_KEY: record.text, NORM_KEY: norm, METADATA_KEY: dict(record.metadata)}


def _estimated_bytes(record: Record) -> int:
    """At least the record's size in a request, without encoding it (`record_bytes_bound`)."""
    return record_bytes_bound(record) + 24 * record.vector.shape[0] + 200


def _read_consistency(value: Any) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    try:
        return models.ReadConsistencyType(str(value).lower())
    except ValueError:
        raise ConfigError(
            f"[providers.qdrant] read_consistency must be all, majority, quorum or a number, not {value!r}"
        ) from None


def _write_ordering(value: Any) -> models.WriteOrdering | None:
    if value is None:
        return None
    try:
        return models.WriteOrdering(str(value).lower())
    except ValueError:
        raise ConfigError(
            f"[providers.qdrant] write_ordering must be weak, medium or strong, not {value!r}"
        ) from None


class QdrantStore(VectorStore):
    """A VPA store on Qdrant. Construct with `from_config`, or directly:

    ``QdrantStore(path=...)`` or ``QdrantStore(in_memory=True)`` for the embedded engine,
    ``QdrantStore(url="http://host:6333", api_key=...)`` for a server. Nothing is opened or
    contacted before the first call.
    """

    capabilities = LOCAL_CAPABILITIES

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        in_memory: bool = False,
        url: str | None = None,
        api_key: str | None = None,
        prefer_grpc: bool | None = None,
        grpc_port: int | None = None,
        https: bool | None = None,
        prefix: str | None = None,
        timeout: float = 30.0,
        check_compatibility: bool = True,
        exact: bool = False,
        hnsw_ef: int | None = None,
        min_recall: float = DEFAULT_SERVER_MIN_RECALL,
        read_consistency: Any = None,
        write_ordering: Any = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        on_disk: bool | None = None,
        on_disk_payload: bool | None = None,
        hnsw_m: int | None = None,
        hnsw_ef_construct: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ) -> None:
        super().__init__()
        if max_batch_size < 1:
            raise ConfigError("[providers.qdrant] max_batch_size must be positive")
        if not 0.0 < min_recall <= 1.0:
            raise ConfigError("[providers.qdrant] min_recall must be in (0, 1]")
        self._backend: LocalBackend | RemoteBackend
        if url is not None:
            options: dict[str, Any] = {
                "url": url,
                "api_key": api_key,
                "prefer_grpc": grpc_port is not None if prefer_grpc is None else bool(prefer_grpc),
                "timeout": math.ceil(timeout) if timeout else None,
                "check_compatibility": check_compatibility,
            }
            if grpc_port is not None:
                options["grpc_port"] = int(grpc_port)
            if https is not None:
                options["https"] = bool(https)
            if prefix:
                options["prefix"] = prefix
            self._backend = RemoteBackend(**options)
            self.mode = "server"
            self.location = url
            self.capabilities = attrs.evolve(
                BASE_CAPABILITIES,
                exact=bool(exact),
                min_recall=1.0 if exact else float(min_recall),
                max_batch_size=max_batch_size,
            )
            self._search_params = (
                models.SearchParams(exact=True)
                if exact
                else (models.SearchParams(hnsw_ef=int(hnsw_ef)) if hnsw_ef else None)
            )
            self._consistency = _read_consistency(read_consistency)
            self._ordering = _write_ordering(write_ordering)
        else:
            if in_memory:
                local_path = None
            elif path is not None:
                local_path = os.fspath(path)
            else:
                raise ConfigError(
                    "QdrantStore needs a url (server mode), a path or in_memory=True (local mode)"
                )
            self._backend = LocalBackend(local_path)
            self.mode = "memory" if local_path is None else "local"
            self.location = local_path or ":memory:"
            self.capabilities = attrs.evolve(
                LOCAL_CAPABILITIES, persistent=local_path is not None, max_batch_size=max_batch_size
            )
            self._search_params = None  # local mode is brute force; it ignores (and warns on) these
            self._consistency = None
            self._ordering = None
        self._collection_options = {
            "shard_number": shard_number,
            "replication_factor": replication_factor,
            "write_consistency_factor": write_consistency_factor,
            "on_disk_payload": on_disk_payload,
        }
        self._on_disk = on_disk
        self._hnsw = (
            models.HnswConfigDiff(m=hnsw_m, ef_construct=hnsw_ef_construct)
            if hnsw_m is not None or hnsw_ef_construct is not None
            else None
        )
        self._delete_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_config(cls, config: Any) -> QdrantStore:
        """Server mode when VPA_VECTOR_DB_HOST or ``url`` is set, else local mode."""
        options = config.provider_options("qdrant", known=OPTIONS)
        url = options.pop("url", None)
        in_memory = bool(options.pop("in_memory", False))
        path = options.pop("path", None)
        if url is None and config.host and not in_memory:
            url = build_url(config.host, config.port, https=options.get("https"))
        if url is not None and not in_memory:
            return cls(url=url, api_key=config.api_key, **options)
        for server_only in (
            "grpc_port",
            "prefer_grpc",
            "https",
            "prefix",
            "exact",
            "hnsw_ef",
            "read_consistency",
        ):
            options.pop(server_only, None)
        if in_memory:
            return cls(in_memory=True, **options)
        return cls(path=Path(path) if path is not None else Path(config.data_dir) / "qdrant", **options)

    def __repr__(self) -> str:  # never shows the API key
        return f"QdrantStore(mode={self.mode!r}, location={self.location!r})"

    # --- plumbing --------------------------------------------------------------------------------

    async def _call(self, method: str, *args: Any, collection: str | None = None, **kwargs: Any) -> Any:
        try:
            with translate_errors(collection):
                return await self._backend.call(method, *args, **kwargs)
        except CollectionNotFound:
            if collection is not None:
                self._collections.pop(collection, None)  # dropped elsewhere: forget the cached info
            raise

    def _read_kwargs(self) -> dict[str, Any]:
        return {"consistency": self._consistency} if self._consistency is not None else {}

    def _write_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"wait": True}
        if self._ordering is not None:
            kwargs["ordering"] = self._ordering
        return kwargs

    def _delete_lock(self, name: str) -> asyncio.Lock:
        lock = self._delete_locks.get(name)
        if lock is None:
            lock = self._delete_locks[name] = asyncio.Lock()
        return lock

    # --- collections -----------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        if not await self._call("collection_exists", name):
            return None
        try:
            description = await self._call("get_collection", name, collection=name)
        except CollectionNotFound:
            return None
        metadata = description.config.metadata or {}
        stored = metadata.get(COLLECTION_METADATA_KEY)
        if not isinstance(stored, Mapping) or "info" not in stored:
            raise InvalidCollection(
                f"Qdrant collection {name!r} exists but was not created by VPA (it has no VPA metadata); "
                "use another collection name"
            )
        info = from_json_dict(stored["info"], CollectionInfo)
        return attrs.evolve(info, name=name)

    async def _create_collection(self, info: CollectionInfo) -> None:
        vectors = models.VectorParams(
            size=info.dimension, distance=models.Distance.COSINE, on_disk=self._on_disk
        )
        extra = (
            {k: v for k, v in self._collection_options.items() if v is not None}
            if self.mode == "server"
            else {}
        )
        if self._hnsw is not None and self.mode == "server":
            extra["hnsw_config"] = self._hnsw
        metadata = {COLLECTION_METADATA_KEY: {"format": FORMAT_VERSION, "info": to_json_dict(info)}}
        try:
            await self._call(
                "create_collection", info.name, vectors_config=vectors, metadata=metadata, **extra
            )
        except StoreError:
            # Another writer created it between our look-up and now: open theirs if compatible.
            existing = await self._describe_collection(info.name)
            if existing is None:
                raise
            self._check_compatible(existing, info.dimension, info.fingerprint)

    async def _list_collections(self) -> list[str]:
        response = await self._call("get_collections")
        return [c.name for c in response.collections]

    async def _drop_collection(self, name: str) -> bool:
        self._delete_locks.pop(name, None)
        if not await self._call("collection_exists", name):
            return False
        try:
            await self._call("delete_collection", name, collection=name)
        except CollectionNotFound:
            return False
        return True

    # --- records ---------------------------------------------------------------------------------

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        for batch in _split_by_bytes(records, REQUEST_BYTES_BUDGET):
            units, norms = unit_vectors(np.stack([r.vector for r in batch]))
            points = [
                models.PointStruct(
                    id=point_id(record.id),
                    vector=units[i].tolist(),
                    payload=_payload(record, float(norms[i])),
                )
                for i, record in enumerate(batch)
            ]
            await self._call("upsert", info.name, points=points, collection=info.name, **self._write_kwargs())

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        kwargs = self._read_kwargs()
        if self._search_params is not None:
            kwargs["search_params"] = self._search_params
        response = await self._call(
            "query_points",
            info.name,
            query=unit_vectors(np.asarray(vector)[np.newaxis, :])[0][0].tolist(),
            query_filter=to_qdrant_filter(node),
            limit=top_k,
            with_payload=True,
            with_vectors=False,
            collection=info.name,
            **kwargs,
        )
        hits = []
        for point in response.points:
            payload = point.payload or {}
            score = min(1.0, max(-1.0, float(point.score)))
            hits.append(Hit(payload[ID_KEY], score, payload.get(TEXT_KEY, ""), payload.get(METADATA_KEY, {})))
        return hits

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        records: list[Record] = []
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = ids[start : start + PAGE_SIZE]
            points = await self._call(
                "retrieve",
                info.name,
                ids=[point_id(i) for i in chunk],
                with_payload=True,
                with_vectors=True,
                collection=info.name,
                **self._read_kwargs(),
            )
            records.extend(_record(p) for p in points)
        return records

    async def _matching_point_ids(
        self, info: CollectionInfo, ids: list[str] | None, node: Node | None
    ) -> list[str]:
        """Point ids of the records that have one of ``ids`` (if given) and match ``node``."""
        native = to_qdrant_filter(node)
        if ids is not None:
            found: list[str] = []
            for start in range(0, len(ids), PAGE_SIZE):
                chunk = [point_id(i) for i in ids[start : start + PAGE_SIZE]]
                if native is None:
                    points = await self._call(
                        "retrieve",
                        info.name,
                        ids=chunk,
                        with_payload=False,
                        with_vectors=False,
                        collection=info.name,
                        **self._read_kwargs(),
                    )
                else:
                    points = await self._scroll_all(info, _with_ids(native, chunk))
                found.extend(str(p.id) for p in points)
            return found
        return [str(p.id) for p in await self._scroll_all(info, native)]

    async def _scroll_all(self, info: CollectionInfo, native: models.Filter | None) -> list[Any]:
        points: list[Any] = []
        offset = None
        while True:
            page, offset = await self._call(
                "scroll",
                info.name,
                scroll_filter=native,
                limit=PAGE_SIZE,
                offset=offset,
                with_payload=False,
                with_vectors=False,
                collection=info.name,
                **self._read_kwargs(),
            )
            points.extend(page)
            if offset is None or not page:
                return points

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        native = to_qdrant_filter(node)
        async with self._delete_lock(info.name):
            found = list(dict.fromkeys(await self._matching_point_ids(info, ids, node)))
            for start in range(0, len(found), PAGE_SIZE):
                chunk = found[start : start + PAGE_SIZE]
                # Delete by id *and* filter, so a record rewritten since the look-up to no longer
                # match is left alone.
                selector = (
                    models.PointIdsList(points=chunk)
                    if native is None
                    else models.FilterSelector(filter=_with_ids(native, chunk))
                )
                await self._call(
                    "delete",
                    info.name,
                    points_selector=selector,
                    collection=info.name,
                    **self._write_kwargs(),
                )
            return len(found)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        result = await self._call(
            "count", info.name, count_filter=to_qdrant_filter(node), exact=True, collection=info.name
        )
        return int(result.count)

    # --- lifecycle -------------------------------------------------------------------------------

    async def close(self) -> None:
        await self._backend.close()
        self._collections.clear()
        self._delete_locks.clear()


def _with_ids(native: models.Filter, chunk: list[str]) -> models.Filter:
    return models.Filter(must=[models.HasIdCondition(has_id=list(chunk)), native])


def _record(point: Any) -> Record:
    payload = point.payload or {}
    vector = np.asarray(point.vector, dtype=np.float64)
    norm = payload.get(NORM_KEY)
    if norm is not None:
        vector = vector * float(norm)
    return Record(
        payload[ID_KEY], vector.astype(np.float32), payload.get(TEXT_KEY, ""), payload.get(METADATA_KEY, {})
    )


def _split_by_bytes(records: list[Record], budget: int) -> list[list[Record]]:
    batches: list[list[Record]] = []
    current: list[Record] = []
    size = 0
    for record in records:
        estimate = _estimated_bytes(record)
        if current and size + estimate > budget:
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += estimate
    if current:
        batches.append(current)
    return batches


def build_url(host: str, port: int | None, *, https: bool | None = None) -> str:
    """A server URL from VPA_VECTOR_DB_HOST and VPA_VECTOR_DB_PORT (default port 6333)."""
    host = host.strip().rstrip("/")
    if host.startswith(("http://", "https://")):
        scheme, rest = host.split("://", 1)
        if port is not None and ":" not in rest.split("/", 1)[0]:
            authority, _, tail = rest.partition("/")
            rest = f"{authority}:{port}" + (f"/{tail}" if tail else "")
        return f"{scheme}://{rest}"
    scheme = "https" if https else "http"
    return f"{scheme}://{host}:{port or 6333}"
