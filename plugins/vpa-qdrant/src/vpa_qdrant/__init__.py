"""VPA store plugin for Qdrant (embedded local mode or a Qdrant server): `vpa_qdrant.store`."""

__version__ = "0.3.0"
