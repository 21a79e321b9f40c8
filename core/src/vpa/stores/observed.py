"""A store whose calls are timed and counted, for the server's per-provider store metrics.

`observe_store` puts an `ObservedStore` next to the backend: inside the RAG layer's encryption
view or guard (so the time is the store's own, not VPA's sealing) and around the store itself
otherwise. Every other attribute is the store's own, so capabilities, options and checks are
unchanged. The observer receives ``(operation, seconds, error)`` — ``error`` is the exception's
class name, or None for a success or an answer such as `CollectionNotFound` — and never arguments, ids, text or results.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

#: The calls that reach the engine, observed by name.
OPERATIONS = frozenset({
    "open_collection", "create_collection", "drop_collection", "list_collections", "upsert", "query",
    "get", "delete", "count", "scroll_page", "update", "lexical_query", "hybrid_query", "health",
})

Observer = Callable[[str, float, "str | None"], None]
#: Exceptions that are an answer, not a failure: opening a collection that does not exist yet.
ANSWERS = frozenset({"CollectionNotFound"})


class ObservedStore:
    """``store`` with each call of `OPERATIONS` reported to ``observer``."""

    def __init__(self, store: Any, observer: Observer) -> None:
        self.inner = store
        self._observer = observer

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "_observer"):
            raise AttributeError(name)
        value = getattr(self.inner, name)
        if name not in OPERATIONS or not callable(value):
            return value
        observer = self._observer

        @functools.wraps(value)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await value(*args, **kwargs)
            except BaseException as exc:
                error = type(exc).__name__
                observer(name, time.perf_counter() - started, None if error in ANSWERS else error)
                raise
            observer(name, time.perf_counter() - started, None)
            return result

        return timed


def observe_store(store: Any, observer: Observer) -> Any:
    """``store`` (as the RAG layer holds it) with its backend's calls observed."""
    from vpa.crypto import EncryptedTextStore, SealedDataGuard

    if isinstance(store, EncryptedTextStore | SealedDataGuard):
        store.inner = ObservedStore(_unobserved(store.inner), observer)
        return store
    return ObservedStore(_unobserved(store), observer)


def _unobserved(store: Any) -> Any:
    """``store`` without an observer put there before (a second app over the same system)."""
    return store.inner if isinstance(store, ObservedStore) else store
