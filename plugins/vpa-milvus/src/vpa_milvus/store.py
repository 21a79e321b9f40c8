"""The `milvus` store: VPA's store contract on the official ``pymilvus`` ``MilvusClient``.

Two modes, one code path:

- **Milvus Lite** — ``uri`` is a local ``.db`` path (default ``<VPA_DATA_DIR>/milvus/vpa.db``).
  Milvus Lite runs in a child process (lite.py) so that its pure-Python engine does not compete
  with the app's event loop for the GIL; the store talks to it over gRPC on 127.0.0.1. One
  process uses a ``.db`` at a time; the child stops when the last store on that path is closed.
- **server** — ``uri`` is ``http(s)://host:port`` of Milvus standalone or distributed, with an
  optional token (``user:password`` or an API key).

Each VPA collection is one Milvus collection with a fixed schema::

    id        VARCHAR(2048) primary key   (VPA ids: up to 512 characters = 2048 UTF-8 bytes)
    vector    FLOAT_VECTOR(dimension)     FLAT index, metric COSINE (exact search)
    text      VARCHAR(65535)
    metadata  JSON                        typed keys, see codec.py

and collection properties ``vpa.format``, ``vpa.dimension``, ``vpa.metric`` and
``vpa.fingerprint`` (JSON), so `_describe_collection` rebuilds the full `CollectionInfo` in any
process. Collections are created with consistency level Strong and every read asks for Strong
as well: a write is visible to the next read, so the store is not eventually consistent.

pymilvus is synchronous; every call runs in a worker thread (`asyncio.to_thread`), bounded by the
configured timeout so that an unreachable server ends in `StoreUnavailable`/`StoreTimeout`
instead of pymilvus's minutes of retries.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
from vpa.errors import CollectionNotFound, ConfigError, InvalidCollection, StoreError
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
from vpa.validation import record_bytes_bound

from vpa_milvus import lite
from vpa_milvus.capabilities import CAPABILITIES, TEXT_MAX_BYTES
from vpa_milvus.codec import decode_metadata, encode_metadata, milvus_name, vpa_name
from vpa_milvus.errors import map_error
from vpa_milvus.filters import ID_FIELD, METADATA_FIELD, id_in, translate

T = TypeVar("T")

VECTOR_FIELD = "vector"
TEXT_FIELD = "text"
ID_MAX_BYTES = 2048
DEFAULT_PORT = 19530
FORMAT_VERSION = "1"

#: Milvus's limit on ``limit`` (and offset + limit) for search and query.
#: Ids per ``id in [...]`` expression (get, delete): keeps expressions and responses small.
IDS_PER_CALL = 1000
#: Milvus Lite searches freshly written (unflushed, growing-segment) rows by brute force, slowly:
#: 143 ms a top-10 query over 5,000 unflushed 384-d rows, 8 ms once flushed (the flush took
#: 0.47 s). So in Lite mode the first search after this many written rows flushes first.
#: Servers seal and index segments on their own.
LITE_FLUSH_AFTER_ROWS = 512
#: Rough bytes per upsert request; Milvus's default gRPC receive limit is 64 MiB.
REQUEST_BYTES = 16 * 1024 * 1024

OPTION_NAMES = frozenset({"uri", "db_name", "timeout", "shards_num", "replica_number"})


def server_uri(host: str, port: int | None) -> str:
    """``http://host:port`` from VPA_VECTOR_DB_HOST/PORT (a scheme or port in host is kept)."""
    uri = host if "://" in host else f"http://{host}"
    parts = urlsplit(uri)
    if parts.port is None:
        netloc = f"{parts.netloc}:{port or DEFAULT_PORT}"
        uri = parts._replace(netloc=netloc).geturl()
    return uri


