"""Runs a store's coroutines for the (synchronous) contract tests.

One event loop per test function, kept across hypothesis examples, so a store may bind clients to
it. Every write is followed by ``store.settle(collection)`` when the store declares itself
eventually consistent; the suite never sleeps. Each example works in its own uniquely named
collection, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from vpa.filters import FilterLike
from vpa.models import CollectionInfo, EmbedderFingerprint, Hit, Page, Record, StoreCapabilities
from vpa.stores.base import VectorStore

T = TypeVar("T")

#: A store call that takes longer than this fails the test instead of hanging it.
CALL_TIMEOUT = 300.0


def collection_name(prefix: str = "c") -> str:
    """A fresh portable collection name (a letter, then 12 hex digits)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


class StoreHarness:
    """A store, its event loop and the bookkeeping of one test function."""

    def __init__(self, store: VectorStore, runner: asyncio.Runner, node: Any = None) -> None:
        if not isinstance(store, VectorStore):
            raise TypeError(
                f"the store fixture must return a vpa.stores.base.VectorStore, got {type(store).__name__}"
            )
        self.store = store
        self.capabilities: StoreCapabilities = store.capabilities
        self.runner = runner
        #: examples run (collections created by `collection`), reported per clause
        self.examples = 0
        #: set by a clause whose capability the store does not declare
        self.status: str | None = None
        self.node = node
        self.closed = False
        self._live: set[str] = set()

    # --- running -------------------------------------------------------------------------------

    def run(self, awaitable: Awaitable[T], timeout: float = CALL_TIMEOUT) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(awaitable, timeout)

        return self.runner.run(bounded())

    def settle(self, name: str) -> None:
        if self.capabilities.eventually_consistent:
            self.run(self.store.settle(name))

    # --- collections ---------------------------------------------------------------------------

    def create(
        self, name: str, dimension: int, fingerprint: EmbedderFingerprint | None = None
    ) -> CollectionInfo:
        info = self.run(self.store.create_collection(name, dimension, fingerprint=fingerprint))
        self._live.add(name)
        return info

    def drop(self, name: str) -> bool:
        self._live.discard(name)
        return self.run(self.store.drop_collection(name))

    @contextlib.contextmanager
    def collection(self, dimension: int, fingerprint: EmbedderFingerprint | None = None) -> Iterator[str]:
        """A new, empty collection for one example, dropped when the example ends."""
        name = collection_name()
        self.create(name, dimension, fingerprint)
        self.examples += 1
        try:
            yield name
        except BaseException:
            with contextlib.suppress(Exception):  # keep the example's own failure
                self.drop(name)
            raise
        if self.drop(name) is not True:
            raise AssertionError(f"drop_collection({name!r}) did not return True for an existing collection")

    def cleanup(self) -> None:
        for name in list(self._live):
            with contextlib.suppress(Exception):
                self.drop(name)

    # --- records (writes settle) ---------------------------------------------------------------

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        written = self.run(self.store.upsert(name, records))
        self.settle(name)
        return written

    def delete(self, name: str, ids: Sequence[str] | None = None, filter: FilterLike = None) -> int:
        removed = self.run(self.store.delete(name, ids=ids, filter=filter))
        self.settle(name)
        return removed

    def get(self, name: str, ids: Sequence[str]) -> list[Record]:
        return self.run(self.store.get(name, ids))

    def count(self, name: str, filter: FilterLike = None) -> int:
        return self.run(self.store.count(name, filter=filter))

    def query(
        self, name: str, vector: Sequence[float], top_k: int = 10, filter: FilterLike = None
    ) -> list[Hit]:
        return self.run(self.store.query(name, vector, top_k=top_k, filter=filter))

    def scroll_page(
        self,
        name: str,
        filter: FilterLike = None,
        batch_size: int = 256,
        cursor: str | None = None,
        with_vectors: bool = True,
        store: VectorStore | None = None,
    ) -> Page:
        return self.run(
            (store or self.store).scroll_page(
                name, filter, batch_size=batch_size, cursor=cursor, with_vectors=with_vectors
            )
        )

    def scroll(
        self, name: str, filter: FilterLike = None, batch_size: int = 256, with_vectors: bool = True
    ) -> list[Page]:
        """Every page of ``scroll`` (through the public async iterator)."""

        async def pages() -> list[Page]:
            return [
                page
                async for page in self.store.scroll(
                    name, filter, batch_size=batch_size, with_vectors=with_vectors
                )
            ]

        return self.run(pages())

    def update(
        self,
        name: str,
        ids: Sequence[str] | None = None,
        filter: FilterLike = None,
        set: Mapping[str, Any] | None = None,  # the contract's name
        unset: Sequence[str] | None = None,
    ) -> int:
        changed = self.run(self.store.update(name, ids, filter, set=set, unset=unset))
        self.settle(name)
        return changed

    def not_declared(self) -> None:
        """Mark this clause as concerning a capability the store does not declare (the clause
        still checks that the store refuses it with the typed error)."""
        self.status = "not declared"
        if self.node is not None and ("vpa_status", self.status) not in self.node.user_properties:
            self.node.user_properties.append(("vpa_status", self.status))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.run(self.store.close())

    def clamp_top_k(self, top_k: int) -> int:
        limit = self.capabilities.max_top_k
        return top_k if limit is None else min(top_k, limit)

    def info(self) -> dict[str, Any]:
        return {"store": type(self.store).__name__, "examples": self.examples, "status": self.status}
