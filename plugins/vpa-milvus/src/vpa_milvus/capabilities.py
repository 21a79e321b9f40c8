"""What the `milvus` store declares. Kept apart from the store so that registering the plugin
(which every `vpa` command does) never imports pymilvus."""

from __future__ import annotations

from vpa.models import StoreCapabilities

#: Bytes of the VARCHAR text field, and of the JSON metadata field.
TEXT_MAX_BYTES = 65_535
#: Milvus's limit on ``limit`` (top-k) per search.
MAX_TOP_K = 16_384

#: A VPA term becomes up to four predicates on the JSON field (``exists`` and a comparison, for
#: the int and the float key of a number; an ``$in`` is one ``or`` per value), evaluated row by
#: row: Milvus Lite took about 15 ms a term per 1,000 rows (a 1,024-term ``$or`` 15 s, a
#: 4,096-term ``$not`` of an ``$and`` past the client's deadline). A quarter of the default
#: keeps one search near a second per 1,000 rows.
MAX_FILTER_TERMS = 256
#: Metadata is one JSON field (64 KiB, which ``max_record_bytes`` already bounds); a key costs no
#: more than its bytes there, so more keys than the default fit (1,024 measured to round-trip).
MAX_METADATA_KEYS = 1024

CAPABILITIES = StoreCapabilities(
    exact=True,  # FLAT index: brute-force cosine, the exact top-k
    max_batch_size=1000,  # rows per upsert request (further split to REQUEST_BYTES)
    max_top_k=MAX_TOP_K,
    persistent=True,
    eventually_consistent=False,  # consistency level Strong on every read
    heterogeneous_fields=True,  # one JSON field, typed keys: any type per key per record
    max_record_bytes=TEXT_MAX_BYTES,  # VARCHAR text and the JSON field are 64 KiB each
    max_filter_terms=MAX_FILTER_TERMS,
    max_metadata_keys=MAX_METADATA_KEYS,
)
