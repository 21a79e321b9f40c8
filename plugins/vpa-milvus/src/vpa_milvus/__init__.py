"""VPA store plugin for Milvus (Milvus Lite or a Milvus server), on the official pymilvus client."""

from vpa_milvus.store import MilvusStore

__all__ = ["MilvusStore"]
__version__ = "0.1.0"
