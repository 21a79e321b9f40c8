"""VPA's data model: what flows between the RAG layer, the plugins and the wire.

attrs classes, frozen where possible; `converter` turns them into JSON-ready dicts and back
(cattrs), with vectors as plain lists of floats.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import attrs
import cattrs
import numpy as np

#: The portable metadata value types: str, int, float, bool, lists of str and (contract 1.1)
#: timezone-aware datetimes.
MetadataValue: TypeAlias = str | int | float | bool | list[str] | _dt.datetime
Metadata: TypeAlias = dict[str, MetadataValue]

#: The version of the store contract this core defines. A store declares the version it meets;
#: one that declares an earlier version is held to that version's clauses only.
CONTRACT_VERSION = "1.1"
#: Every contract version this core still runs stores at.
CONTRACT_VERSIONS = ("1.0", "1.1")


def contract_at_least(version: str, wanted: str) -> bool:
    """Whether a declared contract ``version`` ("1.0", "1.1") includes ``wanted``."""
    def parts(v: str) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in str(v).split("."))
        except ValueError:
            return (0,)
    return parts(version) >= parts(wanted)


def as_vector(value: Any) -> np.ndarray:
    """A float32, one-dimensional, read-only copy of ``value`` (any sequence of numbers)."""
    array = np.array(value, dtype=np.float32, copy=True)
    if array.ndim != 1:
        array = array.reshape(-1) if array.size == 0 else array
    array.flags.writeable = False
    return array


def _vectors_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _metadata_copy(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy with lists as lists; a ``None`` value means the key is absent (contract 1.1), so it
    is left out — as document loaders write ``None`` for a field they did not find. A
    timezone-aware datetime is held in UTC (the same instant: what every store hands back)."""
    return {k: _value_copy(v) for k, v in (value or {}).items() if v is not None}


def _value_copy(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, _dt.datetime) and value.utcoffset() is not None and value.tzinfo is not _dt.UTC:
        try:
            return value.astimezone(_dt.UTC)
        except OverflowError:  # out of datetime's range in UTC: validation refuses it, as given
            return value
    return value


@attrs.frozen
class Record:
    """One stored item: an id, its vector, its text and flat metadata."""

    id: str
    vector: np.ndarray = attrs.field(
        converter=as_vector, eq=attrs.cmp_using(eq=_vectors_equal), hash=False, repr=False
    )
    text: str = ""
    metadata: Metadata = attrs.field(factory=dict, converter=_metadata_copy, hash=False)


@attrs.frozen
class Hit:
    """One query result. ``score`` is cosine similarity in [-1, 1] for ``query``, BM25 (positive)
    for ``lexical_query``, the fused score for ``hybrid_query``: higher is closer in each."""

    id: str
    score: float
    text: str = ""
    metadata: Metadata = attrs.field(factory=dict, converter=_metadata_copy, hash=False)


@attrs.frozen
class Document:
    """What an app ingests: a whole text with a title and metadata."""

    id: str
    content: str
    title: str = ""
    metadata: Metadata = attrs.field(factory=dict, converter=_metadata_copy, hash=False)


@attrs.frozen
class Chunk:
    """A piece of a document. ``text == document_text[start:end]``, always."""

    text: str
    start: int
    end: int
    index: int = 0


@attrs.frozen
class EmbedderFingerprint:
    """Identifies what filled a collection, so that another embedder cannot silently mix in."""

    name: str
    model: str
    dimension: int

    def describe(self) -> str:
        return f"{self.name}:{self.model} ({self.dimension}-d)"


class Metric(enum.StrEnum):
    """The index metric. Scores are reported as cosine similarity whatever the metric."""

    COSINE = "cosine"


@attrs.frozen
class CollectionInfo:
    name: str
    dimension: int
    metric: Metric = Metric.COSINE
    fingerprint: EmbedderFingerprint | None = None


class FilterOp(enum.StrEnum):
    """Every operator of the portable filter language."""

    EQ = "$eq"
    NE = "$ne"
    GT = "$gt"
    GTE = "$gte"
    LT = "$lt"
    LTE = "$lte"
    IN = "$in"
    NIN = "$nin"
    AND = "$and"
    OR = "$or"
    NOT = "$not"
    #: Contract 1.1: ``{"k": {"$exists": true}}``; ``{"k": None}`` means ``$exists: false``.
    EXISTS = "$exists"


