"""The `pinecone` store, registered through VPA's store hook (entry point group ``vpa``)."""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_pinecone.store import CAPABILITIES, PineconeStore


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "pinecone",
        PineconeStore.from_config,
        capabilities=CAPABILITIES,
        description=(
            "Pinecone serverless: collections are namespaces of one index "
            "([providers.pinecone] index, cloud, region); key in VPA_VECTOR_DB_API_KEY"
        ),
    )
