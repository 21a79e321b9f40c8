"""VPA store plugin for Qdrant (embedded local mode or a Qdrant server)."""

from vpa_qdrant.filters import to_qdrant_filter
from vpa_qdrant.store import QdrantStore, point_id

__all__ = ["QdrantStore", "point_id", "to_qdrant_filter"]
__version__ = "0.1.0"
