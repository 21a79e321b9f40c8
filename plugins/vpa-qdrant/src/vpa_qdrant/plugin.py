"""Registers the `qdrant` store (entry point ``vpa``: ``qdrant = "vpa_qdrant.plugin"``);
qdrant-client is imported only when a store is built."""

from typing import Any

from vpa.hookspecs import hookimpl


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "qdrant",
        "vpa_qdrant.store:QdrantStore",
        description="Qdrant: embedded in VPA_DATA_DIR/qdrant (exact) or a server at VPA_VECTOR_DB_HOST",
    )
