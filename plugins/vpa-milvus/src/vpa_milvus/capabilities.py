"""What the `milvus` store declares. Kept apart from the store so that registering the plugin
(which every `vpa` command does) never imports pymilvus."""

from __future__ import annotations

from vpa.models import StoreCapabilities

#: Bytes of the VARCHAR text field, and of the JSON metadata field.
TEXT_MAX_BYTES = 65_535
#: Milvus's limit on ``limit`` (top-k) per search.
MAX_TOP_K = 16_384

CAPABILITIES = StoreCapabilities(
    exact=True,  # FLAT index: brute-force cosine, the exact top-k
    max_batch_size=1000,  # rows per upsert request (further split to REQUEST_BYTES)
    max_top_k=MAX_TOP_K,
    persistent=True,
    eventually_consistent=False,  # consistency level Strong on every read
    heterogeneous_fields=True,  # one JSON field, typed keys: any type per key per record
    max_record_bytes=TEXT_MAX_BYTES,  # VARCHAR text and the JSON field are 64 KiB each
)
