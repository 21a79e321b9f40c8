"""Clause: a document is visible whole or not at all, even when an ingest dies between chunk writes.

The RAG layer writes each version of a document as body chunks first and a head (its completion
marker) last (`vpa.layout`). This clause runs the real RAG layer over the store under test, kills
an ingest at every store call it makes — with the call itself half-applied, as a crash in a
non-atomic batch would leave it — and then, from a fresh RAG system (no caches, as after a
restart), checks that:

- ``get_document`` returns exactly one complete version of each document (the old or the new),
  or nothing for a document that never completed — never a partial or mixed text;
- no search hit is a chunk of a version that did not complete;
- adding the same documents again repairs every document it did not finish (none is reported
  "unchanged" unless its new version is whole in the store), after which only the new versions
  are visible.
"""

from __future__ import annotations

from typing import Any

from vpa.caches.lru import LRUCache
from vpa.chunkers.recursive import RecursiveChunker
from vpa.config import load_config
from vpa.embedders.hashing import HashingEmbedder
from vpa.errors import IncompleteDocument
from vpa.models import Document, Record
from vpa.rag import RAGSystem

from vpa_conformance.checks import fail
from vpa_conformance.harness import StoreHarness, collection_name

__all__ = ["DocumentAtomicityClauses", "SimulatedCrash"]

DIMENSION = 32
#: Chunks of at most this many characters, four records per store call: several calls a version.
CHUNK_SIZE = 120
CHUNK_OVERLAP = 20


class SimulatedCrash(Exception):
    """The process 'died' here: the store call was applied only in part."""


class _CrashingStore:
    """The store under test, except that its ``crash_at``-th upsert writes only the first half of
    its records and then raises `SimulatedCrash`."""

    def __init__(self, inner: Any, crash_at: int) -> None:
        self._inner = inner
        self._crash_at = crash_at
        self.upserts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def upsert(self, collection: str, records: list[Record]) -> int:
        self.upserts += 1
        if self.upserts == self._crash_at:
            half = list(records)[: len(records) // 2]
            if half:
                await self._inner.upsert(collection, half)
            raise SimulatedCrash(f"crash during store call {self.upserts}")
        return await self._inner.upsert(collection, records)

    async def delete(self, collection: str, *args: Any, **kwargs: Any) -> int:
        if self.upserts >= self._crash_at:  # dead processes delete nothing
            raise SimulatedCrash("crashed before deleting")
        return await self._inner.delete(collection, *args, **kwargs)


def _text(topic: str, version: int, sentences: int) -> str:
    return " ".join(
        f"{topic} fact {i} of version {version} says {topic}{i * 7 + version}."
        for i in range(sentences)
    )


OLD = [
    Document("alpha", _text("alpha", 1, 14), "Alpha", {"v": 1}),
    Document("beta", _text("beta", 1, 9), "Beta", {"v": 1}),
]
NEW = [
    Document("alpha", _text("alpha", 2, 11), "Alpha", {"v": 2}),  # fewer chunks than before
    Document("beta", _text("beta", 2, 16), "Beta", {"v": 2}),  # more chunks than before
    Document("gamma", _text("gamma", 2, 12), "Gamma", {"v": 2}),  # new
]


class DocumentAtomicityClauses:
    """Mixed into `StoreContract`; uses its ``vpa_store`` harness."""

    def _rag(self, h: StoreHarness, store: Any, name: str) -> RAGSystem:
        config = load_config(
            {"collection": name, "embedding_batch_size": 1, "chunk_size": CHUNK_SIZE,
             "chunk_overlap": CHUNK_OVERLAP},
            environ={},
        )
        return RAGSystem(
            config, store=store, embedder=HashingEmbedder(DIMENSION),
            chunker=RecursiveChunker(CHUNK_SIZE, CHUNK_OVERLAP), cache=LRUCache(),
        )

    def _settle(self, h: StoreHarness, name: str) -> None:
        h.settle(name)

    def _check_whole(
        self, h: StoreHarness, name: str, allowed: dict[str, list[str | None]], when: str
    ) -> dict[str, str | None]:
        """Every document reads as one of its allowed versions; every hit is a chunk of the version
        its document reads as. Returns what each document reads as."""
        rag = self._rag(h, h.store, name)  # a fresh process: nothing cached
        seen: dict[str, str | None] = {}
        for document_id, versions in allowed.items():
            try:
                document = h.run(rag.get_document(document_id))
            except IncompleteDocument as exc:
                fail(f"{when}: a document that was whole before the crash is now unreadable: {exc}")
            content = document.content if document is not None else None
            if content not in versions:
                shown = "nothing" if content is None else f"{len(content)} characters"
                fail(f"{when}: get_document({document_id!r}) returned {shown}, not a complete version")
            seen[document_id] = content
        for document_id in allowed:
            hits = h.run(rag.search_knowledge("conformance", f"{document_id} fact version", top_k=50))
            for hit in hits:
                whole = seen.get(hit.document_id)
                if whole is None or hit.content not in whole:
                    fail(
                        f"{when}: search served chunk {hit.chunk_id!r} of a version of {hit.document_id!r} "
                        "that is not the complete one"
                    )
        return seen

    def test_document_atomicity(self, vpa_store: StoreHarness) -> None:
        """A crash between chunk writes never serves a half-written document; re-adding repairs it."""
        h = vpa_store
        old = {d.id: d.content for d in OLD}
        new = {d.id: d.content for d in NEW}
        allowed = {d.id: [old.get(d.id), d.content] for d in NEW}
        crash_at = 1
        while True:
            name = collection_name("atom")
            h._live.add(name)
            h.examples += 1
            h.run(self._rag(h, h.store, name).add_documents(OLD))
            self._settle(h, name)
            crashing = _CrashingStore(h.store, crash_at)
            try:
                h.run(self._rag(h, crashing, name).add_documents(NEW))  # type: ignore[arg-type]
                finished = True
            except SimulatedCrash:
                finished = False
            self._settle(h, name)
            self._check_whole(h, name, allowed, f"after a crash at store call {crash_at}")
            results = h.run(self._rag(h, h.store, name).add_documents(NEW))
            self._settle(h, name)
            only_new: dict[str, list[str | None]] = {k: [v] for k, v in new.items()}
            seen = self._check_whole(h, name, only_new, f"re-adding after call {crash_at}")
            if seen != new:
                fail(f"re-adding after a crash at call {crash_at} did not repair every document")
            if finished and not all(r.unchanged for r in results):
                fail("re-adding documents that were written completely re-wrote them")
            stats = h.run(self._rag(h, h.store, name).get_system_stats())
            if stats["documents"] != len(NEW):
                fail(f"after repair the collection counts {stats['documents']} documents, not {len(NEW)}")
            h.drop(name)
            if finished:
                break
            crash_at += 1
