"""VPA store plugin for Pinecone serverless, built on the official ``pinecone`` SDK."""

from vpa_pinecone.capabilities import CAPABILITIES

_LAZY = {"PineconeStore": "vpa_pinecone.store"}
__all__ = ["CAPABILITIES", "PineconeStore"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import the store lazily, so that registering the plugin does not load the vendor client."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
