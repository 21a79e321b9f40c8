"""Request and response models of the REST API: they validate every body and make /openapi.json.

Every response is an envelope: ``{"status": "success", "data": ..., "pagination": ...}`` or
``{"status": "error", "error": {"code": ..., "message": ..., "field": ...}}``. Error codes are the
stable ``code`` of VPA's typed errors (`vpa.errors`) plus a few of the HTTP layer's own
(`HTTP_CODES`). Limits that depend on the configuration (batch size, document bytes) are checked
by the routes and answered with 413; the static ones are part of the schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from vpa.errors import InvalidFilter, LimitExceeded, ValidationError
from vpa.filters import MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parse_filter
from vpa.lexical import MAX_QUERY_CHARS as MAX_LEXICAL_QUERY_CHARS
from vpa.lexical import MAX_QUERY_TERMS as MAX_LEXICAL_QUERY_TERMS
from vpa.rag import MAX_DOCUMENT_ID_LENGTH, MAX_TOP_K
from vpa.typedjson import DateError, decode_metadata, encode_metadata
from vpa.validation import MAX_KEY_LENGTH, check_metadata

T = TypeVar("T")

MAX_TITLE_LENGTH = 2000
MAX_QUERY_LENGTH = 10_000
MAX_USER_ID_LENGTH = 200
MAX_KEY_NAME_LENGTH = 200
#: The longest filter a listing takes as a query parameter (JSON characters, before URL encoding):
#: percent-encoded (up to 12 bytes a character), with a cursor and the headers, the request still
#: fits the server's 64 KiB request-head limit, so it is answered in JSON, never by the HTTP parser.
MAX_FILTER_QUERY_LENGTH = 4096
#: The most keys one PATCH may unset (the stores' metadata bounds are lower still).
MAX_PATCH_KEYS = 1024

#: Error codes of the HTTP layer itself (the rest are `vpa.errors` codes).
HTTP_CODES = {
    400: "bad_request",
    408: "request_timeout",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "overloaded",
}

#: A datetime in typed JSON (`vpa.typedjson`): an RFC 3339 date and time with a timezone.
DATE_SCHEMA = {
    "type": "object",
    "description": 'a datetime: {"$date": "2024-05-01T12:00:00Z"} (with a timezone; years 1684 to 2255)',
    "properties": {"$date": {"type": "string", "format": "date-time"}},
    "required": ["$date"],
    "additionalProperties": False,
}

METADATA_VALUES = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "array", "items": {"type": "string"}},
    DATE_SCHEMA,
]

METADATA_SCHEMA = {
    "type": "object",
    "description": "Flat metadata: str, int (within ±2**53), finite float, bool, list of str or datetime "
    '({"$date": "2024-05-01T12:00:00Z"}) values. Keys are 1-128 characters (loader-style keys such as '
    "`source-url` or `og:title` included), not starting with 'vpa_' or '$'; the store may hold "
    "fewer (a contract 1.0 store: [A-Za-z_][A-Za-z0-9_]*, at most 64). A null value is an absent key.",
    "additionalProperties": {"anyOf": [*METADATA_VALUES, {"type": "null"}]},
}

#: Metadata in responses: the same values, datetimes always as ``{"$date": ...}`` in UTC.
METADATA_OUT_SCHEMA = {
    "type": "object",
    "description": "The document's metadata (without VPA's own vpa_* keys); datetimes as "
    '{"$date": "2024-05-01T12:00:00Z"}, in UTC.',
    "additionalProperties": {"anyOf": METADATA_VALUES},
}

FILTER_SCHEMA = {
    "type": "object",
    "description": "Portable metadata filter (MongoDB style): "
    "$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not; a value may be a datetime "
    '({"$date": "2024-05-01T12:00:00Z"}), and null means absent ({"k": null} is {"k": {"$exists": false}}). '
    "It is always combined with the caller's tenant. "
    f"At most {MAX_FILTER_TERMS} terms (each value of an $in/$nin is one) and {MAX_FILTER_DEPTH} "
    "levels, or the smaller bounds the store declares; a filter over them is refused with "
    "413 limit_exceeded.",
    "additionalProperties": True,
}

Metadata = Annotated[dict[str, Any], WithJsonSchema(METADATA_SCHEMA)]
FilterSpec = Annotated[dict[str, Any], WithJsonSchema(FILTER_SCHEMA)]
#: Metadata of a response: datetimes written as typed JSON (``{"$date": ...}``), never as bare
#: strings, so a client reads back the type it sent.
MetadataOut = Annotated[
    dict[str, Any],
    PlainSerializer(encode_metadata, return_type=dict[str, Any]),
    WithJsonSchema(METADATA_OUT_SCHEMA),
]


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Typed JSON metadata (``{"$date": ...}`` → datetime), checked by VPA's own rules (the
    store's, possibly narrower, are the RAG layer's to apply)."""
    try:
        value = decode_metadata(value)
        check_metadata(value)
    except (ValidationError, DateError) as exc:
        raise ValueError(str(exc)) from None
    reserved = sorted(k for k in value if k.startswith("vpa_"))
    if reserved:
        raise ValueError(f"keys starting with 'vpa_' are reserved: {reserved}")
    return value


