"""The `qdrant` store, registered through VPA's store hook (entry point group ``vpa``)."""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_qdrant.store import BASE_CAPABILITIES, QdrantStore


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "qdrant",
        QdrantStore.from_config,
        capabilities=BASE_CAPABILITIES,
        description=(
            "Qdrant: embedded local mode in VPA_DATA_DIR/qdrant (exact search), or a server at "
            "VPA_VECTOR_DB_HOST (HNSW, approximate unless exact = true)"
        ),
    )
