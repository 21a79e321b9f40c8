"""VPA store plugin for Qdrant (embedded: qdrant-client's local mode, or Qdrant Edge opt-in; or a Qdrant
server): `vpa_qdrant.store`."""

__version__ = "0.3.2"
