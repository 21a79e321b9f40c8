"""VPA provider plugin for Chroma (https://www.trychroma.com), on the official ``chromadb`` client."""

from vpa_chroma.filters import to_where
from vpa_chroma.store import ChromaStore

__all__ = ["ChromaStore", "to_where"]
__version__ = "0.1.0"