class MetadataType(enum.StrEnum):
    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR_LIST = "list[str]"
    EMPTY_LIST = "empty list"
    #: Contract 1.1: a timezone-aware `datetime.datetime`, ``{"$date": "...Z"}`` in JSON.
    DATETIME = "datetime"


#: Every operator and type of contract 1.0: what a store that declares nothing else claims.
FILTER_OPS_1_0 = frozenset(FilterOp) - {FilterOp.EXISTS}
METADATA_TYPES_1_0 = frozenset(MetadataType) - {MetadataType.DATETIME}
#: Everything this core defines (contract 1.1); a 1.1 store declares these explicitly.
ALL_FILTER_OPS = frozenset(FilterOp)
ALL_METADATA_TYPES = frozenset(MetadataType)


@attrs.frozen
class StoreCapabilities:
    """What a store declares at registration; the conformance suite holds it to exactly this.

    ``exact`` stores must return the reference top-k; approximate ones must reach ``min_recall``.
    ``max_batch_size`` is the backend's own limit (the base class splits larger batches).
    ``eventually_consistent`` stores implement ``settle()``, which the suite calls instead of
    sleeping. ``heterogeneous_fields`` is False where one metadata key must keep one type across
    records (a typed schema, as in Weaviate); such a store raises `UnsupportedMetadata` on a
    conflicting write. ``max_record_bytes`` bounds text plus metadata (as UTF-8 JSON) per record.

    The defaults are contract 1.0's, so a store written for 1.0 keeps declaring exactly what it
    did. A 1.1 store declares ``contract_version="1.1"`` (see `contract_1_1`): ``scroll`` and
    ``update``, ``$exists``, datetimes and the wider metadata keys of `vpa.validation`.
    """

    contract_version: str = "1.0"
    filter_operators: frozenset[FilterOp] = attrs.field(
        default=FILTER_OPS_1_0, converter=lambda ops: frozenset(FilterOp(o) for o in ops)
    )
    metadata_types: frozenset[MetadataType] = attrs.field(
        default=METADATA_TYPES_1_0, converter=lambda ts: frozenset(MetadataType(t) for t in ts)
    )
    exact: bool = True
    min_recall: float = 1.0
    max_batch_size: int | None = None
    max_top_k: int | None = None
    eventually_consistent: bool = False
    persistent: bool = False
    heterogeneous_fields: bool = True
    max_record_bytes: int | None = None
    #: The backend's limit on one write request (bytes, estimated from above by
    #: ``VectorStore.request_bytes``); the base class splits batches by it as well as by count.
    max_request_bytes: int | None = None
    #: Bounds a store survives, enforced by the base class before any I/O (`LimitExceeded`).
    #: A filter's terms count every comparison and every value of an ``$in``/``$nin`` list.
    max_filter_terms: int = 1024
    max_filter_depth: int = 32
    max_metadata_keys: int = 256
    max_metadata_bytes: int = 64 * 1024
    #: Contract 1.1. The most records one ``scroll`` page may ask for (``batch_size``).
    max_page_size: int = 1000
    #: Whether ``scroll`` evaluates a filter natively; if not, a filtered scroll raises
    #: `UnsupportedFilter` (it is never filtered in Python after the fact).
    scroll_filters: bool = True
    #: Whether ``update`` is the engine's own metadata update (True) or VPA's documented
    #: read-modify-write (False: a concurrent upsert of the same record may be overwritten).
    native_update: bool = False
    #: Lexical search (optional, any contract version): ``lexical_query`` scores records by BM25 of
    #: their text (`vpa.lexical`), and ``hybrid_query`` fuses it with dense search. A store that
    #: does not declare it raises `UnsupportedOperation` — never a silent dense-only answer.
    lexical_search: bool = False
    #: Whether lexical hits rank exactly as `vpa.lexical.Bm25Index` (VPA's BM25); if not, the
    #: store returns at least ``lexical_min_recall`` of the reference top-k (its own analyser).
    lexical_exact: bool = True
    lexical_min_recall: float = 1.0
    #: Whether the engine fuses a hybrid query of the default fusion (``rrf``) itself, with VPA's
    #: RRF semantics (else VPA fuses the two native rankings). Linear fusion may still be VPA's:
    #: each plugin's README says which fusions its engine runs.
    native_fusion: bool = False

    @property
    def contract_1_1(self) -> bool:
        """Whether the store meets contract 1.1 (scroll, update, ``$exists``, datetimes, keys)."""
        return contract_at_least(self.contract_version, "1.1")


