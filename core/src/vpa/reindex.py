"""Re-embedding a collection with another embedder: the way out of `EmbedderMismatch`.

A collection is bound to the embedder that filled it (its fingerprint: name, model, dimension),
so configuring another embedder makes opening it fail. `reindex` moves it to the new embedder
without the source documents: every chunk's vector is computed again from the text stored with
it, into a **new physical collection** created with the new fingerprint (same ids, text and
metadata), and then the collection's name is made to mean the new one by an alias
(`vpa.aliases`), which every process sharing the store sees. Nothing is ever re-embedded in place:
until the alias is set, the old collection serves as before, and it is kept afterwards (hidden by
the alias when it has the name itself) until ``drop_old``.

- **Names.** The new collection is ``<name>--<embedder slug><dimension>-<n>`` (for example
  ``docs--hashing128-1``, ``docs--st384-1``), ``n`` the first free number, or ``target``.
- **What is embedded** is what the RAG layer embeds for a chunk (`vpa.rag.embedding_input`): its
  document's title (``vpa_title``), a newline, the chunk's text. Records without a title (not
  written by the RAG layer) are embedded from their text.
- **Resumable.** A run that stopped half-way (killed, a store error) leaves the new collection
  partly filled and no alias; running it again finds that collection (same name, same
  fingerprint) and skips every record already there with the same id, text and metadata, without
  embedding it again (counted as ``skipped``). Records since deleted from the source are removed.
  A collection that already uses the embedder is not copied at all (every record ``skipped``).
- **Verified before the switch.** The new collection must hold as many records as the source
  does at the end (a write during the run makes the counts differ: `VerificationFailed`, no
  alias set; run it again), and a sample must be the source's records field by field with
  vectors that are the new embedder's. Only then is the alias set.
- **Encryption at rest.** Give it the store the RAG layer uses (`vpa.portability.open_store`):
  the text is read in clear through it and sealed again on the way into the new collection.

Writers should be stopped while it runs: a document written to the old collection after its
record was copied is caught by the count check only if the number of records changed.
A running server keeps the collection it opened until it is restarted, unless it could not open
its collection (the mismatch this resolves), in which case its next request resolves the alias.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from vpa.aliases import ALIASES, AliasError, aliases_of, check_alias, get_alias, resolve, set_alias
from vpa.embedders.base import Embedder
from vpa.errors import CollectionNotFound, EmbedderMismatch, InvalidCollection, ValidationError
from vpa.layout import TITLE
from vpa.models import CollectionInfo, EmbedderFingerprint, Record
from vpa.portability import (
    Progress,
    VerificationFailed,
    _get_all,
    _open_target,
    _page_size,
    _remove_others,
    record_difference,
)
from vpa.rag import embedding_input
from vpa.stores.base import VectorStore, check_collection_name

#: Records read (and embedded) per page by default, and the most a caller may ask for.
BATCH = 256
MAX_BATCH = 10_000
#: Records compared field by field (and re-embedded) before the switch.
SAMPLE = 20
#: How close a stored vector must be to the new embedder's for the sampled text (cosine).
MIN_COSINE = 0.9999
#: Numbers tried for a new collection's name before giving up.
MAX_CANDIDATES = 100
MAX_NAME = 63


@attrs.frozen
class ReindexSummary:
    """What `reindex` did. ``collection`` is the name asked for, ``source`` the physical collection
    read, ``target`` the one written (which ``collection`` now means). ``records`` the source's
    records; ``written`` embedded and stored, ``skipped`` already there (a resumed or finished
    run), ``replaced`` there but different, ``removed`` there but gone from the source.
    ``dropped`` names the old collection when it was dropped. ``already``: the collection used the
    embedder already, nothing was copied."""

    collection: str
    source: str
    target: str
    records: int
    written: int
    skipped: int
    replaced: int
    removed: int
    seconds: float
    old_fingerprint: str | None
    new_fingerprint: str
    dropped: str | None = None
    already: bool = False

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["records_per_second"] = round(self.written / self.seconds, 1) if self.seconds > 0 else None
        return data


def slug(fingerprint: EmbedderFingerprint) -> str:
    """A short name for an embedder in a collection name: ``hashing128``, ``st384``."""
    parts = [p for p in re.split(r"[^a-z0-9]+", fingerprint.name.lower()) if p]
    short = "".join(p[0] for p in parts) if len(parts) > 1 else (parts[0][:12] if parts else "e")
    return f"{short}{fingerprint.dimension}"


def physical_name(collection: str, fingerprint: EmbedderFingerprint, n: int) -> str:
    """The ``n``-th name for ``collection`` re-embedded with ``fingerprint`` (at most 63 characters)."""
    suffix = f"--{slug(fingerprint)}-{n}"
    return check_collection_name(collection[: MAX_NAME - len(suffix)] + suffix)


def _title(record: Record) -> str:
    title = record.metadata.get(TITLE)
    return title if isinstance(title, str) else ""


def _same_stored(there: Record, record: Record) -> bool:
    """Whether ``there`` holds ``record``'s id, text and metadata (its vector is not compared: it
    was made from that text by the collection's embedder)."""
    return record_difference(there, attrs.evolve(record, vector=there.vector)) is None


