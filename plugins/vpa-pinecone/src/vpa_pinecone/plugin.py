"""The `pinecone` store, registered by name; its class (and the pinecone SDK) load on first use."""

from vpa.hookspecs import hookimpl


@hookimpl
def vpa_register_stores(register):
    register(
        "pinecone",
        "vpa_pinecone.store:PineconeStore",
        description="Pinecone serverless: collections are namespaces of one index "
        "([providers.pinecone] index, cloud, region); key in VPA_VECTOR_DB_API_KEY",
    )
