"""VPA store plugin for Qdrant (embedded local mode or a Qdrant server)."""

_LAZY = {"QdrantStore": "vpa_qdrant.store", "point_id": "vpa_qdrant.store", "to_qdrant_filter": "vpa_qdrant.filters"}
__all__ = ["QdrantStore", "point_id", "to_qdrant_filter"]
__version__ = "0.1.1"


def __getattr__(name: str) -> object:
    """Import the store lazily, so that registering the plugin does not load the vendor client."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