async def _choose_target(
    store: VectorStore, collection: str, source: str, fingerprint: EmbedderFingerprint, target: str | None
) -> str:
    """The collection to write: ``target`` if given (not the source, not an alias, not another
    alias's target), else the first ``<collection>--<slug>-<n>`` that is free or is an unfinished
    run's (the same fingerprint, no alias pointing to it)."""
    if target is not None:
        check_collection_name(target)
        if target == ALIASES:
            raise InvalidCollection(f"{ALIASES!r} is reserved: it holds the collection aliases")
        if target == source:
            raise ValidationError(f"--target {target!r} is the collection being re-indexed")
        if await get_alias(store, target) is not None:
            raise AliasError(f"--target {target!r} is an alias; name a new collection")
        users = [a for a in await aliases_of(store, target) if a != collection]
        if users:
            raise AliasError(f"--target {target!r} is what alias {users[0]!r} points to; "
                             "name a new collection")
        try:
            there = await store.open_collection(target)
        except CollectionNotFound:
            return target
        if there.fingerprint != fingerprint:  # resuming into it is the only reason to name one that exists
            held = (there.fingerprint.describe() if there.fingerprint is not None
                    else f"no embedder ({there.dimension}-d)")
            raise EmbedderMismatch(f"--target {target!r} holds {held}, not {fingerprint.describe()}: "
                                   "name a new collection")
        return target
    for n in range(1, MAX_CANDIDATES + 1):
        name = physical_name(collection, fingerprint, n)
        if name == source or await get_alias(store, name) is not None:
            continue
        try:
            info = await store.open_collection(name)
        except CollectionNotFound:
            return name
        if info.fingerprint == fingerprint and not await aliases_of(store, name):
            return name  # an unfinished run's: resumed
    raise ValidationError(f"no free name for the re-indexed collection of {collection!r} after "
                          f"{MAX_CANDIDATES} tries; pass --target")