def _check_optional_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else _check_metadata(value)


def _check_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A malformed filter is a 422 here. One over the filter ceilings (`vpa.filters`) is let
    through to the route, where the same bounded parse — and the store's own, possibly smaller,
    bounds — refuse it with ``limit_exceeded`` (a validator can only answer ``invalid_input``).
    The parse stops at the first term or level past a bound, so this costs little either way."""
    if value is None:
        return None
    try:
        parse_filter(value)
    except LimitExceeded:
        return value
    except InvalidFilter as exc:
        raise ValueError(str(exc)) from None
    return value


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain non-whitespace text")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ----------------------------------------------------------------------------------


class DocumentIn(_Model):
    """A document to add (or replace, when the id exists)."""

    id: StrictStr = Field(
        min_length=1, max_length=MAX_DOCUMENT_ID_LENGTH, description="the document's id, unique per tenant"
    )
    title: StrictStr = Field("", max_length=MAX_TITLE_LENGTH)
    content: StrictStr = Field(
        min_length=1, description="the text; at most VPA_MAX_DOCUMENT_BYTES bytes of UTF-8"
    )
    metadata: Metadata = Field(default_factory=dict)

    check_content = field_validator("content")(_has_text)
    check_metadata_ = field_validator("metadata")(_check_metadata)

    @field_validator("id")
    @classmethod
    def check_id(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class DocumentUpdate(_Model):
    """New values for an existing document; fields left out keep their current value."""

    title: StrictStr | None = Field(None, max_length=MAX_TITLE_LENGTH)
    content: StrictStr | None = Field(None, min_length=1)
    metadata: Metadata | None = None

    @field_validator("content")
    @classmethod
    def check_content(cls, value: str | None) -> str | None:
        return None if value is None else _has_text(value)

    @field_validator("metadata")
    @classmethod
    def check_metadata_(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_metadata(value)


class BatchIn(_Model):
    """Documents to add in one call (at most VPA_MAX_BATCH_SIZE); all are validated before any is written."""

    documents: list[DocumentIn] = Field(min_length=1)


class MetadataPatch(_Model):
    """A change of a document's metadata in place, on every chunk, without re-embedding: ``set``
    adds or replaces keys (null removes one), ``unset`` removes keys. VPA's own ``vpa_*`` keys
    cannot be changed."""

    set: Metadata | None = Field(None, description="keys to add or replace (null: remove the key)")
    unset: list[Annotated[StrictStr, Field(min_length=1, max_length=MAX_KEY_LENGTH)]] | None = Field(
        None, max_length=MAX_PATCH_KEYS, description="keys to remove"
    )

    check_set = field_validator("set")(_check_optional_metadata)

    @field_validator("unset")
    @classmethod
    def check_unset(cls, value: list[str] | None) -> list[str] | None:
        reserved = sorted(k for k in value or () if k.startswith("vpa_"))
        if reserved:
            raise ValueError(f"keys starting with 'vpa_' are reserved: {reserved}")
        return value


class SearchIn(_Model):
    query: StrictStr = Field(min_length=1, max_length=MAX_QUERY_LENGTH)
    top_k: StrictInt = Field(5, ge=1, le=MAX_TOP_K, description="how many results to return")
    offset: StrictInt = Field(0, ge=0, le=MAX_TOP_K, description="results to skip (top_k + offset ≤ 1000)")
    page: StrictInt | None = Field(
        None, ge=1, le=MAX_TOP_K, description="the original interface's paging: page number from 1 (with per_page)"
    )
    per_page: StrictInt | None = Field(
        None, ge=1, le=MAX_TOP_K, description="results per page (default top_k); replaces top_k and offset"
    )
    filters: FilterSpec | None = None
    group_by: Literal["document", "chunk"] = Field(
        "document", description="one result per document (its best chunk), or one per chunk"
    )
    passages: StrictBool = Field(False, description="with group_by=document: each document's other matching chunks")
    user_id: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=MAX_USER_ID_LENGTH,
        description="the end user searching, for the search history (scoped to the calling key)",
    )
    mode: Literal["dense", "lexical", "hybrid"] = Field(
        "dense",
        description="rank by meaning (dense: cosine of embeddings), by words (lexical: BM25, at most "
        f"{MAX_LEXICAL_QUERY_CHARS} characters and {MAX_LEXICAL_QUERY_TERMS} distinct words), or both fused "
        "(hybrid); each result's `score` is the mode's. A store without lexical search answers 422 "
        "unsupported_operation for lexical and hybrid",
    )
    fusion: Literal["rrf", "linear"] | None = Field(
        None,
        description="with mode=hybrid only: reciprocal rank fusion (default) or a linear blend of the scores",
    )
    alpha: StrictFloat | None = Field(
        None, ge=0, le=1,
        description="with fusion=linear only: the dense half's weight, 0 (words only) to 1 (meaning only); "
        "default 0.5",
    )

    check_query = field_validator("query")(_has_text)
    check_filters = field_validator("filters")(_check_filter)

    @field_validator("fusion")
    @classmethod
    def check_fusion(cls, value: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if value is not None and mode is not None and mode != "hybrid":
            raise ValueError(f"fusion applies to mode 'hybrid' only, not {mode!r}")
        return value

    @field_validator("alpha")
    @classmethod
    def check_alpha(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and "mode" in info.data and "fusion" in info.data and (
            info.data["mode"] != "hybrid" or info.data["fusion"] != "linear"
        ):
            raise ValueError(
                "alpha weighs the linear fusion only: give mode 'hybrid' and fusion 'linear' with it"
            )
        return value


class KeyIn(_Model):
    role: Literal["reader", "writer", "admin"]
    name: StrictStr = Field("", max_length=MAX_KEY_NAME_LENGTH)


# --- responses ---------------------------------------------------------------------------------


class Pagination(BaseModel):
    offset: int
    limit: int
    count: int = Field(description="items in this page")
    total: int | None = Field(None, description="items in all pages, when known")
    page: int | None = Field(None, description="this page's number, from 1 (search)")
    per_page: int | None = Field(None, description="items per page (search)")


class SearchOut(BaseModel):
    """The original interface's search answer: ``data.results``."""

    results: list[SearchResultOut]


