"""VPA store plugin for Weaviate, on the official ``weaviate-client`` v4."""

from vpa_weaviate.capabilities import CAPABILITIES

_LAZY = {"WeaviateSettings": "vpa_weaviate.store", "WeaviateStore": "vpa_weaviate.store"}
__all__ = ["CAPABILITIES", "WeaviateSettings", "WeaviateStore"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import the store lazily, so that registering the plugin does not load the vendor client."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
