"""What the `chroma` store declares. Kept apart from the store so that registering the plugin
(which every `vpa` command does) never imports chromadb."""

from __future__ import annotations

from vpa.models import StoreCapabilities

#: Chroma's own per-call limit (``client.get_max_batch_size()`` on chromadb 1.5); the store
#: splits further if a server reports less.
CHROMA_MAX_BATCH = 5461

#: What Chroma 1.5 survives, measured through this plugin, embedded and ``chroma run`` alike (one
#: Rust executor over SQLite). A filter compiles to one SQL expression; past SQLite's expression
#: depth of 1000 the query fails ("Expression tree is too large"), and far past it the process
#: dies (SIGSEGV: ``$or`` of ~2,900 number ``$eq`` on a server, ~5,000 embedded). The worst
#: translation is ``$not`` of an ``$and`` of ordering comparisons (3 operands a term): fails at
#: 330 terms; a wide ``$or`` of ``$eq`` at 495, an ``$in`` of strings between 900 and 1,000.
MAX_FILTER_TERMS = 200
#: Chroma's ``where`` nests at most 63 levels; a VPA level is one (negations are pushed down).
MAX_FILTER_DEPTH = 32
#: A record's scalar metadata, and separately its list items, are written in one SQL statement
#: each: past 5,461 of either (32,766 variables / 6) compaction fails and leaves the collection
#: broken for every later write, read and drop. The plugin adds at most one list item per key
#: (the names of numeric fields) and one scalar (the document), so 256 keys and 12 KiB of
#: metadata (at most 3,326 list items and 257 scalars with the bookkeeping) stay under 2/3 of it.
MAX_METADATA_KEYS = 256
MAX_METADATA_BYTES = 12 * 1024

CAPABILITIES = StoreCapabilities(
    exact=False,  # HNSW is approximate; see the README for the recall measured
    min_recall=0.9,
    max_batch_size=CHROMA_MAX_BATCH,
    persistent=True,
    max_filter_terms=MAX_FILTER_TERMS,
    max_filter_depth=MAX_FILTER_DEPTH,
    max_metadata_keys=MAX_METADATA_KEYS,
    max_metadata_bytes=MAX_METADATA_BYTES,
)
