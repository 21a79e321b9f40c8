"""What the `weaviate` store declares. Kept apart from the store so that registering the plugin
(which every `vpa` command does) never imports weaviate-client."""

from __future__ import annotations

from vpa.models import StoreCapabilities

#: Weaviate's default QUERY_MAXIMUM_RESULTS: the most objects one search (or delete) may touch.
QUERY_MAXIMUM_RESULTS = 10_000
#: Objects per batch request. Weaviate has no count limit of its own (its limit is the gRPC
#: message size, which the store also respects); 1,000 is the client's recommended upper batch size.
MAX_BATCH = 1_000

CAPABILITIES = StoreCapabilities(
    exact=False,
    min_recall=0.9,
    max_batch_size=MAX_BATCH,
    max_top_k=QUERY_MAXIMUM_RESULTS,
    eventually_consistent=False,
    persistent=True,
    heterogeneous_fields=False,
)
