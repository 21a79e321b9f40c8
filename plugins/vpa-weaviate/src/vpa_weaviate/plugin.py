"""The `weaviate` store, registered through VPA's store hook (entry point group ``vpa``)."""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_weaviate.store import CAPABILITIES, WeaviateStore


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "weaviate",
        WeaviateStore.from_config,
        capabilities=CAPABILITIES,
        description=(
            "Weaviate (v4 client, REST + gRPC) at VPA_VECTOR_DB_HOST:PORT or [providers.weaviate] url; "
            "HNSW cosine, typed properties, optional multi-tenancy"
        ),
    )