class Envelope(BaseModel, Generic[T]):
    status: Literal["success"] = "success"
    data: T
    pagination: Pagination | None = None


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str = Field(
        description="stable, machine-readable: e.g. invalid_input, invalid_filter, unauthenticated"
    )
    message: str
    field: str | None = Field(None, description="the request field at fault, when there is one")
    details: list[ErrorDetail] | None = None


class ErrorEnvelope(BaseModel):
    status: Literal["error"] = "error"
    error: ErrorBody


class IngestOut(BaseModel):
    document_id: str
    chunks: int
    unchanged: bool


class DocumentOut(BaseModel):
    id: str
    title: str
    content: str
    metadata: MetadataOut


class DocumentSummaryOut(BaseModel):
    """A document as a listing shows it: no text, no vectors."""

    id: str
    title: str
    metadata: MetadataOut
    chunks: int = Field(description="how many chunks the document is stored as")


class CursorPagination(BaseModel):
    limit: int = Field(description="the most items this page could hold")
    count: int = Field(description="items in this page (a page may hold fewer than limit before the last)")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null after the last. Opaque, valid only for the "
        "same filter and key's tenant"
    )


class CursorEnvelope(BaseModel, Generic[T]):
    status: Literal["success"] = "success"
    data: T
    pagination: CursorPagination