def contract_1_1(**changes: Any) -> StoreCapabilities:
    """Capabilities of a contract 1.1 store: every operator and type, then ``changes``."""
    base = {"contract_version": "1.1", "filter_operators": ALL_FILTER_OPS, "metadata_types": ALL_METADATA_TYPES}
    return StoreCapabilities(**{**base, **changes})


@attrs.frozen
class Page:
    """One page of a ``scroll``: its records and the cursor that resumes after it (None on the
    last page). The cursor is an opaque string, valid in another process and another store
    instance over the same collection."""

    records: list[Record]
    cursor: str | None = None


@attrs.frozen
class HealthStatus:
    """A component's health: ``ok`` and a one-line reason (never a secret)."""

    ok: bool
    detail: str = ""
    latency_ms: float | None = None


@attrs.frozen
class SearchResult:
    """One result of ``search_knowledge``: a document's best-matching chunk (or, with
    ``group_by="chunk"``, any matching chunk), with the score it was ranked by.

    ``score`` is what the results are ordered by (higher is better) and means what the search's
    ``mode`` makes it: the cosine similarity (``"dense"``), the BM25 score of the chunk's text
    (``"lexical"``: positive, unbounded, comparable only within one query's results), or the fused
    score (``"hybrid"``: RRF's ``sum 1 / (60 + rank)``, or the linear fusion's value in [0, 1]).
    ``similarity`` is the cosine similarity where the search computed one — in dense mode, where it
    equals ``score`` — and None otherwise: a BM25 or fused score is never passed off as a cosine.

    ``metadata`` is taken as given, not copied (unlike `Hit`): the RAG layer builds a fresh dict
    for every result, and a second copy cost ~3 µs a hit on the search path."""

    document_id: str
    chunk_id: str
    similarity: float | None
    content: str
    metadata: Metadata = attrs.field(factory=dict, hash=False)
    title: str = ""
    #: With ``group_by="document"`` and ``passages=True``: the document's other matching chunks,
    #: best first (each a `SearchResult` without passages of its own).
    passages: tuple[SearchResult, ...] = attrs.field(default=(), hash=False)
    #: The ranking score (see above); by default the similarity (a dense result).
    score: float = attrs.field(default=attrs.Factory(lambda self: self.similarity, takes_self=True))
    #: The search mode that ranked this result: ``"dense"``, ``"lexical"`` or ``"hybrid"``.
    mode: str = "dense"


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(np.ndarray, lambda a: [float(x) for x in a.tolist()])
    conv.register_structure_hook(np.ndarray, lambda v, _: as_vector(v))
    is_frozenset = lambda t: getattr(t, "__origin__", t) is frozenset  # noqa: E731
    conv.register_unstructure_hook_func(is_frozenset, lambda v: sorted(str(x) for x in v))
    conv.register_structure_hook_func(is_frozenset, lambda v, _: frozenset(v))
    # Metadata values are a union cattrs cannot dispatch on; they are plain JSON already.
    conv.register_structure_hook_func(lambda t: t == MetadataValue, lambda v, _: v)
    conv.register_structure_hook_func(lambda t: t == Metadata, lambda v, _: _metadata_copy(v))
    return conv


#: Structure and unstructure VPA models to and from JSON-ready Python values.
converter = _make_converter()


def to_json_dict(obj: Any) -> Any:
    return converter.unstructure(obj)


def from_json_dict(data: Any, cls: type) -> Any:
    return converter.structure(data, cls)


def vectors_matrix(records: Sequence[Record]) -> np.ndarray:
    """Stack the records' vectors into an (n, d) float32 matrix."""
    if not records:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([r.vector for r in records])
