"""What the `qdrant` store declares, and the limits behind it. Kept apart from the store so that
registering the plugin (which every `vpa` command does) never imports qdrant-client."""

from __future__ import annotations

from typing import Any

import attrs
from vpa.models import ALL_FILTER_OPS, ALL_METADATA_TYPES, StoreCapabilities

#: Points per upsert request. Qdrant's server refuses requests over 32 MB by default
#: (``service.max_request_size_mb``); 256 points of 1536 floats as JSON stay well under it.
DEFAULT_MAX_BATCH_SIZE = 256
#: Text plus metadata per record. Even JSON-escaped, one such record fits in a default request.
MAX_RECORD_BYTES = 4 * 1024 * 1024
#: Upsert requests are further split so that their estimated JSON size stays under this.
REQUEST_BYTES_BUDGET = 16 * 1024 * 1024
#: Ids per retrieve/delete request, and points per scroll page.
PAGE_SIZE = 1000
DEFAULT_SERVER_MIN_RECALL = 0.9

#: What every mode guarantees (server mode with HNSW search declares exactly this).
BASE_CAPABILITIES = StoreCapabilities(
    filter_operators=ALL_FILTER_OPS,
    metadata_types=ALL_METADATA_TYPES,
    exact=False,
    min_recall=DEFAULT_SERVER_MIN_RECALL,
    max_batch_size=DEFAULT_MAX_BATCH_SIZE,
    eventually_consistent=False,
    persistent=True,
    heterogeneous_fields=True,
    max_record_bytes=MAX_RECORD_BYTES,
)

#: Local mode evaluates a filter in Python, condition by condition on every point: about 25 ms a
#: term per 1,000 points measured (a 1,024-term ``$or`` took 12 s, the ``$not`` of an ``$and`` of
#: 1,024 ordering comparisons 27 s, over 1,000 points), holding the GIL. It survives any width,
#: but a quarter of the server's bound keeps one search from stalling the process for long. The
#: server (Rust, indexed payloads) takes the default 1,024 terms and 32 levels (a level is two
#: JSON levels of a nested ``Filter``: 64 of serde's 128).
LOCAL_MAX_FILTER_TERMS = 256

#: Local mode is brute force: every query scores every point, so it is exact. The default mode,
#: so the registration declares it (see `vpa_qdrant.plugin`).
LOCAL_CAPABILITIES = attrs.evolve(
    BASE_CAPABILITIES, exact=True, min_recall=1.0, max_filter_terms=LOCAL_MAX_FILTER_TERMS
)


def capabilities_for(config: Any) -> StoreCapabilities:
    """What a store built by ``QdrantStore.from_config(config)`` declares (no client import)."""
    options = config.provider_options("qdrant")
    in_memory = bool(options.get("in_memory", False))
    server = not in_memory and (options.get("url") is not None or bool(config.host))
    batch = int(options.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE))
    if server:
        exact = bool(options.get("exact", False))
        recall = 1.0 if exact else float(options.get("min_recall", DEFAULT_SERVER_MIN_RECALL))
        return attrs.evolve(BASE_CAPABILITIES, exact=exact, min_recall=recall, max_batch_size=batch)
    return attrs.evolve(LOCAL_CAPABILITIES, persistent=not in_memory, max_batch_size=batch)
