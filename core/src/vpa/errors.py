"""The typed errors every VPA layer raises.

One hierarchy so that callers (the CLI, the REST service, a plugin's tests) can catch by meaning
rather than by vendor: a Chroma timeout and a Qdrant timeout are both `StoreUnavailable`. Every
error names the problem in its message; vendor exceptions are kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterable


class VPAError(Exception):
    """Base of every error VPA raises on purpose."""

    code: str = "vpa_error"


# --- bad input -------------------------------------------------------------------------------


class ValidationError(VPAError, ValueError):
    """The caller passed something VPA will not store or evaluate. Nothing was written."""

    code = "invalid_input"


class DimensionMismatch(ValidationError):
    """A vector's length differs from the collection's fixed dimension."""

    code = "dimension_mismatch"

    def __init__(self, expected: int, got: int, *, where: str = "vector") -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"{where} has dimension {got}, but the collection's dimension is {expected}")


class InvalidVector(ValidationError):
    """A vector holds NaN or infinite values, or is not a flat list of numbers."""

    code = "invalid_vector"


class InvalidId(ValidationError):
    """A record or document id is empty, not a string, or too long."""

    code = "invalid_id"


class InvalidMetadata(ValidationError):
    """A metadata key or value is outside the portable metadata types."""

    code = "invalid_metadata"


class InvalidFilter(ValidationError):
    """A filter is malformed: unknown operator, wrong value type, bad structure."""

    code = "invalid_filter"


class BatchTooLarge(ValidationError):
    """A request carries more items or bytes than the configured limit."""

    code = "batch_too_large"


class RecordTooLarge(ValidationError):
    """A record's text and metadata exceed what the store can hold per record."""

    code = "record_too_large"


class DocumentTooLarge(ValidationError):
    """A document's content exceeds ``VPA_MAX_DOCUMENT_BYTES``."""

    code = "document_too_large"


class LimitExceeded(ValidationError):
    """A request exceeds a declared bound (filter width or depth, metadata keys or bytes, ...).

    ``limit`` names the bound (e.g. ``"max_filter_terms"``), ``value`` is what was sent and
    ``maximum`` what is allowed. Raised before any I/O, so nothing was read or written.
    """

    code = "limit_exceeded"

    def __init__(self, limit: str, value: int, maximum: int, *, what: str = "") -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        detail = f"{what} " if what else ""
        super().__init__(f"{detail}exceeds {limit}: {value} > {maximum}")


class InvalidCollection(ValidationError):
    """A collection name, dimension or metric is not acceptable."""

    code = "invalid_collection"


# --- contract limits -------------------------------------------------------------------------


class UnsupportedFilter(VPAError):
    """The filter is valid VPA, but this store cannot express it natively. Nothing was changed."""

    code = "unsupported_filter"


class UnsupportedOperation(VPAError):
    """The store does not do this at all (say, ``scroll`` on a store that declares contract 1.0)."""

    code = "unsupported_operation"


class InvalidCursor(ValidationError):
    """A ``scroll`` cursor that this store did not hand out for this collection and filter."""

    code = "invalid_cursor"


class UnsupportedMetadata(ValidationError):
    """The metadata is valid VPA, but this store declares it cannot hold that type."""

    code = "unsupported_metadata"


class EmbedderMismatch(VPAError):
    """The collection was filled by another embedder (name, model or dimension). The way out is
    `vpa reindex`, which the RAG layer's message names (`between`): every chunk re-embedded from
    its stored text into a new collection, which the old name then means (`vpa.reindex`)."""

    code = "embedder_mismatch"

    @classmethod
    def between(cls, collection: str, stored: str, configured: str, command: str) -> EmbedderMismatch:
        """The error for ``collection``, filled by ``stored``, opened with ``configured``."""
        return cls(
            f"collection {collection!r} was filled by {stored}, not by the configured {configured}: "
            f"re-index it with `{command}` (every chunk re-embedded from its stored text), "
            "or use another collection"
        )


# --- collections -----------------------------------------------------------------------------


class CollectionNotFound(VPAError, LookupError):
    code = "collection_not_found"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"collection {name!r} does not exist")


# --- plugins and config ----------------------------------------------------------------------


class PluginNotFound(VPAError, LookupError):
    """No plugin of that kind is registered under that name."""

    code = "plugin_not_found"

    def __init__(self, kind: str, name: str, available: Iterable[str], *, broken: str = "") -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        listing = ", ".join(self.available) or "none"
        detail = f" ({broken})" if broken else ""
        super().__init__(f"unknown {kind} {name!r}; installed: {listing}{detail}")


class PluginError(VPAError):
    """A plugin failed to load or registered something inconsistent."""

    code = "plugin_error"


class ConfigError(VPAError, ValueError):
    code = "config_error"


class DependencyMissing(VPAError, ImportError):
    """An optional dependency (an extra) is needed for what was asked."""

    code = "dependency_missing"


# --- the backend -----------------------------------------------------------------------------


class StoreError(VPAError):
    """The backend failed in a way that is not the caller's fault."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The backend cannot be reached: connection refused, DNS, timeout."""

    code = "store_unavailable"


class StoreTimeout(StoreUnavailable):
    code = "store_timeout"


class StorageFull(StoreError):
    """The disk (or quota) is full: the write was rolled back, nothing of it is stored."""

    code = "storage_full"


class DataFolderLocked(StoreError):
    """Another process owns this data folder; a second writer would lose data."""

    code = "data_folder_locked"


class DataCorrupted(StoreError):
    """Stored data is damaged in a way a crash cannot explain; nothing was dropped or changed."""

    code = "data_corrupted"


class IncompleteDocument(StoreError):
    """A document's chunks are not all present (an ingest was interrupted); re-add it to repair."""

    code = "incomplete_document"


class StoreAuthError(StoreError):
    """The backend rejected our credentials."""

    code = "store_auth_failed"


# --- callers ---------------------------------------------------------------------------------


class AuthenticationError(VPAError):
    """No key, an unknown key or a revoked key."""

    code = "unauthenticated"


class PermissionDenied(VPAError):
    """The caller is known but its role does not allow the action."""

    code = "forbidden"


class DocumentNotFound(VPAError, LookupError):
    code = "document_not_found"

    def __init__(self, document_id: str) -> None:
        self.document_id = document_id
        super().__init__(f"document {document_id!r} does not exist")
