"""VPA provider plugin for Chroma (https://www.trychroma.com), on the official ``chromadb`` client.

The store is `vpa_chroma.store.ChromaStore`; importing this package does not import chromadb."""

__version__ = "0.3.1"
