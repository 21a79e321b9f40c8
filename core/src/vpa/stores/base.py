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
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import attrs

from vpa.errors import (
    CollectionNotFound,
    DimensionMismatch,
    EmbedderMismatch,
    InvalidCollection,
    StoreError,
    StoreTimeout,
    UnsupportedFilter,
    ValidationError,
    VPAError,
)
from vpa.filters import FilterLike, Node, operators_used, parse_filter
from vpa.models import (
    CollectionInfo,
    EmbedderFingerprint,
    HealthStatus,
    Hit,
    Metric,
    Record,
    StoreCapabilities,
)
from vpa.settings import NoSettings, structure_settings
from vpa.validation import check_ids, check_records, check_vector, record_bytes_bound

T = TypeVar("T")

COLLECTION_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")


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
