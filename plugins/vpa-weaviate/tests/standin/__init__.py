"""A wire-level *stand-in* for Weaviate, for VPA's tests (it is not Weaviate).

It speaks what the official ``weaviate-client`` v4 uses — the REST ``/v1`` schema, tenant, meta and
readiness endpoints and the gRPC ``weaviate.v1.Weaviate`` service (Search, BatchObjects,
BatchDelete, Aggregate, TenantsGet) plus the gRPC health check — over real sockets, backed by the
in-memory model in `model`. Start it with ``python -m standin`` (see `__main__`); it prints one
JSON line with its ports and runs until SIGTERM.
"""
