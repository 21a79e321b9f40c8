"""The ways of talking to Qdrant, behind one ``await backend.call(method, ...)``: which engine,
how it runs, how it is shared and released. The store wraps each call in ``vendor_errors``.

- `LocalBackend` (the default, ``engine = "client"``): qdrant-client's own local mode
  (``path=`` or ``":memory:"``), a pure-Python re-implementation that stores every value as
  written. The vendor's async local engine does all its work synchronously inside ``async def``s,
  which would block the event loop; so it uses the sync `QdrantClient`, one call at a time per
  data folder (it is not thread-safe), through `vpa.offload.Offloader`.
- `EdgeBackend` (``engine = "edge"``, opt-in): Qdrant Edge, Qdrant's Rust engine in this process
  (`vpa_qdrant.edge.EdgeEngine`), one shard per collection under ``VPA_DATA_DIR/qdrant-edge``.
  Its calls release the GIL and run in a worker thread, or on the event loop for a kind of call
  it has lately answered in under 3 ms (`vpa.offload.Offloader`). Not the default: qdrant-edge-py
  0.9 stores some 17-significant-digit floats one ulp off (see the README).
- `RemoteBackend`: a Qdrant server over REST or gRPC, through the vendor's `AsyncQdrantClient`.

Both embedded engines own their folder: Edge through VPA's `FolderLock` (``.vpa.lock``, a second
process gets `DataFolderLocked` naming the owner's PID), qdrant-client's local mode through its
own file lock. Engines are therefore shared per folder within a process and reference-counted:
every store on the same folder uses the same engine, and the last one to close releases the
folder for other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient, models
from vpa.errors import StoreError
from vpa.offload import Offloader

from vpa_qdrant.edge import EdgeEngine
from vpa_qdrant.settings import QdrantSettings

# --- local mode ------------------------------------------------------------------------------


class _SharedLocal:
    """One embedded engine on one folder, shared by every store of this process using it."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.refs = 0


_POOL: dict[str, _SharedLocal] = {}
_POOL_LOCK = threading.Lock()


def _acquire(path: str | None) -> _SharedLocal:
    if path is None:
        shared = _SharedLocal(QdrantClient(location=":memory:"))
        shared.refs = 1
        return shared
    key = os.path.realpath(path)
    with _POOL_LOCK:
        shared = _POOL.get(key)
        if shared is None:
            Path(key).mkdir(parents=True, exist_ok=True)
            shared = _POOL[key] = _SharedLocal(QdrantClient(path=key))
        shared.refs += 1
        return shared


def _release(shared: _SharedLocal, path: str | None) -> None:
    with _POOL_LOCK:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if path is not None:
            _POOL.pop(os.path.realpath(path), None)
    with shared.lock:
        shared.client.close()


def _filtered(kwargs: dict[str, Any]) -> bool:
    """Whether a client call selects points by a filter (evaluated point by point locally)."""
    return any(
        isinstance(value, models.Filter | models.FilterSelector)
        for key, value in kwargs.items()
        if key in _FILTER_ARGUMENTS
    )


_FILTER_ARGUMENTS = frozenset({"query_filter", "count_filter", "scroll_filter", "points_selector", "points"})


class LocalBackend:
    """The embedded engine; ``path=None`` keeps everything in this store's memory only."""

    kind = "local"

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else os.fspath(path)
        self._shared: _SharedLocal | None = None
        self._open_lock = threading.Lock()
        self._offload = Offloader()
        self._closed = False

    def _open(self) -> _SharedLocal:
        with self._open_lock:
            if self._closed:
                raise StoreError("this store was closed")
            if self._shared is None:
                self._shared = _acquire(self.path)
            return self._shared

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        shared = self._shared
        if shared is None:
            shared = await asyncio.to_thread(self._open)  # reads the engine's folder: off the loop
        # The local engine is Python holding the GIL: a query on a small collection runs inline,
        # anything slower (or waiting for the engine's lock) on a worker thread (vpa.offload).
        # A filter is evaluated in Python point by point, so a filtered call is its own kind: an
        # unfiltered count answered in microseconds must not send the next filtered one inline.
        kind = (method, args[0] if args else None, _filtered(kwargs))
        bound = getattr(shared.client, method)
        return await self._offload.run(kind, lambda: bound(*args, **kwargs), shared.lock)

    async def close(self) -> None:
        def release() -> None:
            with self._open_lock:
                self._closed = True
                shared, self._shared = self._shared, None
            if shared is not None:
                _release(shared, self.path)

        await asyncio.to_thread(release)


