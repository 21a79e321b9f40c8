"""Registers the `milvus` store with VPA (entry point group ``vpa``).

Import-light on purpose: pymilvus is imported only when a store is built.
"""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_milvus.capabilities import CAPABILITIES


def factory(config: Any) -> Any:
    """A store from VPA's config: Milvus Lite under VPA_DATA_DIR, or the server at HOST:PORT."""
    from vpa_milvus.store import MilvusStore

    return MilvusStore.from_config(config)


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "milvus",
        factory,
        capabilities=CAPABILITIES,
        description="Milvus via pymilvus: Milvus Lite file under VPA_DATA_DIR/milvus, or a Milvus server",
    )
