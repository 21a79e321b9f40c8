"""VPA store plugin for Weaviate, on the official ``weaviate-client`` v4 (`vpa_weaviate.store`)."""

__version__ = "0.3.1"