# --- Qdrant Edge -----------------------------------------------------------------------------


class _SharedEdge:
    def __init__(self, engine: EdgeEngine) -> None:
        self.engine = engine
        self.refs = 0


_EDGE_POOL: dict[str, _SharedEdge] = {}


def _acquire_edge(path: str | None) -> tuple[_SharedEdge, str | None]:
    if path is None:  # in_memory: a private folder, removed on close
        import tempfile

        shared = _SharedEdge(EdgeEngine(tempfile.mkdtemp(prefix="vpa-qdrant-edge-"), persistent=False))
        shared.refs = 1
        return shared, None
    key = os.path.realpath(path)
    with _POOL_LOCK:
        shared = _EDGE_POOL.get(key)
        if shared is None:
            shared = _EDGE_POOL[key] = _SharedEdge(EdgeEngine(key))
        shared.refs += 1
        return shared, key


def _release_edge(shared: _SharedEdge, key: str | None) -> None:
    with _POOL_LOCK:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if key is not None:
            _EDGE_POOL.pop(key, None)
    shared.engine.close()


class EdgeBackend:
    """Qdrant Edge on a folder (``path``), or on a private temporary one (``path=None``)."""

    kind = "edge"

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else os.fspath(path)
        self._shared: _SharedEdge | None = None
        self._key: str | None = None
        self._open_lock = threading.Lock()
        self._offload = Offloader()
        self._closed = False

    def _open(self) -> EdgeEngine:
        with self._open_lock:
            if self._closed:
                raise StoreError("this store was closed")
            if self._shared is None:
                self._shared, self._key = _acquire_edge(self.path)
            return self._shared.engine

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        shared = self._shared
        engine = shared.engine if shared is not None else await asyncio.to_thread(self._open)
        # Inline only when the lock the call needs is free at once: the loop never waits for it.
        name = args[0] if args else None
        kind = (method, name, _filtered(kwargs))
        bound = getattr(engine, method)
        return await self._offload.run(kind, lambda: bound(*args, **kwargs), engine.lock_for(name))

    async def close(self) -> None:
        def release() -> None:
            with self._open_lock:
                self._closed = True
                shared, self._shared = self._shared, None
            if shared is not None:
                _release_edge(shared, self._key)

        await asyncio.to_thread(release)


# --- server mode -----------------------------------------------------------------------------


class RemoteBackend:
    """A Qdrant server through `AsyncQdrantClient`, created on first use (no I/O before).

    ``connection_pool_size`` (VPA_CONNECTION_POOL_SIZE) is the client's ``pool_size``: the httpx
    pool's connections over REST, the number of gRPC channels; 0 leaves the client's default."""

    kind = "server"

    def __init__(
        self, settings: QdrantSettings, *, api_key: str | None = None, connection_pool_size: int = 0
    ) -> None:
        options: dict[str, Any] = {
            "url": settings.url,
            "api_key": api_key,
            "prefer_grpc": settings.grpc_port is not None
            if settings.prefer_grpc is None
            else settings.prefer_grpc,
            "timeout": math.ceil(settings.timeout) if settings.timeout else None,
            "check_compatibility": settings.check_compatibility,
        }
        for option in ("grpc_port", "https"):
            if getattr(settings, option) is not None:
                options[option] = getattr(settings, option)
        if settings.prefix:
            options["prefix"] = settings.prefix
        if connection_pool_size:
            options["pool_size"] = connection_pool_size
        self._options = options
        self._client: AsyncQdrantClient | None = None
        self._closed = False

    def _get(self) -> AsyncQdrantClient:
        if self._closed:
            raise StoreError("this store was closed")
        if self._client is None:
            self._client = AsyncQdrantClient(**self._options)
        return self._client

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self._get(), method)(*args, **kwargs)

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
