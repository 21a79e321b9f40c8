"""What the `pinecone` store declares, and Pinecone's limits behind it. Kept apart from the store
so that registering the plugin (which every `vpa` command does) never imports the pinecone SDK."""

from __future__ import annotations

from vpa.models import ALL_FILTER_OPS, ALL_METADATA_TYPES, StoreCapabilities

#: Pinecone's limits (docs: "Limits"): vectors per upsert, bytes per request, ids per fetch/delete.
MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2_000_000  # Pinecone says 2 MB; stay under it whichever MB it means
MAX_IDS_PER_REQUEST = 1000
MAX_TOP_K = 10_000
MAX_TOP_K_WITH_METADATA = 1000
MAX_INDEX_DIMENSION = 20_000
FETCH_URL_BUDGET = 6000  # characters of ids in one GET /vectors/fetch query string
IDS_PER_FILTER = 100  # ids in one {"vpa-id": {"$in": [...]}} filter (ids may be 2 KB each)

#: What text + metadata (VPA's measure) may take so that the stored Pinecone metadata — which
#: adds the original id (up to 2 KB of UTF-8) and the type tags — fits in 40 KB. A record under
#: this bound can still be refused with `RecordTooLarge` (before any I/O) if it has very many
#: numeric fields; see `codec.check_size`.
MAX_RECORD_BYTES = 38_000
#: Metadata alone, within that (a record at this bound keeps about 5 kB for its text). Pinecone
#: documents no key count of its own; the store adds one shadow key per number field.
MAX_METADATA_BYTES = 32 * 1024

CAPABILITIES = StoreCapabilities(
    filter_operators=ALL_FILTER_OPS,
    metadata_types=ALL_METADATA_TYPES,
    exact=False,  # serverless search is approximate (the stand-in is exact)
    min_recall=0.9,
    max_batch_size=MAX_UPSERT_VECTORS,
    max_top_k=MAX_TOP_K,
    eventually_consistent=True,
    persistent=True,
    heterogeneous_fields=True,
    max_record_bytes=MAX_RECORD_BYTES,
    max_metadata_bytes=MAX_METADATA_BYTES,
    # Filters: Pinecone caps an $in/$nin at 10,000 values; VPA's default 1,024 terms and 32
    # levels stay well under it (a negated number comparison becomes three conditions).
)
