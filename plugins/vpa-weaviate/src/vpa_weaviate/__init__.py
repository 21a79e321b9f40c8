"""VPA store plugin for Weaviate, on the official ``weaviate-client`` v4."""

from vpa_weaviate.store import CAPABILITIES, WeaviateSettings, WeaviateStore

__all__ = ["CAPABILITIES", "WeaviateSettings", "WeaviateStore"]
__version__ = "0.1.0"
