"""The store contract, as an abstract base class that does the shared half of every store.

Public methods (`upsert`, `query`, ...) validate their input *before any I/O* — dimension, NaN,
empty ids, the filter and the store's declared capabilities — then call the backend's
underscore methods (`_upsert`, `_query`, ...), which a plugin implements. So a plugin author
writes only the translation to the vendor's client, and every store raises the same typed errors
for the same bad input.

Contract decisions, written once here (the conformance suite checks exactly these):

- ``create_collection`` is get-or-create: an existing collection with the same dimension is
  opened; another dimension raises `DimensionMismatch`, another embedder fingerprint raises
  `EmbedderMismatch`.
- ``upsert`` is idempotent per id, newest wins (also within one batch); any batch size is
  accepted and split to ``capabilities.max_batch_size``. The whole batch is validated first, so a
  bad record means nothing of that call is written.
- ``get`` returns the records that exist, in the order their ids were asked, each once.
- ``delete`` with neither ids nor filter raises `ValidationError` (it never means "delete all":
  use ``drop_collection``); deleting ids that do not exist is not an error. With both, a record
  must have one of the ids *and* match the filter. It returns how many records were removed.
- ``query`` returns at most ``top_k`` hits, best first; ``score`` is cosine similarity.
- The bounds a store declares (``max_filter_terms``, ``max_filter_depth``, ``max_metadata_keys``,
  ``max_metadata_bytes``) are enforced here, before any I/O, with `LimitExceeded` naming the
  bound: a store is only ever asked what it declared it survives.

Contract 1.1 adds (for a store that declares it):

- ``scroll`` (and ``scroll_page``, one page): every record that exists for the whole scroll and
  matches the filter comes back exactly once, in pages of at most ``batch_size`` records, each
  with a cursor that resumes after it — in another process too. The filter is evaluated by the
  engine (a store that cannot declares ``scroll_filters=False`` and raises `UnsupportedFilter`).
  A cursor is bound to its collection and filter: another one's is `InvalidCursor`.
- ``update``: metadata in place, by ids, by filter or both (the rules of ``delete``); ``set``
  values replace or add keys (``None`` removes one), ``unset`` removes keys; vector and text stay
  exactly as they were; returns how many records matched (and were updated). Native where
  ``native_update``, otherwise a read-modify-write (`_update`'s default): a concurrent upsert of
  the same record may then be overwritten.

Lexical search (optional, declared by ``lexical_search``):

- ``lexical_query(collection, text, top_k, filter)``: the records whose text best matches the
  query's words by VPA's BM25 (`vpa.lexical`: the tokens, the formula, statistics over the whole
  collection), best first, at most ``top_k``, only records holding at least one query token. The
  filter is the engine's, as for ``query``. A store with its own analyser declares
  ``lexical_exact=False`` and ``lexical_min_recall``.
- ``hybrid_query(collection, vector, text, top_k, filter, fusion="rrf", alpha=0.5)``: the dense
  and lexical rankings fused (`vpa.lexical.fuse`), the filter applied to both halves; by the engine
  where ``native_fusion``, else here from `candidates_for` hits of each half.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs

from vpa.errors import (
    CollectionNotFound,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
    InvalidCursor,
    InvalidFilter,
    LimitExceeded,
    StoreError,
    StoreTimeout,
    UnsupportedFilter,
    UnsupportedOperation,
    ValidationError,
    VPAError,
)
from vpa.filters import FilterLike, Node, canonical_json, evaluate, fields_used, operators_used, parse_filter
from vpa.models import (
    CollectionInfo,
    EmbedderFingerprint,
    HealthStatus,
    Hit,
    Metric,
    Page,
    Record,
    StoreCapabilities,
)
from vpa.settings import NoSettings, structure_settings
from vpa.validation import (
    check_ids,
    check_key,
    check_metadata,
    check_records,
    check_vector,
    key_problem,
    metadata_bytes,
    record_bytes_bound,
)

T = TypeVar("T")

COLLECTION_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
#: The longest cursor ``scroll`` accepts back (characters), checked before it is decoded.
MAX_CURSOR_LENGTH = 4096
#: ``scroll``'s page size when none is given.
DEFAULT_PAGE_SIZE = 256
#: Records a read-modify-write ``update`` fetches and rewrites at a time.
UPDATE_BATCH = 256


def check_collection_name(name: Any) -> str:
    """Portable collection names: a letter, then letters, digits, '_' or '-'; at most 63."""
    if not isinstance(name, str) or not COLLECTION_NAME_RE.fullmatch(name):
        raise InvalidCollection(
            f"collection name {name!r} is not portable: start with a letter, then letters, digits, "
            "'_' or '-', at most 63 characters"
        )
    return name


def batched(
    items: Iterable[T], count: int, budget: int | None = None, cost: Callable[[T], int] | None = None
) -> Iterator[list[T]]:
    """``items`` in consecutive lists of at most ``count`` items and, with a ``budget``, at most that
    much ``cost(item)`` in all (an item that costs more alone goes in a list of its own): how a
    store cuts records into requests, or ids into fetches."""
    part: list[T] = []
    size = 0
    for item in items:
        price = cost(item) if budget is not None and cost is not None else 0
        if part and (len(part) >= count or (budget is not None and size + price > budget)):
            yield part
            part, size = [], 0
        part.append(item)
        size += price
    if part:
        yield part


def _merged(metadata: Mapping[str, Any], set: Mapping[str, Any], unset: Sequence[str]) -> dict[str, Any]:  # noqa: A002
    merged = {k: v for k, v in metadata.items() if k not in unset}
    merged.update(set)
    return merged


def _cursor_binding(collection: str, node: Node | None) -> str:
    """What a cursor is valid for: its collection and filter (a short digest)."""
    digest = hashlib.sha256(f"{collection}\x00{canonical_json(node)}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def _seal_cursor(position: str, binding: str) -> str:
    if not isinstance(position, str):
        raise StoreError(f"a store's scroll position must be a string, got {type(position).__name__}")
    payload = json.dumps([1, binding, position], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _open_cursor(cursor: Any, binding: str) -> str:
    if not isinstance(cursor, str) or not cursor:
        raise InvalidCursor(f"cursor must be a non-empty string, got {type(cursor).__name__}")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise LimitExceeded("max_cursor_length", len(cursor), MAX_CURSOR_LENGTH, what="scroll cursor")
    try:
        version, bound_to, position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise InvalidCursor("cursor is not one that scroll handed out") from None
    if version != 1 or not isinstance(position, str):
        raise InvalidCursor("cursor is not one that scroll handed out")
    if bound_to != binding:
        raise InvalidCursor("cursor belongs to another collection or another filter")
    return position


class VectorStore(abc.ABC):
    """An async vector store. Subclass it and implement the underscore methods.

    A plugin is the translation to its vendor and nothing else. Beside the abstract methods below
    it may fill these seams, each optional:

    - ``settings_class`` / ``provider``: its ``[providers.<provider>]`` options as an attrs class
      (`vpa.settings`), structured by `settings_from`;
    - `declare`: its capabilities from its settings (the one definition; an instance may refine
      them after connecting by passing ``capabilities=`` to ``__init__``);
    - `check_record` (refuse one record with a typed error) and `_prepare_upsert` (schema work
      before a write); batches reach `_upsert` split by ``max_batch_size`` and by
      ``max_request_bytes`` as `request_bytes` estimates them;
    - `translate_error`: a vendor exception → VPA's typed error, applied by `vendor_errors` and
      `run_vendor` (which also forget a collection the backend says is gone);
    - `_close`, `_health` and `_settle` behind the public `close`, `health` and `settle`.

    No plugin overrides a public method or touches the base class's private state.
    """

    #: What this store can do in its default mode; `declare` refines it per settings.
    capabilities: ClassVar[StoreCapabilities] = StoreCapabilities()
    #: The attrs class of the store's ``[providers.<provider>]`` options.
    settings_class: ClassVar[type] = NoSettings
    #: The name of its ``[providers.<name>]`` table (empty: no options).
    provider: ClassVar[str] = ""

    def __init__(self, capabilities: StoreCapabilities | None = None) -> None:
        self._collections: dict[str, CollectionInfo] = {}
        if capabilities is not None:
            self.capabilities = capabilities  # type: ignore[misc]  # this instance's refinement

    # --- settings and capabilities ------------------------------------------------------------

    @classmethod
    def settings_from(cls, config: Any) -> Any:
        """The typed settings of ``[providers.<provider>]`` (unknown keys are a `ConfigError`),
        completed by `_resolve_settings` from the main configuration."""
        options = config.provider_options(cls.provider) if cls.provider and config is not None else {}
        settings = structure_settings(cls.settings_class, options, f"providers.{cls.provider or 'store'}")
        return cls._resolve_settings(settings, config) if config is not None else settings

    @classmethod
    def _resolve_settings(cls, settings: Any, config: Any) -> Any:
        """The plugin's settings completed by the main configuration (``VPA_VECTOR_DB_HOST`` picking
        a server mode, ``VPA_DATA_DIR`` a folder): both `declared` and ``from_config`` see it."""
        return settings

    @classmethod
    def declare(cls, settings: Any) -> StoreCapabilities:
        """What a store built with ``settings`` can do. Default: the class's ``capabilities``."""
        return cls.capabilities

    @classmethod
    def declared(cls, config: Any) -> StoreCapabilities:
        """What a store built from ``config`` declares, before it connects (the registry asks)."""
        return cls.declare(cls.settings_from(config))

    # --- collections -------------------------------------------------------------------------

    async def create_collection(
        self,
        name: str,
        dimension: int,
        *,
        metric: str | Metric = Metric.COSINE,
        fingerprint: EmbedderFingerprint | None = None,
    ) -> CollectionInfo:
        """Create the collection, or open it if it exists with a compatible definition."""
        check_collection_name(name)
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidCollection(f"dimension must be a positive integer, got {dimension!r}")
        try:
            metric = Metric(metric)
        except ValueError:
            raise InvalidCollection(f"unknown metric {metric!r}; supported: cosine") from None
        if fingerprint is not None and fingerprint.dimension != dimension:
            raise DimensionMismatch(dimension, fingerprint.dimension, where=f"embedder {fingerprint.describe()}")
        existing = await self._describe_collection(name)
        if existing is not None:
            self._check_compatible(existing, dimension, fingerprint)
            self._collections[name] = existing
            return existing
        info = CollectionInfo(name=name, dimension=dimension, metric=metric, fingerprint=fingerprint)
        await self._create_collection(info)
        self._collections[name] = info
        return info

    async def open_collection(self, name: str) -> CollectionInfo:
        """The collection's definition; raises `CollectionNotFound`. Cached after the first call."""
        info = self._collections.get(name)
        if info is None:
            check_collection_name(name)
            info = await self._describe_collection(name)
            if info is None:
                raise CollectionNotFound(name)
            self._collections[name] = info
        return info

    async def list_collections(self) -> list[str]:
        return sorted(await self._list_collections())

    async def drop_collection(self, name: str) -> bool:
        """Drop the collection and everything in it; False if it did not exist."""
        check_collection_name(name)
        self._collections.pop(name, None)
        return await self._drop_collection(name)

    @staticmethod
    def _check_compatible(
        existing: CollectionInfo, dimension: int, fingerprint: EmbedderFingerprint | None
    ) -> None:
        if existing.dimension != dimension:
            raise DimensionMismatch(existing.dimension, dimension, where=f"collection {existing.name!r} request")
        if fingerprint is not None and existing.fingerprint is not None and existing.fingerprint != fingerprint:
            raise EmbedderMismatch(
                f"collection {existing.name!r} was filled by {existing.fingerprint.describe()}, "
                f"not {fingerprint.describe()}: re-index it or use another collection"
            )

    # --- records -----------------------------------------------------------------------------

    async def upsert(self, collection: str, records: Sequence[Record]) -> int:
        """Insert or replace records by id; returns how many distinct ids were written."""
        info = await self.open_collection(collection)
        caps = self.capabilities
        # Validation is ~10 µs a record: a large batch is checked off the event loop, whole.
        if len(records) <= 256:
            batch = self._validate(info, records)
        else:
            batch = await asyncio.to_thread(self._validate, info, records)
        if not batch:
            return 0
        await self._prepare_upsert(info, batch)
        if caps.max_request_bytes is None and (caps.max_batch_size is None or len(batch) <= caps.max_batch_size):
            await self._upsert(info, batch)
        else:
            for part in self.split_batch(info, batch):
                await self._upsert(info, part)
        return len(batch)

    def _validate(self, info: CollectionInfo, records: Sequence[Record]) -> list[Record]:
        batch = self.check_records(records, info.dimension)
        if type(self).check_record is not VectorStore.check_record:
            batch = [self.check_record(info, record) for record in batch]
        return batch

    def check_record(self, info: CollectionInfo, record: Record) -> Record:
        """Refuse (with a typed `ValidationError`) one validated record this backend cannot
        hold; return it, or the form to write. Runs before any I/O. Default: accept."""
        return record

    async def _prepare_upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        """Schema work before a validated batch is written (say, declaring new typed fields)."""

    def request_bytes(self, info: CollectionInfo, record: Record) -> int:
        """An upper bound of what ``record`` adds to a write request: the vector as float32, the id
        as UTF-8, text and metadata as JSON (`record_bytes_bound`), and some framing."""
        return 4 * info.dimension + 4 * len(record.id) + record_bytes_bound(record) + 64

    def split_batch(self, info: CollectionInfo, records: Sequence[Record]) -> Iterable[list[Record]]:
        """``records`` in requests of at most ``max_batch_size`` records and ``max_request_bytes``
        estimated bytes (a record larger than that alone goes in a request of its own)."""
        caps = self.capabilities
        cost = (lambda record: self.request_bytes(info, record)) if caps.max_request_bytes is not None else None
        return batched(records, caps.max_batch_size or len(records), caps.max_request_bytes, cost)

    async def query(
        self, collection: str, vector: Sequence[float], top_k: int = 10, filter: FilterLike = None
    ) -> list[Hit]:
        """The ``top_k`` records most similar to ``vector`` that match ``filter``, best first."""
        info = await self.open_collection(collection)
        query_vector = check_vector(vector, info.dimension, where="query vector")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValidationError(f"top_k must be a positive integer, got {top_k!r}")
        limit = self.capabilities.max_top_k
        if limit is not None and top_k > limit:
            raise ValidationError(f"top_k {top_k} exceeds this store's limit of {limit}")
        node = self.prepare_filter(filter)
        return await self._query(info, query_vector, top_k, node)

    def _check_top_k(self, top_k: Any) -> int:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValidationError(f"top_k must be a positive integer, got {top_k!r}")
        limit = self.capabilities.max_top_k
        if limit is not None and top_k > limit:
            raise ValidationError(f"top_k {top_k} exceeds this store's limit of {limit}")
        return top_k

    def _require_lexical(self, what: str) -> None:
        if not self.capabilities.lexical_search:
            raise UnsupportedOperation(
                f"{type(self).__name__} does not declare lexical search, so it cannot answer {what}; "
                "use a store that does (see `vpa plugins`) or mode='dense'"
            )

    async def lexical_query(
        self, collection: str, text: str, top_k: int = 10, filter: FilterLike = None
    ) -> list[Hit]:
        """The ``top_k`` records whose text best matches ``text`` by BM25 (see the module
        docstring), best first; ``score`` is the BM25 score."""
        from vpa.lexical import query_terms

        self._require_lexical("a lexical query")
        info = await self.open_collection(collection)
        terms = query_terms(text)
        top_k = self._check_top_k(top_k)
        node = self.prepare_filter(filter)
        return await self._lexical_query(info, text, terms, top_k, node)

    async def hybrid_query(
        self,
        collection: str,
        vector: Sequence[float],
        text: str,
        top_k: int = 10,
        filter: FilterLike = None,
        *,
        fusion: str = "rrf",
        alpha: float = 0.5,
    ) -> list[Hit]:
        """Dense and lexical search fused (`vpa.lexical.fuse`), the filter on both halves; ``score``
        is the fused score."""
        from vpa.lexical import check_fusion, query_terms

        self._require_lexical("a hybrid query")
        info = await self.open_collection(collection)
        query_vector = check_vector(vector, info.dimension, where="query vector")
        terms = query_terms(text)
        top_k = self._check_top_k(top_k)
        fusion, alpha = check_fusion(fusion, alpha)
        node = self.prepare_filter(filter)
        return await self._hybrid_query(info, query_vector, text, terms, top_k, node, fusion, alpha)

    async def get(self, collection: str, ids: Sequence[str]) -> list[Record]:
        info = await self.open_collection(collection)
        wanted = list(dict.fromkeys(check_ids(ids)))
        if not wanted:
            return []
        found = {r.id: r for r in await self._get(info, wanted)}
        return [found[i] for i in wanted if i in found]

    async def delete(
        self, collection: str, ids: Sequence[str] | None = None, filter: FilterLike = None
    ) -> int:
        info = await self.open_collection(collection)
        if ids is None and filter is None:
            raise ValidationError(
                "delete needs ids or a filter; to remove everything, use drop_collection"
            )
        wanted = None if ids is None else list(dict.fromkeys(check_ids(ids)))
        node = self.prepare_filter(filter)
        if wanted is not None and not wanted:
            return 0
        if wanted is None and node is None:  # an empty filter ({}) matches everything
            raise ValidationError("delete with an empty filter would remove everything; use drop_collection")
        return await self._delete(info, wanted, node)

    async def count(self, collection: str, filter: FilterLike = None) -> int:
        info = await self.open_collection(collection)
        return await self._count(info, self.prepare_filter(filter))

    # --- contract 1.1: scroll and update ------------------------------------------------------

    def _require_1_1(self, what: str) -> None:
        if not self.capabilities.contract_1_1:
            raise UnsupportedOperation(
                f"{type(self).__name__} declares store contract {self.capabilities.contract_version}: "
                f"{what} needs contract 1.1"
            )

    async def scroll(
        self,
        collection: str,
        filter: FilterLike = None,
        *,
        batch_size: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        with_vectors: bool = True,
    ) -> AsyncIterator[Page]:
        """Every record matching ``filter``, in pages (`Page`: ``.records`` and ``.cursor``);
        ``cursor`` resumes after the page that handed it out. Records come back exactly once;
        with ``with_vectors=False`` their vectors are empty (shape ``(0,)``)."""
        page = await self.scroll_page(
            collection, filter, batch_size=batch_size, cursor=cursor, with_vectors=with_vectors
        )
        while True:
            yield page
            if page.cursor is None:
                return
            page = await self.scroll_page(
                collection, filter, batch_size=batch_size, cursor=page.cursor, with_vectors=with_vectors
            )

    async def scroll_page(
        self,
        collection: str,
        filter: FilterLike = None,
        *,
        batch_size: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        with_vectors: bool = True,
    ) -> Page:
        """One page of `scroll`: at most ``batch_size`` records (a page may hold fewer, even none,
        before the last) and the cursor of the next page, None after the last."""
        self._require_1_1("scroll")
        caps = self.capabilities
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size > caps.max_page_size:
            raise LimitExceeded("max_page_size", batch_size, caps.max_page_size, what="scroll batch_size")
        if not isinstance(with_vectors, bool):
            raise ValidationError(f"with_vectors must be true or false, got {with_vectors!r}")
        node = self.prepare_filter(filter)
        if node is not None and not caps.scroll_filters:
            raise UnsupportedFilter(f"{type(self).__name__} cannot filter a scroll natively")
        info = await self.open_collection(collection)
        binding = _cursor_binding(info.name, node)
        after = None if cursor is None else _open_cursor(cursor, binding)
        records, following = await self._scroll(info, node, batch_size, after, with_vectors)
        if len(records) > batch_size:
            raise StoreError(f"{type(self).__name__} returned {len(records)} records for a page of {batch_size}")
        return Page(records, None if following is None else _seal_cursor(following, binding))

    async def update(
        self,
        collection: str,
        ids: Sequence[str] | None = None,
        filter: FilterLike = None,
        *,
        set: Mapping[str, Any] | None = None,  # noqa: A002  # the contract's name
        unset: Sequence[str] | None = None,
    ) -> int:
        """Change metadata in place (see the module docstring); returns how many records matched."""
        self._require_1_1("update")
        info = await self.open_collection(collection)
        if ids is None and filter is None:
            raise ValidationError("update needs ids or a filter (an empty filter {} means every record)")
        changes, removed = self.check_update(set, unset)
        wanted = None if ids is None else list(dict.fromkeys(check_ids(ids)))
        node = self.prepare_filter(filter)
        if wanted is not None and not wanted:
            return 0
        return await self._update(info, wanted, node, changes, removed)

    def check_update(
        self, set: Mapping[str, Any] | None, unset: Sequence[str] | None  # noqa: A002
    ) -> tuple[dict[str, Any], list[str]]:
        """Validate an update's ``set`` and ``unset`` before any I/O: the metadata rules and the
        store's declared types and bounds for ``set`` (a ``None`` value moves its key to
        ``unset``), keys for ``unset``; a key in both, or neither given, is a `ValidationError`."""
        caps = self.capabilities
        if set is not None and not isinstance(set, Mapping):
            raise ValidationError(f"set must be a mapping of metadata, got {type(set).__name__}")
        if unset is not None and (isinstance(unset, str | bytes) or not isinstance(unset, Sequence | frozenset)):
            raise ValidationError("unset must be a list of metadata keys, not one string")
        if set is not None and len(set) > caps.max_metadata_keys:
            raise LimitExceeded("max_metadata_keys", len(set), caps.max_metadata_keys, what="update set")
        cleared = [k for k, v in (set or {}).items() if v is None]
        changes = check_metadata(set, caps.metadata_types, legacy_keys=not caps.contract_1_1)
        if changes and (size := metadata_bytes(changes)) > caps.max_metadata_bytes:
            raise LimitExceeded("max_metadata_bytes", size, caps.max_metadata_bytes, what="update set")
        removed = list(dict.fromkeys([*(check_key(k) for k in (unset or ())), *cleared]))
        if len(removed) > caps.max_metadata_keys:
            raise LimitExceeded("max_metadata_keys", len(removed), caps.max_metadata_keys, what="update unset")
        both = sorted(k for k in removed if k in changes)
        if both:
            raise ValidationError(f"update both sets and unsets {both}")
        if not changes and not removed:
            raise ValidationError("update needs set or unset")
        return changes, removed

    def check_records(self, records: Sequence[Record], dimension: int) -> list[Record]:
        """`vpa.validation.check_records` with every bound this store declares (metadata types,
        record bytes, metadata keys and bytes): what `upsert` runs before any I/O. A store that
        overrides `upsert` calls this first."""
        caps = self.capabilities
        return check_records(
            records,
            dimension,
            caps.metadata_types,
            caps.max_record_bytes,
            max_metadata_keys=caps.max_metadata_keys,
            max_metadata_bytes=caps.max_metadata_bytes,
            legacy_keys=not caps.contract_1_1,
        )

    def prepare_filter(self, spec: FilterLike) -> Node | None:
        """Parse a filter; refuse one over this store's ``max_filter_terms``/``max_filter_depth``
        (`LimitExceeded`, while parsing) and operators it does not declare (`UnsupportedFilter`)."""
        caps = self.capabilities
        node = parse_filter(
            spec,
            max_terms=caps.max_filter_terms,
            max_depth=caps.max_filter_depth,
            what=f"filter for {type(self).__name__}",
        )
        missing = operators_used(node) - caps.filter_operators
        if missing:
            raise UnsupportedFilter(
                f"{type(self).__name__} cannot evaluate {', '.join(sorted(missing))} natively"
            )
        if node is not None and not caps.contract_1_1:
            for field in fields_used(node):
                problem = key_problem(field, legacy=True)
                if problem is not None:
                    raise InvalidFilter(f"filter field: {problem}")
        return node

    # --- lifecycle ---------------------------------------------------------------------------

    async def health(self) -> HealthStatus:
        """Whether the backend answers (`_health`), with a one-line detail and the latency."""
        started = time.perf_counter()
        try:
            detail = await self._health()
        except Exception as exc:  # health reports, it does not raise
            return HealthStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")
        return HealthStatus(ok=True, detail=detail or "ok", latency_ms=(time.perf_counter() - started) * 1000)

    async def settle(self, collection: str) -> None:
        """Wait until every acknowledged write is visible to reads. Immediate stores do nothing;
        nor does settling a collection that no longer exists."""
        if not self.capabilities.eventually_consistent:
            return
        try:
            info = await self.open_collection(collection)
        except CollectionNotFound:
            return
        await self._settle(info)

    async def close(self) -> None:
        """Release clients and files (`_close`) and forget every collection. The store is
        unusable afterwards."""
        try:
            await self._close()
        finally:
            self._collections.clear()

    async def _health(self) -> str:
        """Raise if the backend does not answer; return a one-line detail (never a secret)."""
        await self._list_collections()
        return "ok"

    async def _settle(self, info: CollectionInfo) -> None:
        """An eventually consistent store waits here until its acknowledged writes are visible."""

    async def _close(self) -> None:
        """Release the vendor client and files."""

    # --- vendor calls -------------------------------------------------------------------------

    def translate_error(self, exc: BaseException, *, where: str, collection: str | None = None) -> BaseException:
        """VPA's typed error for a vendor exception raised while doing ``where``. A plugin maps
        its client's exceptions here (connection → `StoreUnavailable`, missing collection →
        `CollectionNotFound`, ...); the default keeps VPA's own errors and wraps the rest in
        `StoreError`."""
        if isinstance(exc, VPAError):
            return exc
        return StoreError(f"{where}: {type(exc).__name__}: {exc}")

    @contextlib.contextmanager
    def vendor_errors(self, where: str, collection: str | None = None) -> Iterator[None]:
        """Translate whatever the block raises (see `translate_error`); a collection the backend
        says does not exist is forgotten, so the next call looks again."""
        try:
            yield
        except VPAError as exc:  # already typed (a plugin's own check): passed through as it is
            if isinstance(exc, CollectionNotFound):
                self.forget_collection(collection or exc.name)
            raise
        except Exception as exc:
            error = self.translate_error(exc, where=where, collection=collection)
            if isinstance(error, CollectionNotFound):
                self.forget_collection(collection or error.name)
            if error is exc:
                raise
            raise error from exc

    async def run_vendor(
        self, where: str, fn: Callable[..., T], *args: Any, collection: str | None = None,
        timeout: float | None = None,
    ) -> T:
        """``fn(*args)``, a blocking vendor call, in a worker thread, its errors translated. With
        ``timeout``, a call that takes longer is a `StoreTimeout` (for clients that can wait
        forever; the thread finishes on its own)."""
        with self.vendor_errors(where, collection):
            if timeout is None:
                return await asyncio.to_thread(fn, *args)
            try:
                return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
            except TimeoutError:
                raise StoreTimeout(f"{where}: no answer within {timeout:g} s") from None

    def refine_capabilities(self, **changes: Any) -> StoreCapabilities:
        """What this instance learned after connecting (a server's lower batch limit, its version's
        features), as changes to its declared capabilities: the one place they are refined."""
        self.capabilities = attrs.evolve(self.capabilities, **changes)  # type: ignore[misc]
        return self.capabilities

    def forget_collection(self, name: str) -> None:
        """Drop the cached definition of ``name`` (say, after the backend lost it). A plugin that
        caches more per collection (a client handle) extends this and calls ``super()``."""
        self._collections.pop(name, None)

    async def __aenter__(self) -> VectorStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what a backend implements -----------------------------------------------------------

    @abc.abstractmethod
    async def _describe_collection(self, name: str) -> CollectionInfo | None: ...

    @abc.abstractmethod
    async def _create_collection(self, info: CollectionInfo) -> None: ...

    @abc.abstractmethod
    async def _list_collections(self) -> list[str]: ...

    @abc.abstractmethod
    async def _drop_collection(self, name: str) -> bool: ...

    @abc.abstractmethod
    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        """Write one batch (validated, unique ids, at most ``max_batch_size``)."""

    @abc.abstractmethod
    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]: ...

    @abc.abstractmethod
    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        """The records among ``ids`` that exist, in any order."""

    @abc.abstractmethod
    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        """Delete by ids, by filter or both (ids and filter); return how many were removed."""

    @abc.abstractmethod
    async def _count(self, info: CollectionInfo, node: Node | None) -> int: ...

    # --- contract 1.1: what a backend implements ---------------------------------------------

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """One page from the engine's own cursor: at most ``limit`` records matching ``node``
        after the position ``after`` (None: the start; else a string this method returned), and
        the position after this page (None once nothing is left). The position must survive a
        new process (a key to resume after, an offset token — not a live server-side iterator),
        and records that exist for the whole scroll come back exactly once."""
        raise UnsupportedOperation(f"{type(self).__name__} does not implement scroll")

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        """The engine's lexical search: ``text`` as given, ``terms`` its distinct VPA tokens."""
        raise UnsupportedOperation(f"{type(self).__name__} does not implement lexical search")

    async def _hybrid_query(
        self,
        info: CollectionInfo,
        vector: Any,
        text: str,
        terms: list[str],
        top_k: int,
        node: Node | None,
        fusion: str,
        alpha: float,
    ) -> list[Hit]:
        """Default: both halves (`vpa.lexical.candidates_for` hits each, concurrently), fused here.
        An engine that fuses natively overrides this and declares ``native_fusion``."""
        from vpa.lexical import candidates_for, fuse

        depth = candidates_for(top_k, self.capabilities.max_top_k)
        dense, lexical = await asyncio.gather(
            self._query(info, vector, depth, node), self._lexical_query(info, text, terms, depth, node)
        )
        from vpa import tracing

        with tracing.span("vpa.fusion", fusion=fusion, dense=len(dense), lexical=len(lexical), top_k=top_k):
            return [
                Hit(hit.id, score, hit.text, hit.metadata)
                for hit, score in fuse(dense, lexical, top_k, fusion=fusion, alpha=alpha)
            ]

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],  # noqa: A002
        unset: list[str],
    ) -> int:
        """Change the metadata of the records with ``ids`` (None: any) that match ``node``; return
        how many matched. Default: read-modify-write — the matching ids first (by `_get`, or by
        `_scroll` without vectors), then `_get` and a validated `_upsert` of their merged form,
        ``UPDATE_BATCH`` at a time. A plugin with a native update overrides it and declares
        ``native_update``."""
        if ids is None:
            targets: list[str] = []
            after: str | None = None
            while True:
                page, after = await self._scroll(info, node, self.capabilities.max_page_size, after, False)
                targets.extend(r.id for r in page)
                if after is None:
                    break
            node_left = None
        else:
            targets, node_left = ids, node
        changed = 0
        for part in batched(targets, UPDATE_BATCH):
            found = await self._get(info, part)
            merged = [
                Record(r.id, r.vector, r.text, _merged(r.metadata, set, unset))
                for r in found
                if node_left is None or evaluate(node_left, r.metadata)
            ]
            if not merged:
                continue
            batch = self._validate(info, merged)
            await self._prepare_upsert(info, batch)
            for piece in self.split_batch(info, batch):
                await self._upsert(info, piece)
            changed += len(batch)
        return changed
