"""Registers the `chroma` store (entry point ``vpa``: ``chroma = "vpa_chroma.plugin"``); chromadb
is imported only when a store is built."""

from typing import Any

from vpa.hookspecs import hookimpl


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "chroma",
        "vpa_chroma.store:ChromaStore",
        description="Chroma: embedded (VPA_DATA_DIR/chroma) or a Chroma server (VPA_VECTOR_DB_HOST)",
    )
