"""The vendor's exceptions → VPA's typed errors (the original stays as ``__cause__``)."""

from __future__ import annotations

from vpa.errors import CollectionNotFound, StoreError, StoreUnavailable

from vpa_dictstore.client import NoSuchCollection


def translate_error(exc: BaseException, *, where: str, collection: str | None = None) -> BaseException:
    if isinstance(exc, NoSuchCollection):
        return CollectionNotFound(collection or str(exc))
    if isinstance(exc, ConnectionError | TimeoutError):
        return StoreUnavailable(f"{where}: the backend cannot be reached ({type(exc).__name__})")
    return StoreError(f"{where}: {type(exc).__name__}: {exc}")
