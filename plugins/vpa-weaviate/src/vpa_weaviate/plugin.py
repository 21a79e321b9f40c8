"""The `weaviate` store, registered by name: registering never imports weaviate-client."""

from vpa.hookspecs import Register, hookimpl


@hookimpl
def vpa_register_stores(register: Register) -> None:
    register(
        "weaviate",
        "vpa_weaviate.store:WeaviateStore",
        description="Weaviate (v4 client, REST + gRPC) at VPA_VECTOR_DB_HOST:PORT or [providers.weaviate] "
        "url; HNSW cosine, typed properties, optional multi-tenancy",
    )
