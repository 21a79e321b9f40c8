"""Registers the `chroma` store with VPA (entry point ``vpa``: ``chroma = "vpa_chroma.plugin"``)."""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_chroma.store import ChromaStore


def factory(config: Any) -> ChromaStore:
    """``factory(config) -> store``: embedded unless ``VPA_VECTOR_DB_HOST`` is set. No I/O."""
    return ChromaStore.from_config(config)


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "chroma",
        factory,
        capabilities=ChromaStore.capabilities,
        description="Chroma: embedded (VPA_DATA_DIR/chroma) or a Chroma server (VPA_VECTOR_DB_HOST)",
    )
