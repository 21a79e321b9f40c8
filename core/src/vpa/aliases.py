"""Collection aliases: a name that means another collection, kept in the store itself.

`vpa reindex` (`vpa.reindex`) re-embeds a collection into a new physical collection and then
makes the old *name* mean the new one, so every configuration that says ``VPA_COLLECTION=docs``
uses the re-embedded data without a change. That mapping has to be seen by every process and
server sharing the store, so it is stored there: the reserved collection `ALIASES`
(``vpa-aliases``, dimension 1), one record per alias — id the alias name, vector ``[1.0]``,
metadata ``{"target": <physical name>, "updated_at": <when>, "previous": <what it meant before>}``.
Being a collection like the others, it is backed up, restored and migrated with them.

The rules, chosen to keep resolution to one read and never ambiguous:

- **One level.** `resolve` reads the alias record of a name (one ``get``) and returns its target,
  or the name itself when there is none. A target is always a real collection: an alias may not
  point to another alias (nor to `ALIASES`, nor to itself), and a collection that an alias points
  to may not become an alias itself (that would make the first alias a chain).
- **An alias wins over a collection of the same name.** Setting an alias whose name is a real
  collection is refused unless asked for (``shadow=True``: what `vpa reindex` does to the
  collection it replaces). The shadowed collection is kept untouched, unreachable by that name
  while the alias exists: `remove_alias` makes the name mean it again (a roll-back), and
  ``vpa reindex --drop-old`` drops it.
- **A target must exist** when the alias is set. Dropping it afterwards leaves a dangling alias,
  which the RAG layer refuses (`DanglingAlias`) rather than silently creating an empty collection.

The RAG layer resolves ``config.collection`` once when it opens the collection (`RAGSystem.initialize`),
so a process that already opened the old collection keeps it until it is restarted; one whose
opening failed (an `EmbedderMismatch`, the usual reason to re-index) resolves again at its next
request. Listings of collections (`RAGSystem.list_collections`, ``vpa collections``) hide `ALIASES`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from vpa.errors import CollectionNotFound, DataCorrupted, InvalidCollection, ValidationError
from vpa.models import MetadataType, Record
from vpa.stores.base import VectorStore, check_collection_name
from vpa.typedjson import format_datetime, parse_datetime

#: The reserved collection that holds the aliases.
ALIASES = "vpa-aliases"
TARGET = "target"
PREVIOUS = "previous"
UPDATED_AT = "updated_at"
#: The most aliases `list_aliases` reads (aliases are a handful; this bounds a damaged store).
MAX_ALIASES = 100_000


class AliasError(ValidationError):
    """An alias that cannot be set as asked (to another alias, to itself, over a collection, ...).
    Nothing was changed."""

    code = "invalid_alias"


class DanglingAlias(CollectionNotFound):
    """An alias whose target collection no longer exists."""

    def __init__(self, alias: str, target: str) -> None:
        self.alias = alias
        self.target = target
        Exception.__init__(
            self,
            f"collection name {alias!r} is an alias of {target!r}, which does not exist: "
            f"`vpa alias remove {alias}` or `vpa alias set {alias} <collection>`",
        )
        self.name = target


@attrs.frozen
class Alias:
    """One alias: its name, the collection it means, what it meant before (None if nothing), when
    it was set, and whether a real collection of the same name is hidden by it."""

    name: str
    target: str
    previous: str | None = None
    updated_at: dt.datetime | None = None
    shadows: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"alias": self.name, "target": self.target, "previous": self.previous,
                "updated_at": None if self.updated_at is None else format_datetime(self.updated_at),
                "shadows_collection": self.shadows}


def _check_name(name: Any, what: str) -> str:
    check_collection_name(name)
    if name == ALIASES:
        raise InvalidCollection(f"{what} {ALIASES!r} is reserved: it holds the collection aliases")
    return name


def _alias_from(record: Record) -> Alias:
    meta = record.metadata
    target = meta.get(TARGET)
    try:
        check_collection_name(target)
    except InvalidCollection:
        raise DataCorrupted(
            f"alias {record.id[:80]!r} in {ALIASES!r} has no valid target ({target!r})"
        ) from None
    updated = meta.get(UPDATED_AT)
    if isinstance(updated, str):  # a store without datetimes keeps it as RFC 3339 text
        try:
            updated = parse_datetime(updated, UPDATED_AT)
        except ValidationError:
            updated = None
    previous = meta.get(PREVIOUS)
    return Alias(record.id, str(target), previous if isinstance(previous, str) and previous else None,
                 updated if isinstance(updated, dt.datetime) else None)


async def get_alias(store: VectorStore, name: str) -> Alias | None:
    """The alias named ``name``, or None (also when no alias was ever set in this store)."""
    _check_name(name, "collection name")
    try:
        found = await store.get(ALIASES, [name])
    except CollectionNotFound:
        return None
    return _alias_from(found[0]) if found else None


async def resolve(store: VectorStore, name: str) -> str:
    """The physical collection ``name`` means: an alias's target, else ``name`` itself. One read."""
    alias = await get_alias(store, name)
    return name if alias is None else alias.target


