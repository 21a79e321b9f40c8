"""Registers the `chroma` store with VPA (entry point ``vpa``: ``chroma = "vpa_chroma.plugin"``).

Import-light on purpose: chromadb is imported only when a store is built.
"""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_chroma.capabilities import CAPABILITIES


def factory(config: Any) -> Any:
    """``factory(config) -> ChromaStore``: embedded unless ``VPA_VECTOR_DB_HOST`` is set. No I/O."""
    from vpa_chroma.store import ChromaStore

    return ChromaStore.from_config(config)


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "chroma",
        factory,
        capabilities=CAPABILITIES,
        description="Chroma: embedded (VPA_DATA_DIR/chroma) or a Chroma server (VPA_VECTOR_DB_HOST)",
    )