class MetadataUpdatedOut(BaseModel):
    document_id: str
    chunks: int = Field(description="chunks changed (every chunk of the document)")


class DeletedOut(BaseModel):
    document_id: str
    deleted: bool


#: What a result's ``score`` is, per mode (the OpenAPI description).
SCORE_DESCRIPTION = (
    "what the results are ranked by, higher is better: the cosine similarity (dense, in [-1, 1]), the BM25 "
    "score (lexical: positive, comparable within one query's results only), or the fused score (hybrid: "
    "rrf's sum of 1/(60 + rank), at most 2/61; linear in [0, 1])"
)
SIMILARITY_DESCRIPTION = "the cosine similarity, in dense mode (equal to score); null in lexical and hybrid mode"


class PassageOut(BaseModel):
    chunk_id: str
    similarity: float | None = Field(description=SIMILARITY_DESCRIPTION)
    score: float = Field(description=SCORE_DESCRIPTION)
    content: str


class SearchResultOut(BaseModel):
    document_id: str
    chunk_id: str
    similarity: float | None = Field(description=SIMILARITY_DESCRIPTION)
    score: float = Field(description=SCORE_DESCRIPTION)
    mode: Literal["dense", "lexical", "hybrid"] = Field(description="the search mode that ranked it")
    content: str
    title: str
    metadata: MetadataOut
    passages: list[PassageOut] | None = Field(None, description="with passages=true: other matching chunks")


class SearchHistoryOut(BaseModel):
    query_hash: str
    top_k: int
    results: int
    latency_ms: float
    timestamp: float
    filtered: bool


class ComponentHealth(BaseModel):
    ok: bool
    detail: str
    latency_ms: float | None = None


class LiveOut(BaseModel):
    status: Literal["ok"]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    store: ComponentHealth
    embedder: ComponentHealth


class StatsOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    provider: str
    collection: str
    embedder: str
    documents: int
    chunks: int
    total_searches: int
    avg_latency_ms: float
    p95_latency_ms: float
    cache_hit_rate: float | None = Field(
        description="hit rate of the process-wide cache: for an operator key only (null for a tenant's key)"
    )


class KeyOut(BaseModel):
    key_id: str
    role: str
    tenant: str | None = Field(description="null only for an operator key")
    name: str
    created_at: float
    revoked: bool


class NewKeyOut(KeyOut):
    key: str = Field(description="the secret: shown once, never stored")


class RevokedOut(BaseModel):
    key_id: str
    revoked: bool


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status it can answer with the error envelope."""
    reasons = {
        400: "the body could not be parsed, the key was sent twice (duplicate_credentials), or a listing's "
        "cursor is not one it handed out for this filter and tenant (invalid_cursor)",
        401: "no key, an unknown key or a revoked key",
        403: "the key's role does not allow this",
        404: "not found (in the caller's tenant)",
        408: "the request body did not arrive in time (request_timeout)",
        409: "the collection was filled by another embedder, or a document is incomplete (re-add it)",
        413: "body, document or batch too large, or over a declared limit (`limit_exceeded`: filter "
        "terms or depth, metadata keys or bytes per record)",
        415: "the body is not sent as JSON",
        422: "invalid input; `error.field` names the field",
        429: "rate limit exceeded; see Retry-After",
        502: "the vector store failed",
        503: "overloaded (concurrency cap), or the vector store is unavailable or its data folder in use",
        504: "the vector store timed out",
        507: "the store's disk is full (storage_full): nothing of the write was stored",
    }
    return {s: {"model": ErrorEnvelope, "description": reasons[s]} for s in statuses}
