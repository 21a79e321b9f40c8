"""Qdrant Edge (``qdrant-edge-py``): Qdrant's own Rust engine inside this process, one shard per
VPA collection, behind the subset of qdrant-client's API that `QdrantStore` calls. Opt-in
(``engine = "edge"``): qdrant-edge-py 0.9 can store a float whose shortest decimal form has a
significand above 2**53 one ulp off (serde_json's fast parser), so it is not the default engine.

Why an adapter rather than a second store: the store, its codec and its filter translation speak
``qdrant_client.models`` (`vpa_qdrant.filters.to_native` builds one ``models.Filter`` for every
engine); this module converts those objects structurally into Edge's own classes
(`edge_filter`, `edge_points`, ...). Nothing is re-interpreted on the way: a ``FieldCondition``
with a ``Range`` becomes Edge's ``FieldCondition`` with a ``RangeFloat`` of the same bounds, a
``must_not`` stays a ``must_not``. So the semantics are Qdrant's on both sides, and the
filter tests run the same translation against Edge and against qdrant-client's engine.

Layout of the data folder (``VPA_DATA_DIR/qdrant-edge`` by default)::

    .vpa.lock                      one owner process (vpa.stores.memory_files.FolderLock)
    collections/<name>/shard/      the Edge shard: wal/, segments/, edge_config.json
    collections/<name>/collection.json
                                   {"vpa_definition": ...}: dimension, metric, fingerprint —
                                   the same metadata a server collection holds

``collection.json`` is written last (to a temporary file, fsynced, renamed), so it marks a
complete collection: a folder without it is what a crash during creation left, and is replaced
by the next create. A dropped collection is first renamed to ``.trash-*`` (atomic), then removed,
so a crash during removal never leaves a half collection that still looks whole.

Durability: Edge writes every update to its write-ahead log before applying it to the segments,
and `update` returns only then. The WAL is memory-mapped and not fsynced per write: an
acknowledged write survives the process dying (``kill -9``, a crash: the kernel still holds the
pages and Edge replays the WAL on load), not a power loss or kernel crash before the next
``flush`` (on close, or `EdgeEngine.flush`). ``in_memory`` shards run without a WAL.

Concurrency: one lock per shard (a call runs whole; Edge's search pool parallelises inside a
query), so different collections are used in parallel. Edge releases the GIL while it works.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import qdrant_edge as edge
from qdrant_client import models
from vpa.errors import CollectionNotFound, InvalidCollection, StoreError
from vpa.files import open_private
from vpa.stores.base import COLLECTION_NAME_RE
from vpa.stores.memory_files import FolderLock, prepare_folder

COLLECTIONS = "collections"
SHARD = "shard"
DEFINITION_FILE = "collection.json"
TRASH_PREFIX = ".trash-"


# --- qdrant_client.models → qdrant_edge ---------------------------------------------------------


def edge_filter(native: models.Filter | None) -> edge.Filter | None:
    """Edge's filter for a ``models.Filter`` (None stays None), node for node."""
    if native is None:
        return None
    return edge.Filter(
        must=_conditions(native.must),
        should=_conditions(native.should),
        must_not=_conditions(native.must_not),
    )


def _conditions(conditions: Any) -> list[Any] | None:
    if conditions is None:
        return None
    if not isinstance(conditions, list):
        conditions = [conditions]
    return [_condition(c) for c in conditions]


def _condition(condition: Any) -> Any:
    if isinstance(condition, models.Filter):
        return edge_filter(condition)
    if isinstance(condition, models.FieldCondition):
        return _field_condition(condition)
    if isinstance(condition, models.IsEmptyCondition):
        return edge.IsEmptyCondition(condition.is_empty.key)
    if isinstance(condition, models.HasIdCondition):
        return edge.HasIdCondition({str(i) for i in condition.has_id})
    raise TypeError(f"no Qdrant Edge form for the condition {type(condition).__name__}")


def _field_condition(condition: models.FieldCondition) -> edge.FieldCondition:
    unsupported = [
        name
        for name in ("geo_bounding_box", "geo_radius", "geo_polygon", "values_count", "is_empty", "is_null")
        if getattr(condition, name, None) is not None
    ]
    if unsupported:
        raise TypeError(f"no Qdrant Edge form for FieldCondition.{unsupported[0]}")
    match = condition.match
    edge_match: Any = None
    if isinstance(match, models.MatchValue):
        edge_match = edge.MatchValue(_match_value(match.value))
    elif isinstance(match, models.MatchAny):
        edge_match = edge.MatchAny(list(match.any))
    elif match is not None:
        raise TypeError(f"no Qdrant Edge form for the match {type(match).__name__}")
    edge_range: Any = None
    bounds = condition.range
    if bounds is not None:
        if not isinstance(bounds, models.Range):
            raise TypeError(f"no Qdrant Edge form for the range {type(bounds).__name__}")
        edge_range = edge.RangeFloat(gte=bounds.gte, gt=bounds.gt, lte=bounds.lte, lt=bounds.lt)
    return edge.FieldCondition(key=condition.key, match=edge_match, range=edge_range)


