"""The `pinecone` store, registered through VPA's store hook (entry point group ``vpa``).

Import-light on purpose: the pinecone SDK is imported only when a store is built.
"""

from __future__ import annotations

from typing import Any

from vpa.hookspecs import hookimpl

from vpa_pinecone.capabilities import CAPABILITIES


def factory(config: Any) -> Any:
    from vpa_pinecone.store import PineconeStore

    return PineconeStore.from_config(config)


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "pinecone",
        factory,
        capabilities=CAPABILITIES,
        description=(
            "Pinecone serverless: collections are namespaces of one index "
            "([providers.pinecone] index, cloud, region); key in VPA_VECTOR_DB_API_KEY"
        ),
    )
