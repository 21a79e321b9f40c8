"""vpa-dictstore: a template VPA store plugin over a toy in-memory client."""

__version__ = "0.1.0"