async def reindex(
    store: VectorStore,
    collection: str,
    embedder: Embedder,
    *,
    target: str | None = None,
    drop_old: bool = False,
    progress: Progress | None = None,
    batch_size: int = BATCH,
    sample: int = SAMPLE,
    seed: int = 0,
) -> ReindexSummary:
    """Re-embed every record of ``collection`` (a collection or an alias) with ``embedder`` into a
    new collection with its fingerprint, verify it, and make ``collection`` mean it (see the
    module's docstring). ``drop_old`` then drops the collection it meant before (or, when the
    collection used the embedder already, the one it meant before the last re-index).

    Refused before anything is written: a name that is not a collection (`CollectionNotFound`),
    the reserved alias collection, a target that is an alias or has another fingerprint, an alias
    that could not be set (`AliasError`), a batch size out of 1..`MAX_BATCH`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError(f"batch_size must be an integer from 1 to {MAX_BATCH}, got {batch_size!r}")
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample <= MAX_BATCH:
        raise ValidationError(f"sample must be an integer from 0 to {MAX_BATCH}, got {sample!r}")
    check_collection_name(collection)
    if collection == ALIASES:
        raise InvalidCollection(f"{ALIASES!r} is reserved: it holds the collection aliases")
    started = time.perf_counter()
    source = await resolve(store, collection)
    info = await store.open_collection(source)
    fingerprint = embedder.fingerprint
    old = info.fingerprint.describe() if info.fingerprint is not None else None

    if info.fingerprint == fingerprint:
        if target is not None and target != source:
            raise ValidationError(f"collection {collection!r} uses {fingerprint.describe()} already; "
                                  "nothing to re-index into --target")
        records = await store.count(source)
        dropped = await _drop_previous(store, collection, source) if drop_old else None
        seconds = time.perf_counter() - started
        return ReindexSummary(collection, source, source, records, 0, records, 0, 0, seconds, old,
                              fingerprint.describe(), dropped, already=True)

    # every refusal before the first write
    await check_alias(store, collection, None, shadow=True)
    if drop_old:
        others = [a for a in await aliases_of(store, source) if a != collection]
        if others:
            raise AliasError(f"--drop-old: collection {source!r} is also what alias {others[0]!r} points to")
    name = await _choose_target(store, collection, source, fingerprint, target)
    target_info, before = await _open_target(
        store, name, fingerprint.dimension, str(info.metric), fingerprint
    )

    copied = await _copy(store, info, target_info, embedder, resume=before > 0, progress=progress,
                         batch_size=batch_size, sample=sample, seed=seed)
    removed = await _remove_others(store, name, copied.ids) if before else 0
    await _verify(store, source, name, embedder, copied.sample)
    await set_alias(store, collection, name, shadow=True)
    dropped = None
    if drop_old and await store.drop_collection(source):
        dropped = source
    return ReindexSummary(
        collection, source, name, copied.records, copied.written, copied.skipped, copied.replaced, removed,
        time.perf_counter() - started, old, fingerprint.describe(), dropped,
    )


async def _drop_previous(store: VectorStore, collection: str, current: str) -> str | None:
    """Drop what ``collection`` meant before its last re-index, unless an alias still points to it."""
    alias = await get_alias(store, collection)
    previous = alias.previous if alias is not None else None
    if previous is None or previous in (current, ALIASES) or await aliases_of(store, previous):
        return None
    return previous if await store.drop_collection(previous) else None


@attrs.define
class _Copied:
    records: int = 0
    written: int = 0
    skipped: int = 0
    replaced: int = 0
    ids: set[str] = attrs.field(factory=set)
    sample: list[str] = attrs.field(factory=list)


async def _copy(
    store: VectorStore, source: CollectionInfo, target: CollectionInfo, embedder: Embedder, *, resume: bool,
    progress: Progress | None, batch_size: int, sample: int, seed: int,
) -> _Copied:
    """Scroll the source without vectors; for each page, skip what the target holds already (when
    resuming), embed the rest and upsert it — the upsert of one page overlapping the embedding of
    the next."""
    done = _Copied()
    rng = random.Random(seed)
    upsert: asyncio.Task[int] | None = None
    try:
        pages = store.scroll(source.name, batch_size=_page_size(store, batch_size), with_vectors=False)
        async for page in pages:
            batch = list({r.id: r for r in page.records}.values())
            if not batch:
                continue
            for record in batch:  # a uniform sample of the ids, in one pass
                done.records += 1
                if resume:
                    done.ids.add(record.id)
                if len(done.sample) < sample:
                    done.sample.append(record.id)
                elif sample and (j := rng.randrange(done.records)) < sample:
                    done.sample[j] = record.id
            fresh = batch
            if resume:
                present = {r.id: r for r in await store.get(target.name, [r.id for r in batch])}
                fresh = []
                for record in batch:
                    there = present.get(record.id)
                    if there is not None and _same_stored(there, record):
                        done.skipped += 1
                        continue
                    done.replaced += there is not None
                    fresh.append(record)
            if fresh:
                vectors = await embedder.aembed([embedding_input(_title(r), r.text) for r in fresh])
                records = [Record(r.id, v, r.text, r.metadata) for r, v in zip(fresh, vectors, strict=True)]
                if upsert is not None:
                    await upsert
                upsert = asyncio.create_task(store.upsert(target.name, records))
                done.written += len(records)
            if progress is not None:
                progress(len(batch))
        if upsert is not None:
            await upsert
    except BaseException:
        if upsert is not None and not upsert.done():
            upsert.cancel()
        raise
    return done


async def _verify(
    store: VectorStore, source: str, target: str, embedder: Embedder, sample: Sequence[str]
) -> None:
    """The target holds as many records as the source, and the sampled ones are the source's with
    the new embedder's vectors. `VerificationFailed` otherwise (nothing switched)."""
    for name in (source, target):
        await store.settle(name)
    count_source, count_target = await store.count(source), await store.count(target)
    if count_source != count_target:
        raise VerificationFailed(
            f"{target!r} holds {count_target} records, {source!r} {count_source}: was the collection "
            "written to during the re-index? Nothing was switched; run it again"
        )
    ids = list(sample)
    want = {r.id: r for r in await _get_all(store, source, ids)}
    got = {r.id: r for r in await _get_all(store, target, ids)}
    records = list(want.values())
    if not records:
        return
    vectors = await embedder.aembed([embedding_input(_title(r), r.text) for r in records])
    for record, vector in zip(records, vectors, strict=True):
        there = got.get(record.id)
        if there is None:
            raise VerificationFailed(f"record {record.id[:80]!r} is missing from {target!r}")
        if not _same_stored(there, record):
            difference = record_difference(there, attrs.evolve(record, vector=there.vector))
            raise VerificationFailed(f"record {record.id[:80]!r} differs in {target!r}: {difference}")
        stored = np.asarray(there.vector, dtype=np.float64)
        fresh = np.asarray(vector, dtype=np.float64)
        norms = float(np.linalg.norm(stored) * np.linalg.norm(fresh))
        cosine = float(stored @ fresh) / norms if stored.shape == fresh.shape and norms > 0 else -1.0
        if cosine < MIN_COSINE:
            raise VerificationFailed(f"record {record.id[:80]!r} in {target!r} does not hold the new "
                                     f"embedder's vector (cosine {cosine:.6f})")
