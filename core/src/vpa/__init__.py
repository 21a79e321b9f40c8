"""VPA: one portable API for retrieval-augmented search over many vector databases."""

from vpa.errors import VPAError
from vpa.filters import parse_filter
from vpa.models import CollectionInfo, Document, EmbedderFingerprint, Hit, Record, SearchResult, StoreCapabilities

__all__ = [
    "CollectionInfo",
    "Document",
    "EmbedderFingerprint",
    "Hit",
    "Record",
    "SearchResult",
    "StoreCapabilities",
    "VPAError",
    "parse_filter",
]
