"""VPA store plugin for Milvus (Milvus Lite or a Milvus server), on the official pymilvus client."""

_LAZY = {"MilvusStore": "vpa_milvus.store"}
__all__ = ["MilvusStore"]
__version__ = "0.1.1"


def __getattr__(name: str) -> object:
    """Import the store lazily, so that registering the plugin does not load the vendor client."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
