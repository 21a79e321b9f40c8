"""The `qdrant` store, registered through VPA's store hook (entry point group ``vpa``).

Import-light on purpose: qdrant-client is imported only when a store is built.
"""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_qdrant.capabilities import LOCAL_CAPABILITIES, capabilities_for


def factory(config: Any) -> Any:
    from vpa_qdrant.store import QdrantStore

    return QdrantStore.from_config(config)


@hookimpl
def vpa_register_stores(register: Any) -> None:
    # ``capabilities`` is the default mode (no VPA_VECTOR_DB_HOST): the persistent embedded engine,
    # exact. ``capabilities_for`` gives any configured mode's declaration (server mode: approximate
    # HNSW search unless the `exact` option is set).
    register(
        "qdrant",
        factory,
        capabilities=LOCAL_CAPABILITIES,
        capabilities_for=capabilities_for,
        description=(
            "Qdrant: embedded local mode in VPA_DATA_DIR/qdrant (exact search), or a server at "
            "VPA_VECTOR_DB_HOST (HNSW, approximate unless exact = true)"
        ),
    )
