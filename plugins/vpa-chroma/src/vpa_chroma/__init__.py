"""VPA provider plugin for Chroma (https://www.trychroma.com), on the official ``chromadb`` client."""

_LAZY = {"ChromaStore": "vpa_chroma.store", "to_where": "vpa_chroma.filters"}
__all__ = ["ChromaStore", "to_where"]
__version__ = "0.1.1"


def __getattr__(name: str) -> object:
    """Import the store lazily, so that registering the plugin does not load the vendor client."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