def _match_value(value: Any) -> Any:
    """qdrant-edge-py 0.9 reads a Python ``bool`` as an integer (``MatchValue(True).value == 1``,
    which matches the payload ``1`` and never ``true``): ``bool`` is an ``int`` subclass and its
    conversion tries integers first. numpy's ``bool_`` is no ``int``, so it arrives as a boolean
    (checked by ``tests/test_filters.py``, which compares Edge's answers with VPA's reference)."""
    return np.bool_(value) if isinstance(value, bool) else value


def edge_points(points: Iterable[models.PointStruct]) -> list[edge.Point]:
    return [edge.Point(str(p.id), _point_vector(p.vector), p.payload) for p in points]


def _point_vector(vector: Any) -> Any:
    """A dense vector as it is; named vectors (the dense one as ``""``, sparse ones) converted."""
    if isinstance(vector, Mapping):
        return {name: edge_vector(v) for name, v in vector.items()}
    return vector


def edge_vector(query: Any) -> Any:
    """A dense vector (a list of floats) as it is, a ``models.SparseVector`` as Edge's."""
    if isinstance(query, models.SparseVector):
        return edge.SparseVector(list(query.indices), list(query.values))
    if not isinstance(query, list):
        raise TypeError(f"Qdrant Edge takes a dense or sparse vector as a query, not {type(query).__name__}")
    return query


def edge_query(query: Any, using: str | None = None) -> Any:
    """A query of ``query_points`` or of a ``Prefetch``: a nearest-vector query (dense or sparse,
    on the vector ``using``), or RRF with its k (``models.RrfQuery``)."""
    if isinstance(query, models.RrfQuery):
        return edge.Fusion.Rrf(k=query.rrf.k, weights=query.rrf.weights)
    if isinstance(query, models.FusionQuery):
        raise TypeError("VPA asks Qdrant Edge for RRF with its k (RrfQuery), not a FusionQuery")
    return edge.Query.Nearest(edge_vector(query), using=using or None)


def edge_prefetch(prefetch: models.Prefetch) -> edge.Prefetch:
    if prefetch.prefetch is not None:
        raise TypeError("VPA's prefetches on Qdrant Edge are not nested")
    return edge.Prefetch(
        limit=prefetch.limit,
        query=edge_query(prefetch.query, prefetch.using),
        filter=edge_filter(prefetch.filter),
        params=_search_params(prefetch.params),
    )


def _sparse_params(config: Mapping[str, models.SparseVectorParams] | None) -> dict[str, Any] | None:
    """Sparse vectors as Edge configures them: only the IDF modifier is carried over."""
    if config is None:
        return None
    out = {}
    for name, params in config.items():
        if params.index is not None:
            raise TypeError("VPA sets no sparse index options on Qdrant Edge")
        idf = params.modifier == models.Modifier.IDF
        out[name] = edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf if idf else None)
    return out


def _search_params(params: models.SearchParams | None) -> edge.SearchParams:
    """Exact unless told otherwise: VPA never builds an HNSW index on Edge (see the store)."""
    if params is None:
        return edge.SearchParams(exact=True)
    return edge.SearchParams(hnsw_ef=params.hnsw_ef, exact=bool(params.exact))


# --- results shaped like qdrant-client's ----------------------------------------------------------


@attrs.frozen
class CountResult:
    count: int


@attrs.frozen
class QueryResult:
    points: list[Any]


@attrs.frozen
class CollectionName:
    name: str


@attrs.frozen
class CollectionsResult:
    collections: list[CollectionName]


# --- the engine ------------------------------------------------------------------------------------


class _Shard:
    def __init__(self, shard: edge.EdgeShard) -> None:
        self.shard = shard
        self.lock = threading.RLock()


