"""The `weaviate` store, registered through VPA's store hook (entry point group ``vpa``).

Import-light on purpose: weaviate-client is imported only when a store is built.
"""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_weaviate.capabilities import CAPABILITIES


def factory(config: Any) -> Any:
    from vpa_weaviate.store import WeaviateStore

    return WeaviateStore.from_config(config)


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "weaviate",
        factory,
        capabilities=CAPABILITIES,
        description=(
            "Weaviate (v4 client, REST + gRPC) at VPA_VECTOR_DB_HOST:PORT or [providers.weaviate] url; "
            "HNSW cosine, typed properties, optional multi-tenancy"
        ),
    )