def redact_uri(uri: str) -> str:
    """The URI without credentials, for messages and logs."""
    if uri.endswith(".db"):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MilvusStore(VectorStore):
    """A VPA store on Milvus (Lite or server) through ``pymilvus.MilvusClient``."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        db_name: str = "",
        timeout: float = 30.0,
        shards_num: int | None = None,
        replica_number: int | None = None,
    ) -> None:
        super().__init__()
        self.uri = str(uri)
        self.lite = self.uri.endswith(".db")
        self.db_name = db_name
        self.timeout = float(timeout)
        self.shards_num = shards_num
        self.replica_number = replica_number
        self._token = token
        self._client: Any = None
        self._lite_path: str | None = None
        #: Lite mode: rows written per collection since its last flush (see LITE_FLUSH_AFTER_ROWS).
        self._unflushed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        mode = "lite" if self.lite else "server"
        return f"MilvusStore({mode}, {redact_uri(self.uri)!r})"

    @classmethod
    def from_config(cls, config: Any) -> MilvusStore:
        options = config.provider_options("milvus", known=OPTION_NAMES)
        uri = options.get("uri")
        if not uri:
            if config.host:
                uri = server_uri(config.host, config.port)
            else:
                uri = str(Path(config.data_dir) / "milvus" / "vpa.db")
        try:
            timeout = float(options.get("timeout", 30.0))
            shards = options.get("shards_num")
            replicas = options.get("replica_number")
            shards = None if shards is None else int(shards)
            replicas = None if replicas is None else int(replicas)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[providers.milvus]: {exc}") from exc
        if timeout <= 0 or (shards is not None and shards < 1) or (replicas is not None and replicas < 1):
            raise ConfigError("[providers.milvus]: timeout, shards_num and replica_number must be positive")
        return cls(
            str(uri),
            token=config.api_key,
            db_name=str(options.get("db_name", "")),
            timeout=timeout,
            shards_num=shards,
            replica_number=replicas,
        )

    # --- the client ------------------------------------------------------------------------------

    def _connected(self) -> Any:
        with self._lock:
            if self._closed:
                raise StoreError("this Milvus store is closed")
            if self._client is None:
                from pymilvus import MilvusClient

                if self.lite:
                    path = str(Path(self.uri).expanduser().resolve())
                    uri = lite.acquire(path, timeout=max(self.timeout, 60.0))
                    try:
                        self._client = MilvusClient(uri=uri, timeout=self.timeout)
                    except BaseException:
                        lite.release(path)
                        raise
                    self._lite_path = path
                else:
                    self._client = MilvusClient(
                        uri=self.uri, token=self._token or "", db_name=self.db_name, timeout=self.timeout
                    )
            return self._client

    def _run(self, where: str, fn: Callable[[Any], T], collection: str | None = None) -> T:
        """Call ``fn(client)`` in this thread, mapping vendor errors to VPA's."""
        try:
            return fn(self._connected())
        except CollectionNotFound:
            if collection is not None:
                self._collections.pop(collection, None)
            raise
        except Exception as exc:
            error = map_error(exc, where=where, collection=collection)
            if isinstance(error, CollectionNotFound) and collection is not None:
                self._collections.pop(collection, None)
            if error is exc:
                raise
            raise error from exc

    async def _call(self, where: str, fn: Callable[[Any], T], collection: str | None = None) -> T:
        return await asyncio.to_thread(self._run, where, fn, collection)

    def _close_sync(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            lite_path, self._lite_path = self._lite_path, None
        try:
            if client is not None:
                client.close()
        finally:
            if lite_path is not None:
                lite.release(lite_path)

    async def close(self) -> None:
        await asyncio.to_thread(self._close_sync)
        self._collections.clear()

    async def health(self) -> HealthStatus:
        started = time.perf_counter()
        try:
            await self._call("health check", lambda c: c.list_collections(timeout=self.timeout))
        except Exception as exc:  # health reports, it does not raise
            return HealthStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")
        mode = "Milvus Lite" if self.lite else "Milvus server"
        return HealthStatus(
            ok=True,
            detail=f"{mode} at {redact_uri(self.uri)}",
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    # --- collections -----------------------------------------------------------------------------

    def _ensure_loaded(self, client: Any, mname: str) -> None:
        from pymilvus.client.types import LoadState

        state = client.get_load_state(mname, timeout=self.timeout).get("state")
        if state != LoadState.Loaded:
            kwargs = {"replica_number": self.replica_number} if self.replica_number else {}
            client.load_collection(mname, timeout=self.timeout, **kwargs)

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        mname = milvus_name(name)

        def describe(client: Any) -> CollectionInfo | None:
            if not client.has_collection(mname, timeout=self.timeout):
                return None
            info = _info_from_description(name, client.describe_collection(mname, timeout=self.timeout))
            self._ensure_loaded(client, mname)
            return info

        return await self._call(f"opening collection {name!r}", describe)

    async def _create_collection(self, info: CollectionInfo) -> None:
        mname = milvus_name(info.name)

        def create(client: Any) -> None:
            from pymilvus import DataType, MilvusClient

            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
            schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=info.dimension)
            schema.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
            schema.add_field(METADATA_FIELD, DataType.JSON)
            kwargs: dict[str, Any] = {}
            if self.shards_num:
                kwargs["num_shards"] = int(self.shards_num)
            try:
                client.create_collection(
                    mname,
                    schema=schema,
                    properties=_properties(info),
                    description=f"VPA collection {info.name}",
                    consistency_level="Strong",
                    timeout=self.timeout,
                    **kwargs,
                )
            except Exception as exc:
                if "already exist" not in str(exc).lower():
                    raise
                # A concurrent creator won the race; fall through and make sure it is usable.
                existing = _info_from_description(info.name, client.describe_collection(mname))
                if existing.dimension != info.dimension:
                    raise
            index = client.prepare_index_params()
            index.add_index(
                field_name=VECTOR_FIELD, index_type="FLAT", metric_type="COSINE", index_name=VECTOR_FIELD
            )
            try:
                # Milvus Lite builds FLAT at once; pymilvus's sync wait would sleep 0.5 s per collection.
                client.create_index(mname, index, timeout=self.timeout, sync=not self.lite)
            except Exception as exc:
                if "already exist" not in str(exc).lower():
                    raise
            self._ensure_loaded(client, mname)

        await self._call(f"creating collection {info.name!r}", create)

    async def _list_collections(self) -> list[str]:
        def names(client: Any) -> list[str]:
            out = []
            for mname in client.list_collections(timeout=self.timeout):
                name = vpa_name(mname)
                if name is None:
                    continue
                try:  # only VPA's collections: a shared server may hold other apps' too
                    props = client.describe_collection(mname, timeout=self.timeout).get("properties") or {}
                except Exception as exc:
                    if "not" in str(exc).lower() and "exist" in str(exc).lower():
                        continue  # dropped meanwhile
                    raise
                if "vpa.dimension" in props:
                    out.append(name)
            return out

        return await self._call("listing collections", names)

    async def _drop_collection(self, name: str) -> bool:
        mname = milvus_name(name)

        def drop(client: Any) -> bool:
            self._unflushed.pop(mname, None)
            if not client.has_collection(mname, timeout=self.timeout):
                return False
            client.drop_collection(mname, timeout=self.timeout)
            return True

        return await self._call(f"dropping collection {name!r}", drop)

    # --- records ---------------------------------------------------------------------------------

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        mname = milvus_name(info.name)

        def write(client: Any) -> None:
            rows = [
                {
                    ID_FIELD: r.id,
                    VECTOR_FIELD: r.vector.tolist(),
                    TEXT_FIELD: r.text,
                    METADATA_FIELD: encode_metadata(r.metadata),
                }
                for r in records
            ]
            for part in _split_by_bytes(records, rows, info.dimension):
                client.upsert(mname, part, timeout=self.timeout)
            if self.lite:
                self._unflushed[mname] = self._unflushed.get(mname, 0) + len(rows)

        await self._call(f"upserting into {info.name!r}", write, info.name)

    async def _query(
        self, info: CollectionInfo, vector: np.ndarray, top_k: int, node: Node | None
    ) -> list[Hit]:
        mname = milvus_name(info.name)
        expression = translate(node)

        def search(client: Any) -> list[Hit]:
            if self.lite and self._unflushed.get(mname, 0) >= LITE_FLUSH_AFTER_ROWS:
                self._unflushed[mname] = 0
                client.flush(mname, timeout=self.timeout)
            result = client.search(
                mname,
                data=[vector.tolist()],
                filter=expression,
                limit=top_k,
                output_fields=[TEXT_FIELD, METADATA_FIELD],
                search_params={"metric_type": "COSINE", "params": {}},
                anns_field=VECTOR_FIELD,
                consistency_level="Strong",
                timeout=self.timeout,
            )
            hits = []
            for hit in result[0] if result else []:
                entity = hit["entity"]
                score = float(np.clip(hit["distance"], -1.0, 1.0))
                hits.append(
                    Hit(
                        hit["id"],
                        score,
                        entity.get(TEXT_FIELD) or "",
                        decode_metadata(entity.get(METADATA_FIELD)),
                    )
                )
            hits.sort(key=lambda h: -h.score)
            return hits

        return await self._call(f"searching {info.name!r}", search, info.name)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        mname = milvus_name(info.name)

        def get(client: Any) -> list[Record]:
            out = []
            for chunk in _chunks(ids, IDS_PER_CALL):
                rows = client.query(
                    mname,
                    filter=id_in(chunk),
                    output_fields=[ID_FIELD, VECTOR_FIELD, TEXT_FIELD, METADATA_FIELD],
                    limit=len(chunk),
                    consistency_level="Strong",
                    timeout=self.timeout,
                )
                out.extend(
                    Record(
                        row[ID_FIELD],
                        np.asarray(row[VECTOR_FIELD], dtype=np.float32),
                        row.get(TEXT_FIELD) or "",
                        decode_metadata(row.get(METADATA_FIELD)),
                    )
                    for row in rows
                )
            return out

        return await self._call(f"reading from {info.name!r}", get, info.name)

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        mname = milvus_name(info.name)
        expression = translate(node)

        def matching(client: Any, condition: str, limit: int) -> list[str]:
            rows = client.query(
                mname,
                filter=condition,
                output_fields=[ID_FIELD],
                limit=limit,
                consistency_level="Strong",
                timeout=self.timeout,
            )
            return [row[ID_FIELD] for row in rows]

        def remove(client: Any, found: list[str]) -> None:
            # Delete by id *and* the filter: a record rewritten meanwhile to no longer match stays.
            condition = id_in(found) if not expression else f"({id_in(found)}) and ({expression})"
            client.delete(mname, filter=condition, timeout=self.timeout)

        def delete(client: Any) -> int:
            removed = 0
            if ids is not None:
                for chunk in _chunks(ids, IDS_PER_CALL):
                    condition = id_in(chunk) if not expression else f"({id_in(chunk)}) and ({expression})"
                    found = matching(client, condition, len(chunk))
                    if found:
                        remove(client, found)
                        removed += len(found)
                return removed
            while True:  # by filter alone: page through the matches (Strong reads see our deletes)
                found = matching(client, expression, IDS_PER_CALL)
                if not found:
                    return removed
                remove(client, found)
                removed += len(found)
                if len(found) < IDS_PER_CALL:
                    return removed

        return await self._call(f"deleting from {info.name!r}", delete, info.name)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        mname = milvus_name(info.name)
        expression = translate(node)

        def count(client: Any) -> int:
            rows = client.query(
                mname,
                filter=expression,
                output_fields=["count(*)"],
                consistency_level="Strong",
                timeout=self.timeout,
            )
            return int(rows[0]["count(*)"]) if rows else 0

        return await self._call(f"counting {info.name!r}", count, info.name)


# --- helpers ---------------------------------------------------------------------------------------


def _properties(info: CollectionInfo) -> dict[str, str]:
    props = {
        "vpa.format": FORMAT_VERSION,
        "vpa.dimension": str(info.dimension),
        "vpa.metric": str(info.metric),
    }
    if info.fingerprint is not None:
        fp = info.fingerprint
        props["vpa.fingerprint"] = json.dumps(
            {"name": fp.name, "model": fp.model, "dimension": fp.dimension},
            ensure_ascii=False,
            sort_keys=True,
        )
    return props


def _info_from_description(name: str, description: dict[str, Any]) -> CollectionInfo:
    props = description.get("properties") or {}
    if "vpa.dimension" not in props:
        raise InvalidCollection(
            f"the Milvus collection {milvus_name(name)!r} exists but was not created by VPA "
            "(it has no vpa.* properties); use another collection name"
        )
    dimension = int(props["vpa.dimension"])
    for field in description.get("fields", []):
        if field.get("name") == VECTOR_FIELD:
            dimension = int(field.get("params", {}).get("dim", dimension))
    fingerprint = None
    if props.get("vpa.fingerprint"):
        data = json.loads(props["vpa.fingerprint"])
        fingerprint = EmbedderFingerprint(str(data["name"]), str(data["model"]), int(data["dimension"]))
    return CollectionInfo(
        name=name,
        dimension=dimension,
        metric=Metric(props.get("vpa.metric", "cosine")),
        fingerprint=fingerprint,
    )


def _split_by_bytes(
    records: Sequence[Record], rows: list[dict[str, Any]], dimension: int
) -> Iterator[list[dict[str, Any]]]:
    """Cut a batch into requests of at most ~REQUEST_BYTES. A row's size is bounded from above
    without encoding it (`record_bytes_bound`, plus the type prefix of each stored key and the
    id), so a request is never larger than estimated."""
    part: list[dict[str, Any]] = []
    size = 0
    for record, row in zip(records, rows, strict=True):
        row_bytes = (
            4 * dimension + 4 * len(record.id) + record_bytes_bound(record) + 12 * len(record.metadata) + 64
        )
        if part and size + row_bytes > REQUEST_BYTES:
            yield part
            part, size = [], 0
        part.append(row)
        size += row_bytes
    if part:
        yield part