class EdgeEngine:
    """Every collection of one data folder, for one process (it holds the folder's lock).

    ``persistent=False`` (``in_memory``): a private temporary folder, shards without a WAL, the
    folder removed on `close`. Synchronous and thread-safe; `vpa_qdrant.backend.EdgeBackend`
    runs its calls off the event loop."""

    def __init__(self, root: str | os.PathLike[str], *, persistent: bool = True) -> None:
        self.root = Path(root)
        self.persistent = persistent
        self._lock = FolderLock(self.root)
        self._lock.acquire()  # DataFolderLocked if another process (or engine) owns the folder
        self._collections_dir = self.root / COLLECTIONS
        self._shards: dict[str, _Shard] = {}
        self._catalog = threading.RLock()  # creating, opening, dropping, listing
        self._closed = False
        prepare_folder(self._collections_dir)
        self._empty_trash()

    # --- paths and definitions ---

    def _folder(self, name: str) -> Path:
        if not isinstance(name, str) or not COLLECTION_NAME_RE.fullmatch(name):
            raise InvalidCollection(f"invalid collection name {name!r}")
        return self._collections_dir / name

    def _definition(self, name: str) -> dict[str, Any] | None:
        path = self._folder(name) / DEFINITION_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read the definition of collection {name!r}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidCollection(f"collection {name!r} has an unreadable definition file") from None
        if not isinstance(data, dict):
            raise InvalidCollection(f"collection {name!r} has an unreadable definition file")
        return data

    def _empty_trash(self) -> None:
        for leftover in self._collections_dir.glob(f"{TRASH_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def _shard(self, name: str) -> _Shard:
        """The open shard of an existing collection (opened on first use)."""
        self._check_open()
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._catalog:
            shard = self._shards.get(name)
            if shard is None:
                if self._definition(name) is None:
                    raise CollectionNotFound(name)
                shard = self._shards[name] = _Shard(edge.EdgeShard.load(str(self._folder(name) / SHARD)))
            return shard

    def lock_for(self, name: str | None) -> threading.RLock:
        """The lock a call on collection ``name`` takes (its shard's, else the catalog's): a caller
        may take it first, without blocking, to run the call inline (`vpa.offload`)."""
        shard = self._shards.get(name) if isinstance(name, str) else None
        return self._catalog if shard is None else shard.lock

    def _run(self, name: str, call: Any) -> Any:
        shard = self._shard(name)
        with shard.lock:
            if self._shards.get(name) is not shard:  # dropped while this call waited
                raise CollectionNotFound(name)
            return call(shard.shard)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("this Qdrant Edge engine was closed")

    # --- collections (qdrant-client's names) ---

    def collection_exists(self, name: str) -> bool:
        self._check_open()
        return self._definition(name) is not None

    def collection_metadata(self, name: str) -> dict[str, Any]:
        """What a server keeps as the collection's ``config.metadata``."""
        self._check_open()
        definition = self._definition(name)
        if definition is None:
            raise CollectionNotFound(name)
        return definition

    def get_collections(self) -> CollectionsResult:
        self._check_open()
        names = sorted(
            p.name
            for p in self._collections_dir.iterdir()
            if COLLECTION_NAME_RE.fullmatch(p.name) and (p / DEFINITION_FILE).is_file()
        )
        return CollectionsResult([CollectionName(n) for n in names])

    def create_collection(
        self,
        name: str,
        *,
        vectors_config: models.VectorParams,
        metadata: Mapping[str, Any],
        sparse_vectors_config: Mapping[str, models.SparseVectorParams] | None = None,
    ) -> bool:
        if vectors_config.distance != models.Distance.COSINE:
            raise InvalidCollection("VPA collections on Qdrant Edge use cosine distance")
        self._check_open()
        with self._catalog:
            folder = self._folder(name)
            if self._definition(name) is not None:
                raise StoreError(f"Qdrant Edge collection {name!r} already exists")
            if folder.exists():  # a creation a crash interrupted: never acknowledged
                self._discard(folder)
            prepare_folder(folder)
            config = edge.EdgeConfig(
                vectors=edge.EdgeVectorParams(
                    size=vectors_config.size, distance=edge.Distance.Cosine, on_disk=vectors_config.on_disk
                ),
                sparse_vectors=_sparse_params(sparse_vectors_config),
                wal_enabled=None if self.persistent else False,
            )
            shard = edge.EdgeShard.create(str(folder / SHARD), config)
            try:
                if self.persistent:
                    shard.flush()  # the shard's files on disk before the definition says it exists
                _write_atomically(folder / DEFINITION_FILE, json.dumps(dict(metadata), sort_keys=True))
            except BaseException:
                shard.close()
                self._discard(folder)
                raise
            self._shards[name] = _Shard(shard)
            return True

    def update_collection(self, name: str, *, metadata: Mapping[str, Any]) -> bool:
        """``metadata`` merged into the collection's definition file, key by key (a server's
        ``update_collection(metadata=...)``); written as on creation (temporary file, rename)."""
        self._check_open()
        with self._catalog:
            definition = self._definition(name)
            if definition is None:
                raise CollectionNotFound(name)
            definition.update(metadata)
            _write_atomically(self._folder(name) / DEFINITION_FILE, json.dumps(definition, sort_keys=True))
            return True

    def delete_collection(self, name: str) -> bool:
        self._check_open()
        with self._catalog:
            folder = self._folder(name)
            if self._definition(name) is None:
                return False
            shard = self._shards.pop(name, None)
            if shard is not None:
                with shard.lock:
                    shard.shard.close()
            self._discard(folder)
            return True

    def _discard(self, folder: Path) -> None:
        trash = folder.with_name(f"{TRASH_PREFIX}{uuid.uuid4().hex}")
        os.replace(folder, trash)  # atomic: the collection is gone from here on
        _fsync_folder(folder.parent)
        shutil.rmtree(trash, ignore_errors=True)

    # --- points (qdrant-client's names and arguments) ---

    def upsert(self, name: str, *, points: Sequence[models.PointStruct], wait: bool = True) -> None:
        _must_wait(wait)
        operation = edge.UpdateOperation.upsert_points(edge_points(points))
        self._run(name, lambda s: s.update(operation))

    def delete(self, name: str, *, points_selector: Any, wait: bool = True) -> None:
        _must_wait(wait)
        if isinstance(points_selector, models.PointIdsList):
            operation = edge.UpdateOperation.delete_points([str(i) for i in points_selector.points])
        elif isinstance(points_selector, models.FilterSelector):
            operation = edge.UpdateOperation.delete_points_by_filter(edge_filter(points_selector.filter))
        else:
            raise TypeError(f"no Qdrant Edge form for the selector {type(points_selector).__name__}")
        self._run(name, lambda s: s.update(operation))

    def set_payload(
        self, name: str, *, payload: dict[str, Any], points: models.FilterSelector, key: str | None = None,
        wait: bool = True,
    ) -> None:
        _must_wait(wait)
        if not isinstance(points, models.FilterSelector):
            raise TypeError(f"no Qdrant Edge form for the selector {type(points).__name__}")
        operation = edge.UpdateOperation.set_payload_by_filter(edge_filter(points.filter), payload, key=key)
        self._run(name, lambda s: s.update(operation))

    def retrieve(
        self, name: str, *, ids: Sequence[str], with_payload: bool = True, with_vectors: bool = False
    ) -> list[Any]:
        point_ids = [str(i) for i in ids]
        return self._run(name, lambda s: s.retrieve(point_ids, with_payload, with_vectors))  # type: ignore[no-any-return]

    def query_points(
        self,
        name: str,
        *,
        query: Any,
        using: str | None = None,
        prefetch: Sequence[models.Prefetch] | None = None,
        query_filter: models.Filter | None = None,
        limit: int = 10,
        with_payload: bool = True,
        with_vectors: bool = False,
        search_params: models.SearchParams | None = None,
    ) -> QueryResult:
        request = edge.QueryRequest(
            limit=limit,
            query=edge_query(query, using),
            prefetches=None if prefetch is None else [edge_prefetch(p) for p in prefetch],
            filter=edge_filter(query_filter),
            with_payload=with_payload,
            with_vector=with_vectors,
            params=_search_params(search_params),
        )
        return QueryResult(self._run(name, lambda s: s.query(request)))

    def scroll(
        self,
        name: str,
        *,
        scroll_filter: models.Filter | None = None,
        limit: int = 10,
        offset: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> tuple[list[Any], Any]:
        request = edge.ScrollRequest(
            offset=None if offset is None else str(offset),
            limit=limit,
            filter=edge_filter(scroll_filter),
            with_payload=with_payload,
            with_vector=with_vectors,
        )
        return self._run(name, lambda s: s.scroll(request))  # type: ignore[no-any-return]

    def count(
        self, name: str, *, count_filter: models.Filter | None = None, exact: bool = True
    ) -> CountResult:
        request = edge.CountRequest(exact=exact, filter=edge_filter(count_filter))
        return CountResult(int(self._run(name, lambda s: s.count(request))))

    # --- lifecycle ---

    def flush(self) -> None:
        """Every shard's WAL and segments to disk (fsynced)."""
        with self._catalog:
            for shard in list(self._shards.values()):
                with shard.lock:
                    shard.shard.flush()

    def close(self) -> None:
        with self._catalog:
            if self._closed:
                return
            self._closed = True
            shards, self._shards = list(self._shards.values()), {}
            try:
                for shard in shards:
                    with shard.lock, contextlib.suppress(Exception):
                        shard.shard.close()  # flushes
            finally:
                self._lock.release()
                if not self.persistent:
                    shutil.rmtree(self.root, ignore_errors=True)


def _must_wait(wait: bool) -> None:
    if not wait:  # Edge applies every update before returning; nothing asks for less
        raise StoreError("Qdrant Edge applies writes synchronously (wait=True)")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
