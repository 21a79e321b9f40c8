"""Chroma and transport exceptions → VPA's typed errors (`translate_error`)."""

from __future__ import annotations

import sqlite3

import httpx
from chromadb import errors as chroma_errors
from vpa.errors import (
    CollectionNotFound,
    StorageFull,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VPAError,
)


def translate_error(exc: BaseException, *, where: str, collection: str | None = None) -> BaseException:
    """The VPA error for a Chroma or transport exception raised while doing ``where`` (the caller
    keeps ``exc`` as ``__cause__``). Messages are short and never carry a credential."""
    if isinstance(exc, VPAError):
        return exc
    if isinstance(exc, chroma_errors.NotFoundError) and collection is not None:
        return CollectionNotFound(collection)
    if isinstance(exc, chroma_errors.ChromaAuthError | chroma_errors.AuthorizationError):
        return StoreAuthError(f"Chroma rejected the credentials ({type(exc).__name__})")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return StoreTimeout(f"Chroma did not answer in time: {where} ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return StoreUnavailable(f"cannot reach the Chroma server ({type(exc).__name__})")
    if isinstance(exc, chroma_errors.RateLimitError | chroma_errors.QuotaError):
        return StoreUnavailable(f"Chroma refused the request: {_brief(exc)}")
    if isinstance(exc, sqlite3.Error):  # the lexical index beside the folder (`vpa_chroma.lexical`)
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
            return StorageFull(f"the disk is full: {where} (the lexical index could not be written)")
        return StoreError(f"the lexical index failed: {where}: {type(exc).__name__}: {_brief(exc)}")
    if isinstance(exc, ValueError) and "Could not connect" in str(exc):
        return StoreUnavailable("cannot reach the Chroma server: connection refused")
    return StoreError(f"Chroma failed: {where}: {type(exc).__name__}: {_brief(exc)}")


def _brief(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
