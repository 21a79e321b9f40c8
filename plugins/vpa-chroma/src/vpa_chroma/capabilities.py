"""What the `chroma` store declares. Kept apart from the store so that registering the plugin
(which every `vpa` command does) never imports chromadb."""

from __future__ import annotations

from vpa.models import StoreCapabilities

#: Chroma's own per-call limit (``client.get_max_batch_size()`` on chromadb 1.5); the store
#: splits further if a server reports less.
CHROMA_MAX_BATCH = 5461

CAPABILITIES = StoreCapabilities(
    exact=False,  # HNSW is approximate; see the README for the recall measured
    min_recall=0.9,
    max_batch_size=CHROMA_MAX_BATCH,
    persistent=True,
)
