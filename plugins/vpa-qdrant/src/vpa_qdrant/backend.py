"""The two ways of talking to Qdrant, behind one ``await backend.call(method, ...)``.

- `RemoteBackend`: a Qdrant server over REST or gRPC, through the vendor's `AsyncQdrantClient`.
- `LocalBackend`: the client's embedded engine (``path=`` or ``":memory:"``). The vendor's async
  local engine does all its work synchronously inside ``async def``s, which would block the event
  loop; so local mode uses the sync `QdrantClient` in a worker thread (``asyncio.to_thread``),
  one call at a time per data folder (the embedded engine is not thread-safe).

The embedded engine takes an exclusive file lock on its folder, so two clients in one process
cannot open the same folder. Local clients are therefore shared per folder within a process and
reference-counted: every store on ``VPA_DATA_DIR/qdrant`` uses the same engine, and the last one
to close releases the folder for other processes.

`translate_errors` maps the vendor's exceptions (httpx, REST status codes, gRPC status codes,
local-mode errors) to VPA's typed errors, keeping the original as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from vpa.errors import (
    CollectionNotFound,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VPAError,
)
from vpa.offload import Offloader

# --- errors ----------------------------------------------------------------------------------


def _server_message(exc: UnexpectedResponse) -> str:
    try:
        error = exc.structured().get("status", {}).get("error")
    except Exception:
        error = None
    detail = f": {str(error)[:200]}" if error else ""
    return f"Qdrant answered {exc.status_code} {exc.reason_phrase}{detail}"


def _is_not_found_text(text: str) -> bool:
    text = text.lower()
    return "not found" in text or "doesn't exist" in text or "does not exist" in text


def map_error(exc: Exception, collection: str | None = None) -> VPAError:
    """The VPA error for a vendor exception (the caller raises it ``from exc``)."""
    if isinstance(exc, VPAError):
        return exc
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 0
        message = _server_message(exc)
        if status in (401, 403):
            return StoreAuthError(f"Qdrant rejected the credentials ({status}): check VPA_VECTOR_DB_API_KEY")
        if status == 404 and collection is not None:
            return CollectionNotFound(collection)
        if status in (408, 504):
            return StoreTimeout(message)
        if status == 429 or status >= 500:
            return StoreUnavailable(message)
        return StoreError(message)
    if isinstance(exc, ResourceExhaustedResponse):
        return StoreUnavailable(f"Qdrant is rate limiting requests (retry after {exc.retry_after_s}s)")
    if isinstance(exc, ResponseHandlingException):
        source = exc.source
        return map_error(source, collection) if isinstance(source, Exception) else StoreError(str(exc))
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return StoreTimeout(f"Qdrant did not answer in time: {type(exc).__name__}")
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return StoreUnavailable(f"cannot reach Qdrant: {type(exc).__name__}: {exc}")
    grpc_error = _map_grpc(exc, collection)
    if grpc_error is not None:
        return grpc_error
    text = str(exc)
    if isinstance(exc, ValueError) and collection is not None and _is_not_found_text(text):
        return CollectionNotFound(collection)  # local mode: "Collection x not found"
    if isinstance(exc, RuntimeError) and "already accessed by another instance" in text:
        return StoreUnavailable(
            f"{text} (the embedded engine allows one process per folder; use a Qdrant server to share it)"
        )
    return StoreError(f"Qdrant failed: {type(exc).__name__}: {text[:300]}")


def _map_grpc(exc: Exception, collection: str | None) -> VPAError | None:
    code_of = getattr(exc, "code", None)
    if not callable(code_of) or type(exc).__module__.split(".")[0] != "grpc":
        return None
    try:
        code = code_of()
        details = exc.details() if callable(getattr(exc, "details", None)) else ""  # type: ignore[attr-defined]
    except Exception:
        return None
    name = getattr(code, "name", str(code))
    message = f"Qdrant gRPC {name}: {str(details or '')[:200]}"
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return StoreAuthError(f"Qdrant rejected the credentials ({name}): check VPA_VECTOR_DB_API_KEY")
    if name == "NOT_FOUND" and collection is not None:
        return CollectionNotFound(collection)
    if name == "DEADLINE_EXCEEDED":
        return StoreTimeout(message)
    if name in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED"):
        return StoreUnavailable(message)
    return StoreError(message)


@contextlib.contextmanager
def translate_errors(collection: str | None = None) -> Iterator[None]:
    """Re-raise vendor exceptions as VPA errors (``raise ... from exc``)."""
    try:
        yield
    except VPAError:
        raise
    except Exception as exc:
        raise map_error(exc, collection) from exc


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
        kind = (method, args[0] if args else None)
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


# --- server mode -----------------------------------------------------------------------------


class RemoteBackend:
    """A Qdrant server through `AsyncQdrantClient`, created on first use (no I/O before)."""

    kind = "server"

    def __init__(self, **client_options: Any) -> None:
        self._options = client_options
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
