"""VPA store plugin for Milvus (Milvus Lite or a Milvus server), on the official pymilvus client.

The store is `vpa_milvus.store.MilvusStore`; importing this package never imports pymilvus."""

__version__ = "0.3.1"