async def _exists(store: VectorStore, name: str) -> bool:
    try:
        await store.open_collection(name)
    except CollectionNotFound:
        return False
    return True


async def aliases_of(store: VectorStore, target: str) -> list[str]:
    """The aliases that point to ``target`` (a filtered count, then the names; no scroll needed
    for the usual answer, none)."""
    try:
        if not await store.count(ALIASES, {TARGET: target}):
            return []
    except CollectionNotFound:
        return []
    return sorted(a.name for a in await list_aliases(store) if a.target == target)


async def check_alias(store: VectorStore, alias: str, target: str | None, *, shadow: bool = False) -> None:
    """Every rule of `set_alias` for ``alias`` → ``target``, with no write: `AliasError`,
    `InvalidCollection` or `CollectionNotFound` when it would be refused. ``target`` None checks
    the alias name alone (for a target about to be created)."""
    _check_name(alias, "alias")
    if target is not None:
        _check_name(target, "alias target")
        if target == alias:
            raise AliasError(f"alias {alias!r} cannot point to itself")
        pointed = await get_alias(store, target)
        if pointed is not None:
            raise AliasError(f"{target!r} is itself an alias (of {pointed.target!r}); "
                             f"point {alias!r} at {pointed.target!r} instead")
        if not await _exists(store, target):
            raise CollectionNotFound(target)
    users = [a for a in await aliases_of(store, alias) if a != alias]
    if users:
        raise AliasError(f"collection {alias!r} is what alias {users[0]!r} points to; it cannot become "
                         "an alias too (aliases are one level)")
    if not shadow and await get_alias(store, alias) is None and await _exists(store, alias):
        raise AliasError(f"{alias!r} is a collection: an alias of that name would hide it (pass --shadow to "
                         "hide it on purpose; `vpa alias remove` shows it again)")


def _now(store: VectorStore) -> dt.datetime | str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return now if MetadataType.DATETIME in store.capabilities.metadata_types else format_datetime(now)


async def set_alias(store: VectorStore, alias: str, target: str, *, shadow: bool = False) -> Alias:
    """Make ``alias`` mean the existing collection ``target`` (replacing what it meant), after
    `check_alias`. ``shadow`` allows hiding a real collection named ``alias`` (kept as it is)."""
    await check_alias(store, alias, target, shadow=shadow)
    current = await get_alias(store, alias)
    previous = current.target if current is not None else (alias if await _exists(store, alias) else None)
    metadata: dict[str, Any] = {TARGET: target, UPDATED_AT: _now(store)}
    if previous is not None and previous != target:
        metadata[PREVIOUS] = previous
    await store.create_collection(ALIASES, 1)
    await store.upsert(ALIASES, [Record(alias, [1.0], "", metadata)])
    await store.settle(ALIASES)
    return _alias_from(Record(alias, [1.0], "", metadata))


async def remove_alias(store: VectorStore, alias: str) -> bool:
    """Remove the alias ``alias`` (the name means the collection of that name again, if any);
    False if there was none."""
    _check_name(alias, "alias")
    try:
        removed = await store.delete(ALIASES, ids=[alias]) > 0
    except CollectionNotFound:
        return False
    await store.settle(ALIASES)
    return removed


async def list_aliases(store: VectorStore) -> list[Alias]:
    """Every alias, by name, each marked when a real collection of its name is hidden by it.
    Reads the aliases by the store's scroll (a store of contract 1.1)."""
    try:
        await store.open_collection(ALIASES)
    except CollectionNotFound:
        return []
    found: list[Alias] = []
    async for page in store.scroll(ALIASES, batch_size=min(1000, store.capabilities.max_page_size),
                                   with_vectors=False):
        found.extend(_alias_from(r) for r in page.records)
        if len(found) > MAX_ALIASES:
            raise DataCorrupted(f"{ALIASES!r} holds more than {MAX_ALIASES} aliases")
    real = set(await store.list_collections())
    return sorted((attrs.evolve(a, shadows=a.name in real) for a in found), key=lambda a: a.name)
